"""Reading runs: the operations behind ``runs list|show|artifacts``, each returning its view."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..db.models import Project, Run
from ..projects.service import authorized_project
from .export import read_manifest
from .records import _query_runs, read_run, versions_of
from .service import RESULT_NAME
from .views import ArtifactRow, RunArtifactRow, RunDetail, RunInputRow, RunRow

if TYPE_CHECKING:
    from ..instance import Instance


def _row(run: Run, project: str, versions: list[str]) -> dict[str, Any]:
    return {"run_id": run.id, "project": project, "task": run.task, "status": run.status, "fit_ok": run.fit_ok,
            "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
            "seed": run.seed, "patch": run.patch, "params": run.params, "error": run.error,
            "manifest_digest": run.manifest_digest, "versions": versions}


def list_run_rows(instance: Instance, ctx: RequestContext, project_name: str, status: str | None = None,
                  task: str | None = None, since: datetime | None = None, limit: int = 100) -> list[RunRow]:
    """The runs of a project, newest first, optionally by status, task and creation time."""
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "run.read")
        runs = _query_runs(session, project, status, task, since, limit)
        used = versions_of(session, [r.id for r in runs])
        return [RunRow(**_row(r, project.name, used.get(r.id, []))) for r in runs]


def _project_of(session: Session, run: Run) -> Project:
    project = session.get(Project, run.project_id)
    assert project is not None  # a foreign key
    return project


def show_run(instance: Instance, ctx: RequestContext, run_ref: str) -> RunDetail:
    """One run with its inputs, outputs, registry versions and manifest."""
    with instance.db.read() as session:
        run = read_run(session, ctx, run_ref)
        project = _project_of(session, run)
        fields = _row(run, project.name, versions_of(session, [run.id]).get(run.id, []))
        inputs = [RunInputRow(role=i.role, name=i.name, digest=i.digest, size=i.size) for i in run.inputs]
        artifacts = [RunArtifactRow(name=a.name, digest=a.digest, size=a.size) for a in run.artifacts]
    manifest = read_manifest(instance, run.manifest_digest) if run.manifest_digest else None
    return RunDetail(**fields, inputs=inputs, artifacts=artifacts, manifest=manifest)


def run_result(instance: Instance, ctx: RequestContext, run_ref: str) -> dict[str, Any] | None:
    """A succeeded run's result document (``result.json``, digest-checked); None for any other run."""
    with instance.db.read() as session:
        run = read_run(session, ctx, run_ref)
        if run.status != "succeeded":
            return None
        digest = next((a.digest for a in run.artifacts if a.name == RESULT_NAME), None)
    if digest is None:
        return None
    result: dict[str, Any] = json.loads(instance.store.get(digest))
    return result


def run_artifacts(instance: Instance, ctx: RequestContext, run_ref: str) -> list[ArtifactRow]:
    """A run's stored objects, its manifest last."""
    with instance.db.read() as session:
        run = read_run(session, ctx, run_ref)
        rows = [ArtifactRow(name=a.name, digest=a.digest, size=a.size, media_type=a.media_type)
                for a in run.artifacts]
        if run.manifest_digest:
            rows.append(ArtifactRow(name="manifest.json", digest=run.manifest_digest, size=None,
                                    media_type="application/json"))
        return rows
