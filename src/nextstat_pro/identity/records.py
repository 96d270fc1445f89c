"""Database functions of the identity operations: lookups, rows as views, password-reset records.

They take the caller's ``Session``, never commit and never authorize: the operations of
``identity.users``, ``identity.auth`` and ``identity.resets`` call them after ``authorize``, inside
the transaction they own. Not part of the service surface.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import PasswordReset, Project, User
from ..db.types import utcnow
from ..errors import NotFoundError
from ..ids import new_id
from .views import UserRow

RESET_PREFIX = "nspr_"


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user named {username!r}")
    return user


def get_project(session: Session, name: str) -> Project:
    """The project ``name`` (identity sits below ``projects``, which authorizes through it)."""
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFoundError(f"no project named {name!r}")
    return project


def user_row(u: User) -> UserRow:
    return UserRow(username=u.username, printed_name=u.printed_name, email=u.email,
                   instance_admin=u.is_instance_admin, disabled=u.disabled, locked=u.locked_at is not None,
                   must_change_password=u.must_change_password, auditor=u.is_auditor)


def open_reset(session: Session, user: User, channel: str, requested_by: str, reason: str,
               expires_at: datetime) -> tuple[PasswordReset, list[str]]:
    """A new reset of ``user``; the resets still open for them are superseded (only the newest
    token works). Returns the reset and the ids it superseded."""
    superseded = []
    for old in session.scalars(select(PasswordReset).where(PasswordReset.user_id == user.id,
                                                           PasswordReset.state.in_(("requested", "issued")))):
        old.state = "superseded"
        superseded.append(old.id)
    reset = PasswordReset(id=new_id(), user_id=user.id, channel=channel, state="requested", reason=reason,
                          requested_by=requested_by, requested_at=utcnow(), expires_at=expires_at)
    session.add(reset)
    return reset, superseded


def issue_token(reset: PasswordReset, expires_at: datetime) -> str:
    """Make the reset's one-time token (``nspr_<reset id>.<secret>``); only sha256(secret) is kept."""
    secret = secrets.token_urlsafe(32)
    reset.token_hash = _hash(secret)
    reset.state = "issued"
    reset.expires_at = expires_at
    return f"{RESET_PREFIX}{reset.id}.{secret}"


def find_reset(session: Session, token: str) -> PasswordReset | None:
    """The reset whose token ``token`` is (its secret checked in constant time), or None."""
    if not token.startswith(RESET_PREFIX) or "." not in token:
        return None
    reset_id, _, secret = token[len(RESET_PREFIX):].partition(".")
    if len(reset_id) > 36:
        return None
    reset = session.get(PasswordReset, reset_id)
    if reset is None or reset.token_hash is None or not hmac.compare_digest(reset.token_hash, _hash(secret)):
        return None
    return reset


def pending_approval(session: Session, user: User) -> PasswordReset | None:
    """The reset of ``user`` awaiting a second admin's approval, if any (expired ones included:
    the caller says so)."""
    return session.scalar(select(PasswordReset).where(PasswordReset.user_id == user.id,
                                                      PasswordReset.channel == "approval",
                                                      PasswordReset.state == "requested"))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
