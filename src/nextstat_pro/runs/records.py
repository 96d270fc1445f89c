"""Database functions for runs: they write in the caller's transaction and never commit it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..access.rbac import allowed, authorize
from ..audit.events import append_event
from ..db.models import Project, Run, RunArtifact, RunInput, RunVersion
from ..db.session import core_connection
from ..db.types import rfc3339, utcnow
from ..errors import ConflictError, NotFoundError, UsageError
from ..ids import new_id
from .manifest import FileEntry

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIONS = {"running": "run.started"}
RESUMED = "run.resumed"
ABANDONED = "abandoned"  # the reason of a run failed because its lease expired
_TRANSITIONS = {
    "queued": {"running", "cancelled", "failed"},
    "running": {"succeeded", "failed", "cancelled"},
    "failed": {"running"},  # only a job resume re-opens a failed run (with a reason)
}


def _status_event(session: Session, ctx: RequestContext, run_id: str, project: str, before: str, status: str, *,
                  error: str | None = None, reason: str | None = None, extra: dict[str, Any] | None = None) -> None:
    """The audit event of one lifecycle step (every path that moves a run writes it here)."""
    after: dict[str, Any] = {"status": status, **(extra or {})}
    if error is not None:
        after["error"] = error
    append_event(session, ctx, action=RESUMED if before == "failed" else ACTIONS.get(status, f"run.{status}"),
                 target=("run", run_id), project=project, before={"status": before}, after=after, reason=reason)


@dataclass(frozen=True)
class NewRun:
    run_id: str
    created_at: datetime
    started_at: datetime | None


def create_run(
    session: Session,
    ctx: RequestContext,
    project: Project,
    task: str,
    params: dict[str, Any],
    seed: int | None,
    inputs: list[FileEntry],
    patch: str | None = None,
    *,
    start: bool = False,
    lease_until: datetime | None = None,
) -> NewRun:
    """Record a queued run with its inputs (and, with ``start``, move it to running at once:
    both events, one row). Written as Core statements, not an ORM unit of work: a run is
    recorded per fit, and the flush machinery cost more than the rows
    (benchmarks/bench_run_overhead.py)."""
    run_id, created_at = new_id(), utcnow()
    started_at = created_at if start else None
    conn = core_connection(session)
    conn.execute(insert(Run), {
        "id": run_id, "project_id": project.id, "task": task, "status": "running" if start else "queued",
        "params": params, "seed": seed, "patch": patch, "created_by": ctx.actor.id, "created_at": created_at,
        "started_at": started_at, "lease_until": lease_until,
    })
    if inputs:
        conn.execute(insert(RunInput), [
            {"run_id": run_id, "role": e.role or "", "name": e.name, "digest": e.digest, "size": e.size}
            for e in inputs
        ])
    append_event(
        session,
        ctx,
        action="run.created",
        target=("run", run_id),
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
    if start:
        _status_event(session, ctx, run_id, project.name, "queued", "running")
    return NewRun(run_id, created_at, started_at)


def finish(
    session: Session,
    ctx: RequestContext,
    run_id: str,
    project: str,
    status: str,
    *,
    at: datetime,
    error: str | None,
    outputs: list[FileEntry],
    digests: dict[str, str],
    fit_ok: bool | None,
    reason: str | None = None,
) -> None:
    """End a running run: its outputs, ``digests`` (manifest_digest, envelope_digest), fit
    quality and final status with their events. The status check is the UPDATE's own
    condition, so two finishers (or a finish racing a cancel) cannot both pass it on PostgreSQL
    either; Core statements for the reason given in create_run."""
    if status not in _TRANSITIONS["running"]:
        raise ConflictError(f"a run cannot finish as {status}")
    conn = core_connection(session)
    values: dict[str, Any] = {"status": status, "finished_at": at, "fit_ok": fit_ok, **digests}
    if error is not None:
        values["error"] = error
    done = conn.execute(update(Run).where(Run.id == run_id, Run.status == "running").values(values))
    if done.rowcount != 1:
        current = conn.execute(select(Run.status).where(Run.id == run_id)).scalar()
        if current is None:
            raise NotFoundError(f"no run {run_id!r}")
        raise ConflictError(f"run {run_id} is {current}; it cannot become {status}")
    if outputs:
        conn.execute(insert(RunArtifact), [
            {"run_id": run_id, "name": e.name, "digest": e.digest, "size": e.size,
             "media_type": e.media_type or "application/octet-stream"} for e in outputs
        ])
    for entry in outputs:
        append_event(session, ctx, action="artifact.stored", target=("artifact", entry.digest), project=project,
                     after={"run_id": run_id, **entry.as_json()})
    _status_event(session, ctx, run_id, project, "running", status, error=error, reason=reason,
                  extra={**digests, "fit_quality_ok": fit_ok})


def abandon_expired(session: Session, ctx: RequestContext, now: datetime) -> list[str]:
    """Mark running runs whose lease expired before ``now`` failed, reason ``abandoned``, each
    with its event (runs/lease.py); the UPDATE's own condition keeps a late finisher or a second
    recoverer from both passing. Returns the runs' ids."""
    conn = core_connection(session)
    expired = conn.execute(select(Run.id, Run.lease_until, Project.name).join(Project, Project.id == Run.project_id)
                           .where(Run.status == "running", Run.lease_until < now)).all()
    recovered = []
    for run_id, until, project in expired:
        assert until is not None  # selected by lease_until < now
        error = f"abandoned: its process stopped renewing the run's lease, which expired at {rfc3339(until)}"
        done = conn.execute(update(Run).where(Run.id == run_id, Run.status == "running", Run.lease_until < now)
                            .values(status="failed", finished_at=now, error=error))
        if done.rowcount == 1:
            _status_event(session, ctx, run_id, project, "running", "failed", error=error, reason=ABANDONED,
                          extra={"lease_until": rfc3339(until)})
            recovered.append(run_id)
    return recovered


def add_versions(session: Session, run_id: str, uses: list[tuple[str, str, str]]) -> None:
    """Link a run to registry versions, given as (version_id, role, ref): the ones it used,
    or for a job the ones it produced."""
    if uses:
        core_connection(session).execute(insert(RunVersion), [
            {"run_id": run_id, "version_id": version_id, "role": role, "ref": ref} for version_id, role, ref in uses
        ])


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
    before = run.status
    at = at or utcnow()
    run.status = status
    if status == "running":
        run.started_at = at
    else:
        run.finished_at = at
    if error is not None:
        run.error = error
    _status_event(session, ctx, run.id, project, before, status, error=error, reason=reason, extra=extra)


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
    """A run the caller may read (or export, sign, cancel: ``operation``). To a caller who may not
    read the run's project the answer is exactly the one for a missing run: the reference tells
    nothing of what exists where (as ``audit prove`` for events)."""
    run = get_run(session, run_ref)
    project = session.get(Project, run.project_id)
    if not allowed(session, ctx, "run.read", project):
        hidden = NotFoundError(f"no run {run_ref!r}")
        # The refusal is still audited (and alerted on) as the denial it is.
        hidden.security_event = {"ctx": ctx, "action": "access.denied", "target": ("operation", operation),
                                 "project": project.name if project is not None else None,
                                 "after": {"operation": operation, "needs": "viewer", "had": None, "alert": True}}
        raise hidden
    authorize(session, ctx, operation, project)
    return run
