"""Roles and the permission matrix, enforced once, in the service layer.

Roles are bound per project (viewer < editor < admin); an instance admin may do anything. An
**auditor** (``users.is_auditor``, granted by an instance admin) is an instance-level role that
reads and verifies everything and changes nothing: the ``auditor`` level below, and in every
project the reads listed in ``AUDITOR_READS``.

``PERMISSIONS`` maps every operation a service performs to the least it needs:
``authenticated`` (any signed-in user), a project role, ``auditor`` (an auditor or an instance
admin) or ``instance-admin``. docs/rbac.md shows the same table; tests/test_rbac.py checks both
against the expectations it declares and fails when a service calls ``authorize`` with an
operation that has no row here.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ..db.models import Project, RoleBinding
from ..errors import PermissionDeniedError, UsageError
from .context import RequestContext

ROLES = ("viewer", "editor", "admin")
RANK = {"viewer": 1, "editor": 2, "admin": 3}
LEVELS = ("authenticated", *ROLES, "auditor", "instance-admin")

PERMISSIONS: dict[str, str] = {
    # instance
    "instance.configure": "instance-admin",
    "config.read": "auditor",
    "user.create": "instance-admin",
    "user.disable": "instance-admin",
    "user.reset_password": "instance-admin",
    "user.approve_reset": "instance-admin",
    "user.set_auditor": "instance-admin",
    "user.list": "auditor",
    "user.whoami": "authenticated",
    "token.list": "authenticated",
    "token.revoke": "authenticated",
    "token.revoke_any": "instance-admin",
    "project.create": "instance-admin",
    "project.list": "authenticated",
    "audit.read": "auditor",
    "audit.export": "auditor",
    "audit.verify": "auditor",
    "audit.prove": "authenticated",
    "audit.consistency": "authenticated",
    "audit.checkpoint": "auditor",
    "run.recover": "authenticated",
    "retention.read": "auditor",
    "retention.purge": "instance-admin",
    # project
    "audit.read_project": "viewer",
    "role.list": "viewer",
    "role.grant": "admin",
    "role.revoke": "admin",
    "run.create": "editor",
    "run.cancel": "editor",
    "run.resume": "editor",
    "run.read": "viewer",
    "run.export": "viewer",
    "run.sign": "viewer",
    "hub.read": "viewer",
    "hub.push": "editor",
    "hub.edit": "editor",
    "hub.alias": "editor",
    "hub.alias_protected": "admin",
    "hub.retention": "admin",
    # alerts (NS-Alerts)
    "alerts.manage": "admin",
    "alerts.read": "editor",
    "alerts.manage_instance": "instance-admin",
    # reports (NS-Compliance)
    "report.read": "viewer",
    "report.create": "editor",
    "report.audit": "admin",
    "report.sign": "viewer",
    "report.validation_pack": "instance-admin",
    # server and single sign-on (NS-Server)
    "metrics.read": "auditor",
}

# The project operations an auditor may perform in every project: reads only. ``run.sign`` needs
# no more than a viewer but is a change (an electronic signature), so it is not here.
AUDITOR_READS = frozenset({"audit.read_project", "role.list", "run.read", "run.export", "hub.read", "report.read"})


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


def _instance_admin(ctx: RequestContext) -> bool:
    return ctx.actor.is_instance_admin and ctx.token_role in (None, "admin")


def _auditor(ctx: RequestContext, project: Project | None) -> bool:
    """An auditor, through a credential that reaches ``project`` (None: the whole instance). An
    API token is scoped to one project, so only a session reads instance-wide."""
    if not ctx.actor.is_auditor:
        return False
    return ctx.token_project_id is None or (project is not None and ctx.token_project_id == project.id)


def allowed(session: Session, ctx: RequestContext, operation: str, project: Project | None) -> bool:
    try:
        need = PERMISSIONS[operation]
    except KeyError:
        raise UsageError(f"operation {operation!r} has no row in the permission matrix") from None
    if need == "authenticated":
        return True
    if need == "instance-admin":
        return _instance_admin(ctx)
    if need == "auditor":
        return _instance_admin(ctx) or _auditor(ctx, None)
    if project is None:
        raise UsageError(f"operation {operation!r} needs a project")
    if operation in AUDITOR_READS and _auditor(ctx, project):
        return True
    role = effective_role(session, ctx, project)
    return role is not None and RANK[role] >= RANK[need]


def authorize(session: Session, ctx: RequestContext, operation: str, project: Project | None = None) -> None:
    """Refuse (and have the refusal audited) unless ``ctx`` may perform ``operation``."""
    if allowed(session, ctx, operation, project):
        return
    need = PERMISSIONS[operation]
    where = f" in project {project.name}" if project is not None else ""
    have = effective_role(session, ctx, project) if project is not None else None
    if have is None and ctx.actor.is_auditor:
        have = "auditor"
    err = PermissionDeniedError(
        f"{ctx.actor.username or ctx.actor.name} ({have or 'no role'}{where}) may not {operation}: needs {need}"
    )
    err.security_event = {
        "ctx": ctx, "action": "access.denied", "target": ("operation", operation),
        "project": project.name if project is not None else None,
        "after": {"operation": operation, "needs": need, "had": have, "alert": True},
    }
    raise err
