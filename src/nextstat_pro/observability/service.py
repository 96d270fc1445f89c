"""The metrics operation: what ``GET /metrics`` serves, to an auditor or an instance admin (a
Prometheus scraper signs in with an auditor's API token: the series tell how many runs fail and
how busy the instance is, which is not for everyone who can reach the port)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..access.context import RequestContext
from ..access.rbac import authorize
from .metrics import metrics_response

if TYPE_CHECKING:
    from ..instance import Instance


def read_metrics(instance: Instance, ctx: RequestContext) -> tuple[bytes, str]:
    """The Prometheus exposition of this process (all workers' under PROMETHEUS_MULTIPROC_DIR)."""
    with instance.db.read() as session:
        authorize(session, ctx, "metrics.read")
    return metrics_response()
