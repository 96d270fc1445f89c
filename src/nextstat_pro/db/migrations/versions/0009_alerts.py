"""Alert channels, rules, alerts, deliveries and the dispatcher lease (NS-Alerts).

``alert_state`` holds one row, ``dispatcher``: the lease that lets one dispatcher send at a time
and its cursor in the audit log. The cursor starts at the log's size when this revision runs,
so an existing instance is not alerted about its history (alerts/dispatcher.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from nextstat_pro.db.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLES = ("alert_channels", "alert_rules", "alerts", "alert_deliveries", "alert_attempts", "alert_state")


def upgrade() -> None:
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text()),
        sa.Column("previous_secret", sa.Text()),
        sa.Column("previous_until", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_alert_channels_name"),
    )
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("channel_id", sa.String(36), sa.ForeignKey("alert_channels.id"), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("since_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_alert_rules_name"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("rule_id", sa.String(36), sa.ForeignKey("alert_rules.id"), nullable=False),
        sa.Column("group_key", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("project", sa.String(100)),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.BigInteger()),
        sa.Column("last_seq", sa.BigInteger()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_alerts_rule_group", "alerts", ["rule_id", "group_key", "created_at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("alert_id", sa.String(36), sa.ForeignKey("alerts.id"), nullable=False, index=True),
        sa.Column("channel_id", sa.String(36), sa.ForeignKey("alert_channels.id"), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime()),
    )
    op.create_index("ix_alert_deliveries_due", "alert_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "alert_attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(36), sa.ForeignKey("alert_deliveries.id"), nullable=False, index=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text()),
    )
    state = op.create_table(
        "alert_state",
        sa.Column("name", sa.String(20), primary_key=True),
        sa.Column("holder", sa.String(100)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("integrity_at", UTCDateTime()),
    )
    bind = op.get_bind()
    size = bind.execute(sa.text("SELECT COALESCE(MAX(seq), 0) FROM audit_events")).scalar() or 0
    op.bulk_insert(state, [{"name": "dispatcher", "holder": None, "lease_until": None, "cursor": int(size),
                            "integrity_at": None}])
    app_role = context.config.attributes.get("app_role")
    if bind.dialect.name == "postgresql" and app_role:
        for table in _TABLES:
            op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{app_role}"')
        op.execute(f'GRANT USAGE, SELECT ON SEQUENCE alert_attempts_id_seq TO "{app_role}"')


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
