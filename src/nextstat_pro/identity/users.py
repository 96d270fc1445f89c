"""User accounts and roles: the operations (``user``, ``role`` and ``whoami`` commands, the HTTP
API to come). Usernames are never deleted or reused.

Each operation takes the instance and a required ``RequestContext``, authorizes first, owns its
transaction (``instance.db.read()`` for pure reads) and returns a view of ``identity.views``; the
database functions they share are in ``identity.records``. Password resets: ``identity.resets``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import text
from ..access.context import Actor, RequestContext
from ..access.rbac import ROLES, authorize, effective_role
from ..audit.events import append_event
from ..config import AuthPolicy
from ..db.models import ApiToken, Project, RoleBinding, User
from ..db.types import utcnow
from ..errors import ConflictError, NotFoundError, UsageError
from ..ids import new_id
from .passwords import check_policy, hash_password
from .records import get_project, get_user, user_row
from .strength import context_words
from .userkeys import create_key
from .views import RoleBindingRow, UserRow, WhoAmI

if TYPE_CHECKING:  # instance.py imports this module (init's first administrator)
    from ..instance import Instance

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")


def create_user(
    instance: Instance,
    ctx: RequestContext,
    *,
    username: str,
    printed_name: str,
    password: str,
    email: str | None = None,
    instance_admin: bool = False,
    auditor: bool = False,
) -> UserRow:
    """Create a user with a signing key (an instance admin's operation), under the instance's
    password policy (``config.auth``: length and strength)."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "user.create")
        return user_row(_add_user(session, ctx, username=username, printed_name=printed_name, password=password,
                                  email=email, instance_admin=instance_admin, auditor=auditor,
                                  policy=instance.config.auth))


def create_first_admin(session: Session, *, username: str, printed_name: str, password: str) -> User:
    """The instance's first administrator, for ``Instance.init`` only, within its transaction:
    nobody exists yet who could be authorized to create them, so the events name the new admin
    as their own actor."""
    return _add_user(session, None, username=username, printed_name=printed_name, password=password, email=None,
                     instance_admin=True, auditor=False, policy=None)


def _add_user(session: Session, ctx: RequestContext | None, *, username: str, printed_name: str, password: str,
              email: str | None, instance_admin: bool, auditor: bool, policy: AuthPolicy | None) -> User:
    checked = check_new_user(username, password, printed_name=printed_name, email=email, policy=policy,
                             session=session)
    printed_name, email = checked.printed_name or "", checked.email
    if not printed_name.strip():
        raise UsageError("a printed name is required (it is shown on signatures)")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"username {username!r} exists already (usernames are never reused)")
    user = User(
        id=new_id(),
        username=username,
        printed_name=printed_name.strip(),
        email=email,
        password_hash=hash_password(password),
        is_instance_admin=instance_admin,
        is_auditor=auditor,
        disabled=False,
        created_at=utcnow(),
        password_changed_at=utcnow(),
        must_change_password=False,
        failed_logins=0,
    )
    session.add(user)
    session.flush()
    ctx = ctx or RequestContext(actor_for(user), interface="cli")
    append_event(
        session,
        ctx,
        action="user.created",
        target=("user", user.id),
        after={
            "username": user.username,
            "printed_name": user.printed_name,
            "email": user.email,
            "instance_admin": user.is_instance_admin,
            "auditor": user.is_auditor,
        },
    )
    # An account another person created: that person chose the password the key is made under, so
    # they could sign as the new user; the key says so in every manifestation (as after a reset
    # approved by a second admin) until a reset by e-mailed token, which they never see, replaces it.
    create_key(session, ctx, user, password, after_admin_reset=ctx is not None)
    return user


def disable_user(instance: Instance, ctx: RequestContext, username: str, reason: str) -> UserRow:
    """Disable (never delete) a user: the name stays taken forever, their signatures stay valid."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "user.disable")
        user = get_user(session, username)
        if user.disabled:
            raise ConflictError(f"user {username} is disabled already")
        if user.id == ctx.actor.id:
            raise UsageError("you cannot disable yourself")
        user.disabled = True
        append_event(session, ctx, action="user.disabled", target=("user", user.id), before={"disabled": False},
                     after={"disabled": True}, reason=reason)
        return user_row(user)


def grant_role(instance: Instance, ctx: RequestContext, username: str, project: str, role: str,
               reason: str) -> RoleBindingRow:
    """Bind ``username`` to ``role`` in ``project`` (or change the role they have there)."""
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, "role.grant", found)
        user = get_user(session, username)
        binding = session.get(RoleBinding, (user.id, found.id))
        before = binding.role if binding else None
        if binding is None:
            binding = RoleBinding(user_id=user.id, project_id=found.id, role=role, created_at=utcnow())
            session.add(binding)
        elif binding.role == role:
            raise ConflictError(f"{username} is {role} in {found.name} already")
        else:
            binding.role = role
        append_event(session, ctx, action="role.granted" if before is None else "role.changed",
                     target=("role", f"{found.name}:{username}"), project=found.name,
                     before={"role": before}, after={"role": role, "user_id": user.id}, reason=reason)
        return _binding_row(found, user, binding)


def revoke_role(instance: Instance, ctx: RequestContext, username: str, project: str, reason: str) -> RoleBindingRow:
    """Remove ``username``'s role in ``project``; returns the binding as it was."""
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, "role.revoke", found)
        user = get_user(session, username)
        binding = session.get(RoleBinding, (user.id, found.id))
        if binding is None:
            raise NotFoundError(f"{username} has no role in {found.name}")
        row = _binding_row(found, user, binding)
        session.delete(binding)
        append_event(session, ctx, action="role.revoked", target=("role", f"{found.name}:{username}"),
                     project=found.name, before={"role": row.role, "user_id": user.id}, after={"role": None},
                     reason=reason)
        return row


def set_auditor(instance: Instance, ctx: RequestContext, username: str, auditor: bool, reason: str) -> UserRow:
    """Grant (or revoke) the instance-level auditor role: read and verify everything, change
    nothing. An instance admin's decision, audited with its reason."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "user.set_auditor")
        if not reason.strip():
            raise UsageError("a reason is required to grant or revoke the auditor role")
        user = get_user(session, username)
        if user.is_auditor == auditor:
            raise ConflictError(f"{username} is {'an auditor' if auditor else 'not an auditor'} already")
        user.is_auditor = auditor
        append_event(session, ctx, action="auditor.granted" if auditor else "auditor.revoked",
                     target=("user", user.id), before={"auditor": not auditor},
                     after={"auditor": auditor, "username": user.username}, reason=reason)
        return user_row(user)


def list_users(instance: Instance, ctx: RequestContext) -> list[UserRow]:
    """Every account, by username (disabled ones included: accounts are never deleted)."""
    with instance.db.read() as session:
        authorize(session, ctx, "user.list")
        return [user_row(u) for u in session.scalars(select(User).order_by(User.username))]


def whoami(instance: Instance, ctx: RequestContext) -> WhoAmI:
    """The caller as the service sees them: the account, the credential (an API token's project
    and role cap) and the role this credential has in each project it reaches."""
    with instance.db.read() as session:
        authorize(session, ctx, "user.whoami")
        token = session.get(ApiToken, ctx.token_id) if ctx.token_id is not None else None
        token_project = session.get(Project, ctx.token_project_id) if ctx.token_project_id is not None else None
        # The projects this credential reaches: every one for an instance admin or an auditor, else
        # those with a binding; an API token only its own.
        query = select(Project).order_by(Project.name)
        if not (ctx.actor.is_instance_admin or ctx.actor.is_auditor):
            query = query.join(RoleBinding, RoleBinding.project_id == Project.id).where(
                RoleBinding.user_id == ctx.actor.id)
        if ctx.token_project_id is not None:
            query = query.where(Project.id == ctx.token_project_id)
        roles = {p.name: effective_role(session, ctx, p) for p in session.scalars(query)}
        return WhoAmI(username=ctx.actor.username, printed_name=ctx.actor.name,
                      instance_admin=ctx.actor.is_instance_admin, credential=ctx.token_kind,
                      roles=roles,  # type: ignore[arg-type]  # effective_role returns one of ROLES
                      auditor=ctx.actor.is_auditor, token_id=ctx.token_id,
                      token_project=token_project.name if token_project is not None else None,
                      token_role=ctx.token_role,  # type: ignore[arg-type]
                      expires_at=token.expires_at if token is not None else None)


def list_role_bindings(instance: Instance, ctx: RequestContext, project: str) -> list[RoleBindingRow]:
    """Who has which role in ``project`` (instance admins hold every role without a binding)."""
    with instance.db.read() as session:
        found = get_project(session, project)
        authorize(session, ctx, "role.list", found)
        rows = session.execute(select(RoleBinding, User).join(User, User.id == RoleBinding.user_id)
                               .where(RoleBinding.project_id == found.id).order_by(User.username))
        return [_binding_row(found, u, b) for b, u in rows]


def _binding_row(project: Project, user: User, binding: RoleBinding) -> RoleBindingRow:
    return RoleBindingRow(project=project.name, username=user.username, printed_name=user.printed_name,
                          role=binding.role,  # type: ignore[arg-type]  # grant_role stores one of ROLES
                          since=binding.created_at)


@dataclass(frozen=True)
class NewUserText:
    """A new account's printed name and e-mail as they will be stored (``nextstat_pro.text``)."""

    printed_name: str | None
    email: str | None


def check_new_user(username: str, password: str, *, printed_name: str | None = None, email: str | None = None,
                   policy: AuthPolicy | None = None, session: Session | None = None) -> NewUserText:
    """Refuse a bad username, printed name, e-mail or password before anything is written; the
    account's names are context words of the password check (default policy: ``AuthPolicy()``).
    With ``session``, a printed name that an active user's already reads as (``text.name_key``:
    case, compatibility forms and joiners aside) is refused: a signature shows it to readers who
    cannot tell two Alice Smiths apart. Returns the names cleaned (NFC, stripped)."""
    # fullmatch: ``$`` would also match before a final newline ("alice\n").
    if not USERNAME.fullmatch(username):
        raise UsageError(
            f"invalid username {username!r}: lowercase letters, digits, '.', '_' or '-', starting with a letter"
            " (2 to 64 characters)"
        )
    printed_name = text.clean_optional("printed name", printed_name)
    email = text.email(email)
    if printed_name and session is not None:
        key = text.name_key(printed_name)
        for other, other_name in session.execute(
                select(User.username, User.printed_name).where(User.disabled.is_(False))):
            if text.name_key(other_name) == key:
                raise ConflictError(
                    f"printed name {printed_name!r} is already that of user {other}: signatures must tell "
                    "signers apart (add a middle initial or a department)")
    policy = policy or AuthPolicy()
    check_policy(password, policy.min_password_length, min_score=policy.min_password_score,
                 context=context_words(username, printed_name, email))
    return NewUserText(printed_name, email)


class UserFields(Protocol):
    """What an actor is made of: a User, or a row selected with these columns."""

    @property
    def id(self) -> str: ...
    @property
    def printed_name(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def is_instance_admin(self) -> bool: ...
    @property
    def is_auditor(self) -> bool: ...


def actor_for(user: UserFields) -> Actor:
    return Actor(
        id=user.id,
        name=user.printed_name,
        username=user.username,
        is_instance_admin=user.is_instance_admin,
        is_auditor=user.is_auditor,
    )
