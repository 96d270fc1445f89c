"""``GET /audit/export``: ``audit export`` as a zip: the bundle (events, a checkpoint signed now,
an inclusion proof per event, the log's key) that ``audit verify --bundle`` checks offline once
unzipped. The bundle is written to a private temp folder, zipped there and streamed from disk
(never held in memory); the folder goes when the response is sent."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from ...audit.export import export_bundle
from ..auth import Caller, Inst
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["audit"])


@router.get("/audit/export", response_class=FileResponse, responses={200: {"content": {"application/zip": {}}}},
            summary="The audit trail (or a period of it) as a bundle verifiable offline, zipped")
def export(
    inst: Inst, ctx: Caller,
    format: Annotated[Literal["csv", "json", "jsonl"], Query(description="The rendering beside events.jsonl.")]
    = "jsonl",
    since: Annotated[str | None, Query(max_length=40, description="RFC 3339 time or date.")] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
) -> FileResponse:
    work = Path(tempfile.mkdtemp(prefix="nsp-audit-export-"))
    try:
        summary = export_bundle(inst, ctx, work / "bundle", format, since, until)
        name = f"audit-bundle-{summary.tree_size}"
        archive = work / f"{name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            root = work / "bundle"
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                zf.write(path, f"{name}/{path.relative_to(root).as_posix()}")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(archive, media_type="application/zip", filename=archive.name,
                        headers={"X-NSP-Events": str(summary.events), "X-NSP-Tree-Size": str(summary.tree_size)},
                        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True))
