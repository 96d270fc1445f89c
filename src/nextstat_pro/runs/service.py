"""Recording runs: validate, store inputs, execute in-process, store outputs, finish.

A run spans three steps, because an engine task can take minutes and must not hold a
database transaction open:

1. one transaction creates the run (queued → running) with its events;
2. the task executes; every output is written to the store first (write-once objects);
3. one transaction records the outputs, the manifest digest and the final status with
   their events. Objects of step 2 with no record in step 3 are unreferenced bytes,
   never a half-written run.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import observability
from ..access.context import RequestContext
from ..access.rbac import authorize
from ..canonical import canonical_json, digest_of
from ..db.types import rfc3339, utcnow
from ..engine import InputFile, PreparedTask, engine_info, execute, platform_info, prepare
from ..engine.params import check_seed
from ..errors import NSPError, Terminated
from ..observability import metrics
from ..projects.service import check_allowed, get_project
from ..signing.attestation import run_statement
from ..signing.dsse import sign_statement
from .lease import lease_until, run_leased
from .manifest import FileEntry, RunRecord, build_manifest
from .records import add_versions, create_run, finish
from .references import RunInputs, VersionUse, _gather_run
from .views import RunOutcome

if TYPE_CHECKING:
    from ..instance import Instance

RESULT_NAME = "result.json"
LOG_NAME = "run.log"
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class RunRequest:
    """A run to record. ``inputs``: files already read (in-process callers); ``given``: inputs as a
    caller names them (paths, registry references, a patch), read and resolved by ``run_task``."""

    task: str
    project: str
    params: dict[str, Any]
    seed: int | None
    inputs: list[InputFile] = field(default_factory=list)
    patch: str | None = None
    versions: list[VersionUse] = field(default_factory=list)
    given: RunInputs | None = None


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        ts = rfc3339(datetime.fromtimestamp(record.created).astimezone())
        self.lines.append(f"{ts} {record.levelname:<7} {record.getMessage()}")

    def text(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


def run_task(instance: Instance, ctx: RequestContext, request: RunRequest) -> RunOutcome:
    """Validate, record and execute one task in-process. Bad input raises before anything
    is written; an engine failure is recorded as a failed run (and returned, not raised).
    Inputs ``given`` by path or reference are read and resolved first (a registry read,
    authorized on its own)."""
    if request.given is not None:
        check_allowed(instance, ctx, request.project, "run.create")  # before reading what it names
        gathered = _gather_run(instance, ctx, request.project, request.given)
        request = replace(request, inputs=[*request.inputs, *gathered.files],
                          versions=[*request.versions, *gathered.versions], patch=gathered.patch or request.patch,
                          given=None)
    attributes = {"nextstat.task": request.task, "nextstat.project": request.project}
    with observability.span("nextstat.run", attributes) as span:
        outcome = _run_task(instance, ctx, request, span)
        span.set_attribute("nextstat.status", outcome.status)
        return outcome


def _run_task(instance: Instance, ctx: RequestContext, request: RunRequest, span: observability.SpanLike) -> RunOutcome:
    prepared = prepare(request.task, request.params, request.inputs, request.patch)
    check_seed(request.seed, getattr(prepared.params, "n_toys", 1))
    params = prepared.params.model_dump()
    with instance.db.transaction() as session:
        project = get_project(session, request.project)
        authorize(session, ctx, "run.create", project)
        # Inputs are stored only once the project is known: bad input writes nothing.
        inputs = [
            FileEntry(i.name, instance.store.put(i.data, i.digest).digest, len(i.data), role=i.role)
            for i in request.inputs
        ]
        run = create_run(session, ctx, project, request.task, params, request.seed, inputs, request.patch, start=True,
                         lease_until=lease_until(instance))
        add_versions(session, run.run_id, [u.link for u in request.versions])
        run_id, created_at, started_at = run.run_id, run.created_at, run.started_at
    assert started_at is not None
    span.set_attribute("nextstat.run_id", run_id)
    return _execute_and_finish(
        instance, ctx, prepared, request, run_id, params, inputs, created_at, started_at
    )


def _execute_and_finish(
    instance: Instance,
    ctx: RequestContext,
    prepared: PreparedTask,
    request: RunRequest,
    run_id: str,
    params: dict[str, Any],
    inputs: list[FileEntry],
    created_at: datetime,
    started_at: datetime,
) -> RunOutcome:
    # A logger of its own, not registered with logging's manager: getLogger would keep one
    # logger per run for the life of the process, and setLevel clears every logger's cache.
    log = logging.Logger(f"nextstat_pro.run.{run_id}", logging.DEBUG)
    capture = _LogCapture()
    log.addHandler(capture)
    try:
        log.info("run %s: task %s in project %s by %s", run_id, request.task, request.project, ctx.actor.name)
        for entry in inputs:
            log.info("input %s %s %s (%d bytes)", entry.role, entry.name, entry.digest, entry.size)
        log.info("params %s seed %s patch %s", params, request.seed, request.patch)
        result: dict[str, Any] | None = None
        error: str | None = None
        executing = time.perf_counter()
        try:
            try:
                result = run_leased(instance, run_id, lambda: execute(prepared, request.seed))
            finally:
                metrics.fit_done(request.task, result is not None, time.perf_counter() - executing)
        except (KeyboardInterrupt, Terminated) as exc:
            # Interrupted (SIGINT, or SIGTERM as the adapter raises it): the run ends as
            # cancelled now, its log and manifest recorded, and the interruption goes on up.
            signal_name = "SIGINT" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
            log.error("run cancelled: %s received while the task executed", signal_name)
            log.removeHandler(capture)
            finish_run(instance, ctx, _record(run_id, request, params, inputs, created_at, started_at), [],
                       capture.text(), "cancelled", f"cancelled: {signal_name} received", None,
                       reason=f"{signal_name} received while the task executed")
            raise
        except NSPError as exc:
            error = exc.message
            log.error("task failed: %s", error)
        except Exception as exc:  # the engine may raise anything; the run must still end
            error = f"{type(exc).__name__}: {exc}"
            log.error("task crashed: %s\n%s", error, traceback.format_exc())
        quality_ok: bool | None = None
        if result is not None:
            quality = result.get("quality", {})
            quality_ok = bool(quality.get("ok"))
            log.info("task finished in %.3f s; fit quality %s", result["wall_time_s"],
                     "ok" if quality_ok else "NOT ok: " + "; ".join(quality.get("reasons", [])))
    finally:
        log.removeHandler(capture)

    outputs: list[FileEntry] = []
    unstored: list[bytes] = []
    if result is not None:
        data = canonical_json(result)
        outputs.append(FileEntry(RESULT_NAME, digest_of(data), len(data), media_type="application/json"))
        unstored.append(data)
    status = "succeeded" if error is None else "failed"
    manifest_digest = finish_run(instance, ctx, _record(run_id, request, params, inputs, created_at, started_at),
                                 outputs, capture.text(), status, error, quality_ok, unstored=unstored)
    return RunOutcome(run_id=run_id, status=status, manifest_digest=manifest_digest, error=error, result=result)


def _record(run_id: str, request: RunRequest, params: dict[str, Any], inputs: list[FileEntry], created_at: datetime,
            started_at: datetime) -> RunRecord:
    return RunRecord(run_id, request.project, request.task, params, request.seed, request.patch, inputs,
                     [v.as_json() for v in request.versions], created_at, started_at)


def finish_run(instance: Instance, ctx: RequestContext, run: RunRecord, outputs: list[FileEntry], log: bytes,
               status: str, error: str | None, quality_ok: bool | None,
               extra_versions: list[VersionUse] | None = None, unstored: list[bytes] | None = None,
               reason: str | None = None) -> str:
    """Store the log, the manifest and its signed attestation, then record outputs and the
    final status with their events in one transaction. Returns the manifest digest (the
    run's content hash). Shared by in-process runs and collected jobs. ``unstored``: bytes
    of ``outputs`` not in the store yet, written in the same batch as the log, manifest
    and envelope."""
    outputs = [*outputs, FileEntry(LOG_NAME, digest_of(log), len(log), media_type="text/plain")]
    finished_at = utcnow()
    record = replace(run, versions=[*run.versions, *(v.as_json() for v in extra_versions or [])])
    manifest = build_manifest(record, outputs, status, error, quality_ok, engine_info(), platform_info(),
                              ctx.actor.as_json(), finished_at)
    manifest_bytes = canonical_json(manifest)
    manifest_digest = digest_of(manifest_bytes)
    envelope_bytes = canonical_json(sign_statement(run_statement(manifest, manifest_digest), instance.run_keys()))
    envelope_digest = digest_of(envelope_bytes)
    # Every object is durable before the transaction that references it commits.
    instance.store.put_many([*(unstored or []), log, manifest_bytes, envelope_bytes])
    with instance.db.transaction() as session:
        finish(session, ctx, run.run_id, run.project, status, at=finished_at, error=error, outputs=outputs,
               digests={"manifest_digest": manifest_digest, "envelope_digest": envelope_digest}, fit_ok=quality_ok,
               reason=reason)
        add_versions(session, run.run_id, [u.link for u in extra_versions or []])
    metrics.run_finished(status)
    return manifest_digest

