"""Persistence models of single sign-on (migration 0011): identities bound to users, sign-ins in
flight, SAML assertions seen, and SSO users' signature passphrases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db.models import Base
from ..db.types import UTCDateTime


class SsoIdentity(Base):
    """An IdP's (issuer, subject), bound to one user for ever."""

    __tablename__ = "sso_identities"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    protocol: Mapped[str] = mapped_column(String(8))  # oidc or saml
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_sso_identities_issuer_subject"),)


class SsoPending(Base):
    """A sign-in sent to the IdP: the OIDC state (with nonce and PKCE verifier) or a SAML
    AuthnRequest id. Deleted when used: a second callback with the same state finds nothing."""

    __tablename__ = "sso_pending"
    state: Mapped[str] = mapped_column(String(100), primary_key=True)
    protocol: Mapped[str] = mapped_column(String(8))
    nonce: Mapped[str | None] = mapped_column(String(100))
    code_verifier: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SsoSeenAssertion(Base):
    """A SAML assertion accepted once, remembered until it expires (``NotOnOrAfter``)."""

    __tablename__ = "sso_seen_assertions"
    assertion_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SigningPassphrase(Base):
    """The argon2id hash of an SSO user's signature passphrase (it also encrypts their key)."""

    __tablename__ = "signing_passphrases"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    passphrase_hash: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
