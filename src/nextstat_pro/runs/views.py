"""What the runs operations return: the documents of ``run``, ``runs list|show|artifacts|export|recover``.

Each model is the ``--json`` output of its command and the body an HTTP server will send; the JSON
Schemas in ``docs/schemas/views/`` are generated from them (``nextstat_pro.view_schemas``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from ..viewbase import VIEW_CONFIG

_VIEW = VIEW_CONFIG


class RunRow(BaseModel):
    """A run as ``runs list`` shows it: its lifecycle, task, parameters and registry inputs."""

    model_config = _VIEW

    run_id: str
    project: str
    task: str
    status: str
    fit_ok: bool | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seed: int | None
    patch: str | None
    params: dict[str, Any]
    error: str | None
    manifest_digest: str | None
    versions: list[str] = Field(
        description="Registry versions the run used, as ``name@semver`` (``name@sha256:…`` without a label).")


class RunPage(BaseModel):
    """One page of a project's runs, newest first (``GET /api/v1/projects/{project}/runs``):
    ``next_cursor`` fetches the next page with the same filters (keyset pagination, so a deep page
    costs what the first does); null on the last page."""

    model_config = _VIEW

    items: list[RunRow]
    next_cursor: str | None


class RunInputRow(BaseModel):
    """One recorded input of a run."""

    model_config = _VIEW

    role: str
    name: str
    digest: str
    size: int


class RunArtifactRow(BaseModel):
    """One stored output of a run, as its detail lists it."""

    model_config = _VIEW

    name: str
    digest: str
    size: int


class RunDetail(RunRow):
    """One run as ``runs show`` shows it: the row, its inputs and outputs, and its manifest."""

    inputs: list[RunInputRow]
    artifacts: list[RunArtifactRow]
    manifest: dict[str, Any] | None = Field(
        description="The run's manifest (the RFC 8785 document hashed to ``manifest_digest``), once it finished.")


class ArtifactRow(BaseModel):
    """One object of a run as ``runs artifacts`` lists it (the manifest last, its size not recorded)."""

    model_config = _VIEW

    name: str
    digest: str
    size: int | None
    media_type: str


class RunOutcome(BaseModel):
    """What a run ended with (``run TASK``): a failed task is an outcome, not an error."""

    model_config = _VIEW

    run_id: str
    status: str
    manifest_digest: str = Field(description="The run's content hash: the sha256 of its manifest.")
    error: str | None
    result: dict[str, Any] | None = Field(
        description="The task's result document (``result.json``), when the task succeeded.")


class RunExport(BaseModel):
    """A run exported into a folder (``runs export``), checkable offline with ``nextstat-pro verify``."""

    model_config = _VIEW

    run_id: str
    path: str = Field(description="The folder, as an absolute path.")
    manifest_digest: str
    files: int = Field(description="How many files the folder holds (``SHA256SUMS`` included).")


class RecoveredRuns(RootModel[list[str]]):
    """The ids of the runs ``runs recover`` marked failed (reason ``abandoned``)."""

    model_config = ConfigDict(frozen=True)


class RetentionItem(BaseModel):
    """One run as the retention policy sees it (``audit retention status``)."""

    model_config = _VIEW
    run_id: str
    project: str
    finished_at: datetime | None
    state: Literal["retained", "held", "eligible", "purged"]
    rule: str = Field(description="Why: the policy's rule that decided the state.")


VIEWS: tuple[type[BaseModel], ...] = (RunRow, RunPage, RunDetail, ArtifactRow, RunOutcome, RunExport, RecoveredRuns,
                                      RetentionItem)
