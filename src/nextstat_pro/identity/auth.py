"""Authentication: passwords, lockout, CLI sessions and API tokens.

A credential is ``nsp_<token id>.<secret>``; only sha256(secret) is stored. A session is
what ``login`` creates (kind ``session``, expiring after ``auth.session_hours``); an API
token is scoped to one project and capped at one role. Failed sign-ins count towards a
lockout and are audited (a lockout is marked for alerting).

``sign_in`` and ``authenticate`` make a ``RequestContext`` and so take none; every other operation
here takes the caller's, and owns its transaction. ``login`` is ``sign_in`` over a transaction
factory and a policy (the form tests of the sign-in timing call directly).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ..access.context import Interface, RequestContext
from ..access.rbac import ROLES, authorize
from ..audit.events import append_event
from ..config import AuthPolicy
from ..db.models import ApiToken, Project, User
from ..db.types import utcnow
from ..errors import AuthenticationError, NotFoundError, UsageError
from ..ids import new_id
from .passwords import check_policy, hash_password, normalize, verify_password
from .records import get_project
from .strength import context_words
from .userkeys import active_key, create_key, reencrypt
from .users import USERNAME, actor_for
from .views import TokenRow

if TYPE_CHECKING:
    from ..instance import Instance

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
    from ..access.context import Actor

    return RequestContext(Actor(id=f"unauthenticated:{username}", name=username, kind="service"), interface=interface)


def check_password(session: Session, user: User, password: str, policy: AuthPolicy, interface: Interface,
                   purpose: str, against: str | None = None, what: str = "password") -> None:
    """Verify ``password`` for ``user`` (against ``user.password_hash``, or ``against``: an SSO
    user's signature passphrase hash); a failure is counted, audited, and may lock the
    account. Raises AuthenticationError (after the caller's transaction commits the count:
    use inside ``login``/``sign``, which commit before raising)."""
    ctx = RequestContext(actor_for(user), interface=interface)
    if user.disabled:
        raise _refuse(f"user {user.username} is disabled", ctx, "auth.refused", ("user", user.id),
                      {"reason": "disabled", "purpose": purpose})
    if user.locked_at is not None:
        raise _refuse(f"user {user.username} is locked after failed sign-ins; an administrator must reset the password",
                      ctx, "auth.refused", ("user", user.id), {"reason": "locked", "purpose": purpose, "alert": True})
    if verify_password(against if against is not None else user.password_hash, password):
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
    raise PendingAuthFailure(f"wrong {what} for {user.username}" + (" (account now locked)" if locked else ""))


class PendingAuthFailure(AuthenticationError):
    """A failed attempt whose counter and events must commit before the error surfaces."""


# What every refused sign-in answers, whatever the cause (unknown user, wrong password, locked or
# disabled account): a different answer would tell a guesser which usernames exist. The audit
# event records the cause for administrators.
SIGN_IN_REFUSED = "unknown user or wrong password, or the account is locked or disabled"


@cache
def _no_account_hash() -> str:
    """An argon2id hash (the same parameters as every account's) of a random password: a sign-in
    without an account to check verifies against it, so it takes as long as one with."""
    return hash_password(secrets.token_urlsafe(24))


def login(db_transaction, policy: AuthPolicy, username: str, password: str,  # type: ignore[no-untyped-def]
          interface: Interface = "cli") -> Credential:
    """Sign in; return a session credential. Every outcome is audited; every refusal raises the
    same AuthenticationError (``SIGN_IN_REFUSED``) after the same argon2 work."""
    failure: AuthenticationError | None = None
    # No account can have a name outside USERNAME, and such a name (a surrogate, a newline) must
    # neither reach the database driver nor an audit event unescaped.
    valid_name = USERNAME.fullmatch(username) is not None
    # At most 80 characters: the event's actor id is "unauthenticated:" + this, in 100.
    shown = username if valid_name else ascii(username[:80])[:80]
    with db_transaction() as session:
        user = session.scalar(select(User).where(User.username == username)) if valid_name else None
        if user is None:
            verify_password(_no_account_hash(), password)
            append_event(session, _anonymous(shown, interface), action="auth.failed",
                         target=("user", shown), after={"purpose": "login", "reason": "unknown user"})
            failure = AuthenticationError(SIGN_IN_REFUSED)
        else:
            if user.disabled or user.locked_at is not None or not user.password_hash.startswith("$argon2"):
                # check_password refuses these before verifying, and an account without a local
                # password (single sign-on) fails at once: spend the same time, so a sign-in
                # attempt does not tell which accounts exist or how they sign in.
                verify_password(_no_account_hash(), password)
            try:
                check_password(session, user, password, policy, interface, "login")
            except PendingAuthFailure:
                failure = AuthenticationError(SIGN_IN_REFUSED)
            except AuthenticationError as exc:  # disabled or locked: recorded after the rollback
                refused = AuthenticationError(SIGN_IN_REFUSED)
                refused.security_event = exc.security_event
                raise refused from None
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


def sign_in(instance: Instance, username: str, password: str, interface: Interface = "cli") -> Credential:
    """``login`` against ``instance``: the operation adapters call to sign someone in. It takes no
    ``RequestContext`` because it is what makes one (from the credential it returns, through
    ``authenticate``); every outcome is audited by ``login``."""
    return login(instance.db.transaction, instance.config.auth, username, password, interface)


# A credential and its user in one statement built once, as plain rows on the Core connection:
# this runs before every request the server answers, and two ORM gets with their statements built
# each time cost 4x as much (benchmarks/bench_server.py).
_TOKEN_AND_USER = (
    select(ApiToken.id.label("token_id"), ApiToken.secret_hash, ApiToken.kind, ApiToken.project_id, ApiToken.role,
           ApiToken.revoked_at, ApiToken.expires_at, User.id, User.printed_name, User.username,
           User.is_instance_admin, User.is_auditor, User.disabled, User.locked_at, User.must_change_password)
    .join(User, User.id == ApiToken.user_id).where(ApiToken.id == bindparam("token_id"))
)


def authenticate(instance: Instance, token: str, interface: Interface = "cli",
                 allow_password_change: bool = False) -> RequestContext:
    """The request context of a credential, or AuthenticationError (a refusal of a known
    credential is audited). Like ``sign_in`` it takes no context: it is what makes one. A read:
    nothing but a refusal's event is written."""
    token_id, secret = parse_token(token)
    with instance.db.read() as session:
        row = session.connection().execute(_TOKEN_AND_USER, {"token_id": token_id}).one_or_none()
        if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
            raise AuthenticationError("unknown or invalid token: log in again")
        ctx = RequestContext(actor_for(row), interface=interface, token_id=row.token_id, token_kind=row.kind,
                             token_project_id=row.project_id, token_role=row.role)
        if row.revoked_at is not None:
            raise _refuse(f"{row.kind} {row.token_id} was revoked: log in again", ctx, "auth.refused",
                          ("token", row.token_id), {"reason": "revoked"})
        if row.expires_at < utcnow():
            raise _refuse(f"{row.kind} {row.token_id} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC: log in again",
                          ctx, "auth.refused", ("token", row.token_id), {"reason": "expired"})
        if row.disabled or row.locked_at is not None:
            raise _refuse(f"user {row.username} is {'disabled' if row.disabled else 'locked'}", ctx,
                          "auth.refused", ("user", row.id), {"reason": "disabled" if row.disabled else "locked"})
        if row.must_change_password and not allow_password_change:
            raise AuthenticationError(f"user {row.username} must change the password first (nextstat-pro passwd)")
        return ctx


def logout(instance: Instance, ctx: RequestContext) -> None:
    """Revoke the caller's own credential (``token.revoke`` of it): giving up access needs no role."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "token.revoke")
        if ctx.token_id is None:
            return
        row = session.get(ApiToken, ctx.token_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
            append_event(session, ctx, action="token.revoked", target=("token", row.id), before={"revoked": False},
                         after={"revoked": True, "kind": row.kind}, reason="logout")


def create_token(instance: Instance, ctx: RequestContext, project: str, role: str, name: str,
                 days: int) -> Credential:
    """An API token for the caller, scoped to ``project`` and capped at ``role`` (at most the
    caller's own role there). The credential holds the secret: shown once, never stored."""
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    policy = instance.config.auth
    if not 1 <= days <= policy.token_max_days:
        raise UsageError(f"token lifetime must be 1..{policy.token_max_days} days")
    need = {"viewer": "run.read", "editor": "run.create", "admin": "role.grant"}[role]
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, need, found)
        user = session.get(User, ctx.actor.id)
        assert user is not None
        cred = _issue(session, user, "api", name, found, role, utcnow() + timedelta(days=days))
        append_event(session, ctx, action="token.created", target=("token", cred.token_id), project=found.name,
                     after={"name": name, "role": role, "expires_at": cred.expires_at.isoformat()})
        return cred


def revoke_token(instance: Instance, ctx: RequestContext, token_id: str, reason: str) -> TokenRow:
    """Revoke a credential: one's own (``token.revoke``), or anyone's (``token.revoke_any``, an
    instance admin, e.g. for a leaked token of someone who left). Revoking a revoked one changes
    nothing."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "token.revoke")
        row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFoundError(f"no token {token_id}")
        if row.user_id != ctx.actor.id:
            authorize(session, ctx, "token.revoke_any")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            append_event(session, ctx, action="token.revoked", target=("token", row.id), before={"revoked": False},
                         after={"revoked": True, "kind": row.kind}, reason=reason)
        project = session.get(Project, row.project_id) if row.project_id is not None else None
        return _token_row(row, project.name if project is not None else None, ctx)


def list_tokens(instance: Instance, ctx: RequestContext) -> list[TokenRow]:
    """The caller's own credentials still in force (sessions and API tokens), newest first: the
    ids to give ``revoke_token``."""
    with instance.db.read() as session:
        authorize(session, ctx, "token.list")
        rows = session.execute(
            select(ApiToken, Project.name).outerjoin(Project, Project.id == ApiToken.project_id)
            .where(ApiToken.user_id == ctx.actor.id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > utcnow())
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc()))
        return [_token_row(t, project, ctx) for t, project in rows]


def _token_row(t: ApiToken, project: str | None, ctx: RequestContext) -> TokenRow:
    return TokenRow(token_id=t.id, kind=t.kind,  # type: ignore[arg-type]  # _issue writes session or api
                    name=t.name, project=project, role=t.role,  # type: ignore[arg-type]
                    created_at=t.created_at, expires_at=t.expires_at, revoked_at=t.revoked_at,
                    current=t.id == ctx.token_id)


def change_password(instance: Instance, ctx: RequestContext, old: str, new: str) -> None:
    """The user changes their own password (no permission row: it acts on the caller's own
    account, proven by the current password); their signing key is re-encrypted. A user without
    an active key set a password an administrator chose (a reset before tokens, migration 0008):
    the key made now is marked ``after_admin_reset``."""
    policy = instance.config.auth
    with instance.db.transaction() as session:
        user = session.get(User, ctx.actor.id)
        assert user is not None
        if not verify_password(user.password_hash, old):
            raise AuthenticationError("the current password is wrong")
        if normalize(new) == normalize(old):
            raise UsageError("the new password must differ from the current one")
        check_policy(new, policy.min_password_length, min_score=policy.min_password_score,
                     context=context_words(user.username, user.printed_name, user.email))
        if active_key(session, user) is None:
            create_key(session, ctx, user, new, after_admin_reset=True)
        else:
            reencrypt(session, user, old, new)
        user.password_hash = hash_password(new)
        user.password_changed_at = utcnow()
        before = user.must_change_password
        user.must_change_password = False
        append_event(session, ctx, action="user.password_changed", target=("user", user.id),
                     before={"must_change_password": before}, after={"must_change_password": False},
                     reason="changed by the user")


def record_refusal(instance: Instance, reason: str, *, client: str | None, interface: Interface = "api",
                   who: str = "unknown", target: tuple[str, str] = ("request", "-"),
                   detail: dict[str, object] | None = None) -> None:
    """Audit a request refused before it had a caller (a missing CSRF token, too many sign-in
    attempts from one address, an upload whose bytes do not match its digest...): an
    ``auth.refused`` event, which the security alerts read. Refusing is the adapter's; keeping a
    record of it is this function's."""
    ctx = replace(_anonymous(who, interface), client=client)
    with instance.db.transaction() as session:
        append_event(session, ctx, action="auth.refused", target=target, after={"reason": reason, **(detail or {})})
