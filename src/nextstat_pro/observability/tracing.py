"""OpenTelemetry traces: one tracer provider per process, off until configured.

``configure`` is idempotent and cheap to call again; every helper configures from the
environment on first use, so a CLI command, a coordinator process and a stateless shard
worker all trace when the ``OTEL_*`` variables say so (settings.py), without each adapter
wiring it. When off, the helpers import nothing of OpenTelemetry and hand out a do-nothing
span: a run or a shard pays one attribute lookup.

Context crosses three boundaries here, always as W3C Trace Context headers (``traceparent``,
``tracestate``): the shard spec URI a backend passes to its workers (scale/spec.py), the
ticket a coordinator process reads on its stdin, and the thread a server runs a coordinator
in. A forked child forgets the parent's configuration (its exporter lives in the parent) and
configures itself from the environment on first use.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from ..errors import ConfigError
from .settings import SERVICE_NAME, ObservabilitySettings, from_env, otlp_protocol

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

INSTRUMENTATION = "nextstat_pro"
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
P = ParamSpec("P")
R = TypeVar("R")


class SpanLike(Protocol):
    def set_attribute(self, key: str, value: Any) -> None: ...


class _NoSpan:
    """What a helper yields while tracing is off."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass


NO_SPAN = _NoSpan()


class _State:
    configured = False
    key: tuple[ObservabilitySettings, int, tuple[str | None, ...]] | None = None
    provider: TracerProvider | None = None
    tracer: Tracer | None = None


_state = _State()
_lock = threading.RLock()


def configure(settings: ObservabilitySettings | None = None, *, env: Mapping[str, str] | None = None,
              exporter: SpanExporter | None = None) -> None:
    """Set this process's tracing (and metrics) up: from ``settings``, else from ``env`` (default
    ``os.environ``; an explicit ``env`` names the collector, the exporter's other settings
    come from ``os.environ``). ``exporter``: export every span to it at once (tests use the SDK's
    ``InMemorySpanExporter``), whatever the settings name. Calling it again with the same
    arguments does nothing; with others, the previous provider is flushed and shut down."""
    from . import metrics

    settings = settings if settings is not None else from_env(env)
    source = os.environ if env is None else env
    key = (settings, id(exporter) if exporter is not None else 0, tuple(source.get(v) for v in ENDPOINT_VARS))
    with _lock:  # a server's threads may all reach their first span at once
        if _state.configured and _state.key == key:
            return
        if settings.metrics:  # never turned off here: a server enables them itself (http.instrument_app)
            metrics.enable()
        _shutdown()
        if exporter is not None or settings.tracing:
            provider = _provider(settings, env, exporter)
            _state.provider, _state.tracer = provider, provider.get_tracer(INSTRUMENTATION)
        _state.configured, _state.key = True, key


def _provider(settings: ObservabilitySettings, env: Mapping[str, str] | None,
              exporter: SpanExporter | None) -> TracerProvider:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    from .. import __version__

    source = os.environ if env is None else env
    named = "OTEL_SERVICE_NAME" in source or "service.name=" in source.get("OTEL_RESOURCE_ATTRIBUTES", "")
    attributes = {"service.version": __version__, **({} if named else {"service.name": SERVICE_NAME})}
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for name in settings.exporters:
            if name == "otlp":
                otlp_protocol(env)
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=_otlp_endpoint(env))))
            else:  # console: on stderr, so that a command's --json output stays parseable
                provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    # The first provider made from settings is also OpenTelemetry's global one, so that other
    # instrumented libraries export with ours; later ones (tests reconfiguring) and those
    # with an explicit exporter are used through ours only, as the API refuses to replace a
    # global provider.
    if exporter is None and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    return provider


def _otlp_endpoint(env: Mapping[str, str] | None) -> str | None:
    """The collector named by an explicit ``env`` (None: the exporter reads ``os.environ``, as
    it does for headers, timeout and compression in any case)."""
    if env is None:
        return None
    traces, base = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return traces or (base.rstrip("/") + "/v1/traces" if base else None)


def _shutdown() -> None:
    if _state.provider is not None:
        _state.provider.shutdown()
    _state.provider = _state.tracer = None


def reset() -> None:
    """Flush and shut tracing down, metrics off; the next helper configures from the environment."""
    from . import metrics

    with _lock:
        _shutdown()
        metrics.disable()
        _state.configured, _state.key = False, None


def _forked() -> None:
    # The parent's exporter (an in-memory list, a batch queue and its thread) is not this
    # process's: start afresh, from the environment, on first use.
    global _lock
    _lock = threading.RLock()  # a thread of the parent may have held it at the fork
    _state.configured, _state.key, _state.provider, _state.tracer = False, None, None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _tracer() -> Tracer | None:
    if not _state.configured:
        with _lock:
            if not _state.configured:
                try:
                    configure()
                except ConfigError as exc:
                    # A tracing setting this installation cannot honour must not fail the run or
                    # the shard that happened to open the first span: said once, then off.
                    logging.getLogger(__name__).warning("tracing is off: %s", exc.message)
                    _state.configured, _state.key = True, None
    return _state.tracer


def enabled() -> bool:
    return _tracer() is not None


def provider() -> TracerProvider | None:
    """This process's tracer provider, None while tracing is off."""
    _tracer()
    return _state.provider


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[SpanLike]:
    """A span around the block, child of the current one; an exception is recorded on it."""
    tracer = _tracer()
    if tracer is None:
        yield NO_SPAN
        return
    with tracer.start_as_current_span(name, attributes=_clean(attributes)) as current:
        yield current


@contextmanager
def span_from(carrier: Mapping[str, str] | None, name: str,
              attributes: Mapping[str, Any] | None = None) -> Iterator[SpanLike]:
    """A span whose parent is the remote span named by ``carrier``'s W3C headers (a new trace
    when there are none)."""
    tracer = _tracer()
    if tracer is None:
        yield NO_SPAN
        return
    with tracer.start_as_current_span(name, context=_extract(carrier), attributes=_clean(attributes)) as current:
        yield current


def traced(name: str, params: Mapping[str, str] | None = None,
           result: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function to run in a span ``name``: ``params`` maps argument names to span
    attributes, ``result`` names the attribute of the return value. The function's body stays
    as it is (the permission checks read it); while tracing is off, a call is a direct call."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            if _tracer() is None:
                return fn(*args, **kwargs)
            given = signature.bind_partial(*args, **kwargs).arguments
            attributes = {attr: given[p] for p, attr in (params or {}).items() if p in given}
            with span(name, attributes) as current:
                out = fn(*args, **kwargs)
                if result is not None:
                    current.set_attribute(result, out)
                return out

        return inner

    return wrap


def carrier() -> dict[str, str]:
    """The current span as W3C Trace Context headers (``traceparent`` and, if any,
    ``tracestate``); empty while tracing is off or outside any span."""
    if _tracer() is None:
        return {}
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    headers: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(headers)
    return headers


@contextmanager
def attached(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Make the remote span named by ``carrier`` the current parent for the block (a process
    that continues another's trace: the coordinator process, from its ticket)."""
    if not carrier or _tracer() is None:
        yield
        return
    from opentelemetry import context

    token = context.attach(_extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


def current_context() -> Context | None:
    """The current trace context, to hand to a thread (contexts do not follow threads)."""
    if _tracer() is None:
        return None
    from opentelemetry import context

    return context.get_current()


@contextmanager
def in_context(ctx: Context | None) -> Iterator[None]:
    """Run the block in ``ctx`` (from ``current_context`` in another thread)."""
    if ctx is None:
        yield
        return
    from opentelemetry import context

    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)


def flush(timeout_ms: int = 5000) -> None:
    """Export what is queued now: a pool worker process may end without running atexit."""
    if _state.provider is not None:
        _state.provider.force_flush(timeout_ms)


def _extract(carrier: Mapping[str, str] | None) -> Context:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(dict(carrier or {}))


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # OpenTelemetry drops (with a warning) attributes whose value is None.
    return {k: v for k, v in attributes.items() if v is not None} if attributes else None
