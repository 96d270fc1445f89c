"""Live run status for an open runs list: server-sent events, no polling by the browser.

The stream reads the audit log after a sequence number (``runs.board.run_changes``, authorized
``run.read`` in the project) every ``TICK_S``: a status change is on the page within about that
long. Each event's id is its sequence number, so a browser that reconnects (EventSource does so
by itself) sends ``Last-Event-ID`` and misses nothing. A stream ends after ``MAX_STREAM_S``: the
reconnect authenticates the session again, so a revoked or expired session stops receiving."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse, ServerSentEvent

from ..runs.board import run_changes
from ..server.auth import Inst
from .guard import Page

router = APIRouter(include_in_schema=False)
TICK_S = 0.2
MAX_STREAM_S = 300.0


@router.get("/live/runs")
async def live_runs(request: Request, inst: Inst, visitor: Page, project: Annotated[str, Query(max_length=100)],
                    after: Annotated[int | None, Query(ge=0)] = None) -> EventSourceResponse:
    last_id = request.headers.get("last-event-id", "")
    start = int(last_id) if last_id.isdigit() else after
    first = await run_in_threadpool(run_changes, inst, visitor.ctx, project, start)  # authorizes before streaming

    async def events() -> AsyncIterator[ServerSentEvent]:
        changes: Any = first
        ends = time.monotonic() + MAX_STREAM_S
        yield ServerSentEvent(event="ready", data=json.dumps({"last_seq": changes.last_seq}), id=str(changes.last_seq),
                              retry=1000)
        while time.monotonic() < ends:
            for change in changes.items:
                yield ServerSentEvent(event="run", data=change.model_dump_json(), id=str(change.seq))
            await anyio.sleep(TICK_S)
            if await request.is_disconnected():
                return
            changes = await run_in_threadpool(run_changes, inst, visitor.ctx, project, changes.last_seq)

    return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store"})
