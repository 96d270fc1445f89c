"""The run manifest: canonical JSON (RFC 8785) whose sha256 is the run's content hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..db.types import rfc3339

MANIFEST_SCHEMA = "https://nextstat.pro/schemas/run-manifest/v1"


@dataclass(frozen=True)
class FileEntry:
    name: str
    digest: str
    size: int
    role: str | None = None  # inputs: workspace / patchset / dataset
    media_type: str | None = None  # outputs

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "digest": self.digest, "size": self.size}
        if self.role is not None:
            out["role"] = self.role
        if self.media_type is not None:
            out["media_type"] = self.media_type
        return out


@dataclass(frozen=True)
class RunRecord:
    """What a run's manifest records about its request (the rest comes at the end)."""

    run_id: str
    project: str
    task: str
    params: dict[str, Any]
    seed: int | None
    patch: str | None
    inputs: list[FileEntry]
    versions: list[dict[str, Any]]
    created_at: datetime
    started_at: datetime


def build_manifest(
    run: RunRecord,
    outputs: list[FileEntry],
    status: str,
    error: str | None,
    fit_quality_ok: bool | None,
    engine: dict[str, str],
    platform: dict[str, str],
    created_by: dict[str, str],
    finished_at: datetime,
) -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "run_id": run.run_id,
        "project": run.project,
        "task": run.task,
        "params": run.params,
        "seed": run.seed,
        "patch": run.patch,
        "inputs": [e.as_json() for e in run.inputs],
        "versions": run.versions,
        "outputs": [e.as_json() for e in outputs],
        "status": status,
        "error": error,
        "fit_quality_ok": fit_quality_ok,
        "engine": engine,
        "platform": platform,
        "created_by": created_by,
        "created_at": rfc3339(run.created_at),
        "started_at": rfc3339(run.started_at),
        "finished_at": rfc3339(finished_at),
    }
