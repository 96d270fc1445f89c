"""Run leases: an in-process run holds a lease it renews while it executes.

A run whose process died (kill -9, OOM, power loss) stops renewing; once its lease has
expired the next command, or ``runs recover``, marks it failed with reason ``abandoned``
(runs/lease.py). Runs recorded before this revision have no lease and are left as they are.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from nextstat_pro.db.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("lease_until", UTCDateTime(), nullable=True))
    # The recovery query reads running runs by lease: a partial index would do on both
    # databases, but the plain one serves the same query and keeps one definition.
    op.create_index("ix_runs_status_lease", "runs", ["status", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_runs_status_lease", "runs")
    op.drop_column("runs", "lease_until")
