"""Schema creation and upgrade through Alembic, for SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(engine: Engine, app_role: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    cfg.attributes["app_role"] = app_role
    return cfg


def upgrade(engine: Engine, revision: str = "head", app_role: str | None = None) -> None:
    """Migrate to ``revision``. With ``app_role`` (PostgreSQL, run by a role that may create
    roles), the audit tables are handed to a NOLOGIN owner and ``app_role`` keeps only
    SELECT and INSERT on them."""
    command.upgrade(_config(engine, app_role), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()
