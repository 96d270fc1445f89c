"""Alerts: failure-to-delivery latency, dispatcher throughput, and its cost to run throughput.

1. Latency: ``--n`` failing runs (a task that raises, recorded through the real run path) spread over
   ``--spread`` seconds while the dispatcher runs (``run_dispatcher`` in a thread, as ``serve`` runs it;
   ``--process``: a separate ``nextstat-pro alerts run``); a webhook receiver on 127.0.0.1 timestamps
   each arrival. Latency is receipt time minus the run's ``run.failed`` event time (stamped just before
   its commit, so the figure slightly overstates commit-to-receipt). Target: p95 <= 1 s. The defaults of
   other tools are printed beside it as context, not measured here.
2. Throughput: ``--burst`` failing runs recorded with no dispatcher running, then one started: alerts
   delivered per second until the last is received.
3. Cost: ``--fits`` recorded fits (simple workspace), interleaved with and without a failure rule and a
   running dispatcher; throughput ratio of the medians (target >= 0.95).

    .venv/bin/python benchmarks/bench_alerts.py [--n 1000] [--spread 60] [--db URL] [--process]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from nextstat_pro.alerts import service
from nextstat_pro.alerts.dispatcher import run_dispatcher
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.engine import InputFile
from nextstat_pro.engine.params import FitParams
from nextstat_pro.engine.tasks import TASKS, TaskSpec
from nextstat_pro.instance import Instance, init_instance
from nextstat_pro.runs import RunRequest, run_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "workspaces"
CONTEXT_ROWS = [
    ("Grafana alerting, defaults", ">= 40 s", "10 s evaluation interval + 30 s group_wait before the first alert"),
    ("Dagster run-status sensor", ">= 30 s", "sensors tick every 30 s by default"),
    ("Airflow, SIGKILLed worker", "minutes", "failure callback skipped (apache/airflow#60858); zombie check ~5 min"),
]


def boom(subject: Any, params: Any, seed: int | None) -> dict[str, Any]:
    raise RuntimeError("benchmark task raised")


class _Server(ThreadingHTTPServer):
    # http.server's listen backlog is 5: concurrent senders beyond it wait a second for a SYN retry.
    request_queue_size = 128


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                now = time.time()
                run_id = json.loads(body)["data"]["details"].get("run_id", "")
                with outer.lock:
                    outer.arrivals.setdefault(run_id, now)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)


class Dispatching:
    """The dispatcher, in a thread of this process or as a separate `nextstat-pro alerts run`."""

    def __init__(self, inst: Instance, process: bool) -> None:
        self.stop, self.proc, self.thread = threading.Event(), None, None
        if process:
            cli = Path(sys.executable).with_name("nextstat-pro")
            self.proc = subprocess.Popen([str(cli), "--home", str(inst.home), "alerts", "run"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            self.thread = threading.Thread(target=run_dispatcher, args=(inst, self.stop, 0.1), daemon=True)
            self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()


def failing_run(inst: Instance, ctx: Any, ws: InputFile) -> str:
    return run_task(inst, ctx, RunRequest("bench-boom", "default", {}, None, [ws])).run_id


def wait_for(receiver: Receiver, n: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while receiver.count() < n and time.monotonic() < deadline:
        time.sleep(0.01)
    if receiver.count() < n:
        raise SystemExit(f"only {receiver.count()} of {n} alerts arrived within {timeout_s:.0f} s")


def failed_at(inst: Instance) -> dict[str, float]:
    with inst.db.transaction() as s:
        return {t: datetime.fromisoformat(ts).timestamp() for t, ts in s.execute(
            select(AuditEvent.target_id, AuditEvent.ts).where(AuditEvent.action == "run.failed"))}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(inst: Instance, ws: InputFile, n: int, spread: float, process: bool) -> None:
    receiver = Receiver()
    ctx = inst.context()
    service.add_channel(inst, ctx, "default", "bench", webhook=receiver.url)
    service.add_rule(inst, ctx, "default", "failures", "failed", "bench")
    dispatching = Dispatching(inst, process)
    try:
        start = time.monotonic()
        for i in range(n):
            target = start + spread * i / n
            if (pause := target - time.monotonic()) > 0:
                time.sleep(pause)
            failing_run(inst, ctx, ws)
        wait_for(receiver, n, 120)
    finally:
        dispatching.close()
    times = failed_at(inst)
    lat = [receiver.arrivals[r] - times[r] for r in receiver.arrivals]
    print(f"failure-to-receipt latency, {n} failing runs over {spread:.0f} s "
          f"({'separate process' if process else 'dispatcher thread'}):")
    print(f"  p50 {statistics.median(lat) * 1e3:8.1f} ms   p95 {pct(lat, 0.95) * 1e3:8.1f} ms   "
          f"max {max(lat) * 1e3:8.1f} ms   (target p95 <= 1000 ms)")
    print("  context (documented defaults, not measured here):")
    for name, figure, why in CONTEXT_ROWS:
        print(f"    {name:<30}{figure:>10}   {why}")


def throughput(inst: Instance, ws: InputFile, burst: int, process: bool) -> None:
    receiver = Receiver()
    ctx = inst.context()
    service.add_channel(inst, ctx, "default", "burst", webhook=receiver.url)
    service.add_rule(inst, ctx, "default", "burst", "failed", "burst")
    for _ in range(burst):
        failing_run(inst, ctx, ws)
    t0 = time.perf_counter()
    dispatching = Dispatching(inst, process)
    try:
        wait_for(receiver, burst, 300)
    finally:
        dispatching.close()
    elapsed = time.perf_counter() - t0
    print(f"dispatcher throughput: {burst} alerts evaluated and delivered in {elapsed:.2f} s = "
          f"{burst / elapsed:.0f} alerts/s")


def cost(inst: Instance, fits: int, process: bool) -> None:
    ctx = inst.context()
    ws = InputFile.read("workspace", SHARED / "simple_workspace.json")
    receiver = Receiver()
    service.add_channel(inst, ctx, "default", "cost", webhook=receiver.url)

    def timed(k: int) -> list[float]:
        out = []
        for _ in range(k):
            t0 = time.perf_counter()
            assert run_task(inst, ctx, RunRequest("fit", "default", {}, None, [ws])).status == "succeeded"
            out.append(time.perf_counter() - t0)
        return out

    without, with_rules = [], []
    service.add_rule(inst, ctx, "default", "cost-failures", "failed", "cost")
    service.add_rule(inst, ctx, "default", "cost-quality", "fit-quality", "cost")
    for _ in range(5):  # interleaved blocks, so machine noise hits both alike
        service_state(inst, enabled=False)
        without += timed(fits // 5)
        service_state(inst, enabled=True)
        dispatching = Dispatching(inst, process)
        try:
            with_rules += timed(fits // 5)
        finally:
            dispatching.close()
    a, b = statistics.median(without), statistics.median(with_rules)
    print(f"run throughput with rules active and the dispatcher running: median {b * 1e3:.2f} ms per recorded "
          f"fit against {a * 1e3:.2f} ms without; ratio {a / b:.3f} (target >= 0.95)")


def service_state(inst: Instance, *, enabled: bool) -> None:
    """Rules on or off between blocks, directly (the benchmark's own switch; not an operation users have)."""
    with inst.db.transaction() as s:
        s.execute(text("UPDATE alert_rules SET enabled = :e WHERE name LIKE 'cost-%'"), {"e": enabled})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".", help="where the benchmark's instance lives")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temp home)")
    parser.add_argument("--n", type=int, default=1000, help="failing runs for the latency measurement")
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which they are spread")
    parser.add_argument("--burst", type=int, default=1000, help="alerts for the throughput measurement")
    parser.add_argument("--fits", type=int, default=200, help="recorded fits for the cost measurement")
    parser.add_argument("--process", action="store_true", help="run the dispatcher as `nextstat-pro alerts run`")
    parser.add_argument("--only", choices=("latency", "throughput", "cost"), help="one measurement only")
    args = parser.parse_args()
    TASKS["bench-boom"] = TaskSpec("bench-boom", "histfactory", FitParams, boom, "raises")
    ws = InputFile.read("workspace", SHARED / "simple_workspace.json")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-") as tmp:
        for section in (0, 1, 2):
            if args.only is not None and ("latency", "throughput", "cost")[section] != args.only:
                continue
            inst = init_instance(Path(tmp) / f"home{section}", admin="bench", password="bench-password-1",
                                 db_url=args.db and _fresh(args.db, section))
            try:
                print(f"database: {inst.db.dialect}")
                if section == 0:
                    latency(inst, ws, args.n, args.spread, args.process)
                elif section == 1:
                    throughput(inst, ws, args.burst, args.process)
                else:
                    cost(inst, args.fits, args.process)
            finally:
                inst.close()


def _fresh(url: str, section: int) -> str:
    """A PostgreSQL URL is used as the server: each section gets a fresh database on it."""
    import uuid

    import psycopg

    name = f"nsp_bench_alerts_{section}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


if __name__ == "__main__":
    main()
