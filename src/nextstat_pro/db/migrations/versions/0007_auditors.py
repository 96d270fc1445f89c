"""Auditors: an instance-level role that may read and verify everything and change nothing.

A flag on the user rather than a role binding: bindings are per project, and an auditor's
reach is the whole instance, including projects created after the grant. Granted and revoked
by an instance administrator (``user set-auditor``), each change an audit event.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("is_auditor", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("is_auditor")
