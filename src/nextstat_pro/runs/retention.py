"""Retention of run artifacts: the policy decides which object bytes may be purged.

A purge removes the bytes of a finished run's outputs (result, log) from the store, records
a tombstone (``purged_objects`` + an ``artifact.purged`` event with digest, reason and
actor) and never touches the run, its manifest or any audit event: the chain never breaks.
Runs younger than the policy's minimum or under legal hold are refused with the rule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from .. import text
from ..access.context import RequestContext
from ..access.rbac import authorize
from ..audit.events import append_event
from ..config import RetentionPolicy
from ..db.models import Project, PurgedObject, Run, RunArtifact
from ..db.types import utcnow
from ..errors import ConflictError, UsageError
from .records import get_run
from .views import RetentionItem

if TYPE_CHECKING:
    from ..instance import Instance

RECORD_CLASS = "run_artifacts"
PURGEABLE = ("result.json", "run.log")
YEAR_S = 365.25 * 24 * 3600


def assess(run: Run, project: str, policy: RetentionPolicy, purged: bool, now: datetime) -> RetentionItem:
    def item(state: Literal["retained", "held", "eligible", "purged"], rule: str) -> RetentionItem:
        return RetentionItem(run_id=run.id, project=project, finished_at=run.finished_at, state=state, rule=rule)

    min_years = policy.min_years.get(RECORD_CLASS, 0.0)
    if purged:
        return item("purged", "artifacts already purged")
    if run.id in policy.legal_hold_runs:
        return item("held", f"legal hold on run {run.id}")
    if project in policy.legal_hold_projects:
        return item("held", f"legal hold on project {project}")
    if run.finished_at is None:
        return item("retained", f"run is {run.status}, not finished")
    age = (now - run.finished_at).total_seconds() / YEAR_S
    if age < min_years:
        return item("retained", f"{RECORD_CLASS} are kept {min_years:g} years; this run finished {age:.2f} years ago")
    return item("eligible", f"older than {min_years:g} years, no hold")


def _purged_runs(session: Session) -> set[str]:
    purged = set(session.scalars(select(PurgedObject.digest)))
    runs: dict[str, set[str]] = {}
    for run_id, name, digest in session.execute(select(RunArtifact.run_id, RunArtifact.name, RunArtifact.digest)):
        if name in PURGEABLE:
            runs.setdefault(run_id, set()).add(digest)
    return {r for r, digests in runs.items() if digests and digests <= purged}


def status(instance: Instance, ctx: RequestContext, now: datetime | None = None) -> list[RetentionItem]:
    """What the retention policy keeps, holds and allows to purge (``audit retention status``)."""
    with instance.db.read() as session:
        authorize(session, ctx, "retention.read")
        return _assess_all(session, instance.config.retention, now)


def _assess_all(session: Session, policy: RetentionPolicy, now: datetime | None) -> list[RetentionItem]:
    now = now or datetime.now(UTC)
    purged = _purged_runs(session)
    rows = session.execute(
        select(Run, Project.name).join(Project, Project.id == Run.project_id).order_by(Run.created_at))
    return [assess(run, name, policy, run.id in purged, now) for run, name in rows]


def purge(instance: Instance, ctx: RequestContext, run_ids: list[str], reason: str) -> list[str]:
    """Purge the artifacts of ``run_ids``; refuse the whole request if one is not eligible."""
    reason = text.clean("reason", reason)
    if not reason.strip():
        raise UsageError("a reason is required to purge artifacts")
    policy = instance.config.retention
    now = datetime.now(UTC)
    removed: list[str] = []
    with instance.db.transaction() as session:
        authorize(session, ctx, "retention.purge")
        purged_runs = _purged_runs(session)
        already = set(session.scalars(select(PurgedObject.digest)))
        targets: list[tuple[Run, str]] = []
        for ref in run_ids:
            run = get_run(session, ref)
            project = session.get(Project, run.project_id)
            assert project is not None
            item = assess(run, project.name, policy, run.id in purged_runs, now)
            if item.state != "eligible":
                raise ConflictError(f"run {run.id} cannot be purged: {item.rule}")
            targets.append((run, project.name))
        keep = _digests_of_runs_not_in(session, {r.id for r, _ in targets})
        for run, project_name in targets:
            for artifact in run.artifacts:
                if artifact.name not in PURGEABLE or artifact.digest in already or artifact.digest in keep:
                    continue
                session.execute(insert(PurgedObject), [{"digest": artifact.digest, "purged_at": utcnow(),
                                                        "reason": reason, "actor_id": ctx.actor.id}])
                append_event(session, ctx, action="artifact.purged", target=("artifact", artifact.digest),
                             project=project_name, reason=reason,
                             before={"run_id": run.id, "name": artifact.name, "digest": artifact.digest,
                                     "size": artifact.size},
                             after=None)
                already.add(artifact.digest)
                removed.append(artifact.digest)
    # Bytes go only after the tombstones committed: a failure here leaves bytes to purge
    # again, never a purge without its record.
    for digest in removed:
        instance.store.delete(digest)
    return removed


def _digests_of_runs_not_in(session: Session, run_ids: set[str]) -> set[str]:
    rows = session.execute(select(RunArtifact.run_id, RunArtifact.digest))
    return {digest for run_id, digest in rows if run_id not in run_ids}


def apply(instance: Instance, ctx: RequestContext, reason: str, dry_run: bool) -> list[RetentionItem]:
    with instance.db.transaction() as session:
        authorize(session, ctx, "retention.read")
        eligible = [i for i in _assess_all(session, instance.config.retention, None) if i.state == "eligible"]
    if not dry_run and eligible:
        purge(instance, ctx, [i.run_id for i in eligible], reason)
    return eligible
