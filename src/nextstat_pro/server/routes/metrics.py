"""``GET /metrics``: the Prometheus exposition (docs/observability.md), for a scraper with an
auditor's token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ...observability.service import read_metrics
from ..auth import Caller, Inst

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, summary="Prometheus metrics of this server process",
            responses={200: {"content": {"text/plain": {}}}})
def metrics(inst: Inst, ctx: Caller) -> Response:
    body, content_type = read_metrics(inst, ctx)
    return Response(body, media_type=content_type)
