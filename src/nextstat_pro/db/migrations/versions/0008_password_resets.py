"""Password resets that never let an administrator sign as the user.

``password_resets``: a reset asked for by an instance admin and completed by the user with a
one-time token (only its sha256 is stored), sent by e-mail over the instance's SMTP or, without
SMTP, issued on a second admin's approval. ``user_keys.after_admin_reset`` marks a key made by
completing a reset whose token an administrator saw: every signature by it says so. Keys made
before this revision are unmarked (a key made after an old-style reset cannot be told apart).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from nextstat_pro.db.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases: a batch copy of user_keys would drop its
    # append-only trigger on SQLite.
    op.add_column("user_keys", sa.Column("after_admin_reset", sa.Boolean(), nullable=False,
                                         server_default=sa.false()))
    op.create_table(
        "password_resets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("channel", sa.String(10), nullable=False),  # email | approval
        sa.Column("state", sa.String(12), nullable=False),  # requested | issued | used | superseded
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("approved_by", sa.String(36), sa.ForeignKey("users.id")),
        sa.Column("approved_at", UTCDateTime()),
        sa.Column("token_hash", sa.String(64)),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime()),
    )
    app_role = context.config.attributes.get("app_role")
    if op.get_bind().dialect.name == "postgresql" and app_role:
        op.execute(f'GRANT SELECT, INSERT, UPDATE ON password_resets TO "{app_role}"')


def downgrade() -> None:
    op.drop_table("password_resets")
    with op.batch_alter_table("user_keys") as batch:
        batch.drop_column("after_admin_reset")
