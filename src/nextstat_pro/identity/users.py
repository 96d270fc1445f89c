"""User accounts. Usernames are never deleted or reused."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.events import append_event
from ..config import AuthPolicy
from ..db.models import Project, RoleBinding, User
from ..db.types import utcnow
from ..errors import ConflictError, NotFoundError, UsageError
from ..ids import new_id
from .actors import Actor, RequestContext
from .passwords import check_policy, hash_password
from .rbac import ROLES, authorize
from .strength import context_words
from .userkeys import create_key, retire

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")


def create_user(
    session: Session,
    ctx: RequestContext | None,
    *,
    username: str,
    printed_name: str,
    password: str,
    email: str | None = None,
    instance_admin: bool = False,
    policy: AuthPolicy | None = None,
) -> User:
    """Create a user with a signing key. ``ctx=None`` only for the first admin (init).
    ``policy`` is the instance's (``config.auth``): its password length and strength."""
    if ctx is not None:
        authorize(session, ctx, "user.create")
    check_new_user(username, password, printed_name=printed_name, email=email, policy=policy)
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
        disabled=False,
        created_at=utcnow(),
        password_changed_at=utcnow(),
        must_change_password=False,
        failed_logins=0,
    )
    session.add(user)
    session.flush()
    create_key(session, user, password)
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
        },
    )
    return user


def disable_user(session: Session, ctx: RequestContext, username: str, reason: str) -> User:
    """Disable (never delete) a user: the name stays taken forever, their signatures stay valid."""
    authorize(session, ctx, "user.disable")
    user = get_user(session, username)
    if user.disabled:
        raise ConflictError(f"user {username} is disabled already")
    if user.id == ctx.actor.id:
        raise UsageError("you cannot disable yourself")
    user.disabled = True
    append_event(session, ctx, action="user.disabled", target=("user", user.id), before={"disabled": False},
                 after={"disabled": True}, reason=reason)
    return user


def reset_password(session: Session, ctx: RequestContext, username: str, temporary: str, reason: str,
                   policy: AuthPolicy | None = None) -> User:
    """An administrator's reset: a temporary password the user must change at next sign-in,
    the lockout cleared, and the old signing key retired. The new key pair is made when the
    user sets their own password, so the administrator never holds a key of theirs."""
    authorize(session, ctx, "user.reset_password")
    user = get_user(session, username)
    policy = policy or AuthPolicy()
    check_policy(temporary, policy.min_password_length, min_score=policy.min_password_score,
                 context=context_words(user.username, user.printed_name, user.email))
    user.password_hash = hash_password(temporary)
    user.password_changed_at = utcnow()
    user.must_change_password = True
    before = {"locked": user.locked_at is not None, "failed_logins": user.failed_logins}
    user.locked_at, user.failed_logins = None, 0
    retire(session, user)
    append_event(session, ctx, action="user.password_reset", target=("user", user.id), before=before,
                 after={"locked": False, "failed_logins": 0, "must_change_password": True, "signing_key": "retired"},
                 reason=reason)
    return user


def grant_role(session: Session, ctx: RequestContext, username: str, project: Project, role: str, reason: str) -> None:
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    authorize(session, ctx, "role.grant", project)
    user = get_user(session, username)
    binding = session.get(RoleBinding, (user.id, project.id))
    before = binding.role if binding else None
    if binding is None:
        session.add(RoleBinding(user_id=user.id, project_id=project.id, role=role, created_at=utcnow()))
    elif binding.role == role:
        raise ConflictError(f"{username} is {role} in {project.name} already")
    else:
        binding.role = role
    append_event(session, ctx, action="role.granted" if before is None else "role.changed",
                 target=("role", f"{project.name}:{username}"), project=project.name,
                 before={"role": before}, after={"role": role, "user_id": user.id}, reason=reason)


def revoke_role(session: Session, ctx: RequestContext, username: str, project: Project, reason: str) -> None:
    authorize(session, ctx, "role.revoke", project)
    user = get_user(session, username)
    binding = session.get(RoleBinding, (user.id, project.id))
    if binding is None:
        raise NotFoundError(f"{username} has no role in {project.name}")
    before = binding.role
    session.delete(binding)
    append_event(session, ctx, action="role.revoked", target=("role", f"{project.name}:{username}"),
                 project=project.name, before={"role": before, "user_id": user.id}, after={"role": None},
                 reason=reason)


def list_users(session: Session, ctx: RequestContext) -> list[User]:
    authorize(session, ctx, "user.list")
    return list(session.scalars(select(User).order_by(User.username)))


def check_new_user(username: str, password: str, *, printed_name: str | None = None, email: str | None = None,
                   policy: AuthPolicy | None = None) -> None:
    """Refuse a bad username or password before anything is written; the account's names are
    context words of the password check (default policy: ``AuthPolicy()``)."""
    if not USERNAME.match(username):
        raise UsageError(
            f"invalid username {username!r}: lowercase letters, digits, '.', '_' or '-', starting with a letter"
        )
    policy = policy or AuthPolicy()
    check_policy(password, policy.min_password_length, min_score=policy.min_password_score,
                 context=context_words(username, printed_name, email))


def actor_for(user: User) -> Actor:
    return Actor(
        id=user.id,
        name=user.printed_name,
        username=user.username,
        is_instance_admin=user.is_instance_admin,
    )


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user named {username!r}")
    return user
