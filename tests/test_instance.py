"""Creating an instance, on SQLite and PostgreSQL; a second init changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from nextstat_pro.audit.service import verify
from nextstat_pro.db import migrate
from nextstat_pro.db.models import AuditEvent, Project, User
from nextstat_pro.errors import InstanceExistsError, UsageError
from nextstat_pro.identity.passwords import verify_password
from nextstat_pro.instance import Instance, init_instance

from .conftest import INIT_ACTIONS, PASSWORD

INIT = len(INIT_ACTIONS)


def test_init_creates_admin_project_and_events(instance: Instance) -> None:
    with instance.db.transaction() as s:
        admin = s.scalar(select(User).where(User.username == "admin"))
        assert admin is not None and admin.is_instance_admin and admin.printed_name == "Ada Admin"
        assert verify_password(admin.password_hash, PASSWORD)
        assert admin.password_hash != PASSWORD
        assert [p.name for p in s.scalars(select(Project))] == ["default"]
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
        assert actions == INIT_ACTIONS
        from nextstat_pro.db.models import UserKey

        assert s.scalar(select(UserKey.user_id)) == admin.id  # the admin's signing key
    assert verify(instance, instance.context()).ok
    assert migrate.current_revision(instance.db.engine) == migrate.head_revision()
    assert (instance.home / "config.json").stat().st_mode & 0o777 == 0o600


def test_second_init_in_the_same_home_is_refused(instance: Instance) -> None:
    before = (instance.home / "config.json").read_bytes()
    with pytest.raises(InstanceExistsError, match="exists already"):
        init_instance(instance.home, admin="other", password=PASSWORD, db_url=instance.config.db_url)
    assert (instance.home / "config.json").read_bytes() == before
    with instance.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 1


def test_second_init_on_the_same_database_is_refused(instance: Instance, tmp_path: Path) -> None:
    with pytest.raises(InstanceExistsError, match="holds an instance"):
        init_instance(tmp_path / "other-home", admin="other", password=PASSWORD, db_url=instance.config.db_url)
    assert not (tmp_path / "other-home").exists()
    with instance.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == len(INIT_ACTIONS)


def test_bad_admin_password_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="password too short"):
        init_instance(tmp_path / "home", admin="admin", password="short")
    assert not (tmp_path / "home").exists()


def test_upgrade_is_idempotent(instance: Instance) -> None:
    migrate.upgrade(instance.db.engine)
    assert migrate.current_revision(instance.db.engine) == migrate.head_revision()


def test_instance_on_s3_store(tmp_path: Path, s3_endpoint: str) -> None:
    inst = init_instance(tmp_path / "home", admin="admin", password=PASSWORD, store_url="s3://nsp-init-test/objs")
    try:
        digest = inst.store.put(b"x").digest
        assert Instance.open(inst.home).store.get(digest) == b"x"
    finally:
        inst.close()


def test_upgrade_to_clustered_hub_tags_keeps_every_tag(tmp_path: Path) -> None:
    """Migration 0005 rebuilds hub_tags WITHOUT ROWID on SQLite: rows, key and index survive."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, username, printed_name, password_hash, is_instance_admin, "
                          "disabled, created_at) VALUES ('u', 'u', 'U', 'x', 1, 0, '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO projects (id, name, description, created_at, created_by) "
                          "VALUES ('p', 'p', '', '2026-01-01 00:00:00', 'u')"))
        conn.execute(text("INSERT INTO hub_items (id, project_id, kind, name, created_at) "
                          "VALUES ('i', 'p', 'model', 'm', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO hub_versions (id, item_id, digest, size, media_type, meta, description, "
                          "created_at, created_by) VALUES ('v', 'i', 'sha256:0', 1, 'x', '{}', '', "
                          "'2026-01-01 00:00:00', 'u')"))
        conn.execute(text("INSERT INTO hub_tags VALUES ('v', 'analysis', 'tttt'), ('v', 'status', 'final')"))
    migrate.upgrade(engine)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT version_id, key, value FROM hub_tags ORDER BY key")).all() == [
            ("v", "analysis", "tttt"), ("v", "status", "final")]
        ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'hub_tags'")).scalar()
        assert "WITHOUT ROWID" in ddl
        plan = conn.execute(text("EXPLAIN QUERY PLAN SELECT version_id FROM hub_tags WHERE key = 'a' AND value = 'b'"))
        assert "COVERING INDEX ix_hub_tags_key_value" in " ".join(str(r) for r in plan)
        with pytest.raises(Exception, match="UNIQUE"):
            conn.execute(text("INSERT INTO hub_tags VALUES ('v', 'analysis', 'other')"))
    engine.dispose()
