"""The signature passphrase of a single sign-on user (21 CFR 11.200 for SSO accounts).

An SSO user has no local password, and the IdP session that proves who is at the keyboard
cannot stand in for one: the IdP (or whoever administers it) can mint that session, so it must
not unlock a signing key. The user chooses a passphrase of their own (the instance's password
policy applies); like a local password it encrypts their signing key (``identity.userkeys``),
and every signing asks for it with the re-authentication rules of ``runs.esignatures``
unchanged. The first one is set from a session credential (never an API token) and makes the
key; changing it needs the current one (docs/identity.md "Single sign-on and e-signatures").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from ..access.context import Interface, RequestContext
from ..audit.events import append_event
from ..config import AuthPolicy
from ..db.models import User
from ..db.types import utcnow
from ..errors import AuthenticationError, UsageError
from .auth import check_password
from .passwords import check_policy, hash_password, normalize, verify_password
from .sso import is_federated
from .sso_models import SigningPassphrase
from .sso_views import PassphraseSet
from .strength import context_words
from .userkeys import active_key, create_key, reencrypt

if TYPE_CHECKING:
    from ..instance import Instance


def set_signature_passphrase(instance: Instance, ctx: RequestContext, passphrase: str,
                             current: str | None = None) -> PassphraseSet:
    """Set (first time: make the signing key under it) or change (``current`` required) the
    caller's own signature passphrase. No permission row: it acts on the caller's own account,
    like ``change_password``; only an SSO account has one (a local account signs with its password)."""
    policy = instance.config.auth
    with instance.db.transaction() as session:
        user = session.get(User, ctx.actor.id)
        if user is None or not is_federated(session, user):
            raise UsageError("only single sign-on accounts have a signature passphrase: a local account signs "
                             "with its password")
        row = session.get(SigningPassphrase, user.id)
        if row is None and ctx.token_kind != "session":
            # The first passphrase makes the key: only an interactive sign-in may choose it.
            raise AuthenticationError("the first signature passphrase is set from a browser or CLI session, "
                                      "not with an API token")
        if row is not None:
            if current is None or not verify_password(row.passphrase_hash, current):
                raise AuthenticationError("the current signature passphrase is wrong")
            if normalize(passphrase) == normalize(current):
                raise UsageError("the new signature passphrase must differ from the current one")
        check_policy(passphrase, policy.min_password_length, min_score=policy.min_password_score,
                     context=context_words(user.username, user.printed_name, user.email))
        if row is None:
            key = active_key(session, user) or create_key(session, ctx, user, passphrase)
            session.add(SigningPassphrase(user_id=user.id, passphrase_hash=hash_password(passphrase), set_at=utcnow()))
            append_event(session, ctx, action="user.passphrase_set", target=("user", user.id),
                         after={"key_id": key.key_id})
        else:
            assert current is not None
            reencrypt(session, user, current, passphrase)
            key = active_key(session, user)  # type: ignore[assignment]
            row.passphrase_hash = hash_password(passphrase)
            row.set_at = utcnow()
            append_event(session, ctx, action="user.passphrase_changed", target=("user", user.id),
                         after={"key_id": key.key_id if key is not None else None}, reason="changed by the user")
        return PassphraseSet(username=user.username, key_id=key.key_id if key is not None else None,
                             first=row is None)


def check_signing_secret(session: Session, user: User, secret: str, policy: AuthPolicy, interface: Interface,
                         purpose: str) -> None:
    """Re-authenticate a signer: a local account's password (``check_password``), an SSO
    account's signature passphrase. A wrong passphrase counts towards the lockout, audited, as a
    wrong password does (raised as ``PendingAuthFailure``: the caller commits the count first)."""
    row = session.get(SigningPassphrase, user.id)
    if row is None:
        if is_federated(session, user):
            raise AuthenticationError(f"user {user.username} signs in through single sign-on and has no signature "
                                      "passphrase yet: set one first (POST /api/v1/auth/signature-passphrase)")
        check_password(session, user, secret, policy, interface, purpose)
        return
    # The same code as a password, with the same counting and lockout, against the passphrase's hash.
    check_password(session, user, secret, policy, interface, purpose, against=row.passphrase_hash,
                   what="signature passphrase")
