"""The HTTP server's observability: a span per request and the request latency metric
(``instrument_app``), and the body of the ``/metrics`` route (``metrics_response``).

Call ``tracing.configure()`` (or let the ``OTEL_*`` environment decide) before
``instrument_app``: request spans are added only when tracing is on, so an untraced server
runs no OpenTelemetry middleware at all."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import metrics, tracing
from .metrics import metrics_response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from fastapi import FastAPI

    from ..instance import Instance

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["RequestMetrics", "instrument_app", "metrics_response"]

# Probes and scrapes every few seconds would drown the traces people look at.
UNTRACED = "/healthz$,/readyz$,/metrics$"
UNMATCHED = "<unmatched>"  # a 404's path is whatever the client sent: not a label value


class RequestMetrics:
    """ASGI middleware: ``http_request_duration_seconds`` by method, route template (the
    router records the matched route in the scope) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees when the app raises before responding
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            metrics.request_done(scope.get("method", ""), route, status, time.perf_counter() - started)


def instrument_app(app: FastAPI, instance: Instance | None = None) -> None:
    """Metrics on (with ``runs_by_status`` read from ``instance``'s database when given), the
    request latency middleware, and, when tracing is on, a server span per request
    (opentelemetry-instrumentation-fastapi) whose context the services' spans continue."""
    metrics.enable()
    if instance is not None:
        metrics.watch_runs(instance)
    app.add_middleware(RequestMetrics)
    provider = tracing.provider()
    if provider is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # One span per request: not one more per ASGI message sent or received.
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=UNTRACED,
                                           exclude_spans=["receive", "send"])
