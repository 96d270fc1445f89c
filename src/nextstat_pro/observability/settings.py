"""What to trace and where to send it, from the standard ``OTEL_*`` environment variables.

Off by default. OpenTelemetry's own default exporter is OTLP, but a command-line tool that tried
to reach a collector on every invocation would be a surprise: tracing is on only when
``OTEL_TRACES_EXPORTER`` names an exporter (``otlp`` or ``console``) or an OTLP endpoint is
set (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), and never
when ``OTEL_SDK_DISABLED=true``. The exporter itself reads the rest of the OTLP variables
(headers, timeout, compression, certificates), the SDK reads ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and ``OTEL_BSP_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..errors import ConfigError

Exporter = Literal["otlp", "console"]
SERVICE_NAME = "nextstat-pro"


class ObservabilitySettings(BaseModel):
    """Tracing exporters (empty: tracing off) and whether this process keeps Prometheus metrics."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exporters: tuple[Exporter, ...] = ()
    metrics: bool = False

    @property
    def tracing(self) -> bool:
        return bool(self.exporters)


def from_env(env: Mapping[str, str] | None = None) -> ObservabilitySettings:
    """The settings the environment asks for. Metrics: on when ``PROMETHEUS_MULTIPROC_DIR`` is
    set (a worker process of a server that aggregates its workers' metrics); a server turns
    them on itself (``http.instrument_app``)."""
    env = os.environ if env is None else env
    metrics = bool(env.get("PROMETHEUS_MULTIPROC_DIR"))
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ObservabilitySettings(metrics=metrics)
    named = env.get("OTEL_TRACES_EXPORTER")
    if named is None:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ObservabilitySettings(exporters=("otlp",) if endpoint else (), metrics=metrics)
    exporters: list[Exporter] = []
    for name in (n.strip().lower() for n in named.split(",")):
        if name in ("", "none"):
            continue
        if name not in ("otlp", "console"):
            raise ConfigError(f"OTEL_TRACES_EXPORTER={named!r}: this installation exports traces with "
                              "otlp (HTTP/protobuf), console or none")
        exporters.append("otlp" if name == "otlp" else "console")
    if "none" in {n.strip().lower() for n in named.split(",")}:
        exporters = []  # the specification: "none" turns every exporter off
    return ObservabilitySettings(exporters=tuple(dict.fromkeys(exporters)), metrics=metrics)


def otlp_protocol(env: Mapping[str, str] | None = None) -> str:
    """Only OTLP over HTTP/protobuf is installed (opentelemetry-exporter-otlp-proto-http); gRPC
    is refused with what to set instead, rather than failing on the first export."""
    env = os.environ if env is None else env
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip()
    if protocol != "http/protobuf":
        raise ConfigError(f"OTLP protocol {protocol!r} is not installed: set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")
    return protocol
