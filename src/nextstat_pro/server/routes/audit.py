"""The audit trail: events (the CLI's filters, a cursor), a record's history, inclusion and
consistency proofs, checkpoints, and ``verify``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from ...access.context import RequestContext
from ...audit import service as audit
from ...audit.records import EventFilter
from ...audit.views import AuditEventRow, AuditVerifyReport, CheckpointRow, ConsistencyProof, InclusionProof
from ...instance import Instance
from ..answers import answer
from ..auth import Caller, Inst
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["audit"])


class EventPage(BaseModel):
    """Events oldest first; ``next_after`` is the ``after`` of the next page (null at the end)."""

    items: list[AuditEventRow]
    next_after: int | None


@router.get("/audit/events", response_model=EventPage, summary="Audit events matching the filters, oldest first")
async def events(
    inst: Inst, ctx: Caller, response: Response,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100, description="Exact, or a prefix ending in '.'.")] = None,
    target_type: Annotated[str | None, Query(max_length=40)] = None,
    target_id: Annotated[str | None, Query(max_length=200)] = None,
    project: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[str | None, Query(max_length=40, description="RFC 3339 time or date.")] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    text: Annotated[str | None, Query(max_length=200, description="Free text in the event body.")] = None,
    after: Annotated[int, Query(ge=0, description="Events with a larger sequence number.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    f = EventFilter(actor=actor, action=action, target_type=target_type, target_id=target_id, project=project,
                    since=since, until=until, text=text)
    # In a thread: a filter that few events match walks the log (the sequence order) to find them.
    return await answer(response, _event_page, inst, ctx, f, after, limit)


def _event_page(inst: Instance, ctx: RequestContext, f: EventFilter, after: int, limit: int) -> EventPage:
    rows = audit.read_events(inst, ctx, f, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(items=rows, next_after=rows[-1].seq if more and rows else None)


@router.get("/audit/history/{target_type}/{target_id}", response_model=list[AuditEventRow],
            summary="Every event of one record, oldest first")
def history(inst: Inst, ctx: Caller, target_type: str, target_id: str) -> list[AuditEventRow]:
    return audit.history(inst, ctx, target_type, target_id)


@router.get("/audit/proofs/inclusion/{ref}", response_model=InclusionProof,
            summary="RFC 9162 inclusion proof of an event (by sequence number or event id)")
def inclusion(inst: Inst, ctx: Caller, ref: str) -> InclusionProof:
    return audit.prove(inst, ctx, ref)


@router.get("/audit/proofs/consistency", response_model=ConsistencyProof,
            summary="RFC 9162 consistency proof between two tree sizes")
def consistency(inst: Inst, ctx: Caller, first: Annotated[int, Query(ge=0)],
                second: Annotated[int, Query(ge=0)]) -> ConsistencyProof:
    return audit.consistency(inst, ctx, first, second)


@router.get("/audit/checkpoints", response_model=list[CheckpointRow], summary="Signed checkpoints of the log")
def checkpoints(inst: Inst, ctx: Caller) -> list[CheckpointRow]:
    return audit.list_checkpoints(inst, ctx)


@router.post("/audit/checkpoints", response_model=CheckpointRow, status_code=201,
             summary="Sign a checkpoint of the whole log now")
def make_checkpoint(inst: Inst, ctx: Caller) -> CheckpointRow:
    return audit.make_checkpoint(inst, ctx)


@router.post("/audit/verify", response_model=AuditVerifyReport,
             summary="Verify the whole trail (seals, tree, checkpoints, witness, state re-derived)")
def verify(inst: Inst, ctx: Caller, state: bool = True) -> AuditVerifyReport:
    return audit.verify(inst, ctx, state=state)
