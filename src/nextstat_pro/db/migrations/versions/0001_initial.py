"""Initial schema: instance, users, projects, runs, audit events (append-only).

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from nextstat_pro.db.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_info",
        sa.Column("instance_id", sa.String(36), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("printed_name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("is_instance_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("task", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("seed", sa.BigInteger()),
        sa.Column("patch", sa.String(300)),
        sa.Column("created_by", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("error", sa.Text()),
        sa.Column("fit_ok", sa.Boolean()),
        sa.Column("manifest_digest", sa.String(71)),
    )
    op.create_index("ix_runs_project_id", "runs", ["project_id"])
    op.create_index("ix_runs_task", "runs", ["task"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    for table in ("run_inputs", "run_artifacts"):
        extra = (
            [sa.Column("role", sa.String(20), nullable=False)]
            if table == "run_inputs"
            else [sa.Column("media_type", sa.String(100), nullable=False)]
        )
        op.create_table(
            table,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), nullable=False),
            sa.Column("name", sa.String(300), nullable=False),
            sa.Column("digest", sa.String(71), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            *extra,
        )
        op.create_index(f"ix_{table}_run_id", table, ["run_id"])
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.String(100), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("target_type", sa.String(40), nullable=False),
        sa.Column("target_id", sa.String(200), nullable=False),
        sa.Column("project", sa.String(100)),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_events_ts", "audit_events", ["ts"])
    op.create_index("ix_audit_events_actor_id", "audit_events", ["actor_id"])
    op.create_index("ix_audit_events_action", "audit_events", ["action"])
    op.create_index("ix_audit_events_project", "audit_events", ["project"])
    op.create_index("ix_audit_target", "audit_events", ["target_type", "target_id"])
    op.create_table(
        "audit_tree_nodes",
        sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "purged_objects",
        sa.Column("digest", sa.String(71), primary_key=True),
        sa.Column("purged_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.String(36), nullable=False),
    )
    for table in APPEND_ONLY:
        _append_only(table)
    if op.get_bind().dialect.name == "postgresql":
        _restrict_privileges()


APPEND_ONLY = ("audit_events", "audit_tree_nodes", "audit_checkpoints", "purged_objects")
OWNER_ROLE = "nsp_audit_owner"


def _restrict_privileges() -> None:
    """On PostgreSQL, the append-only tables belong to a NOLOGIN role and the application
    role (the one named in the instance's database URL) may only SELECT and INSERT.

    This needs a migration run by a role that can create roles (``db upgrade --admin-db``
    or ``init --admin-db``); run as the application role itself, it is skipped and the
    triggers alone guard the tables.
    """
    bind = op.get_bind()
    app_role = context.config.attributes.get("app_role")
    can = bind.exec_driver_sql(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).scalar()
    if not app_role or not can:
        return
    op.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER_ROLE}') "
        f"THEN CREATE ROLE {OWNER_ROLE} NOLOGIN; END IF; END $$"
    )
    op.execute(f'GRANT USAGE ON SCHEMA public TO "{app_role}"')
    for table in ("instance_info", "users", "projects", "runs", "run_inputs", "run_artifacts", "alembic_version"):
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{app_role}"')
    op.execute(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{app_role}"')
    for table in APPEND_ONLY:
        op.execute(f"ALTER TABLE {table} OWNER TO {OWNER_ROLE}")
        op.execute(f'REVOKE ALL ON {table} FROM PUBLIC, "{app_role}"')
        op.execute(f'GRANT SELECT, INSERT ON {table} TO "{app_role}"')


def _append_only(table: str) -> None:
    """The database itself refuses UPDATE and DELETE of audit rows."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
    else:
        op.execute(
            "CREATE OR REPLACE FUNCTION nsp_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION nsp_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION nsp_append_only()"
        )
