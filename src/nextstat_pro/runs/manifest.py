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
class ManifestFields:
    run_id: str
    project: str
    task: str
    params: dict[str, Any]
    seed: int | None
    patch: str | None
    inputs: list[FileEntry]
    outputs: list[FileEntry]
    status: str
    error: str | None
    fit_quality_ok: bool | None
    engine: dict[str, str]
    platform: dict[str, str]
    created_by: dict[str, str]
    versions: list[dict[str, Any]]
    created_at: datetime
    started_at: datetime
    finished_at: datetime


def build_manifest(f: ManifestFields) -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "run_id": f.run_id,
        "project": f.project,
        "task": f.task,
        "params": f.params,
        "seed": f.seed,
        "patch": f.patch,
        "inputs": [e.as_json() for e in f.inputs],
        "versions": f.versions,
        "outputs": [e.as_json() for e in f.outputs],
        "status": f.status,
        "error": f.error,
        "fit_quality_ok": f.fit_quality_ok,
        "engine": f.engine,
        "platform": f.platform,
        "created_by": f.created_by,
        "created_at": rfc3339(f.created_at),
        "started_at": rfc3339(f.started_at),
        "finished_at": rfc3339(f.finished_at),
    }
