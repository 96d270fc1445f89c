"""Authentication: passwords, lockout, CLI sessions and API tokens.

A credential is ``nsp_<token id>.<secret>``; only sha256(secret) is stored. A session is
what ``login`` creates (kind ``session``, expiring after ``auth.session_hours``); an API
token is scoped to one project and capped at one role. Failed sign-ins count towards a
lockout and are audited (a lockout is marked for alerting).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.events import append_event
from ..config import AuthPolicy
from ..db.models import ApiToken, Project, User
from ..db.types import utcnow
from ..errors import AuthenticationError, UsageError
from ..ids import new_id
from .actors import Interface, RequestContext
from .passwords import check_policy, hash_password, normalize, verify_password
from .rbac import ROLES, authorize
from .strength import context_words
from .userkeys import active_key, create_key, reencrypt
from .users import actor_for

PREFIX = "nsp_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _refuse(message: str, ctx: RequestContext | None, action: str, target: tuple[str, str],
            after: dict[str, object]) -> AuthenticationError:
    err = AuthenticationError(message)
    if ctx is not None:
        err.security_event = {"ctx": ctx, "action": action, "target": target, "project": None, "after": after}
    return err


@dataclass(frozen=True)
class Credential:
    token: str
    token_id: str
    expires_at: datetime


def _anonymous(username: str, interface: Interface) -> RequestContext:
    from .actors import Actor

    return RequestContext(Actor(id=f"unauthenticated:{username}", name=username, kind="service"), interface=interface)


def check_password(session: Session, user: User, password: str, policy: AuthPolicy, interface: Interface,
                   purpose: str) -> None:
    """Verify ``password`` for ``user``; a failure is counted, audited, and may lock the
    account. Raises AuthenticationError (after the caller's transaction commits the count:
    use inside ``login``/``sign``, which commit before raising)."""
    ctx = RequestContext(actor_for(user), interface=interface)
    if user.disabled:
        raise _refuse(f"user {user.username} is disabled", ctx, "auth.refused", ("user", user.id),
                      {"reason": "disabled", "purpose": purpose})
    if user.locked_at is not None:
        raise _refuse(f"user {user.username} is locked after failed sign-ins; an administrator must reset the password",
                      ctx, "auth.refused", ("user", user.id), {"reason": "locked", "purpose": purpose, "alert": True})
    if verify_password(user.password_hash, password):
        if user.failed_logins:
            user.failed_logins = 0
        return
    user.failed_logins += 1
    locked = user.failed_logins >= policy.lockout_attempts
    if locked:
        user.locked_at = utcnow()
    append_event(session, ctx, action="auth.failed", target=("user", user.id),
                 after={"purpose": purpose, "failed_attempts": user.failed_logins, "alert": locked})
    if locked:
        append_event(session, ctx, action="user.locked", target=("user", user.id),
                     after={"failed_attempts": user.failed_logins, "alert": True},
                     reason=f"{user.failed_logins} failed sign-ins")
    raise PendingAuthFailure(f"wrong password for {user.username}" + (" (account now locked)" if locked else ""))


class PendingAuthFailure(AuthenticationError):
    """A failed attempt whose counter and events must commit before the error surfaces."""


def login(db_transaction, policy: AuthPolicy, username: str, password: str,  # type: ignore[no-untyped-def]
          interface: Interface = "cli") -> Credential:
    """Sign in; return a session credential. Every outcome is audited."""
    failure: AuthenticationError | None = None
    with db_transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            append_event(session, _anonymous(username, interface), action="auth.failed",
                         target=("user", username), after={"purpose": "login", "reason": "unknown user"})
            failure = AuthenticationError("unknown user or wrong password")
        else:
            try:
                check_password(session, user, password, policy, interface, "login")
            except PendingAuthFailure as exc:
                failure = AuthenticationError(exc.message)
        if failure is None:
            assert user is not None
            cred = _issue(session, user, "session", "cli session", None, None,
                          utcnow() + timedelta(hours=policy.session_hours))
            aged = user.password_changed_at is not None and \
                user.password_changed_at < utcnow() - timedelta(days=policy.max_password_age_days)
            if aged and not user.must_change_password:
                user.must_change_password = True
            append_event(session, RequestContext(actor_for(user), interface=interface, token_id=cred.token_id),
                         action="auth.login", target=("user", user.id),
                         after={"session": cred.token_id, "must_change_password": user.must_change_password})
    if failure is not None:
        raise failure
    return cred


def _issue(session: Session, user: User, kind: str, name: str, project: Project | None, role: str | None,
           expires_at: datetime) -> Credential:
    token_id, secret = new_id(), secrets.token_urlsafe(32)
    session.add(ApiToken(id=token_id, user_id=user.id, kind=kind, name=name,
                         project_id=project.id if project else None, role=role, secret_hash=_hash(secret),
                         created_at=utcnow(), expires_at=expires_at))
    return Credential(f"{PREFIX}{token_id}.{secret}", token_id, expires_at)


def parse_token(token: str) -> tuple[str, str]:
    if not token.startswith(PREFIX) or "." not in token:
        raise AuthenticationError("malformed token (expected nsp_<id>.<secret>)")
    token_id, _, secret = token[len(PREFIX):].partition(".")
    return token_id, secret


def authenticate(session: Session, token: str, interface: Interface = "cli",
                 allow_password_change: bool = False) -> RequestContext:
    """The request context of a credential, or AuthenticationError."""
    token_id, secret = parse_token(token)
    row = session.get(ApiToken, token_id)
    if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
        raise AuthenticationError("unknown or invalid token: log in again")
    user = session.get(User, row.user_id)
    assert user is not None
    ctx = RequestContext(actor_for(user), interface=interface, token_id=row.id, token_kind=row.kind,
                         token_project_id=row.project_id, token_role=row.role)
    if row.revoked_at is not None:
        raise _refuse(f"{row.kind} {row.id} was revoked: log in again", ctx, "auth.refused", ("token", row.id),
                      {"reason": "revoked"})
    if row.expires_at < utcnow():
        raise _refuse(f"{row.kind} {row.id} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC: log in again", ctx,
                      "auth.refused", ("token", row.id), {"reason": "expired"})
    if user.disabled or user.locked_at is not None:
        raise _refuse(f"user {user.username} is {'disabled' if user.disabled else 'locked'}", ctx, "auth.refused",
                      ("user", user.id), {"reason": "disabled" if user.disabled else "locked"})
    if user.must_change_password and not allow_password_change:
        raise AuthenticationError(f"user {user.username} must change the password first (nextstat-pro passwd)")
    return ctx


def logout(session: Session, ctx: RequestContext) -> None:
    if ctx.token_id is None:
        return
    row = session.get(ApiToken, ctx.token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        append_event(session, ctx, action="token.revoked", target=("token", row.id), before={"revoked": False},
                     after={"revoked": True, "kind": row.kind}, reason="logout")


def create_token(session: Session, ctx: RequestContext, policy: AuthPolicy, project: Project, role: str,
                 name: str, days: int) -> Credential:
    """An API token for the caller, scoped to ``project`` and capped at ``role`` (at most the
    caller's own role there)."""
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if not 1 <= days <= policy.token_max_days:
        raise UsageError(f"token lifetime must be 1..{policy.token_max_days} days")
    need = {"viewer": "run.read", "editor": "run.create", "admin": "role.grant"}[role]
    authorize(session, ctx, need, project)
    user = session.get(User, ctx.actor.id)
    assert user is not None
    cred = _issue(session, user, "api", name, project, role, utcnow() + timedelta(days=days))
    append_event(session, ctx, action="token.created", target=("token", cred.token_id), project=project.name,
                 after={"name": name, "role": role, "expires_at": cred.expires_at.isoformat()})
    return cred


def revoke_token(session: Session, ctx: RequestContext, token_id: str, reason: str) -> None:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise UsageError(f"no token {token_id}")
    if row.user_id != ctx.actor.id and not ctx.actor.is_instance_admin:
        authorize(session, ctx, "user.disable")  # only the owner or an instance admin
    if row.revoked_at is not None:
        return
    row.revoked_at = utcnow()
    append_event(session, ctx, action="token.revoked", target=("token", row.id), before={"revoked": False},
                 after={"revoked": True, "kind": row.kind}, reason=reason)


def change_password(session: Session, ctx: RequestContext, policy: AuthPolicy, old: str, new: str) -> None:
    """The user changes their own password; their signing key is re-encrypted (or, after an
    administrator's reset, created: so only the user ever holds it)."""
    user = session.get(User, ctx.actor.id)
    assert user is not None
    if not verify_password(user.password_hash, old):
        raise AuthenticationError("the current password is wrong")
    if normalize(new) == normalize(old):
        raise UsageError("the new password must differ from the current one")
    check_policy(new, policy.min_password_length, min_score=policy.min_password_score,
                 context=context_words(user.username, user.printed_name, user.email))
    if active_key(session, user) is None:
        create_key(session, user, new)
    else:
        reencrypt(session, user, old, new)
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    user.must_change_password = False
    append_event(session, ctx, action="user.password_changed", target=("user", user.id),
                 before={"must_change_password": True}, after={"must_change_password": False},
                 reason="changed by the user")

