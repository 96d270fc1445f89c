"""The periodic checks behind the ``stuck`` and ``integrity`` rules: no event says "nothing happened"
or "the log was rewritten", so the dispatcher looks for itself.

A job is stuck when none of its shards has finished for the rule's ``after_s``: a worker killed by
SIGKILL or the OOM killer writes nothing, so the signal is the absence of progress in the shard rows
(``scale_shards.updated_at``), read here, never the dead worker's callback. An in-process run whose
lease expired (its process died, runs/lease.py) is stuck from the moment its lease ran out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..access.context import Actor, RequestContext
from ..db.models import Project, Run, ScaleJob, ScaleShard
from ..db.types import rfc3339
from .rules import Finding

if TYPE_CHECKING:
    from ..instance import Instance

# Who the dispatcher's own reads act as: the instance itself (it holds the keys), as ``witness_tail`` does.
SYSTEM = RequestContext(Actor(id="system:alerts", name="alerts dispatcher", kind="service", is_instance_admin=True),
                        interface="system")


def stuck(session: Session, project_id: str, after_s: float, now: datetime) -> list[Finding]:
    """Running jobs of the project without shard progress for ``after_s``, and running runs whose
    lease expired; one finding per run and stall (its last progress time is in the key)."""
    out: list[Finding] = []
    last_shard = (select(ScaleShard.run_id, func.max(ScaleShard.updated_at).label("last"),
                         func.count().label("shards"))
                  .group_by(ScaleShard.run_id).subquery())
    jobs = session.execute(
        select(Run.id, Run.task, Run.started_at, Run.created_at, last_shard.c.last, last_shard.c.shards, Project.name)
        .join(ScaleJob, ScaleJob.run_id == Run.id).join(Project, Project.id == Run.project_id)
        .outerjoin(last_shard, last_shard.c.run_id == Run.id)
        .where(Run.status == "running", Run.project_id == project_id)).all()
    for run_id, task, started, created, last, shards, project in jobs:
        progress = max(t for t in (started, created, _aware(last)) if t is not None)
        idle = (now - progress).total_seconds()
        if idle > after_s:
            done = session.scalar(select(func.count()).select_from(ScaleShard)
                                  .where(ScaleShard.run_id == run_id, ScaleShard.status == "done")) or 0
            out.append(Finding(
                f"stuck:{run_id}:{rfc3339(progress)}",
                f"job {run_id[:8]} ({task}) is stuck: no shard progress for {idle:.0f} s ({done}/{shards or 0} "
                f"shards done; last progress {rfc3339(progress)})",
                {"run_id": run_id, "task": task, "project": project, "last_progress": rfc3339(progress),
                 "idle_s": round(idle, 1), "shards_done": done, "shards": shards or 0}, once=True))
    runs = session.execute(
        select(Run.id, Run.task, Run.lease_until).outerjoin(ScaleJob, ScaleJob.run_id == Run.id)
        .where(Run.status == "running", Run.project_id == project_id, ScaleJob.run_id.is_(None),
               Run.lease_until < now)).all()
    for run_id, task, until in runs:
        assert until is not None  # selected by lease_until < now
        out.append(Finding(
            f"stuck:{run_id}:{rfc3339(until)}",
            f"run {run_id[:8]} ({task}) is stuck: its process stopped renewing its lease, which expired at "
            f"{rfc3339(until)}", {"run_id": run_id, "task": task, "lease_until": rfc3339(until)}, once=True))
    return out


def _aware(value: datetime | None) -> datetime | None:
    """``max`` over a subquery comes back without the column type on SQLite (a naive or text value)."""
    if value is None or isinstance(value, datetime) and value.tzinfo is not None:
        return value
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC)


def integrity(instance: Instance) -> Finding | None:
    """Run the full ``audit verify`` (chain, seals, tree, checkpoints, the witness, the state tables);
    a failure is a finding keyed by what failed, so one tampering is reported once."""
    from ..audit.service import verify  # the audit package's operation, as `audit verify` runs it

    report = verify(instance, SYSTEM, state=True)
    if report.ok:
        return None
    problem = report.problem or (report.state_difference.model_dump_json() if report.state_difference else "failed")
    return Finding(f"integrity:{report.first_bad_seq}:{problem}"[:300],
                   f"audit verify failed: {problem}" + (f" (first bad seq {report.first_bad_seq})"
                                                        if report.first_bad_seq else ""),
                   {"first_bad_seq": report.first_bad_seq, "problem": report.problem,
                    "state_difference": report.state_difference.model_dump() if report.state_difference else None,
                    "events": report.events}, once=True)
