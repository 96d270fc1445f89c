"""User accounts. Usernames are never deleted or reused."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.events import append_event
from ..db.models import User
from ..db.types import utcnow
from ..errors import ConflictError, NotFoundError, UsageError
from ..ids import new_id
from .actors import Actor, RequestContext
from .passwords import check_policy, hash_password

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
) -> User:
    """Create a user. ``ctx=None`` only for the first admin, who acts as themself."""
    check_new_user(username, password)
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
    )
    session.add(user)
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


def check_new_user(username: str, password: str) -> None:
    """Refuse a bad username or password before anything is written."""
    if not USERNAME.match(username):
        raise UsageError(
            f"invalid username {username!r}: lowercase letters, digits, '.', '_' or '-', starting with a letter"
        )
    check_policy(password)


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
