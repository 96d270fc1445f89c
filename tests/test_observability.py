"""Observability: traces (OpenTelemetry) and metrics (Prometheus), off by default.

Spans of this process go to the SDK's in-memory exporter; spans of other processes (shard
workers of the local pool, a ``worker run-shard`` command as SLURM, HTCondor and Kubernetes
start it, a coordinator process) reach a real OTLP/HTTP receiver on 127.0.0.1, configured by
the standard ``OTEL_*`` variables those processes inherit. The checks are the parent/child
links across those boundaries, and that tracing changes no result byte and no spec digest."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Response
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from nextstat_pro import observability
from nextstat_pro.db.models import Run, ScaleJob
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import ConfigError
from nextstat_pro.instance import Instance
from nextstat_pro.observability import ObservabilitySettings, from_env, metrics
from nextstat_pro.observability.http import instrument_app, metrics_response
from nextstat_pro.runs import RunRequest, run_task
from nextstat_pro.scale import SubmitRequest, coordinate, submit
from nextstat_pro.scale.coordinator import start_process
from nextstat_pro.scale.spec import JobSpec, parse_spec_uri, spec_uri, spec_uri_trace

from .conftest import shared

OTEL_VARS = [k for k in os.environ if k.startswith("OTEL_")]


def simple() -> InputFile:
    return InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))


def toys(shards: int = 3) -> SubmitRequest:
    return SubmitRequest("toys", "default", [simple()], params={"n_toys": "6"}, seed=11, shards=shards,
                         backend="local", workers=2)


def result_of(inst: Instance, run_id: str) -> bytes:
    with inst.db.transaction() as s:
        job = s.get(ScaleJob, run_id)
        assert job is not None and job.result_digest is not None
        return inst.store.get(job.result_digest)


# --- a real OTLP/HTTP receiver -------------------------------------------------------------

class Receiver:
    """Spans exported to it over OTLP/HTTP (protobuf), as plain dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    for rs in request.resource_spans:
                        service = {a.key: a.value.string_value for a in rs.resource.attributes}.get("service.name")
                        for ss in rs.scope_spans:
                            for sp in ss.spans:
                                receiver.spans.append({
                                    "name": sp.name, "trace_id": int.from_bytes(sp.trace_id, "big"),
                                    "span_id": int.from_bytes(sp.span_id, "big"),
                                    "parent_id": int.from_bytes(sp.parent_span_id, "big") or None,
                                    "service": service, "pid": None,
                                    "attributes": {a.key: _value(a.value) for a in sp.attributes}})
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def named(self, name: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until ``count`` spans called ``name`` have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [s for s in self.spans if s["name"] == name]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* variable from outside, and tracing reset before and after."""
    for key in OTEL_VARS:
        monkeypatch.delenv(key)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    observability.reset()
    yield
    observability.reset()


@pytest.fixture
def receiver(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A receiver, and the environment that makes every process started from here export to it."""
    r = Receiver()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    yield r
    observability.reset()  # flushed while the receiver still listens
    r.close()


@pytest.fixture
def memory(clean_env: None) -> InMemorySpanExporter:
    """This process's spans in memory (whatever the environment says for other processes)."""
    exporter = InMemorySpanExporter()
    observability.configure(exporter=exporter)
    return exporter


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


# --- settings ------------------------------------------------------------------------------

def test_the_environment_selects_the_exporter_and_tracing_is_off_without_it() -> None:
    assert from_env({}) == ObservabilitySettings()
    assert not from_env({}).tracing
    assert from_env({"OTEL_TRACES_EXPORTER": "otlp"}).exporters == ("otlp",)
    assert from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}).exporters == ("otlp",)
    assert from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}).exporters == ("otlp",)
    assert from_env({"OTEL_TRACES_EXPORTER": "console,otlp"}).exporters == ("console", "otlp")
    assert not from_env({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}).tracing
    assert not from_env({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}).tracing
    assert from_env({"PROMETHEUS_MULTIPROC_DIR": "/tmp/x"}).metrics
    with pytest.raises(ConfigError, match="zipkin"):
        from_env({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_a_grpc_exporter_is_refused_with_what_to_set(clean_env: None) -> None:
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"):
        observability.configure(env={"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def test_a_setting_the_installation_cannot_honour_turns_tracing_off_without_failing_a_run(
        clean_env: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with observability.span("first") as s:  # configures on first use: refused, logged, off
        s.set_attribute("k", "v")
    assert not observability.enabled()
    assert "tracing is off" in caplog.text and "zipkin" in caplog.text


def test_configure_is_idempotent_and_off_by_default(clean_env: None) -> None:
    assert not observability.enabled()
    assert observability.carrier() == {}
    with observability.span("nothing") as s:
        s.set_attribute("k", "v")  # a do-nothing span
    exporter = InMemorySpanExporter()
    observability.configure(exporter=exporter)
    provider = observability.provider()
    observability.configure(exporter=exporter)
    assert observability.provider() is provider  # the same arguments: nothing rebuilt
    with observability.span("a"):
        assert observability.carrier()["traceparent"].startswith("00-")
    assert [s.name for s in exporter.get_finished_spans()] == ["a"]


def test_an_explicit_environment_names_the_collector(clean_env: None) -> None:
    r = Receiver()
    try:
        observability.configure(env={"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": r.endpoint})
        with observability.span("explicit"):
            pass
        observability.flush()
        assert [s["name"] for s in r.named("explicit", 1)] == ["explicit"]
    finally:
        observability.reset()
        r.close()


# --- the spec URI carries the context beside the spec ------------------------------------

def test_the_spec_uri_carries_trace_context_without_touching_the_digest() -> None:
    digest = "sha256:" + "ab" * 32
    plain = spec_uri("file:///s", digest)
    assert plain == f"file:///s#{digest}" and spec_uri_trace(plain) == {}
    trace = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "tracestate": "k=v,x=a b#c&d"}
    uri = spec_uri("s3://bucket/pre#fix", digest, trace)
    assert parse_spec_uri(uri) == ("s3://bucket/pre#fix", digest)
    assert spec_uri_trace(uri) == trace
    assert " " not in uri and "'" not in uri and '"' not in uri  # safe in a submit file or a shell line
    with pytest.raises(ValueError):
        parse_spec_uri("file:///s#md5:00&traceparent=x")


# --- a 3-shard job: job -> shard across processes -----------------------------------------

def test_shard_spans_are_children_of_the_job_span_across_worker_processes(
        sqlite_instance: Instance, receiver: Receiver, memory: InMemorySpanExporter) -> None:
    # The local backend picks its start method (scale/backends/local.py): with tracing on, the
    # exporter's thread makes it spawn. Forcing fork here would deadlock a child whenever an
    # earlier test started the engine's thread pool in this process, which is why it does not fork.
    from nextstat_pro.scale.backends import local

    assert local.start_method() == "spawn"
    inst, ctx = sqlite_instance, sqlite_instance.context()
    run_id = submit(inst, ctx, toys(3))
    with observability.span("request"):
        assert coordinate(inst, ctx, run_id) == "succeeded"
    spans = memory.get_finished_spans()
    request, job = one(list(spans), "request"), one(list(spans), "nextstat.job")
    assert job.parent is not None and job.parent.span_id == request.context.span_id
    assert job.attributes is not None and job.attributes["nextstat.run_id"] == run_id
    assert job.attributes["nextstat.status"] == "succeeded"
    shards = receiver.named("nextstat.shard", 3)
    assert sorted(s["attributes"]["nextstat.shard"] for s in shards) == [0, 1, 2]
    for s in shards:
        assert s["trace_id"] == job.context.trace_id
        assert s["parent_id"] == job.context.span_id
        assert s["service"] == "nextstat-pro"
        assert s["attributes"]["nextstat.result_digest"].startswith("sha256:")
    # Every shard ran in a worker process: none of their spans is in this process's exporter.
    assert not [s for s in spans if s.name == "nextstat.shard"]


def test_tracing_changes_neither_the_spec_digest_nor_a_result_byte(sqlite_instance: Instance,
                                                                   receiver: Receiver) -> None:
    inst, ctx = sqlite_instance, sqlite_instance.context()
    observability.configure(ObservabilitySettings())  # off in this process and its workers' URIs
    untraced = submit(inst, ctx, toys(3))
    assert coordinate(inst, ctx, untraced) == "succeeded"
    observability.configure()  # on, from the receiver's environment
    traced = submit(inst, ctx, toys(3))
    with observability.span("request"):
        assert coordinate(inst, ctx, traced) == "succeeded"
    assert len(receiver.named("nextstat.shard", 3)) == 3
    assert result_of(inst, traced) == result_of(inst, untraced)
    with inst.db.transaction() as s:
        job = s.get(ScaleJob, traced)
        assert job is not None
        spec_bytes = inst.store.get(job.spec_digest)
    assert b"trace" not in spec_bytes
    assert JobSpec.model_validate_json(spec_bytes).digest == job.spec_digest


def test_a_worker_command_continues_the_trace_of_its_spec_uri(sqlite_instance: Instance, receiver: Receiver,
                                                              memory: InMemorySpanExporter) -> None:
    """What SLURM, HTCondor and Kubernetes run on a node: ``nextstat-pro worker run-shard``."""
    inst, ctx = sqlite_instance, sqlite_instance.context()
    run_id = submit(inst, ctx, toys(3))
    with inst.db.transaction() as s:
        job = s.get(ScaleJob, run_id)
        assert job is not None
        digest = job.spec_digest
    with observability.span("job on a cluster"):
        uri = spec_uri(inst.store.url, digest, observability.carrier())
    parent = one(list(memory.get_finished_spans()), "job on a cluster")
    out = subprocess.run([sys.executable, "-m", "nextstat_pro.cli.main", "worker", "run-shard", "--spec", uri,
                          "--shard", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (shard,) = receiver.named("nextstat.shard", 1)
    assert (shard["trace_id"], shard["parent_id"]) == (parent.context.trace_id, parent.context.span_id)
    assert shard["attributes"]["nextstat.result_digest"] == out.stdout.strip()


def test_a_coordinator_process_continues_the_callers_trace(sqlite_instance: Instance, receiver: Receiver,
                                                           memory: InMemorySpanExporter) -> None:
    """request (this process) -> job (a coordinator process, from its ticket) -> shards (its workers)."""
    inst, ctx = sqlite_instance, sqlite_instance.context()
    run_id = submit(inst, ctx, toys(3))
    with observability.span("request"):
        started = start_process(inst, ctx, run_id, detach=False)
    assert started.process is not None
    assert started.process.wait(timeout=180) == 0, started.log.read_text()
    request = one(list(memory.get_finished_spans()), "request")
    (job,) = receiver.named("nextstat.job", 1)
    assert (job["trace_id"], job["parent_id"]) == (request.context.trace_id, request.context.span_id)
    shards = receiver.named("nextstat.shard", 3)
    assert len(shards) == 3
    assert {(s["trace_id"], s["parent_id"]) for s in shards} == {(job["trace_id"], job["span_id"])}


# --- runs and metrics ----------------------------------------------------------------------

def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """A value as a scrape of ``/metrics`` shows it (parsed from the exposition text)."""
    body, content_type = metrics_response()
    assert content_type.startswith("text/plain; version=")
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name and s.labels == (labels or {}):
                return float(s.value)
    return 0.0


def test_a_run_has_a_span_and_counts_in_the_metrics(instance: Instance, memory: InMemorySpanExporter) -> None:
    metrics.watch_runs(instance)
    fits = sample("fits_total", {"task": "fit", "outcome": "ok"})
    durations = sample("fit_duration_seconds_count", {"task": "fit"})
    finished = sample("runs_finished_total", {"status": "succeeded"})
    appends = sample("audit_append_duration_seconds_count")
    outcome = run_task(instance, instance.context(), RunRequest("fit", "default", {}, None, [simple()]))
    assert outcome.status == "succeeded"
    run = one(list(memory.get_finished_spans()), "nextstat.run")
    assert run.attributes is not None
    assert (run.attributes["nextstat.run_id"], run.attributes["nextstat.status"]) == (outcome.run_id, "succeeded")
    assert sample("fits_total", {"task": "fit", "outcome": "ok"}) == fits + 1
    assert sample("fit_duration_seconds_count", {"task": "fit"}) == durations + 1
    assert sample("runs_finished_total", {"status": "succeeded"}) == finished + 1
    # run.created, run.started, artifact.stored x2, run.succeeded at least
    assert sample("audit_append_duration_seconds_count") >= appends + 5
    with instance.db.read() as s:
        in_db = s.scalar(select(func.count()).select_from(Run).where(Run.status == "succeeded"))
    assert sample("runs_by_status", {"status": "succeeded"}) == in_db >= 1
    assert sample("runs_by_status", {"status": "running"}) == 0  # every status is reported


def test_job_points_count_as_fits(sqlite_instance: Instance, clean_env: None) -> None:
    from nextstat_pro.scale.worker import compute, load_job

    metrics.enable()
    inst, ctx = sqlite_instance, sqlite_instance.context()
    run_id = submit(inst, ctx, SubmitRequest("scan", "default", [simple()], params={"points": "3"}, shards=1))
    with inst.db.transaction() as s:
        job = s.get(ScaleJob, run_id)
        assert job is not None
        digest = job.spec_digest
    before = sample("fits_total", {"task": "scan", "outcome": "ok"})
    compute(load_job(inst.store, digest), range(3))  # what a worker of this process computes
    assert sample("fits_total", {"task": "scan", "outcome": "ok"}) == before + 3
    assert sample("fit_duration_seconds_count", {"task": "scan"}) >= 3


def test_nothing_is_counted_or_imported_while_off(tmp_path: Path) -> None:
    """Off by default costs nothing: a run in a fresh interpreter without OTEL_* variables
    imports neither OpenTelemetry nor prometheus-client."""
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from nextstat_pro.instance import init_instance\n"
        "from nextstat_pro.engine import InputFile\n"
        "from nextstat_pro.runs import RunRequest, run_task\n"
        f"inst = init_instance(Path({str(tmp_path / 'home')!r}), admin='admin', password='test-password-123')\n"
        f"ws = InputFile.read('workspace', Path({str(shared('workspaces', 'simple_workspace.json'))!r}))\n"
        "assert run_task(inst, inst.context(), RunRequest('fit', 'default', {}, None, [ws])).status == 'succeeded'\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('opentelemetry', 'prometheus'))}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- HTTP ----------------------------------------------------------------------------------

def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/things/{thing}")
    def thing(thing: str) -> dict[str, str]:
        with observability.span("service op"):
            return {"thing": thing}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    def scrape() -> Response:
        body, content_type = metrics_response()
        return Response(body, media_type=content_type)

    instrument_app(app)
    return app


def test_each_request_has_a_span_and_a_latency_by_route_template(memory: InMemorySpanExporter) -> None:
    app = make_app()
    label = {"method": "GET", "route": "/api/v1/things/{thing}", "status": "200"}
    before = sample("http_request_duration_seconds_count", label)
    with TestClient(app) as client:
        assert client.get("/api/v1/things/a1").json() == {"thing": "a1"}
        assert client.get("/api/v1/things/b2").status_code == 200
        assert client.get("/no/such/path/x9").status_code == 404
        assert client.get("/healthz").status_code == 200
        scraped = client.get("/metrics")
    assert scraped.headers["content-type"] == metrics_response()[1]
    assert sample("http_request_duration_seconds_count", label) == before + 2
    assert sample("http_request_duration_seconds_count", {"method": "GET", "route": "<unmatched>",
                                                          "status": "404"}) >= 1
    assert "/no/such/path/x9" not in scraped.text  # raw paths never become label values
    spans = list(memory.get_finished_spans())
    servers = [s for s in spans if s.kind.name == "SERVER"]
    assert {s.attributes.get("http.route") for s in servers if s.attributes} >= {"/api/v1/things/{thing}"}
    assert not [s for s in servers if s.attributes and s.attributes.get("http.route") in ("/healthz", "/metrics")]
    assert not [s for s in spans if s.kind.name == "INTERNAL" and s.name.endswith(("http send", "http receive"))]
    inner = [s for s in spans if s.name == "service op"]
    assert len(inner) == 2
    request_ids = {s.context.span_id for s in servers}
    assert all(s.parent is not None and s.parent.span_id in request_ids for s in inner)


def test_an_untraced_server_runs_no_opentelemetry_middleware(clean_env: None) -> None:
    app = make_app()
    with TestClient(app) as client:
        assert client.get("/api/v1/things/z").status_code == 200
    assert [m.cls.__name__ for m in app.user_middleware] == ["RequestMetrics"]  # type: ignore[attr-defined]
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert json.loads(json.dumps(observability.carrier())) == {}
