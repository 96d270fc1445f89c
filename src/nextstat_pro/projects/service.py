"""Projects: the namespaces that runs, models, datasets, roles and retention belong to."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from .. import text
from ..access.context import RequestContext
from ..access.rbac import authorize
from ..audit.events import append_event
from ..db.models import Project, RoleBinding
from ..db.session import PROJECT_CACHE
from ..db.types import utcnow
from ..errors import ConflictError, NotFoundError, UsageError
from ..ids import new_id
from .views import ProjectRow

if TYPE_CHECKING:  # instance.py imports this module (a new instance's default project)
    from ..instance import Instance

PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")


def create_project(session: Session, ctx: RequestContext, name: str, description: str = "") -> Project:
    """The database function of ``create``, authorizing in the caller's transaction."""
    authorize(session, ctx, "project.create")
    return _create_project(session, ctx, name, description)


def _create_project(session: Session, ctx: RequestContext, name: str, description: str) -> Project:
    if not PROJECT_NAME.match(name):
        raise UsageError(
            f"invalid project name {name!r}: lowercase letters, digits, '_' or '-' (at most 63)"
        )
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise ConflictError(f"project {name!r} exists already")
    description = text.clean("description", description)
    project = Project(
        id=new_id(), name=name, description=description, created_at=utcnow(), created_by=ctx.actor.id
    )
    session.add(project)
    append_event(
        session,
        ctx,
        action="project.created",
        target=("project", project.id),
        project=name,
        after={"name": name, "description": description},
    )
    return project


# Built once: every service call looks its project up, and building a statement per call cost
# as much as running it (0.25 ms on PostgreSQL).
_BY_NAME = select(Project).where(Project.name == bindparam("name"))


def get_project(session: Session, name: str) -> Project:
    # A read session (Database.read) sees committed rows only, and a project is never renamed
    # or deleted, so what it finds stays true: it is kept, and later reads skip the query (one
    # of a read call's two round trips on PostgreSQL). A transaction's lookups are not kept:
    # they may see a project the transaction itself created and then rolls back.
    cache = session.info.get(PROJECT_CACHE)
    if cache is not None and (known := cache.get(name)) is not None:
        return known  # type: ignore[no-any-return]
    project = session.scalar(_BY_NAME, {"name": name})
    if project is None:
        raise NotFoundError(f"no project named {name!r}")
    if cache is not None:
        session.expunge(project)
        cache[name] = project
    return project


def authorized_project(session: Session, ctx: RequestContext, name: str, operation: str) -> Project:
    """The project ``name``, once ``ctx`` may perform ``operation`` in it."""
    project = get_project(session, name)
    authorize(session, ctx, operation, project)
    return project


def check_allowed(instance: Instance, ctx: RequestContext, name: str, operation: str) -> None:
    """Refuse, before an operation reads anything the caller names (a file on this machine, a
    registry reference), unless ``ctx`` may perform ``operation`` in project ``name``: a caller
    who may not must learn nothing from what the reading would say (exists, unreadable...)."""
    with instance.db.read() as session:
        authorized_project(session, ctx, name, operation)


def _visible_projects(session: Session, ctx: RequestContext) -> list[Project]:
    query = select(Project).order_by(Project.name)
    if not (ctx.actor.is_instance_admin or ctx.actor.is_auditor):
        query = query.join(RoleBinding, RoleBinding.project_id == Project.id).where(RoleBinding.user_id == ctx.actor.id)
    if ctx.token_project_id is not None:
        query = query.where(Project.id == ctx.token_project_id)
    return list(session.scalars(query))


def _row(project: Project) -> ProjectRow:
    return ProjectRow(name=project.name, description=project.description, created_at=project.created_at)


def create(instance: Instance, ctx: RequestContext, name: str, description: str = "") -> ProjectRow:
    """Create a project (``project create``) with its audit event."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "project.create")
        return _row(_create_project(session, ctx, name, description))


def list_rows(instance: Instance, ctx: RequestContext) -> list[ProjectRow]:
    """The projects the caller may see (``project list``), by name."""
    with instance.db.read() as session:
        authorize(session, ctx, "project.list")
        return [_row(p) for p in _visible_projects(session, ctx)]
