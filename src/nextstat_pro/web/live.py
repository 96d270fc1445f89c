"""Live run status for an open runs list, and a run's status and shard progress for its page:
server-sent events, no polling by the browser.

Each stream reads the audit log after a sequence number every ``TICK_S`` (``runs.board.run_changes``
for a project, ``run_events`` for one run and its job's ``job.*`` events; both authorize
``run.read``): a change is on the page within about that long. Each event's id is its sequence
number, so a browser that reconnects (EventSource does so by itself) sends ``Last-Event-ID`` and
misses nothing. A stream ends after ``MAX_STREAM_S``: the reconnect authenticates the session
again, so a revoked or expired session stops receiving."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse, ServerSentEvent

from ..runs.board import RunChanges, run_changes, run_events
from ..server.auth import Inst
from .guard import Page

router = APIRouter(include_in_schema=False)
TICK_S = 0.2
MAX_STREAM_S = 300.0


def _start(request: Request, after: int | None) -> int | None:
    """Where a stream starts: the browser's ``Last-Event-ID`` on a reconnect, else ``after``."""
    last_id = request.headers.get("last-event-id", "")
    return int(last_id) if last_id.isdigit() else after


def _stream(request: Request, first: RunChanges, more: Callable[[int], RunChanges]) -> EventSourceResponse:
    """``first`` and then what ``more(last_seq)`` returns every ``TICK_S``, as ``run`` events."""

    async def events() -> AsyncIterator[ServerSentEvent]:
        changes = first
        ends = time.monotonic() + MAX_STREAM_S
        yield ServerSentEvent(event="ready", data=json.dumps({"last_seq": changes.last_seq}), id=str(changes.last_seq),
                              retry=1000)
        while time.monotonic() < ends:
            for change in changes.items:
                yield ServerSentEvent(event="run", data=change.model_dump_json(), id=str(change.seq))
            await anyio.sleep(TICK_S)
            if await request.is_disconnected():
                return
            changes = await run_in_threadpool(more, changes.last_seq)

    return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store"})


@router.get("/live/runs")
async def live_runs(request: Request, inst: Inst, visitor: Page, project: Annotated[str, Query(max_length=100)],
                    after: Annotated[int | None, Query(ge=0)] = None) -> EventSourceResponse:
    """A project's run status and approval changes (the runs list)."""
    first = await run_in_threadpool(run_changes, inst, visitor.ctx, project, _start(request, after))  # authorizes
    return _stream(request, first, lambda seq: run_changes(inst, visitor.ctx, project, seq))


@router.get("/live/runs/{run_id}")
async def live_run(request: Request, inst: Inst, visitor: Page, run_id: Annotated[str, Path(max_length=64)],
                   after: Annotated[int | None, Query(ge=0)] = None) -> EventSourceResponse:
    """One run's changes and its job's shard events (the run's page: status, shard table)."""
    first = await run_in_threadpool(run_events, inst, visitor.ctx, run_id, _start(request, after))  # authorizes
    return _stream(request, first, lambda seq: run_events(inst, visitor.ctx, run_id, seq))
