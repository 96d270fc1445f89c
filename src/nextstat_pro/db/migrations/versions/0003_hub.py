"""NS-Hub: registry items, immutable content-addressed versions, tags, aliases, run references.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from nextstat_pro.db.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

IMMUTABLE = ("item_id", "digest", "semver", "size", "media_type", "meta", "created_at", "created_by")


def upgrade() -> None:
    op.create_table(
        "hub_items",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("project_id", "kind", "name", name="uq_hub_items_name"),
    )
    op.create_table(
        "hub_versions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("item_id", sa.String(36), sa.ForeignKey("hub_items.id"), nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("semver", sa.String(64)),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(60), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("archived_at", UTCDateTime()),
        sa.Column("purged_at", UTCDateTime()),
        sa.UniqueConstraint("item_id", "digest", name="uq_hub_versions_digest"),
        sa.UniqueConstraint("item_id", "semver", name="uq_hub_versions_semver"),
    )
    op.create_index("ix_hub_versions_digest", "hub_versions", ["digest"])
    op.create_index("ix_hub_versions_item_created", "hub_versions", ["item_id", "created_at"])
    op.create_table(
        "hub_tags",
        sa.Column("version_id", sa.String(36), sa.ForeignKey("hub_versions.id"), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.String(300), nullable=False),
    )
    op.create_index("ix_hub_tags_key_value", "hub_tags", ["key", "value", "version_id"])
    op.create_table(
        "hub_aliases",
        sa.Column("item_id", sa.String(36), sa.ForeignKey("hub_items.id"), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.String(36), sa.ForeignKey("hub_versions.id"), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "run_versions",
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("version_id", sa.String(36), sa.ForeignKey("hub_versions.id"), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("ref", sa.String(300), nullable=False),
    )
    op.create_index("ix_run_versions_version", "run_versions", ["version_id"])
    bind = op.get_bind()
    cols = ", ".join(IMMUTABLE)
    if bind.dialect.name == "sqlite":
        op.execute(f"CREATE TRIGGER hub_versions_immutable BEFORE UPDATE OF {cols} ON hub_versions "
                   "BEGIN SELECT RAISE(ABORT, 'hub version content is immutable'); END")
    else:
        op.execute(
            "CREATE OR REPLACE FUNCTION nsp_hub_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            # json has no equality operator: compare its text.
            + " ".join(f"IF NEW.{c}{'::text' if c == 'meta' else ''} IS DISTINCT FROM OLD.{c}"
                       f"{'::text' if c == 'meta' else ''} THEN RAISE EXCEPTION 'hub version content is immutable'; "
                       "END IF;" for c in IMMUTABLE)
            + " RETURN NEW; END $$"
        )
        op.execute("CREATE TRIGGER hub_versions_immutable BEFORE UPDATE ON hub_versions "
                   "FOR EACH ROW EXECUTE FUNCTION nsp_hub_immutable()")
    app_role = context.config.attributes.get("app_role")
    if bind.dialect.name == "postgresql" and app_role:
        for table in ("hub_items", "hub_versions", "hub_tags", "hub_aliases", "run_versions"):
            op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{app_role}"')
