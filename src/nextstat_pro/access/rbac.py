"""Roles and the permission matrix, enforced once, in the service layer.

Roles are bound per project (viewer < editor < admin); an instance admin may do anything.
``PERMISSIONS`` maps every operation a service performs to the least it needs:
``authenticated`` (any signed-in user), a project role, or ``instance-admin``. docs/rbac.md
shows the same table; tests/test_rbac.py fails when a service calls ``authorize`` with an
operation that has no row here.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ..db.models import Project, RoleBinding
from ..errors import PermissionDeniedError, UsageError
from .actors import RequestContext

ROLES = ("viewer", "editor", "admin")
RANK = {"viewer": 1, "editor": 2, "admin": 3}

PERMISSIONS: dict[str, str] = {
    # instance
    "instance.configure": "instance-admin",
    "user.create": "instance-admin",
    "user.disable": "instance-admin",
    "user.reset_password": "instance-admin",
    "user.list": "instance-admin",
    "project.create": "instance-admin",
    "project.list": "authenticated",
    "audit.read": "instance-admin",
    "audit.export": "instance-admin",
    "audit.verify": "authenticated",
    "audit.prove": "authenticated",
    "audit.consistency": "authenticated",
    "audit.checkpoint": "authenticated",
    "run.recover": "authenticated",
    "retention.read": "instance-admin",
    "retention.purge": "instance-admin",
    # project
    "audit.read_project": "viewer",
    "role.grant": "admin",
    "role.revoke": "admin",
    "run.create": "editor",
    "run.read": "viewer",
    "run.export": "viewer",
    "run.sign": "viewer",
    "hub.read": "viewer",
    "hub.push": "editor",
    "hub.edit": "editor",
    "hub.alias": "editor",
    "hub.alias_protected": "admin",
    "hub.retention": "admin",
}


_ROLE = select(RoleBinding.role).where(RoleBinding.user_id == bindparam("user_id"),
                                      RoleBinding.project_id == bindparam("project_id"))  # built once


def role_in(session: Session, user_id: str, project: Project) -> str | None:
    return session.scalar(_ROLE, {"user_id": user_id, "project_id": project.id})


def effective_role(session: Session, ctx: RequestContext, project: Project) -> str | None:
    """The user's role in ``project``, capped by a scoped API token."""
    if ctx.token_project_id is not None and ctx.token_project_id != project.id:
        return None
    role = "admin" if ctx.actor.is_instance_admin else role_in(session, ctx.actor.id, project)
    if role is not None and ctx.token_role is not None and RANK[ctx.token_role] < RANK[role]:
        role = ctx.token_role
    return role


def allowed(session: Session, ctx: RequestContext, operation: str, project: Project | None) -> bool:
    try:
        need = PERMISSIONS[operation]
    except KeyError:
        raise UsageError(f"operation {operation!r} has no row in the permission matrix") from None
    if need == "authenticated":
        return True
    if need == "instance-admin":
        return ctx.actor.is_instance_admin and ctx.token_role in (None, "admin")
    if project is None:
        raise UsageError(f"operation {operation!r} needs a project")
    role = effective_role(session, ctx, project)
    return role is not None and RANK[role] >= RANK[need]


def authorize(session: Session, ctx: RequestContext, operation: str, project: Project | None = None) -> None:
    """Refuse (and have the refusal audited) unless ``ctx`` may perform ``operation``."""
    if allowed(session, ctx, operation, project):
        return
    need = PERMISSIONS[operation]
    where = f" in project {project.name}" if project is not None else ""
    have = effective_role(session, ctx, project) if project is not None else None
    err = PermissionDeniedError(
        f"{ctx.actor.username or ctx.actor.name} ({have or 'no role'}{where}) may not {operation}: needs {need}"
    )
    err.security_event = {
        "ctx": ctx, "action": "access.denied", "target": ("operation", operation),
        "project": project.name if project is not None else None,
        "after": {"operation": operation, "needs": need, "had": have, "alert": True},
    }
    raise err
