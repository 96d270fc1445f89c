"""Runs: list (filters, keyset pages), create from uploads or registry references, show,
result, artifacts (streamed, with HTTP Range), export as a zip ``verify`` accepts, cancel,
resume, sign, and the run's audit history."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from ...errors import FieldError, UsageError
from ...runs import RunInputs, RunRequest, export_folder, run_artifacts, run_result, run_task, show_run
from ...runs.esignatures import sign_run
from ...runs.listing import SORTS, RunFilter
from ...runs.reads import artifact_row, list_runs_page
from ...runs.views import ArtifactRow, RunDetail, RunOutcome, RunPage
from ...scale import coordinator
from ...scale import service as jobs
from ...scale.views import JobStatus
from ...signing.approval import APPROVAL_STATES
from ..answers import answer, answer_bounded
from ..auth import Caller, Inst
from ..uploads import save_checked, spool_folder
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["runs"])


@router.get("/projects/{project}/runs", response_model=RunPage,
            summary="A page of a project's runs, filtered, newest (or oldest) first")
async def list_runs(
    inst: Inst, ctx: Caller, response: Response, project: str,
    status: Annotated[str | None, Query(max_length=16)] = None,
    task: Annotated[str | None, Query(max_length=40)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    author: Annotated[str | None, Query(max_length=200, description="Username of the run's author.")] = None,
    fit_ok: bool | None = None,
    version: Annotated[str | None, Query(max_length=200, description=(
        "A registry version the run used: NAME (any version), NAME@SEMVER, NAME@sha256:PREFIX or "
        "sha256:PREFIX (at least 12 hex digits)."))] = None,
    approval: Annotated[str | None, Query(max_length=16, json_schema_extra={"enum": list(APPROVAL_STATES)},
                                          description="The run's approval state under the project's approval "
                                                      "policy.")] = None,
    q: Annotated[str | None, Query(max_length=200, description=(
        "Free text, case-insensitive: a run id prefix, or part of the task, the error message, the author's "
        "username or a registry item's name."))] = None,
    min_duration_s: Annotated[float | None, Query(json_schema_extra={"minimum": 0}, description=(
        "Only runs that took at least this many seconds (finished_at - started_at, to the microsecond); a run "
        "not finished has no duration and matches no bound."))] = None,
    max_duration_s: Annotated[float | None, Query(json_schema_extra={"minimum": 0}, description=(
        "Only runs that took at most this many seconds; not below min_duration_s."))] = None,
    sort: Annotated[str, Query(max_length=16, json_schema_extra={"enum": list(SORTS)}, description=(
        "created: newest first; oldest: oldest first. A cursor continues only the order it came from."))] = "created",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    f = RunFilter(status=status, task=task, since=since, until=until, created_by=author, fit_ok=fit_ok,
                  version=version or None, approval=approval, text=q or None, min_duration_s=min_duration_s,
                  max_duration_s=max_duration_s, sort=sort)
    if f.bounded:
        return answer_bounded(response, list_runs_page, inst, ctx, project, f, limit, cursor)
    return await answer(response, list_runs_page, inst, ctx, project, f, limit, cursor)


def _params(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FieldError(f"params is not JSON: {exc.msg}", "params") from None
    if not isinstance(value, dict):
        raise FieldError("params must be a JSON object of task parameters", "params")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def _digests(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise FieldError("digests must be a JSON object {field: 'sha256:<hex>'}", "digests") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise FieldError("digests must be a JSON object {field: 'sha256:<hex>'}", "digests")
    return value


@router.post("/projects/{project}/runs", response_model=RunOutcome, status_code=201,
             summary="Run a task on uploaded files or registry references, and record it")
def create_run(
    request: Request, inst: Inst, ctx: Caller, project: str,
    task: Annotated[str, Form(max_length=40)],
    params: Annotated[str, Form(description="Task parameters as a JSON object.")] = "{}",
    seed: Annotated[int | None, Form()] = None,
    model: Annotated[str | None, Form(max_length=500, description="Registry model REF or REF#PATCH.")] = None,
    patch: Annotated[str | None, Form(max_length=300)] = None,
    dataset_ref: Annotated[str | None, Form(max_length=500, description="Registry dataset REF.")] = None,
    digests: Annotated[str | None, Form(description="JSON {field: 'sha256:<hex>'} of the uploads.")] = None,
    workspace: Annotated[UploadFile | None, File(description="A pyhf JSON workspace.")] = None,
    patchset: Annotated[UploadFile | None, File(description="A pyhf patchset.")] = None,
    dataset: Annotated[UploadFile | None, File(description="A CSV dataset.")] = None,
) -> RunOutcome:
    expected = _digests(digests)
    if dataset is not None and dataset_ref is not None:
        raise FieldError("send a dataset file or a dataset_ref, not both", "dataset", "dataset_ref")
    with spool_folder() as folder:
        paths = {name: save_checked(inst, ctx, request, up, folder, name, expected.get(name), ("project", project))
                 for name, up in (("workspace", workspace), ("patchset", patchset), ("dataset", dataset))
                 if up is not None}
        ds = str(paths["dataset"]) if "dataset" in paths else dataset_ref
        given = RunInputs(workspace=paths.get("workspace"), model=model, patchset=paths.get("patchset"), patch=patch,
                          dataset=ds)
        return run_task(inst, ctx, RunRequest(task=task, project=project, params=_params(params), seed=seed,
                                              given=given))


@router.get("/runs/{run_id}", response_model=RunDetail, summary="One run: inputs, outputs, versions, manifest")
async def get_run(inst: Inst, ctx: Caller, response: Response, run_id: str) -> Response:
    # In a thread: the manifest comes from the store (S3 at scale), and a run id prefix is a scan.
    return await answer(response, show_run, inst, ctx, run_id)


@router.get("/runs/{run_id}/result", response_model=dict[str, Any] | None,
            summary="A succeeded run's result document (null otherwise)")
def get_result(inst: Inst, ctx: Caller, run_id: str) -> dict[str, Any] | None:
    return run_result(inst, ctx, run_id)


@router.get("/runs/{run_id}/artifacts", response_model=list[ArtifactRow], summary="A run's stored objects")
def list_artifacts(inst: Inst, ctx: Caller, run_id: str) -> list[ArtifactRow]:
    return run_artifacts(inst, ctx, run_id)


# An artifact is data, not a page of ours: a browser that opens one (an SVG, an HTML log) runs
# none of its scripts and loads nothing else.
ARTIFACT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


class RangeNotSatisfiableError(UsageError):
    http_status = 416


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range of a ``Range: bytes=`` header as [start, end); None for the whole object
    (no header, or several ranges, which RFC 9110 lets a server answer with the whole)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                raise ValueError
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        raise RangeNotSatisfiableError(f"malformed Range header {header!r}") from None
    if start >= size or end <= start:
        raise RangeNotSatisfiableError(f"range {header!r} is outside the object's {size} bytes")
    return start, min(end, size)


@router.get("/runs/{run_id}/artifacts/{name}", summary="Download one artifact (streamed; HTTP Range supported)",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "Partial content"},
                       304: {"description": "Not modified"}, 416: {"description": "Range not satisfiable"}})
def download_artifact(request: Request, inst: Inst, ctx: Caller, run_id: str, name: str) -> Response:
    row = artifact_row(inst, ctx, run_id, name)
    size = row.size if row.size is not None else inst.store.size(row.digest)
    etag = f'"{row.digest}"'  # content-addressed: the digest is a strong validator
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Security-Policy": ARTIFACT_CSP,
               "Content-Disposition": f"attachment; filename=\"{_ascii(row.name)}\"",
               "Cache-Control": "private, max-age=31536000, immutable"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    span = _byte_range(request.headers.get("range"), size)
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(inst.store.read_range(row.digest), media_type=row.media_type, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(inst.store.read_range(row.digest, start, end), status_code=206,
                             media_type=row.media_type, headers=headers)


def _ascii(name: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)


@router.get("/runs/{run_id}/export", summary="The run as a zip of its export folder (`nextstat-pro verify` checks it)",
            response_class=FileResponse, responses={200: {"content": {"application/zip": {}}}})
def export(inst: Inst, ctx: Caller, run_id: str) -> FileResponse:
    work = Path(tempfile.mkdtemp(prefix="nsp-export-"))
    try:
        done = export_folder(inst, ctx, run_id, work / "run")
        archive = work / f"run-{done.run_id}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            root = Path(done.path)
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                zf.write(path, f"run-{done.run_id}/{path.relative_to(root).as_posix()}")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(archive, media_type="application/zip", filename=archive.name,
                        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True))


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/runs/{run_id}/cancel", status_code=204, summary="Cancel a job")
def cancel(inst: Inst, ctx: Caller, run_id: str, body: Reason) -> Response:
    jobs.cancel(inst, ctx, run_id, body.reason)
    return Response(status_code=204)


class Resumed(BaseModel):
    run_id: str
    pid: int


@router.post("/runs/{run_id}/resume", response_model=Resumed, status_code=202,
             summary="Resume an interrupted job (its coordinator starts in the background)")
def resume(inst: Inst, ctx: Caller, run_id: str) -> Resumed:
    started = coordinator.start_process(inst, ctx, run_id)
    return Resumed(run_id=started.run_id, pid=started.pid)


@router.get("/runs/{run_id}/shards", response_model=JobStatus, summary="A job's shard progress")
def shards(inst: Inst, ctx: Caller, run_id: str) -> JobStatus:
    return jobs.status_of(inst, ctx, run_id)


class SignatureRequest(BaseModel):
    """An electronic signature (21 CFR 11.200): the signer re-authenticates in the request."""

    model_config = ConfigDict(extra="forbid")
    meaning: str = Field(max_length=40)
    reason: str = Field(min_length=1, max_length=2000)
    password: str = Field(min_length=1, max_length=1024, description="The signer's password, checked again.")
    username: str | None = Field(default=None, max_length=200,
                                 description="Needed when the last signature is older than auth.signing_idle_minutes.")
    decision: Literal["approve", "reject"] = "approve"


class Signed(BaseModel):
    signature_id: str
    approval_state: str
    payload: dict[str, Any]


@router.post("/runs/{run_id}/signatures", response_model=Signed, status_code=201, summary="Sign a run")
def sign(inst: Inst, ctx: Caller, run_id: str, body: SignatureRequest) -> Signed:
    done = sign_run(inst, ctx, run_id, body.meaning, body.reason, body.password, body.username, body.decision)
    return Signed(signature_id=done.signature_id, approval_state=done.approval_state, payload=done.payload)
