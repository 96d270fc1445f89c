"""Database functions for runs: they add and flush, the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.events import append_event
from ..db.models import HubItem, HubVersion, Project, Run, RunArtifact, RunInput, RunVersion
from ..db.types import utcnow
from ..errors import ConflictError, NotFoundError, UsageError
from ..identity.actors import RequestContext
from ..identity.rbac import authorize
from ..ids import new_id
from .manifest import FileEntry

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIONS = {"running": "run.started"}
RESUMED = "run.resumed"
_TRANSITIONS = {
    "queued": {"running", "cancelled", "failed"},
    "running": {"succeeded", "failed", "cancelled"},
    "failed": {"running"},  # only a job resume re-opens a failed run (with a reason)
}


def create_run(
    session: Session,
    ctx: RequestContext,
    project: Project,
    task: str,
    params: dict[str, Any],
    seed: int | None,
    inputs: list[FileEntry],
    patch: str | None = None,
) -> Run:
    run = Run(
        id=new_id(),
        project_id=project.id,
        task=task,
        status="queued",
        params=params,
        seed=seed,
        patch=patch,
        created_by=ctx.actor.id,
        created_at=utcnow(),
    )
    session.add(run)
    for entry in inputs:
        session.add(RunInput(run_id=run.id, role=entry.role or "", name=entry.name, digest=entry.digest, size=entry.size))
    append_event(
        session,
        ctx,
        action="run.created",
        target=("run", run.id),
        project=project.name,
        after={
            "status": "queued",
            "task": task,
            "params": params,
            "seed": seed,
            "patch": patch,
            "inputs": [e.as_json() for e in inputs],
        },
    )
    return run


def transition(
    session: Session,
    ctx: RequestContext,
    run: Run,
    project: str,
    status: str,
    *,
    at: datetime | None = None,
    error: str | None = None,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Move a run to ``status`` with its audit event; refuse transitions the lifecycle forbids."""
    if status not in _TRANSITIONS.get(run.status, set()):
        raise ConflictError(f"run {run.id} is {run.status}; it cannot become {status}")
    before = {"status": run.status}
    at = at or utcnow()
    run.status = status
    if status == "running":
        run.started_at = at
    else:
        run.finished_at = at
    if error is not None:
        run.error = error
    after: dict[str, Any] = {"status": status, **(extra or {})}
    if error is not None:
        after["error"] = error
    append_event(
        session, ctx, action=RESUMED if before["status"] == "failed" else ACTIONS.get(status, f"run.{status}"),
        target=("run", run.id), project=project,
        before=before, after=after, reason=reason,
    )


def add_artifacts(session: Session, ctx: RequestContext, run: Run, project: str, artifacts: list[FileEntry]) -> None:
    for entry in artifacts:
        session.add(
            RunArtifact(
                run_id=run.id, name=entry.name, digest=entry.digest, size=entry.size,
                media_type=entry.media_type or "application/octet-stream",
            )
        )
        append_event(
            session, ctx, action="artifact.stored", target=("artifact", entry.digest), project=project,
            after={"run_id": run.id, **entry.as_json()},
        )


def get_run(session: Session, run_ref: str) -> Run:
    """A run by id, or by a unique id prefix of at least 8 characters."""
    run = session.get(Run, run_ref)
    if run is not None:
        return run
    if len(run_ref) < 8:
        raise UsageError(f"run reference {run_ref!r} is too short (give at least 8 characters of the id)")
    matches = list(session.scalars(select(Run).where(Run.id.startswith(run_ref, autoescape=True)).limit(2)))
    if not matches:
        raise NotFoundError(f"no run {run_ref!r}")
    if len(matches) > 1:
        raise UsageError(f"run reference {run_ref!r} is ambiguous; give more characters")
    return matches[0]


def read_run(session: Session, ctx: RequestContext, run_ref: str, operation: str = "run.read") -> Run:
    """A run the caller may read (or export, or sign: ``operation``)."""
    run = get_run(session, run_ref)
    project = session.get(Project, run.project_id)
    authorize(session, ctx, operation, project)
    return run


def list_runs(
    session: Session,
    ctx: RequestContext,
    project: Project,
    status: str | None = None,
    task: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Run]:
    authorize(session, ctx, "run.read", project)
    if status is not None and status not in STATUSES:
        raise UsageError(f"unknown status {status!r} (statuses: {', '.join(STATUSES)})")
    query = select(Run).where(Run.project_id == project.id).order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Run.status == status)
    if task is not None:
        query = query.where(Run.task == task)
    if since is not None:
        query = query.where(Run.created_at >= since)
    return list(session.scalars(query))


def versions_of(session: Session, run_ids: list[str]) -> dict[str, list[str]]:
    """Registry versions each run used, as ``name@semver`` (or ``name@sha256:…``) labels."""
    rows = session.execute(
        select(RunVersion.run_id, HubItem.name, HubVersion.semver, HubVersion.digest)
        .join(HubVersion, HubVersion.id == RunVersion.version_id)
        .join(HubItem, HubItem.id == HubVersion.item_id)
        .where(RunVersion.run_id.in_(run_ids))
    )
    out: dict[str, list[str]] = {}
    for run_id, name, semver, digest in rows:
        out.setdefault(run_id, []).append(f"{name}@{semver or digest[:19]}")
    return out
