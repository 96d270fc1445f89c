"""Indexes for the runs list of the API and the dashboard: newest first within a project, by
status, task or author, continued by a keyset cursor on (created_at, id) — each filter an index
range scan that stops after one page, however many runs a project holds.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_runs_project_created": ["project_id", "created_at", "id"],
    "ix_runs_project_status_created": ["project_id", "status", "created_at", "id"],
    "ix_runs_project_task_created": ["project_id", "task", "created_at", "id"],
    "ix_runs_project_author_created": ["project_id", "created_by", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "runs", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "runs")
