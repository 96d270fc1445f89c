"""Jobs (``submit``): many fits as one run, on uploaded inputs or registry references, and a
collected job's summary. Shard progress is ``GET /runs/{run_id}/shards``; cancel and resume are
the runs' routes.

As ``submit`` without ``--wait`` does, the route records the job (``scale.service.submit``) and
hands it to a coordinator process of the service's (``coordinator.start_process``), which
outlives the request; ``start=false`` only records it (start it later with ``POST
/runs/{run_id}/resume``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel

from ...errors import FieldError
from ...scale import coordinator
from ...scale import service as jobs
from ...scale.views import JobStatus, JobSummary
from ..auth import Caller, Inst
from ..uploads import save_checked, spool_folder
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["jobs"])

# Backend options a remote caller may not set: ``executable`` names the program cluster nodes run
# as the service's account. From the CLI its user runs their own program; over HTTP a project
# editor would run any program as the server's account.
SERVER_ONLY_OPTIONS = frozenset({"executable"})


class JobSubmitted(BaseModel):
    """A job as recorded, and the coordinator process that drives it (null with ``start=false``)."""

    job: JobStatus
    coordinator_pid: int | None


def _json_object(raw: str | None, field: str, what: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FieldError(f"{field} is not JSON: {exc.msg}", field) from None
    if not isinstance(value, dict):
        raise FieldError(f"{field} must be a JSON object of {what}", field)
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


@router.post("/projects/{project}/jobs", response_model=JobSubmitted, status_code=202,
             summary="Submit many fits as one run (grid, scan, toys, fit-many); coordinated in the background")
def submit(
    request: Request, inst: Inst, ctx: Caller, project: str,
    task: Annotated[Literal["grid", "scan", "toys", "fit-many"], Form()],
    model: Annotated[list[str] | None, Form(description="Registry REF (grid: a patchset REF; fit-many: repeat).")]
    = None,
    workspace: Annotated[UploadFile | None, File(description="A pyhf JSON workspace.")] = None,
    patchset: Annotated[UploadFile | None, File(description="A pyhf patchset (grid).")] = None,
    patches: Annotated[list[str] | None, Form(description="grid: only these patches (repeat the field).")] = None,
    point_task: Annotated[str, Form(max_length=40, description="grid: upper-limit, hypotest or fit per patch.")]
    = "upper-limit",
    params: Annotated[str, Form(max_length=10_000, description="Task parameters as a JSON object.")] = "{}",
    shards: Annotated[int, Form(ge=1, le=100_000)] = 4,
    backend: Annotated[str, Form(max_length=40)] = "local",
    backend_options: Annotated[str | None, Form(max_length=10_000, description="JSON object (partition, ...).")]
    = None,
    workers: Annotated[int, Form(ge=1, le=10_000)] = 2,
    seed: Annotated[int | None, Form()] = None,
    retries: Annotated[int, Form(ge=0, le=100, description="Retries per shard.")] = 2,
    result_name: Annotated[str | None, Form(max_length=200, description="Registry dataset for the points.")]
    = None,
    digests: Annotated[str | None, Form(max_length=1000, description="JSON {field: 'sha256:<hex>'} of uploads.")]
    = None,
    start: Annotated[bool, Form(description="Start its coordinator now (false: only record the job).")] = True,
) -> JobSubmitted:
    expected = _json_object(digests, "digests", "{field: 'sha256:<hex>'}")
    options = _json_object(backend_options, "backend_options", "backend options")
    refused = sorted(SERVER_ONLY_OPTIONS & options.keys())
    if refused:
        raise FieldError(f"backend option(s) {', '.join(refused)} can only be given on the server's own "
                         "command line", "backend_options")
    with spool_folder() as folder:
        paths = {name: save_checked(inst, ctx, request, up, folder, name, expected.get(name), ("project", project))
                 for name, up in (("workspace", workspace), ("patchset", patchset)) if up is not None}
        req = jobs.SubmitRequest(
            task=task, project=project, params=_json_object(params, "params", "task parameters"), seed=seed,
            shards=shards, backend=backend, backend_options=options, workers=workers, point_task=point_task,
            patches=patches or None, max_retries=retries, result_name=result_name,
            given=jobs.JobInputs(workspace=paths.get("workspace"), patchset=paths.get("patchset"), models=model or []))
        run_id = jobs.submit(inst, ctx, req)  # reads the spooled files: inside the folder's lifetime
    pid = coordinator.start_process(inst, ctx, run_id).pid if start else None
    return JobSubmitted(job=jobs.status_of(inst, ctx, run_id), coordinator_pid=pid)


@router.get("/runs/{run_id}/summary", response_model=JobSummary | None,
            summary="A collected job's headline numbers, one row per point (null until it is collected)")
def summary(inst: Inst, ctx: Caller, run_id: str) -> JobSummary | None:
    return jobs.summary(inst, ctx, run_id)
