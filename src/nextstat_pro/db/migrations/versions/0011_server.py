"""Browser sessions and single sign-on identities (NS-Server).

Browser sessions need no table: a session cookie carries an ordinary ``session`` credential of
``api_tokens`` (server/sessions.py). Single sign-on adds:

- ``sso_identities``: the (issuer, subject) an IdP vouches for, bound to one user for ever (a
  username is taken at the first sign-in and never rebound to another identity);
- ``sso_pending``: a sign-in started at the IdP and not yet finished (the OIDC state with its
  nonce and PKCE verifier, or a SAML request id), used once, expiring after ``sso.login_minutes``;
- ``sso_seen_assertions``: SAML assertion ids accepted and not yet expired: a replay is refused;
- ``signing_passphrases``: an SSO user's signature passphrase (argon2id hash), which encrypts
  their signing key as a local password does (docs/identity.md).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from nextstat_pro.db.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TABLES = ("sso_identities", "sso_pending", "sso_seen_assertions", "signing_passphrases")


def upgrade() -> None:
    op.create_table(
        "sso_identities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_login_at", UTCDateTime()),
        sa.UniqueConstraint("issuer", "subject", name="uq_sso_identities_issuer_subject"),
    )
    op.create_table(
        "sso_pending",
        sa.Column("state", sa.String(100), primary_key=True),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("nonce", sa.String(100)),
        sa.Column("code_verifier", sa.String(200)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
    )
    op.create_table(
        "sso_seen_assertions",
        sa.Column("assertion_id", sa.String(300), primary_key=True),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
    )
    op.create_table(
        "signing_passphrases",
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("passphrase_hash", sa.String(200), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
    )
    app_role = context.config.attributes.get("app_role")
    if op.get_bind().dialect.name == "postgresql" and app_role:
        for table in _TABLES:
            op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{app_role}"')


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
