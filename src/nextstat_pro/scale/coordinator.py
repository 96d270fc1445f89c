"""The job coordinator, a service operation: whoever holds a ``RequestContext`` runs it.

``coordinate(instance, ctx, run_id)`` launches the missing shards on the job's backend,
counts each shard result once it is read through the digest check and found to belong,
retries failed shards, and publishes only a complete, verified merge. It is a plain function
call, so every adapter runs it the same way:

- ``submit --wait`` and ``runs resume`` call it in the terminal (with a progress callback);
- an HTTP server runs it in a worker thread (``start_thread``) or in a separate process it
  manages (``start_process(..., detach=False)``, a ``Popen`` it can wait for or stop);
- ``submit`` without ``--wait`` hands it to a detached process (``start_process``) that
  outlives the command.

A coordinator process is a fresh Python interpreter running ``nextstat_pro.scale.runner``,
never the CLI: who asks travels as a ticket on its stdin pipe (the user's id and the id of
the credential behind the request, no secret), not on a command line or in an environment;
the process opens the instance with the keys and database credentials of the home it is
given, as any in-process caller does (``Instance.context``), and rebuilds the context from
the database.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import observability
from ..access.context import RequestContext
from ..access.rbac import authorize
from ..audit.events import append_event
from ..db.models import HubItem, HubVersion, Project, Run, RunInput, RunVersion, ScaleJob, ScaleShard
from ..db.types import utcnow
from ..engine import InputFile
from ..errors import ConfigError, ConflictError, NSPError, UsageError
from ..hub.content import canonical_records_content
from ..hub.push import push as hub_push
from ..runs.manifest import FileEntry, RunRecord
from ..runs.records import get_run, transition
from ..runs.references import VersionUse
from ..runs.service import RESULT_NAME, finish_run
from .backends import Backend, Launch, get_backend
from .collect import CollectError, ShardResult, merge, read_shard, shard_status
from .partition import shard_ranges
from .spec import JobSpec, spec_uri
from .views import JobProgress

if TYPE_CHECKING:
    from ..instance import Instance

POLL_S = 0.2  # between looks, for backends that do not say (Backend.poll_interval)
RUNNER_MODULE = "nextstat_pro.scale.runner"
# Never handed to a coordinator process: it receives its context on a pipe, not a credential.
SECRET_ENV = ("NSP_TOKEN", "NSP_PASSWORD", "NSP_NEW_PASSWORD")


Progress = JobProgress  # what ``on_progress`` receives: the job's progress view


def _resumable(session: Session, run_id: str) -> tuple[Run, Project]:
    """The job's run and project, refused when there is nothing to coordinate."""
    run = get_run(session, run_id)
    if session.get(ScaleJob, run.id) is None:
        raise UsageError(f"run {run.id} is not a job (only submitted jobs can be resumed)")
    project = session.get(Project, run.project_id)
    assert project is not None
    return run, project


def _refuse_finished(run: Run) -> None:
    if run.status in ("succeeded", "cancelled"):
        raise ConflictError(f"run {run.id} is {run.status}: nothing to resume")


# The job's span: the shards' spans are its children (the context rides in the spec URI).
@observability.traced("nextstat.job", {"run_id": "nextstat.run_id"}, result="nextstat.status")
def coordinate(instance: Instance, ctx: RequestContext, run_id: str,
               on_progress: Callable[[Progress], None] | None = None, backend: Backend | None = None) -> str:
    """Drive a job to its end and return its final status (succeeded, failed or cancelled).

    It opens many short transactions rather than one, on purpose: a job runs for minutes or
    days, and each step must be durable on its own before the next one relies on it (the run
    started; each verified shard with its ``job.shard_done``; each failure and retry; each
    launch handle; the collected result and the run's end), so that a coordinator killed at
    any moment loses nothing and ``resume`` continues from what was committed. One transaction
    around the whole job would hold the database's write lock (SQLite) for its duration and
    lose everything on a crash. Objects (merged result, manifest, attestation) are stored
    before the transaction that references them commits."""
    with instance.db.transaction() as session:
        run, project_row = _resumable(session, run_id)
        authorize(session, ctx, "run.resume", project_row)  # it records progress, publishes
        _refuse_finished(run)
        project = project_row.name
        job = session.get(ScaleJob, run.id)
        assert job is not None
        spec = JobSpec.model_validate_json(instance.store.get(job.spec_digest))
        if run.status in ("queued", "failed"):
            transition(session, ctx, run, project, "running", reason="resumed" if run.status == "failed" else None)
        for shard in session.scalars(select(ScaleShard).where(ScaleShard.run_id == run.id,
                                                              ScaleShard.status == "failed")):
            shard.status, shard.attempts, shard.error = "pending", 0, None  # a resume retries failed shards
        run_id = run.id
    ranges = shard_ranges(len(spec.items), spec.shards)
    log = logging.getLogger(f"nextstat_pro.job.{run_id}")
    lines: list[str] = []
    backend = backend or get_backend(job.backend)
    workdir = instance.home / "jobs" / run_id
    uri = spec_uri(instance.store.url, spec.digest, observability.carrier())
    launched: set[int] = set()
    verified: dict[str, ShardResult] = {}  # read and checked once, reused by the merge

    def note(message: str) -> None:
        lines.append(f"{utcnow().isoformat()} {message}")
        log.info(message)

    interval = getattr(backend, "poll_interval", POLL_S)  # a backend written before the attribute: POLL_S
    try:
        while True:
            # A look, not a change: no transaction (on SQLite, no write lock taken several
            # times a second while other commands write). What counts is decided below, under
            # the shard's row lock.
            with instance.db.read() as session:
                if get_run(session, run_id).status == "cancelled":
                    note("cancelled: stopping the backend")
                    backend.cancel()
                    return "cancelled"
                shards = {s.shard: s for s in session.scalars(select(ScaleShard).where(ScaleShard.run_id == run_id))}
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
                        s = session.get(ScaleShard, (run_id, i), with_for_update=True)
                        assert s is not None
                        if s.status == "done":
                            continue  # another coordinator counted it
                        s.status, s.result_digest, s.updated_at = "done", digest, utcnow()
                        append_event(session, ctx, action="job.shard_done", target=("run", run_id), project=project,
                                     after={"shard": i, "result_digest": digest, "points": len(ranges[i])})
                        shards[i].status = "done"
                        note(f"shard {i} done: {digest}")
            pending = sorted(i for i, s in shards.items() if s.status == "pending")
            failures = {i: why for i, why in backend.failures().items() if i in pending and not refs.get(i)}
            if failures:
                with instance.db.transaction() as session:
                    for i, why in failures.items():
                        s = session.get(ScaleShard, (run_id, i))
                        assert s is not None
                        s.attempts += 1
                        s.error = why
                        s.status = "pending" if s.attempts <= spec.max_retries else "failed"
                        append_event(session, ctx, action="job.shard_failed", target=("run", run_id),
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
                    handle = backend.launch(Launch(run_id, uri, to_launch, workdir, job.workers, job.options))
                except NSPError as exc:
                    # The backend cannot run anything (missing sbatch, unreachable scheduler):
                    # these shards fail now, with why, and the run ends failed.
                    note(f"backend {job.backend} could not launch shards {to_launch}: {exc.message}")
                    with instance.db.transaction() as session:
                        for i in to_launch:
                            s = session.get(ScaleShard, (run_id, i))
                            assert s is not None
                            s.status, s.error, s.attempts = "failed", exc.message, s.attempts + 1
                            shards[i].status, shards[i].error = "failed", exc.message
                        append_event(session, ctx, action="job.launch_failed", target=("run", run_id),
                                     project=project, after={"shards": to_launch, "error": exc.message})
                    continue
                launched.update(to_launch)
                note(f"launched shards {to_launch} on {job.backend} ({handle})")
                with instance.db.transaction() as session:
                    row_job = session.get(ScaleJob, run_id)
                    assert row_job is not None
                    row_job.handles = [*row_job.handles, handle]
            if on_progress:
                on_progress(Progress.of(ranges, (i for i, s in shards.items() if s.status == "done"),
                                        len(shards)))
            if not pending:
                break
            instance.witnessing.due()  # the shards' events witnessed while the job runs
            backend.wait(interval)
    finally:
        backend.close()
    failed = {i: s.error for i, s in shards.items() if s.status == "failed"}
    return _finish(instance, ctx, run_id, spec, project, failed, lines, job, verified)


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
    ok: bool | None = None
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
            ok = not merged.failed_points
    status = "failed" if error else "succeeded"
    finish_run(instance, ctx, base, outputs, ("\n".join(lines) + "\n").encode(), status, error, ok, extra)
    return status


class CoordinatorThread(threading.Thread):
    """``coordinate`` in a thread of this process (an HTTP server's worker thread). When it
    ends, ``status`` holds the final status, or ``error`` what stopped it."""

    def __init__(self, instance: Instance, ctx: RequestContext, run_id: str,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        super().__init__(name=f"nsp-coordinator-{run_id}", daemon=False)
        self.instance, self.ctx, self.run_id, self.on_progress = instance, ctx, run_id, on_progress
        self.status: str | None = None
        self.error: BaseException | None = None
        self.trace = observability.current_context()  # the request's trace, continued in the thread

    def run(self) -> None:
        try:
            with observability.in_context(self.trace):
                self.status = coordinate(self.instance, self.ctx, self.run_id, self.on_progress)
        except BaseException as exc:  # kept for the caller, who joins the thread
            self.error = exc


def start_thread(instance: Instance, ctx: RequestContext, run_id: str,
                 on_progress: Callable[[Progress], None] | None = None) -> CoordinatorThread:
    """Coordinate in a new thread of this process and return it, started. The caller is
    authorized first, here, so a refusal reaches it rather than the thread. The thread uses
    its own database connection; the local backend then spawns its workers (fork copies no
    thread, see backends/local.py)."""
    with instance.db.transaction() as session:
        run, project = _resumable(session, run_id)
        authorize(session, ctx, "run.resume", project)
        _refuse_finished(run)
        run_id = run.id
    thread = CoordinatorThread(instance, ctx, run_id, on_progress)
    thread.start()
    return thread


@dataclass(frozen=True)
class Started:
    """A coordinator process: its pid, its log, and, when not detached, the handle of the
    caller that manages it (``wait``, ``terminate``); a detached one belongs to nobody."""

    run_id: str
    pid: int
    log: Path
    process: subprocess.Popen[bytes] | None = None


def _ticket(instance: Instance, ctx: RequestContext, run_id: str, log: Path, detach: bool) -> bytes:
    """What a coordinator process is told, on its stdin: the instance's home, the run, and who
    asks, by id (the user, the credential behind the request): never a secret. The process
    rebuilds the context from the database (``runner.context_from``), so a ticket cannot
    widen what the request may do, and a credential revoked meanwhile stops it."""
    who = {"user_id": ctx.actor.id, "interface": ctx.interface, "client": ctx.client, "extra": ctx.extra,
           "token_id": ctx.token_id}
    return json.dumps({"home": str(instance.home.resolve()), "run_id": run_id, "log": str(log), "detach": detach,
                       "context": who, "trace": observability.carrier()}).encode()


def start_process(instance: Instance, ctx: RequestContext, run_id: str, *, detach: bool = True) -> Started:
    """Coordinate in a new process: a fresh interpreter running ``nextstat_pro.scale.runner``
    (not the CLI), which receives the context on its stdin and writes to
    ``<home>/jobs/<run>/coordinator.log``. The caller is authorized here first.

    ``detach=True`` (``submit`` without ``--wait``): the process puts the coordinator in a
    session of its own and exits once it has, so the coordinator outlives the caller and is
    nobody's child to reap. ``detach=False`` (a server that manages its coordinators): the
    returned ``process`` is the coordinator itself, the caller waits for it."""
    with instance.db.transaction() as session:
        run, project = _resumable(session, run_id)
        authorize(session, ctx, "run.resume", project)
        _refuse_finished(run)
        run_id = run.id
    workdir = instance.home.resolve() / "jobs" / run_id
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "coordinator.log"
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    data = _ticket(instance, ctx, run_id, log, detach)
    if detach:
        # The intermediate process forks the coordinator, prints its pid and exits.
        proc = subprocess.Popen([sys.executable, "-m", RUNNER_MODULE], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
        out, err = proc.communicate(data, timeout=60)
        if proc.returncode != 0 or not out.strip().isdigit():
            raise ConfigError(f"the coordinator of run {run_id} did not start: "
                              f"{err.decode(errors='replace').strip() or out.decode(errors='replace').strip()}")
        return Started(run_id, int(out), log)
    with log.open("ab") as out_file:
        proc = subprocess.Popen([sys.executable, "-m", RUNNER_MODULE], stdin=subprocess.PIPE, stdout=out_file,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.close()
    return Started(run_id, proc.pid, log, proc)
