"""Single sign-on: an identity an IdP vouched for becomes a browser session (docs/sso.md).

The protocols (``identity.sso_oidc``, ``identity.sso_saml``) verify what the IdP sent and hand a
``FederatedIdentity`` to ``sign_in_federated``, which in one transaction:

- finds the user bound to the identity's (issuer, subject), or provisions one at the first
  sign-in: the username comes from the configured claim (lowercased) and is **refused**, never
  suffixed, when it is taken by a local account or by another identity: names are never reused
  or shared, and a suffixed name nobody chose would be printed on signatures;
- makes the roles of the projects named in ``sso.group_roles`` follow the user's IdP groups
  (granted, changed or revoked, each an audited role event of the ``sso`` service actor);
- issues a ``session`` credential exactly as ``identity.auth.login`` does, audited ``auth.login``
  with ``method`` oidc or saml.

SSO users have no local password (their ``password_hash`` is no argon2 hash, so a local sign-in
as them always fails); they sign with a signature passphrase (``identity.sso_passphrase``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .. import text
from ..access.context import Actor, Interface, RequestContext
from ..access.rbac import RANK
from ..audit.events import append_event
from ..db.models import Project, RoleBinding, User
from ..db.types import utcnow
from ..errors import AuthenticationError, ConfigError, TextError
from ..ids import new_id
from .auth import Credential, _issue, record_refusal
from .sso_models import SsoIdentity, SsoPending
from .users import USERNAME, actor_for

if TYPE_CHECKING:
    from ..config import SsoConfig
    from ..instance import Instance

Protocol = Literal["oidc", "saml"]
# Not an argon2 hash: identity.passwords.verify_password is False for every password, so nobody
# signs in locally as an SSO user (the IdP decides who they are, and may lock them out).
NO_LOCAL_PASSWORD = "!sso: no local password"


@dataclass(frozen=True)
class FederatedIdentity:
    """Who an IdP says signed in, after the protocol checked its signature, audience and times."""

    protocol: Protocol
    issuer: str
    subject: str
    username: str | None
    printed_name: str | None = None
    email: str | None = None
    groups: tuple[str, ...] = field(default_factory=tuple)


def sso_config(instance: Instance) -> SsoConfig:
    config = instance.config.sso
    if config is None:
        raise ConfigError("single sign-on is not configured on this instance (config set sso ...)")
    return config


def service_actor(protocol: Protocol) -> Actor:
    return Actor(id=f"sso:{protocol}", name="single sign-on", kind="service")


def refused(instance: Instance, protocol: Protocol, reason: str, *, client: str | None,
            detail: dict[str, object] | None = None) -> AuthenticationError:
    """Audit a refused SSO sign-in (``auth.refused``) and return the error to raise: the message
    names the check that failed, never a secret."""
    record_refusal(instance, reason, client=client, who=f"sso:{protocol}", target=("sso", protocol),
                   detail={"protocol": protocol, **(detail or {})})
    return AuthenticationError(f"single sign-on refused: {reason}")


def new_state() -> str:
    return secrets.token_urlsafe(32)


def open_pending(instance: Instance, protocol: Protocol, state: str, *, nonce: str | None,
                 code_verifier: str | None) -> None:
    """Remember a sign-in sent to the IdP until ``sso.login_minutes`` (expired ones are swept)."""
    now = utcnow()
    with instance.db.transaction() as session:
        session.execute(delete(SsoPending).where(SsoPending.expires_at < now))
        session.add(SsoPending(state=state, protocol=protocol, nonce=nonce, code_verifier=code_verifier,
                               created_at=now,
                               expires_at=now + timedelta(minutes=sso_config(instance).login_minutes)))


def take_pending(instance: Instance, protocol: Protocol, state: str | None, browser_state: str | None, *,
                 client: str | None) -> SsoPending:
    """The pending sign-in of ``state``, used up: a second use, another browser's state, an
    unknown or expired one is refused (and audited). Deleted before the IdP's answer is checked,
    so a failed attempt cannot be retried with the same state."""
    if not state or not browser_state or not secrets.compare_digest(state, browser_state):
        raise refused(instance, protocol, "the sign-in state does not match this browser's", client=client)
    with instance.db.transaction() as session:
        row = session.get(SsoPending, state) if len(state) <= 100 else None
        taken = row is not None and session.execute(
            delete(SsoPending).where(SsoPending.state == state)).rowcount == 1  # type: ignore[attr-defined]
    if row is None or not taken or row.protocol != protocol:
        raise refused(instance, protocol, "unknown or already used sign-in state", client=client)
    if row.expires_at < utcnow():
        raise refused(instance, protocol, "the sign-in took too long: start again", client=client)
    return row


def sign_in_federated(instance: Instance, identity: FederatedIdentity, *, interface: Interface = "api",
                      client: str | None = None) -> Credential:
    """A session credential for ``identity`` (provisioning its user at the first sign-in and
    applying the group mapping). Like ``identity.auth.sign_in`` it takes no RequestContext: it is
    what makes one. A refusal is audited (``auth.refused``) and changes nothing."""
    config = sso_config(instance)
    sso_ctx = RequestContext(service_actor(identity.protocol), interface=interface, client=client)
    with instance.db.transaction() as session:
        bound = session.scalar(select(SsoIdentity).where(SsoIdentity.issuer == identity.issuer,
                                                         SsoIdentity.subject == identity.subject))
        if bound is None:
            user = _provision(session, sso_ctx, identity)
            bound = SsoIdentity(id=new_id(), user_id=user.id, protocol=identity.protocol, issuer=identity.issuer,
                                subject=identity.subject, created_at=utcnow())
            session.add(bound)
        else:
            found = session.get(User, bound.user_id)
            assert found is not None
            user = found
        if user.disabled or user.locked_at is not None:
            why = "disabled" if user.disabled else "locked"
            err = AuthenticationError(f"user {user.username} is {why}")
            err.security_event = {"ctx": replace(RequestContext(actor_for(user), interface=interface),
                                                 client=client),
                                  "action": "auth.refused", "target": ("user", user.id), "project": None,
                                  "after": {"reason": why, "method": identity.protocol}}
            raise err
        _apply_groups(session, sso_ctx, user, identity.groups, config.group_roles)
        bound.last_login_at = utcnow()
        cred = _issue(session, user, "session", f"{identity.protocol} session", None, None,
                      utcnow() + timedelta(hours=instance.config.auth.session_hours))
        append_event(session, RequestContext(actor_for(user), interface=interface, client=client,
                                             token_id=cred.token_id),
                     action="auth.login", target=("user", user.id),
                     after={"session": cred.token_id, "method": identity.protocol, "issuer": identity.issuer,
                            "subject": identity.subject, "groups": sorted(identity.groups)})
    return cred


def _provision(session: Session, ctx: RequestContext, identity: FederatedIdentity) -> User:
    """The user of a first sign-in, or a refusal (raised with its event, after the rollback)."""
    username = (identity.username or "").strip().lower()

    def refuse(message: str, reason: str) -> AuthenticationError:
        err = AuthenticationError(f"single sign-on refused: {message}")
        err.security_event = {"ctx": ctx, "action": "auth.refused", "target": ("sso", identity.protocol),
                              "project": None,
                              "after": {"reason": reason, "issuer": identity.issuer, "subject": identity.subject,
                                        "username": username if USERNAME.fullmatch(username) else None}}
        return err

    if not USERNAME.fullmatch(username):
        raise refuse("the IdP sent no usable username (lowercase letters, digits, '.', '_' or '-', starting "
                     "with a letter, 2 to 64 characters)", "invalid username")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        # A local account, or one bound to another issuer/subject: binding it would let whoever
        # controls that claim at the IdP take the account over.
        raise refuse(f"username {username!r} belongs to another account (usernames are never reused): "
                     "an administrator must resolve it", "username taken")
    try:
        printed = text.clean_optional("printed name", identity.printed_name) or username
        email = text.email(identity.email)
    except TextError:
        printed, email = username, None  # IdP text we would refuse from a person: not worth a refusal
    key = text.name_key(printed)
    if any(text.name_key(other) == key for other in
           session.scalars(select(User.printed_name).where(User.disabled.is_(False)))):
        # Signatures must tell signers apart: the username makes the printed name unique.
        printed = f"{printed} ({username})"
    now = utcnow()
    user = User(id=new_id(), username=username, printed_name=printed, email=email,
                password_hash=NO_LOCAL_PASSWORD, is_instance_admin=False, is_auditor=False, disabled=False,
                created_at=now, password_changed_at=None, must_change_password=False, failed_logins=0)
    session.add(user)
    session.flush()
    append_event(session, ctx, action="user.created", target=("user", user.id),
                 after={"username": user.username, "printed_name": user.printed_name, "email": user.email,
                        "instance_admin": False, "auditor": False, "sso": identity.protocol,
                        "issuer": identity.issuer, "subject": identity.subject},
                 reason="first single sign-on")
    return user


def _apply_groups(session: Session, ctx: RequestContext, user: User, groups: tuple[str, ...],
                  mapping: dict[str, dict[str, Literal["viewer", "editor", "admin"]]]) -> None:
    """Make ``user``'s role in each project the mapping names the highest role their groups
    give there (none: revoked). Projects the mapping does not name are left alone."""
    wanted: dict[str, str] = {}
    why: dict[str, list[str]] = {}
    for group, roles in mapping.items():
        for project, given in roles.items():
            wanted.setdefault(project, "")
            if group in groups:
                why.setdefault(project, []).append(group)
                if RANK[given] > RANK.get(wanted[project], 0):
                    wanted[project] = given
    for name in sorted(wanted):
        project = session.scalar(select(Project).where(Project.name == name))
        if project is None:
            continue  # a mapping for a project not created yet
        role = wanted[name] or None
        binding = session.get(RoleBinding, (user.id, project.id))
        before = binding.role if binding is not None else None
        if before == role:
            continue
        if role is None:
            assert binding is not None
            session.delete(binding)
            action = "role.revoked"
        elif binding is None:
            session.add(RoleBinding(user_id=user.id, project_id=project.id, role=role, created_at=utcnow()))
            action = "role.granted"
        else:
            binding.role = role
            action = "role.changed"
        append_event(session, ctx, action=action, target=("role", f"{name}:{user.username}"), project=name,
                     before={"role": before, "user_id": user.id},
                     after={"role": role, "user_id": user.id, "groups": sorted(why.get(name, []))},
                     reason="single sign-on group mapping")


def is_federated(session: Session, user: User) -> bool:
    return session.scalar(select(SsoIdentity.id).where(SsoIdentity.user_id == user.id).limit(1)) is not None
