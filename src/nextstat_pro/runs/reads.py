"""Reading runs: the operations behind ``runs list|show|artifacts``, each returning its view."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..db.models import Project, Run, User
from ..db.types import rfc3339
from ..errors import FieldError, NotFoundError
from ..projects.service import authorized_project
from .export import read_manifest
from .listing import SORTS, ListedRun, RunFilter, _query_runs, versions_of
from .records import read_run
from .service import RESULT_NAME
from .views import ArtifactRow, RunArtifactRow, RunDetail, RunInputRow, RunPage, RunRow

if TYPE_CHECKING:
    from ..instance import Instance


def _row(run: ListedRun, project: str, versions: list[str]) -> dict[str, Any]:
    return {"run_id": run.id, "project": project, "task": run.task, "status": run.status, "fit_ok": run.fit_ok,
            "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
            "seed": run.seed, "patch": run.patch, "params": run.params, "error": run.error,
            "manifest_digest": run.manifest_digest, "versions": versions}


def list_run_rows(instance: Instance, ctx: RequestContext, project_name: str, status: str | None = None,
                  task: str | None = None, since: datetime | None = None, limit: int = 100, *,
                  f: RunFilter | None = None) -> list[RunRow]:
    """The runs of a project, newest first, optionally by status, task and creation time; or by
    every filter of ``f`` (which then replaces the three) in its order."""
    _, rows = _listed(instance, ctx, project_name, f or RunFilter(status=status, task=task, since=since), limit)
    return [RunRow(**row) for row in rows]


def _listed(instance: Instance, ctx: RequestContext, project_name: str, f: RunFilter, limit: int,
            after: tuple[datetime, str] | None = None) -> tuple[list[ListedRun], list[dict[str, Any]]]:
    """One authorized read of a listing: its runs and their rows for the views."""
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "run.read")
        runs = _query_runs(session, project, _by_user_id(session, f), limit, after=after,
                           policy=instance.config.approval_policy(project.name))
        used = versions_of(session, [r.id for r in runs])
        return runs, [_row(r, project.name, used.get(r.id, [])) for r in runs]


MAX_PAGE = 500


def _encode_cursor(run: ListedRun, sort: str = "created") -> str:
    raw = f"{sort}|{rfc3339(run.created_at)}|{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor continues from. A cursor names the order it was issued for
    (one without a name is from before there were two: newest first); under the other order it
    would skip or repeat runs, so it is refused."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = raw.split("|")
        if len(parts) == 2:
            parts.insert(0, "created")
        issued, at, run_id = parts
        parsed = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FieldError("cursor is not one this server issued", "cursor") from exc
    if not run_id or parsed.tzinfo is None or issued not in SORTS:
        raise FieldError("cursor is not one this server issued", "cursor")
    if issued != sort:
        words = {"created": "newest first", "oldest": "oldest first"}
        raise FieldError(f"cursor continues a list sorted {words[issued]} (sort={issued}), not {words[sort]} "
                         f"(sort={sort}): leave the cursor out to start at the first page", "cursor", "sort")
    return parsed, run_id


def _by_user_id(session: Session, f: RunFilter) -> RunFilter:
    """``f`` with its author's username replaced by their user id."""
    if f.created_by is None:
        return f
    user = session.scalar(select(User).where(User.username == f.created_by))
    # An unknown author matches no run: a listing, not a lookup.
    return replace(f, created_by=user.id if user is not None else "-")


def list_runs_page(instance: Instance, ctx: RequestContext, project_name: str, f: RunFilter,
                   limit: int = 50, cursor: str | None = None) -> RunPage:
    """One page of a project's runs in ``f.sort`` order, filtered; ``cursor`` continues a listing
    with the same filter and order (keyset on created_at and id)."""
    if not 1 <= limit <= MAX_PAGE:
        raise FieldError(f"limit must be between 1 and {MAX_PAGE}", "limit")
    if f.sort not in SORTS:
        raise FieldError(f"unknown sort {f.sort!r} (sorts: {', '.join(SORTS)})", "sort")
    after = _decode_cursor(cursor, f.sort) if cursor else None
    runs, items = _listed(instance, ctx, project_name, f, limit + 1, after)  # one more: is there a next page?
    more = len(runs) > limit
    # The page validated in one call (pydantic-core walks the list), not one model per row.
    return RunPage.model_validate({"items": items[:limit],
                                   "next_cursor": _encode_cursor(runs[limit - 1], f.sort) if more else None})


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


def artifact_row(instance: Instance, ctx: RequestContext, run_ref: str, name: str) -> ArtifactRow:
    """One stored object of a run by its name (``manifest.json`` included, with its size), for a
    download: an adapter streams the bytes from the store by the row's digest."""
    with instance.db.read() as session:
        run = read_run(session, ctx, run_ref)
        for a in run.artifacts:
            if a.name == name:
                return ArtifactRow(name=a.name, digest=a.digest, size=a.size, media_type=a.media_type)
        if name == "manifest.json" and run.manifest_digest:
            return ArtifactRow(name=name, digest=run.manifest_digest, size=instance.store.size(run.manifest_digest),
                               media_type="application/json")
        raise NotFoundError(f"run {run.id} has no artifact {name!r}")
