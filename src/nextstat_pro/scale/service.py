"""Submitting, cancelling and reading jobs: many fits, one run.

``submit`` validates everything, records the run (queued) with its spec, shards and the
``job.submitted`` event, and returns at once; nothing runs until a coordinator
(``coordinator.coordinate``, called by whichever adapter) drives the job: it launches the
missing shards on the backend, verifies each result once, retries failed shards up to
``max_retries``, and publishes only a complete, verified merge. A coordinator killed at any
moment loses nothing: coordinating again (``runs resume``) picks up from the store (shards
already written are not recomputed, and none is counted twice).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ..access.context import RequestContext
from ..access.rbac import authorize
from ..audit.events import append_event
from ..db.models import Project, ScaleJob, ScaleShard
from ..db.types import utcnow
from ..engine import InputFile, prepare
from ..engine.inputs import parse_json
from ..engine.params import check_seed
from ..errors import FieldError, UsageError
from ..projects.service import check_allowed, get_project
from ..runs.manifest import FileEntry
from ..runs.records import add_versions, create_run, read_run, transition
from ..runs.references import VersionUse, gather_inputs
from .backends import get_backend
from .partition import shard_ranges
from .spec import InputRef, JobSpec, JobTask
from .views import JobProgress, JobStatus, JobSummary, PointRow, ShardRow

if TYPE_CHECKING:
    from ..instance import Instance


class JobInputs(BaseModel):
    """What a job reads, as given: files on the service's file system, or registry references
    (grid: patchset references, each bringing its base model; otherwise model references)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workspace: Path | None = Field(None, description="A pyhf JSON workspace file.")
    patchset: Path | None = Field(None, description="A pyhf patchset file (grid).")
    models: list[str] = Field([], description="Registry references (grid: patchset REFs; fit-many: one per model).")


@dataclass(frozen=True)
class SubmitRequest:
    """A job to record. ``inputs``: files already read (in-process callers); ``given``: inputs as a
    caller names them, read and resolved by ``submit``."""

    task: JobTask
    project: str
    inputs: list[InputFile] = field(default_factory=list)
    versions: list[VersionUse] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    shards: int = 4
    backend: str = "local"
    backend_options: dict[str, Any] = field(default_factory=dict)
    workers: int = 2
    point_task: str = "upper-limit"
    patches: list[str] | None = None
    max_retries: int = 2
    result_name: str | None = None
    given: JobInputs | None = None


def plan_items(req: SubmitRequest) -> tuple[list[Any], dict[str, Any]]:
    """The items of the job and the per-point engine parameters (validated)."""
    check_seed(req.seed)
    params = dict(req.params)
    roles = {i.role: i for i in req.inputs}
    if req.task == "grid":
        if set(roles) != {"workspace", "patchset"}:
            raise FieldError("grid needs a workspace and a patchset (a patchset reference, or both files)",
                             "models", "workspace", "patchset")
        patchset = parse_json(roles["patchset"])
        names = [p["metadata"]["name"] for p in patchset["patches"]]
        if req.patches:
            unknown = sorted(set(req.patches) - set(names))
            if unknown:
                raise UsageError(f"unknown patch(es) {unknown[:5]}")
            names = [n for n in names if n in set(req.patches)]
        if req.point_task not in ("upper-limit", "hypotest", "fit"):
            raise UsageError("grid points compute upper-limit, hypotest or fit")
        prepare(req.point_task, params, [roles["workspace"], roles["patchset"]], names[0], patchset)  # validates all
        return names, params
    if req.task == "scan":
        lo, hi, n = float(params.pop("mu_min", 0.0)), float(params.pop("mu_max", 3.0)), int(params.pop("points", 31))
        if n < 2 or hi <= lo:
            raise UsageError("scan needs points >= 2 and mu_max > mu_min")
        prepare("fit", {}, [roles["workspace"]])
        return [lo + i * (hi - lo) / (n - 1) for i in range(n)], {}
    if req.task == "toys":
        if req.seed is None:
            raise FieldError("toys need a seed", "seed")
        n = int(params.pop("n_toys", 100))
        if n < 1:
            raise UsageError("n_toys must be at least 1")
        check_seed(req.seed, n)
        prepare("fit", {}, [roles["workspace"]])
        return list(range(n)), params
    if req.task == "fit-many":
        if not req.inputs or any(i.role != "workspace" for i in req.inputs):
            raise FieldError("fit-many needs one or more registry models", "models")
        names = [i.name for i in req.inputs]
        if len(set(names)) != len(names):
            raise UsageError("fit-many got the same model twice")
        for inp in req.inputs:
            prepare("fit", params, [inp])
        return names, params
    raise UsageError(f"unknown job task {req.task!r} (grid, scan, toys, fit-many)")


def submit(instance: Instance, ctx: RequestContext, req: SubmitRequest) -> str:
    """Validate and record a job; nothing runs yet. Returns the run id (``status_of`` is its view).
    Inputs ``given`` by path or reference are read and resolved first (a registry read, authorized
    on its own)."""
    get_backend(req.backend)  # an unknown backend is refused before anything is written
    for name in ("shards", "workers"):
        if getattr(req, name) < 1:
            raise FieldError(f"{name} must be at least 1", name)
    if req.given is not None:
        check_allowed(instance, ctx, req.project, "run.create")  # before reading what it names
        kind = "patchset" if req.task == "grid" else "model"
        gathered = gather_inputs(instance, ctx, req.project, [(role, path) for role, path in (
            ("workspace", req.given.workspace), ("patchset", req.given.patchset)) if path is not None],
            [(kind, ref) for ref in req.given.models])
        req = replace(req, inputs=[*req.inputs, *gathered.files], versions=[*req.versions, *gathered.versions],
                      given=None)
    items, params = plan_items(req)
    with instance.db.transaction() as session:
        project = get_project(session, req.project)
        authorize(session, ctx, "run.create", project)
        entries = [FileEntry(i.name, instance.store.put(i.data, i.digest).digest, len(i.data), role=i.role)
                   for i in req.inputs]
        run_params = {"job": req.task, "point_task": req.point_task, "params": params, "shards": req.shards,
                      "backend": req.backend, "items": len(items)}
        run = create_run(session, ctx, project, req.task, run_params, req.seed, entries)
        add_versions(session, run.run_id, [u.link for u in req.versions])
        spec = JobSpec(run_id=run.run_id, task=req.task, point_task=req.point_task, params=params, seed=req.seed,
                       inputs=[InputRef(role=e.role or "", name=e.name, digest=e.digest) for e in entries],
                       items=items, shards=req.shards, max_retries=req.max_retries)
        instance.store.put(spec.canonical())
        n_shards = len(shard_ranges(len(items), req.shards))
        session.add(ScaleJob(run_id=run.run_id, spec_digest=spec.digest, backend=req.backend,
                             options={**req.backend_options, "result_name": req.result_name}, workers=req.workers,
                             handles=[]))
        for i in range(n_shards):
            session.add(ScaleShard(run_id=run.run_id, shard=i, status="pending", attempts=0, updated_at=utcnow()))
        append_event(session, ctx, action="job.submitted", target=("run", run.run_id), project=project.name,
                     after={"spec_digest": spec.digest, "backend": req.backend, "shards": n_shards,
                            "items": len(items), "task": req.task})
        return run.run_id


def cancel(instance: Instance, ctx: RequestContext, run_id: str, reason: str) -> None:
    with instance.db.transaction() as session:
        run = read_run(session, ctx, run_id, "run.cancel")
        project = session.get(Project, run.project_id)
        if session.get(ScaleJob, run.id) is None:
            raise UsageError(f"run {run.id} is not a job")
        transition(session, ctx, run, project.name if project else "", "cancelled", reason=reason)


def status_of(instance: Instance, ctx: RequestContext, run_id: str) -> JobStatus:
    """A job's run, its progress and its shards."""
    with instance.db.read() as session:
        run = read_run(session, ctx, run_id)
        job = session.get(ScaleJob, run.id)
        if job is None:
            raise UsageError(f"run {run.id} is not a job")
        shards = list(session.scalars(select(ScaleShard).where(ScaleShard.run_id == run.id).order_by(ScaleShard.shard)))
        # The shards' sizes follow from the plan recorded with the run (no read of the spec).
        ranges = shard_ranges(run.params["items"], run.params["shards"])
        progress = JobProgress.of(ranges, (s.shard for s in shards if s.status == "done"), len(shards))
        return JobStatus(run_id=run.id, status=run.status, task=run.task, backend=job.backend,
                         spec_digest=job.spec_digest, progress=progress,
                         shards=[ShardRow(shard=s.shard, status=s.status, attempts=s.attempts, error=s.error)
                                 for s in shards])



def summary(instance: Instance, ctx: RequestContext, run_id: str) -> JobSummary | None:
    """Headline numbers of a collected job: one row per point."""
    with instance.db.read() as session:
        run = read_run(session, ctx, run_id)
        job = session.get(ScaleJob, run.id)
        if job is None or job.result_digest is None:
            return None
        digest = job.result_digest
    merged = json.loads(instance.store.get(digest))
    rows = []
    for p in merged["points"]:
        r = p.get("result") or {}
        row: dict[str, Any] = {"index": p["index"], "item": p["item"], "ok": p["ok"]}
        for key in ("observed", "cls", "nll", "q_mu", "converged"):
            if key in r:
                row[key] = r[key]
        if "expected" in r:
            row["median"] = r["expected"]["median"]
        if isinstance(r.get("poi"), dict):
            row["poi"] = r["poi"]["value"]
        elif "poi" in r:
            row["poi"] = r["poi"]
        rows.append(PointRow(**row))
    return JobSummary(run_id=run_id, task=merged["task"], result_digest=digest, points=rows,
                      failed=len(merged["failed_points"]))
