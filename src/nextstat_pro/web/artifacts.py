"""A run's artifacts in the browser: previews by range reads (log tail, pages and search, JSON
paged server-side, CSV head) and its result's plots as SVG. Every read starts with the service's
authorized lookup of the run's artifact (``artifact_row``) and reads the store by its digest."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ..errors import NotFoundError, NSPError
from ..runs import show_run
from ..runs.reads import artifact_row
from ..server.auth import Inst
from ..server.routes.runs import ARTIFACT_CSP
from . import previews
from .guard import Page, Visitor
from .render import page

router = APIRouter(include_in_schema=False)
VIEWS = ("tail", "page", "search", "json", "csv")


def _fragment(request: Request, visitor: Visitor, exc: NSPError) -> Response:
    return page(request, "_message.html.j2", status=exc.http_status, visitor=visitor, message=exc.message)


@router.get("/runs/{run_id}/preview/{name}")
def preview(
    request: Request, inst: Inst, visitor: Page, run_id: str, name: str,
    view: Annotated[str, Query(max_length=8)] = "tail",
    offset: Annotated[int | None, Query(ge=0)] = None,
    q: Annotated[str, Query(max_length=200)] = "",
    path: Annotated[str, Query(max_length=1000)] = "",
    page_no: Annotated[int, Query(alias="page", ge=0)] = 0,
) -> Response:
    """An htmx fragment: one view of one artifact."""
    try:
        row = artifact_row(inst, visitor.ctx, run_id, name)
        size = row.size if row.size is not None else inst.store.size(row.digest)

        def read(start: int, end: int | None) -> Any:
            return inst.store.read_range(row.digest, start, end)

        values: dict[str, Any] = {"visitor": visitor, "run_id": run_id, "name": name, "view": view, "size": size,
                                  "q": q}
        if view == "search" and q:
            values["hits"], values["more"] = previews.search_lines(read, size, q)
        elif view == "json" and size <= previews.JSON_IN_MEMORY:
            parts = [p for p in path.split("/") if p]
            try:
                values["doc"] = previews.json_page(b"".join(read(0, None)), parts, page_no)
            except (KeyError, ValueError):
                raise NotFoundError(f"{name} has no entry {path!r} (or is not JSON)") from None
        elif view == "csv":
            values["table"] = previews.csv_preview(read, size)
        else:  # tail, page, and JSON too large to parse: a window of text
            values["view"] = "page"
            values["window"] = previews.text_window(read, size, offset if view == "page" else None)
    except NSPError as exc:
        return _fragment(request, visitor, exc)
    return page(request, "_preview.html.j2", **values)


# Rendered plots by (result digest, renderer version): a pure function of the result, so a
# cached SVG never goes stale; kept for the most recently viewed results of this process.
_PLOTS: OrderedDict[tuple[str, str], list[Any]] = OrderedDict()
_PLOTS_LOCK = threading.Lock()
_PLOTS_KEPT = 64


def _plots(inst: Any, visitor: Visitor, run_id: str) -> list[Any]:
    from ..plots import RENDERER_VERSION, plots_for_result
    from ..plots.inputs import MAX_INPUT_BYTES, plot_context
    from ..runs import run_result

    detail = show_run(inst, visitor.ctx, run_id)
    digest = next((a.digest for a in detail.artifacts if a.name == "result.json"), None)
    if digest is None or detail.status != "succeeded":
        return []
    key = (digest, RENDERER_VERSION)
    with _PLOTS_LOCK:
        if key in _PLOTS:
            _PLOTS.move_to_end(key)
            return _PLOTS[key]
    result = run_result(inst, visitor.ctx, detail.run_id) or {}

    def read(role: str) -> bytes | None:
        found = next((i for i in detail.inputs if i.role == role), None)
        return inst.store.get(found.digest) if found is not None and found.size <= MAX_INPUT_BYTES else None

    made = plots_for_result(detail.task, result, **plot_context(detail.task, read))
    with _PLOTS_LOCK:
        _PLOTS[key] = made
        while len(_PLOTS) > _PLOTS_KEPT:
            _PLOTS.popitem(last=False)
    return made


@router.post("/runs/{run_id}/verify")
def verify(request: Request, inst: Inst, visitor: Page, run_id: str) -> Response:
    """An htmx fragment: the run exported (an audited ``run.export``) and checked by the offline
    verifier, as ``nextstat-pro verify`` would check the folder: digests, the DSSE attestation,
    the inclusion of its audit events in a signed checkpoint, its electronic signatures."""
    import shutil
    import tempfile
    from pathlib import Path

    from ..runs import export_folder
    from ..verify import VerificationError, verify_run_folder
    from ..verify.run_export import signer_label

    work = Path(tempfile.mkdtemp(prefix="nsp-web-verify-"))
    try:
        done = export_folder(inst, visitor.ctx, run_id, work / "run")
        report = verify_run_folder(Path(done.path))
        signers = [signer_label(p) for p in report.signatures]
        failure = None
    except VerificationError as exc:
        report, signers, failure = None, [], exc.message
    except NSPError as exc:
        return _fragment(request, visitor, exc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return page(request, "_verified.html.j2", visitor=visitor, report=report, signers=signers, failure=failure)


@router.get("/runs/{run_id}/plots")
async def plots(request: Request, inst: Inst, visitor: Page, run_id: str) -> Response:
    """An htmx fragment: the result's plots (drawn on first view, in a worker thread)."""
    try:
        made = await run_in_threadpool(_plots, inst, visitor, run_id)
    except NSPError as exc:
        return _fragment(request, visitor, exc)
    return page(request, "_plots.html.j2", visitor=visitor, run_id=run_id, plots=made)


@router.get("/runs/{run_id}/plots/{name}.svg")
async def plot_svg(inst: Inst, visitor: Page, run_id: str, name: str) -> Response:
    made = await run_in_threadpool(_plots, inst, visitor, run_id)
    for plot in made:
        if plot.name == name:
            # Served as data: sandboxed, never a document that could run script.
            return Response(plot.svg, media_type="image/svg+xml",
                            headers={"Content-Security-Policy": ARTIFACT_CSP,
                                     "Cache-Control": "private, max-age=3600"})
    raise NotFoundError(f"run {run_id} has no plot {name!r}")
