"""Password resets that never let an administrator sign as the user (issue #14).

An administrator never chooses or learns a user's password. A reset gives the user a one-time
token (``nspr_<reset id>.<secret>``, only sha256(secret) stored, usable once, expiring), and the
user sets a new password with it, which makes their new signing key:

- with SMTP configured (``config.smtp``) and an address on the account, the token is e-mailed to
  the user: a channel the administrator does not see;
- otherwise a second, different instance admin must approve the request; the approver is shown
  the token to hand over, and the key the user then makes is marked ``after_admin_reset`` (the key
  row, its ``user.key_created`` event, and every signature made with it), because two
  administrators together could have used it.

Every step is an audit event: ``user.password_reset_requested``, ``user.password_reset_approved``,
``user.reset_token_issued`` (never the token), ``user.password_reset_completed`` and the new key's
``user.key_created``; a refused token is ``auth.refused``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..access.context import Actor, Interface, RequestContext
from ..access.rbac import authorize
from ..audit.events import append_event
from ..db.models import ApiToken, PasswordReset, User
from ..db.types import utcnow
from ..errors import AuthenticationError, ConflictError, NotFoundError, PermissionDeniedError, UsageError
from .mail import send_reset_token
from .passwords import check_policy, hash_password
from .records import find_reset, get_user, issue_token, open_reset, pending_approval
from .sso import is_federated
from .strength import context_words
from .userkeys import create_key, retire
from .users import USERNAME, actor_for
from .views import ResetApproved, ResetCompleted, ResetRequested

if TYPE_CHECKING:
    from ..instance import Instance

# A request waits this long for the second administrator; the token they are shown lasts a day
# (it has to reach the user by hand).
APPROVAL_WAIT = timedelta(days=7)
APPROVED_TOKEN_LIFETIME = timedelta(hours=24)


def reset_password(instance: Instance, ctx: RequestContext, username: str, reason: str) -> ResetRequested:
    """Ask for a reset of ``username``'s password. Nothing about the account changes yet: the
    current password and key stay until the user completes the reset. With SMTP and an address on
    the account the token is e-mailed (within this transaction: a failed send records nothing);
    otherwise the request awaits a second admin's ``approve_reset``. A newer request supersedes
    an open one."""
    if not reason.strip():
        raise UsageError("a reason is required for a password reset")
    smtp = instance.config.smtp
    with instance.db.transaction() as session:
        authorize(session, ctx, "user.reset_password")
        user = get_user(session, username)
        if user.disabled:
            raise ConflictError(f"user {username} is disabled: a reset does not give the account back")
        if is_federated(session, user):
            # A local password would be a second way into an account its identity provider
            # governs; its signature passphrase is changed by the user (docs/sso.md).
            raise ConflictError(f"user {username} signs in through single sign-on and has no local password to reset")
        by_email = smtp is not None and user.email is not None
        channel = "email" if by_email else "approval"
        expires_at = utcnow() + (timedelta(minutes=smtp.reset_token_minutes) if smtp is not None and by_email
                                 else APPROVAL_WAIT)
        reset, superseded = open_reset(session, user, channel, ctx.actor.id, reason, expires_at)
        append_event(session, ctx, action="user.password_reset_requested", target=("user", user.id),
                     after={"reset_id": reset.id, "channel": channel, "expires_at": expires_at.isoformat(),
                            "superseded": superseded}, reason=reason)
        if smtp is not None and user.email is not None:
            token = issue_token(reset, expires_at)
            append_event(session, ctx, action="user.reset_token_issued", target=("user", user.id),
                         after={"reset_id": reset.id, "channel": "email", "to": user.email,
                                "expires_at": expires_at.isoformat()})
            # Sent before the commit: if the mail server refuses, no reset is recorded as sent. If
            # the commit failed after a send, the mailed token names no reset and is refused.
            send_reset_token(smtp, user.email, user.username, token, expires_at,
                             ctx.actor.username or ctx.actor.name)
        return ResetRequested(username=user.username, reset_id=reset.id, channel=channel,  # type: ignore[arg-type]
                              sent_to=user.email if by_email else None, expires_at=expires_at,
                              superseded=superseded)


def approve_reset(instance: Instance, ctx: RequestContext, username: str, reason: str) -> ResetApproved:
    """A second instance admin approves the reset awaiting approval for ``username`` and is shown
    its one-time token, to hand to the user. The administrator who asked for the reset cannot
    approve it (refused and audited as a denied access)."""
    if not reason.strip():
        raise UsageError("a reason is required to approve a password reset")
    with instance.db.transaction() as session:
        authorize(session, ctx, "user.approve_reset")
        user = get_user(session, username)
        reset = pending_approval(session, user)
        if reset is None:
            raise NotFoundError(f"no password reset of {username} awaits approval")
        requester = session.get(User, reset.requested_by)
        assert requester is not None
        if reset.requested_by == ctx.actor.id:
            err = PermissionDeniedError(f"{requester.username} asked for this reset of {username}, so cannot approve "
                                        "it: a second instance admin must")
            err.security_event = {"ctx": ctx, "action": "access.denied", "target": ("user", user.id),
                                  "project": None,
                                  "after": {"operation": "user.approve_reset", "reset_id": reset.id,
                                            "why": "requester", "alert": True}}
            raise err
        now = utcnow()
        if reset.expires_at < now:
            raise ConflictError(f"the reset of {username} asked for by {requester.username} expired unapproved at "
                                f"{reset.expires_at:%Y-%m-%d %H:%M} UTC: ask for a new one")
        reset.approved_by, reset.approved_at = ctx.actor.id, now
        token = issue_token(reset, now + APPROVED_TOKEN_LIFETIME)
        append_event(session, ctx, action="user.password_reset_approved", target=("user", user.id),
                     before={"requested_by": reset.requested_by},
                     after={"reset_id": reset.id, "approved_by": ctx.actor.id}, reason=reason)
        append_event(session, ctx, action="user.reset_token_issued", target=("user", user.id),
                     after={"reset_id": reset.id, "channel": "approval", "to": ctx.actor.id,
                            "expires_at": reset.expires_at.isoformat()})
        return ResetApproved(username=user.username, reset_id=reset.id, requested_by=requester.username,
                             token=token, expires_at=reset.expires_at)


def complete_reset(instance: Instance, username: str, token: str, new_password: str,
                   interface: Interface = "cli") -> ResetCompleted:
    """The user sets a new password with their reset token. It takes no ``RequestContext``: like
    a sign-in, the token is the credential, and the context it makes is the user's. It sets the
    password (under the instance's policy), unlocks the account, retires the old signing key and
    makes the new one (marked ``after_admin_reset`` when a second admin approved the reset) and
    ends the user's sessions. A token that is unknown, used, superseded, expired or another
    user's is refused: nothing changes but the refusal's ``auth.refused`` event."""
    policy = instance.config.auth
    with instance.db.transaction() as session:
        reset = find_reset(session, token)
        named = session.scalar(select(User).where(User.username == username)) \
            if USERNAME.fullmatch(username) else None
        if reset is None:
            raise _refused("unknown or invalid reset token", username, named, interface, None, "unknown token")
        if named is None or named.id != reset.user_id:
            owner = session.get(User, reset.user_id)
            raise _refused(f"this reset token is not for {username}", username, owner, interface, reset,
                           "another user's token")
        if reset.state == "used":
            raise _refused(f"this reset token was used already ({reset.used_at:%Y-%m-%d %H:%M} UTC)", username, named,
                           interface, reset, "used")
        if reset.state != "issued":
            raise _refused("this reset token was replaced by a newer reset", username, named, interface, reset,
                           reset.state)
        now = utcnow()
        if reset.expires_at < now:
            raise _refused(f"this reset token expired at {reset.expires_at:%Y-%m-%d %H:%M} UTC", username, named,
                           interface, reset, "expired")
        user = named
        if user.disabled:
            raise _refused(f"user {username} is disabled", username, user, interface, reset, "disabled")
        check_policy(new_password, policy.min_password_length, min_score=policy.min_password_score,
                     context=context_words(user.username, user.printed_name, user.email))
        ctx = RequestContext(actor_for(user), interface=interface)
        marked = reset.channel == "approval"
        key = create_key(session, ctx, user, new_password, after_admin_reset=marked, replaces=retire(session, user))
        before = {"locked": user.locked_at is not None, "failed_logins": user.failed_logins}
        user.password_hash = hash_password(new_password)
        user.password_changed_at = now
        user.must_change_password = False
        user.locked_at, user.failed_logins = None, 0
        reset.state, reset.used_at = "used", now
        # Whoever held a session of this account (an administrator who knew an old password
        # included) holds it no longer.
        sessions = list(session.scalars(select(ApiToken).where(
            ApiToken.user_id == user.id, ApiToken.kind == "session", ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > now)))
        for s in sessions:
            s.revoked_at = now
        append_event(session, ctx, action="user.password_reset_completed", target=("user", user.id), before=before,
                     after={"reset_id": reset.id, "channel": reset.channel, "key_id": key.key_id,
                            "key_after_admin_reset": marked, "locked": False, "failed_logins": 0,
                            "sessions_revoked": [s.id for s in sessions]},
                     reason="password set with a reset token")
        return ResetCompleted(username=user.username, key_id=key.key_id, key_after_admin_reset=marked,
                              sessions_revoked=len(sessions))


def _refused(message: str, username: str, user: User | None, interface: Interface, reset: PasswordReset | None,
             why: str) -> AuthenticationError:
    """A refused reset token: the error, carrying its ``auth.refused`` event (recorded after the
    transaction rolled back, so nothing of the attempt remains). The actor is unauthenticated, as
    for a failed sign-in: whoever holds a token is not known to be its user."""
    shown = username if USERNAME.fullmatch(username) else ascii(username[:80])[:80]
    actor = Actor(id=f"unauthenticated:{shown}", name=shown, kind="service")
    err = AuthenticationError(message)
    err.security_event = {"ctx": RequestContext(actor, interface=interface), "action": "auth.refused",
                          "target": ("user", user.id if user is not None else shown), "project": None,
                          "after": {"purpose": "password reset", "reason": why,
                                    "reset_id": reset.id if reset is not None else None, "alert": True}}
    return err
