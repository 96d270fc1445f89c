"""Prometheus metrics (prometheus-client), kept only in a process that is asked to.

A CLI command has nobody to scrape it, so nothing is counted until ``enable`` (a server's
``http.instrument_app``, or ``configure`` with ``metrics=True``); until then every hook is one
attribute test and prometheus-client is not even imported. Under a server with several worker
processes each process counts its own: set ``PROMETHEUS_MULTIPROC_DIR`` (an empty folder,
before the server starts) and ``metrics_response`` adds them up (prometheus-client's
multiprocess mode); shard workers of the local pool then count there too.

The series (docs/observability.md):

- ``fits_total{task,outcome}``: engine task executions (a run's task, a job's points);
- ``fit_duration_seconds{task}``: their duration (toys are timed as a batch, not counted here);
- ``runs_finished_total{status}``: runs this process ended, by final status;
- ``runs_by_status{status}``: every run in the database by status, read when scraped;
- ``audit_append_duration_seconds``: appending one sealed event in its transaction;
- ``http_request_duration_seconds{method,route,status}``: requests, by route template.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.metrics_core import Metric

    from ..instance import Instance

FIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
AUDIT_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.1)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        # A registry of our own, not prometheus-client's global one (which also holds the
        # process and platform collectors): registered once per process.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.fits: Counter = Counter("fits", "Engine task executions (a run's task, a job's points).",
                                     ["task", "outcome"], registry=r)
        self.fit_seconds: Histogram = Histogram("fit_duration_seconds", "Duration of an engine task execution.",
                                                ["task"], buckets=FIT_BUCKETS, registry=r)
        self.runs_finished: Counter = Counter("runs_finished", "Runs this process ended, by final status.",
                                              ["status"], registry=r)
        self.audit_seconds: Histogram = Histogram("audit_append_duration_seconds",
                                                  "Appending one sealed audit event in its transaction.",
                                                  buckets=AUDIT_BUCKETS, registry=r)
        self.http_seconds: Histogram = Histogram("http_request_duration_seconds",
                                                 "HTTP requests by method, route template and status.",
                                                 ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=r)
        self.runs_collector: RunsByStatus | None = None


_created: _Metrics | None = None  # once per process: a registry refuses a second metric of a name
_on: _Metrics | None = None  # what the hooks count into: None while metrics are off


def enable() -> None:
    global _created, _on
    if _created is None:
        _created = _Metrics()
    _on = _created


def disable() -> None:
    global _on
    _on = None


def enabled() -> bool:
    return _on is not None


# Hooks: called on the paths they measure; one test while metrics are off.

def fit_done(task: str, ok: bool, seconds: float | None = None, count: int = 1) -> None:
    m = _on
    if m is not None:
        m.fits.labels(task, "ok" if ok else "failed").inc(count)
        if seconds is not None:
            m.fit_seconds.labels(task).observe(seconds)


def run_finished(status: str) -> None:
    m = _on
    if m is not None:
        m.runs_finished.labels(status).inc()


def audit_appended(seconds: float) -> None:
    m = _on
    if m is not None:
        m.audit_seconds.observe(seconds)


def request_done(method: str, route: str, status: int, seconds: float) -> None:
    m = _on
    if m is not None:
        m.http_seconds.labels(method, route, str(status)).observe(seconds)


class RunsByStatus:
    """``runs_by_status``: one grouped count over the runs table per scrape (an index on
    status serves it), so every server process reports the same numbers."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily
        from sqlalchemy import func, select
        from sqlalchemy.exc import SQLAlchemyError

        from ..db.models import Run
        from ..errors import NSPError

        family = GaugeMetricFamily("runs_by_status", "Runs in the database by status.", labels=["status"])
        try:
            with self.instance.db.read() as session:
                rows = session.execute(select(Run.status, func.count()).group_by(Run.status))
                counts: dict[str, int] = {status: n for status, n in rows}
        except (NSPError, SQLAlchemyError):
            return  # the database is unreachable: /readyz says so; the other series still scrape
        for status in ("queued", "running", "succeeded", "failed", "cancelled"):
            counts.setdefault(status, 0)
        for status, n in sorted(counts.items()):
            family.add_metric([status], n)
        yield family

    def describe(self) -> list[Any]:
        return []  # not known before a scrape: no query at registration


def watch_runs(instance: Instance) -> None:
    """Report ``runs_by_status`` for ``instance`` (replacing an earlier one); turns metrics on."""
    enable()
    assert _created is not None
    if _created.runs_collector is not None:
        _created.registry.unregister(_created.runs_collector)
    _created.runs_collector = RunsByStatus(instance)
    _created.registry.register(_created.runs_collector)


def registry() -> CollectorRegistry:
    """What ``/metrics`` shows: this process's registry, or under ``PROMETHEUS_MULTIPROC_DIR``
    every process's series added up (plus the database-backed ones of this process)."""
    enable()
    assert _created is not None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return _created.registry
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    merged = CollectorRegistry()
    collector: Any = MultiProcessCollector  # not annotated
    collector(merged)
    if _created.runs_collector is not None:
        merged.register(_created.runs_collector)
    return merged


def metrics_response() -> tuple[bytes, str]:
    """The body and content type of a ``/metrics`` response (the Prometheus text format prometheus-client writes)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry()), CONTENT_TYPE_LATEST
