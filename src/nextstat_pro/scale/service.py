"""Submitting, coordinating, resuming and cancelling jobs: many fits, one run.

``submit`` validates everything, records the run (queued) with its spec, shards and the
``job.submitted`` event, and returns at once. ``coordinate`` launches the missing shards on
the backend, watches the store for shard results (verifying each, once), retries failed
shards up to ``max_retries``, and publishes only a complete, verified merge: the merged
result, the manifest, the signed attestation, a registry version of the points, and the
events. A coordinator killed at any moment loses nothing: ``resume`` picks up from the
store (shards already written are not recomputed, and none is counted twice).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..audit.events import append_event
from ..db.models import HubItem, HubVersion, Project, Run, RunInput, RunVersion, ScaleJob, ScaleShard
from ..db.types import utcnow
from ..engine import InputFile, prepare
from ..engine.inputs import parse_json
from ..engine.params import check_seed
from ..errors import ConflictError, NSPError, UsageError
from ..hub.content import canonical_records_content
from ..hub.service import push as hub_push
from ..identity.actors import RequestContext
from ..identity.rbac import authorize
from ..instance import Instance
from ..projects.service import get_project
from ..runs.manifest import FileEntry, RunRecord
from ..runs.records import add_versions, create_run, get_run, transition
from ..runs.service import RESULT_NAME, VersionUse, finish_run
from .backends import Backend, Launch, get_backend
from .collect import CollectError, ShardResult, merge, read_shard, shard_status
from .partition import shard_ranges
from .spec import InputRef, JobSpec, JobTask, spec_uri

POLL_S = 0.2


@dataclass(frozen=True)
class SubmitRequest:
    task: JobTask
    project: str
    inputs: list[InputFile]
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


def plan_items(req: SubmitRequest) -> tuple[list[Any], dict[str, Any]]:
    """The items of the job and the per-point engine parameters (validated)."""
    check_seed(req.seed)
    params = dict(req.params)
    roles = {i.role: i for i in req.inputs}
    if req.task == "grid":
        if set(roles) != {"workspace", "patchset"}:
            raise UsageError("grid needs a workspace and a patchset "
                             "(--model PATCHSET_REF, or --workspace and --patchset)")
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
            raise UsageError("toys need --seed")
        n = int(params.pop("n_toys", 100))
        if n < 1:
            raise UsageError("n_toys must be at least 1")
        check_seed(req.seed, n)
        prepare("fit", {}, [roles["workspace"]])
        return list(range(n)), params
    if req.task == "fit-many":
        if not req.inputs or any(i.role != "workspace" for i in req.inputs):
            raise UsageError("fit-many needs one or more models (--model REF, repeatable)")
        names = [i.name for i in req.inputs]
        if len(set(names)) != len(names):
            raise UsageError("fit-many got the same model twice")
        for inp in req.inputs:
            prepare("fit", params, [inp])
        return names, params
    raise UsageError(f"unknown job task {req.task!r} (grid, scan, toys, fit-many)")


def submit(instance: Instance, ctx: RequestContext, req: SubmitRequest) -> str:
    """Validate and record a job; nothing runs yet. Returns the run id."""
    get_backend(req.backend)  # an unknown backend is refused before anything is written
    if req.shards < 1 or req.workers < 1:
        raise UsageError("--shards and --workers must be at least 1")
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


@dataclass
class Progress:
    shards_done: int
    shards_total: int
    points_done: int
    points_total: int


def _load(instance: Instance, run_id: str) -> tuple[Run, ScaleJob, JobSpec, str]:
    with instance.db.transaction() as session:
        run = get_run(session, run_id)
        job = session.get(ScaleJob, run.id)
        if job is None:
            raise UsageError(f"run {run.id} is not a job (only submitted jobs can be resumed)")
        project = session.get(Project, run.project_id)
        assert project is not None
        spec = JobSpec.model_validate_json(instance.store.get(job.spec_digest))
        return run, job, spec, project.name


def coordinate(instance: Instance, ctx: RequestContext, run_id: str,
               on_progress: Callable[[Progress], None] | None = None, backend: Backend | None = None) -> str:
    """Drive a job to its end; return the final status."""
    run, job, spec, project = _load(instance, run_id)
    with instance.db.transaction() as session:
        row = get_run(session, run.id)
        authorize(session, ctx, "run.create", session.get(Project, row.project_id))
        if row.status in ("succeeded", "cancelled"):
            raise ConflictError(f"run {row.id} is {row.status}: nothing to resume")
        if row.status in ("queued", "failed"):
            transition(session, ctx, row, project, "running", reason="resumed" if row.status == "failed" else None)
        for shard in session.scalars(select(ScaleShard).where(ScaleShard.run_id == run.id,
                                                              ScaleShard.status == "failed")):
            shard.status, shard.attempts, shard.error = "pending", 0, None  # a resume retries failed shards
    ranges = shard_ranges(len(spec.items), spec.shards)
    log = logging.getLogger(f"nextstat_pro.job.{run.id}")
    lines: list[str] = []
    backend = backend or get_backend(job.backend)
    workdir = instance.home / "jobs" / run.id
    uri = spec_uri(instance.store.url, spec.digest)
    launched: set[int] = set()
    verified: dict[str, ShardResult] = {}  # read and checked once, reused by the merge

    def note(message: str) -> None:
        lines.append(f"{utcnow().isoformat()} {message}")
        log.info(message)

    try:
        while True:
            with instance.db.transaction() as session:
                if get_run(session, run.id).status == "cancelled":
                    note("cancelled: stopping the backend")
                    backend.cancel()
                    return "cancelled"
                shards = {s.shard: s for s in session.scalars(select(ScaleShard).where(ScaleShard.run_id == run.id))}
            refs = shard_status(instance.store, spec)
            # Pending shards whose result is in the store, with its digest.
            fresh: dict[int, str] = {}
            for i, shard in shards.items():
                if shard.status == "pending" and (ref := refs.get(i)):
                    fresh[i] = ref
            if fresh:
                with instance.db.transaction() as session:
                    for i, digest in fresh.items():
                        verified[digest] = read_shard(instance.store, spec, i, digest)  # before it counts
                        # Locked: a second coordinator (a resume racing the background one)
                        # waits here and then sees the shard done, so it is counted once.
                        s = session.get(ScaleShard, (run.id, i), with_for_update=True)
                        assert s is not None
                        if s.status == "done":
                            continue  # another coordinator counted it
                        s.status, s.result_digest, s.updated_at = "done", digest, utcnow()
                        append_event(session, ctx, action="job.shard_done", target=("run", run.id), project=project,
                                     after={"shard": i, "result_digest": digest, "points": len(ranges[i])})
                        shards[i].status = "done"
                        note(f"shard {i} done: {digest}")
            pending = sorted(i for i, s in shards.items() if s.status == "pending")
            failures = {i: why for i, why in backend.failures().items() if i in pending and not refs.get(i)}
            if failures:
                with instance.db.transaction() as session:
                    for i, why in failures.items():
                        s = session.get(ScaleShard, (run.id, i))
                        assert s is not None
                        s.attempts += 1
                        s.error = why
                        s.status = "pending" if s.attempts <= spec.max_retries else "failed"
                        append_event(session, ctx, action="job.shard_failed", target=("run", run.id),
                                     project=project, after={"shard": i, "attempt": s.attempts, "error": why,
                                                             "retry": s.status == "pending"})
                        note(f"shard {i} failed (attempt {s.attempts}): {why}")
                        launched.discard(i)
                        shards[i].status = s.status
                pending = sorted(i for i, s in shards.items() if s.status == "pending")
            to_launch = [i for i in pending if i not in launched]
            if to_launch:
                workdir.mkdir(parents=True, exist_ok=True)
                try:
                    handle = backend.launch(Launch(run.id, uri, to_launch, workdir, job.workers, job.options))
                except NSPError as exc:
                    # The backend cannot run anything (missing sbatch, unreachable scheduler):
                    # these shards fail now, with why, and the run ends failed.
                    note(f"backend {job.backend} could not launch shards {to_launch}: {exc.message}")
                    with instance.db.transaction() as session:
                        for i in to_launch:
                            s = session.get(ScaleShard, (run.id, i))
                            assert s is not None
                            s.status, s.error, s.attempts = "failed", exc.message, s.attempts + 1
                            shards[i].status, shards[i].error = "failed", exc.message
                        append_event(session, ctx, action="job.launch_failed", target=("run", run.id),
                                     project=project, after={"shards": to_launch, "error": exc.message})
                    continue
                launched.update(to_launch)
                note(f"launched shards {to_launch} on {job.backend} ({handle})")
                with instance.db.transaction() as session:
                    row_job = session.get(ScaleJob, run.id)
                    assert row_job is not None
                    row_job.handles = [*row_job.handles, handle]
            done = sum(1 for s in shards.values() if s.status == "done")
            if on_progress:
                on_progress(Progress(done, len(shards), sum(len(ranges[i]) for i, s in shards.items()
                                                            if s.status == "done"), len(spec.items)))
            if not pending:
                break
            backend.wait(POLL_S)
    finally:
        backend.close()
    failed = {i: s.error for i, s in shards.items() if s.status == "failed"}
    return _finish(instance, ctx, run.id, spec, project, failed, lines, job, verified)


def _finish(instance: Instance, ctx: RequestContext, run_id: str, spec: JobSpec, project: str,
            failed: dict[int, str | None], lines: list[str], job: ScaleJob,
            verified: dict[str, ShardResult] | None = None) -> str:
    with instance.db.transaction() as session:
        run = get_run(session, run_id)
        inputs = [FileEntry(i.name, i.digest, i.size, role=i.role)
                  for i in session.scalars(select(RunInput).where(RunInput.run_id == run_id).order_by(RunInput.id))]
        versions = [VersionUse(v.id, rv.role, rv.ref, item.kind, item.name, v.semver, v.digest)
                    for rv, v, item in session.execute(
                        select(RunVersion, HubVersion, HubItem).join(HubVersion, HubVersion.id == RunVersion.version_id)
                        .join(HubItem, HubItem.id == HubVersion.item_id).where(RunVersion.run_id == run_id))]
        base = RunRecord(run.id, project, run.task, run.params, run.seed, None, inputs,
                         [v.as_json() for v in versions], run.created_at, run.started_at or run.created_at)
    outputs: list[FileEntry] = []
    extra: list[VersionUse] = []
    error: str | None = None
    if failed:
        error = "shard(s) failed after retries: " + "; ".join(f"{i}: {why}" for i, why in sorted(failed.items()))
    else:
        try:
            merged = merge(instance.store, spec, verified)
        except CollectError as exc:
            error = exc.message
        else:
            digest = instance.store.put(merged.data).digest
            outputs.append(FileEntry(RESULT_NAME, digest, len(merged.data), media_type="application/json"))
            lines.append(f"{utcnow().isoformat()} merged {spec.shards} shard(s) into {digest}")
            with instance.db.transaction() as session:
                row = session.get(ScaleJob, run_id)
                assert row is not None
                row.result_digest = digest
                append_event(session, ctx, action="job.collected", target=("run", run_id), project=project,
                             after={"result_digest": digest, "points": len(spec.items)})
            name = job.options.get("result_name") or f"{spec.task}-results"
            points = InputFile.from_bytes("dataset", f"{name}.json", merged.points)
            resolved, _ = hub_push(instance, ctx, project, "dataset", name, points,
                                   tags=[f"run_id={run_id}", f"task={spec.task}"],
                                   content=canonical_records_content(points, merged.columns, len(spec.items)))
            extra.append(VersionUse(resolved.version.id, "output", f"{name}@{resolved.version.digest[:19]}",
                                    "dataset", name, resolved.version.semver, resolved.version.digest))
    status = "failed" if error else "succeeded"
    ok = None if error else not merged.failed_points
    finish_run(instance, ctx, base, outputs, ("\n".join(lines) + "\n").encode(), status, error, ok, extra)
    return status


def cancel(instance: Instance, ctx: RequestContext, run_id: str, reason: str) -> None:
    with instance.db.transaction() as session:
        run = get_run(session, run_id)
        project = session.get(Project, run.project_id)
        authorize(session, ctx, "run.create", project)
        if session.get(ScaleJob, run.id) is None:
            raise UsageError(f"run {run.id} is not a job")
        transition(session, ctx, run, project.name if project else "", "cancelled", reason=reason)


def spawn_coordinator(instance: Instance, run_id: str, token: str | None) -> Path:
    """Run the coordinator in the background (submit without --wait); its output goes to a log."""
    workdir = instance.home / "jobs" / run_id
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "coordinator.log"
    exe = Path(sys.executable).with_name("nextstat-pro")
    env = {**os.environ, **({"NSP_TOKEN": token} if token else {})}
    with log.open("ab") as out:
        # `setsid -f` forks the coordinator into its own session and returns at once, so it
        # outlives this command and is nobody's zombie.
        subprocess.run(["setsid", "-f", str(exe), "--home", str(instance.home), "worker", "coordinate", run_id],
                       stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env, check=True)
    return log


def status_of(instance: Instance, ctx: RequestContext, run_id: str) -> dict[str, Any]:
    with instance.db.transaction() as session:
        run = get_run(session, run_id)
        authorize(session, ctx, "run.read", session.get(Project, run.project_id))
        shards = list(session.scalars(select(ScaleShard).where(ScaleShard.run_id == run.id).order_by(ScaleShard.shard)))
        return {"run_id": run.id, "status": run.status,
                "shards": [{"shard": s.shard, "status": s.status, "attempts": s.attempts, "error": s.error}
                           for s in shards]}



def summary(instance: Instance, ctx: RequestContext, run_id: str) -> dict[str, Any] | None:
    """Headline numbers of a collected job: one row per point."""
    with instance.db.transaction() as session:
        run = get_run(session, run_id)
        authorize(session, ctx, "run.read", session.get(Project, run.project_id))
        job = session.get(ScaleJob, run.id)
        if job is None or job.result_digest is None:
            return None
        digest = job.result_digest
    merged = json.loads(instance.store.get(digest))
    rows = []
    for p in merged["points"]:
        r = p.get("result") or {}
        row = {"index": p["index"], "item": p["item"], "ok": p["ok"]}
        for key in ("observed", "cls", "nll", "q_mu", "converged"):
            if key in r:
                row[key] = r[key]
        if "expected" in r:
            row["median"] = r["expected"]["median"]
        if isinstance(r.get("poi"), dict):
            row["poi"] = r["poi"]["value"]
        elif "poi" in r:
            row["poi"] = r["poi"]
        rows.append(row)
    return {"run_id": run_id, "task": merged["task"], "result_digest": digest, "points": rows,
            "failed": len(merged["failed_points"])}
