"""Reports and report templates (NS-Compliance).

Templates need no table: they are registry versions of kind ``template`` (hub_items.kind is free
text). ``reports`` and ``report_signatures`` are write-once: the application role may insert and
read them, never update or delete (on PostgreSQL by its grants; on SQLite by triggers).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from nextstat_pro.db.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TABLES = ("reports", "report_signatures")


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("template_version_id", sa.String(36), sa.ForeignKey("hub_versions.id"), nullable=False),
        sa.Column("template_digest", sa.String(71), nullable=False),
        sa.Column("record_digest", sa.String(71), nullable=False),
        sa.Column("data_digest", sa.String(71), nullable=False),
        sa.Column("html_digest", sa.String(71), nullable=False),
        sa.Column("pdf_digest", sa.String(71), nullable=False),
        sa.Column("envelope_digest", sa.String(71), nullable=False),
        sa.Column("parent_id", sa.String(36), sa.ForeignKey("reports.id")),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
    )
    op.create_index("ix_reports_project_kind", "reports", ["project_id", "kind", "created_at"])
    op.create_table(
        "report_signatures",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("report_id", sa.String(36), sa.ForeignKey("reports.id"), nullable=False),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("meaning", sa.String(20), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("signed_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_report_signatures_report_id", "report_signatures", ["report_id"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for table in _TABLES:
            op.execute(f"CREATE TRIGGER {table}_write_once BEFORE UPDATE ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} are write-once'); END")
    app_role = context.config.attributes.get("app_role")
    if bind.dialect.name == "postgresql" and app_role:
        for table in _TABLES:
            op.execute(f'GRANT SELECT, INSERT ON {table} TO "{app_role}"')


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
