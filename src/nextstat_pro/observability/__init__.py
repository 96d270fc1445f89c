"""Traces (OpenTelemetry) and metrics (Prometheus) of the services, off until configured.

``configure`` reads the standard ``OTEL_*`` variables (settings.py); ``span`` and friends
(tracing.py) are what the services call; ``metrics`` holds the Prometheus series and their
hooks; ``http`` instruments the FastAPI app and serves ``/metrics``. docs/observability.md.
"""

from __future__ import annotations

from . import metrics
from .settings import ObservabilitySettings, from_env
from .tracing import (
    SpanLike,
    attached,
    carrier,
    configure,
    current_context,
    enabled,
    flush,
    in_context,
    provider,
    reset,
    span,
    span_from,
    traced,
)

__all__ = ["ObservabilitySettings", "SpanLike", "attached", "carrier", "configure", "current_context", "enabled",
           "flush", "from_env", "in_context", "metrics", "provider", "reset", "span", "span_from", "traced"]
