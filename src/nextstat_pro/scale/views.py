"""What the job operations return: the documents of ``submit``, ``runs shards`` and a collected job's
summary, and the progress a coordinator reports.

Each model is the ``--json`` output of its command and the body an HTTP server will send; the JSON
Schemas in ``docs/schemas/views/`` are generated from them (``nextstat_pro.view_schemas``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

from ..viewbase import VIEW_CONFIG

_VIEW = VIEW_CONFIG


class JobProgress(BaseModel):
    """How far a job is: shards and points (fits) done of all."""

    model_config = _VIEW

    shards_done: int
    shards_total: int
    points_done: int
    points_total: int

    @classmethod
    def of(cls, ranges: Sequence[range], done: Iterable[int], shards_total: int) -> JobProgress:
        """From the job's shard plan (``partition.shard_ranges``) and the shards done: the one
        computation the coordinator's progress and ``runs shards`` share."""
        finished = list(done)
        return cls(shards_done=len(finished), shards_total=shards_total,
                   points_done=sum(len(ranges[i]) for i in finished), points_total=sum(len(r) for r in ranges))


class ShardRow(BaseModel):
    """One shard of a job: its state, the attempts made, the last failure."""

    model_config = _VIEW

    shard: int
    status: str = Field(description="pending, done or failed.")
    attempts: int
    error: str | None


class JobStatus(BaseModel):
    """A job's run and its shards (``runs shards``, and ``submit --json`` as submitted)."""

    model_config = _VIEW

    run_id: str
    status: str
    task: str = Field(description="grid, scan, toys or fit-many.")
    backend: str
    spec_digest: str = Field(description="The digest of the job spec in the store (what workers read).")
    progress: JobProgress
    shards: list[ShardRow]


class PointRow(BaseModel):
    """The headline numbers of one point of a collected job (what the task computed there)."""

    model_config = _VIEW

    index: int
    item: str | int | float = Field(description="The point: a patch name, a POI value, a toy index, a model.")
    ok: bool
    observed: float | None = None
    median: float | None = Field(None, description="The expected upper limit's median.")
    cls: float | None = None
    poi: float | None = None
    q_mu: float | None = None
    nll: float | None = None
    converged: bool | None = None


class JobSummary(BaseModel):
    """A collected job: one row per point and the digest of the merged result."""

    model_config = _VIEW

    run_id: str
    task: str
    result_digest: str
    points: list[PointRow]
    failed: int = Field(description="How many points failed.")


VIEWS: tuple[type[BaseModel], ...] = (JobStatus, JobSummary, JobProgress)
