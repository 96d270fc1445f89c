"""HTTP API figures at 10^5 runs: requests/s and p50/p95/p99 per route under 32 concurrent
clients, the server's cost over calling the service directly, and MLflow's tracking server on the
same runs and the same load (its ``runs/search`` with two filters).

    .venv/bin/python benchmarks/bench_server.py --runs 100000 [--pg URL [--pg-workers 2]] \
        [--mlflow-python .venv-bench/bin/python]

The runs are written straight into the runs table (10^5 runs through the engine would take the
benchmark's hour; the list reads only those rows); one real run and one registry version give
the detail and resolve routes something to read. The server is ``nextstat-pro serve`` in its own
process (on PostgreSQL ``--pg-workers`` processes, MLflow's server as many), and each route is
loaded for a second before it is timed. "The server adds" is timed with the standard library's
http.client (httpx's own response parsing, ~0.5 ms on a runs page, is printed beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from http_load import load, pct, sequential_p50, sequential_p50_stdlib, wait_until_up
from sqlalchemy import insert, select

from nextstat_pro.db.models import Project, Run, User
from nextstat_pro.engine import InputFile
from nextstat_pro.hub import service as hub
from nextstat_pro.ids import new_id
from nextstat_pro.instance import Instance, init_instance
from nextstat_pro.runs import RunRequest, run_task
from nextstat_pro.runs.listing import RunFilter
from nextstat_pro.runs.reads import _encode_cursor, list_runs_page

PASSWORD = "bench-password-123"
WORKSPACE = Path(__file__).resolve().parents[2] / "shared/workspaces/simple_workspace.json"
STATUSES = ["succeeded"] * 8 + ["failed", "running"]
TASKS = ["fit", "fit", "upper-limit", "scan", "hypotest"]


def fill(inst: Instance, runs: int) -> None:
    rng = random.Random(7)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with inst.db.transaction() as s:
        project = s.scalar(select(Project).where(Project.name == "default"))
        admin = s.scalar(select(User).where(User.username == "admin"))
        assert project is not None and admin is not None
        rows: list[dict[str, Any]] = []
        for i in range(runs):
            status = rng.choice(STATUSES)
            created = t0 + timedelta(seconds=i)
            rows.append({"id": new_id(), "project_id": project.id, "task": TASKS[i % len(TASKS)], "status": status,
                         "params": {"seed": i}, "seed": i, "patch": None, "created_by": admin.id,
                         "created_at": created, "started_at": created,
                         "finished_at": created + timedelta(seconds=1) if status != "running" else None,
                         "error": "engine failed" if status == "failed" else None,
                         "fit_ok": status == "succeeded", "manifest_digest": None, "envelope_digest": None,
                         "lease_until": None})
            if len(rows) == 10_000:
                s.execute(insert(Run), rows)
                rows = []
        if rows:
            s.execute(insert(Run), rows)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its live descendants (``--workers N``'s processes)
    have used (/proc, Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # gone since its parent listed it
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:  # an idle request thread that ended meanwhile
            continue
    return own + sum(cpu_seconds(c) for c in children)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ours(db_url: str, runs: int, clients: int, seconds: float, workdir: str, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".bench-server-") as tmp:
        home = Path(tmp) / "home"
        inst = init_instance(home, admin="admin", password=PASSWORD, printed_name="Bench Admin", db_url=db_url)
        t0 = time.perf_counter()
        fill(inst, runs)
        fill_s = time.perf_counter() - t0
        ctx = inst.context("admin")
        real = run_task(inst, ctx, RunRequest("fit", "default", {}, None, [InputFile.read("workspace", WORKSPACE)]))
        hub.push(inst, ctx, "default", "model", "simple", InputFile.read("workspace", WORKSPACE), semver="1.0.0")
        f = RunFilter(status="succeeded", task="fit")
        with inst.db.read() as s:  # a cursor half way down the filtered list
            deep = s.scalars(select(Run).where(Run.status == "succeeded", Run.task == "fit")
                             .order_by(Run.created_at.desc(), Run.id.desc()).offset(runs // 5).limit(1)).one()
        cursor = _encode_cursor(deep)
        direct = []
        for _ in range(200):
            t = time.perf_counter()
            list_runs_page(inst, ctx, "default", f, 50)
            direct.append(time.perf_counter() - t)
        inst.close()

        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "nextstat_pro.cli", "--home", str(home), "serve", "--port",
                                   str(port), "--workers", str(workers), "--log-level", "warning"],
                                  stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url + "/healthz", server, "serve", 60)
            token = httpx.post(url + "/api/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {token['token']}"}
            runs_url = f"{url}/api/v1/projects/default/runs"
            resolve_url = f"{url}/api/v1/projects/default/hub/model/resolve"
            audit_q = {"action": "run.", "limit": 50}
            routes = {
                "runs list (2 filters, first page)":
                    lambda i: ("GET", runs_url, {"params": {"status": "succeeded", "task": "fit"}}),
                "runs list (2 filters, deep page)":
                    lambda i: ("GET", runs_url, {"params": {"status": "succeeded", "task": "fit", "cursor": cursor}}),
                "run detail": lambda i: ("GET", f"{url}/api/v1/runs/{real.run_id}", {}),
                "registry resolve": lambda i: ("GET", resolve_url, {"params": {"ref": "simple@1.0.0"}}),
                "audit query": lambda i: ("GET", f"{url}/api/v1/audit/events", {"params": audit_q}),
                # For scale: the framework with no work (no credential, no database).
                "/healthz (no work)": lambda i: ("GET", f"{url}/healthz", {}),
            }
            for name, make in routes.items():  # each route answers before it is timed
                method, u, kw = make(0)
                r = httpx.request(method, u, headers=headers, **kw)
                if r.status_code != 200:
                    raise SystemExit(f"{name}: {r.status_code} {r.text[:200]}")
            out: dict[str, Any] = {"database": "postgresql" if db_url.startswith("postgresql") else "sqlite",
                                   "runs": runs, "fill_s": fill_s, "direct p50 ms": pct(direct, 0.5),
                                   "first page sequential p50 ms": sequential_p50_stdlib(
                                       routes["runs list (2 filters, first page)"], 300, headers),
                                   "first page sequential httpx p50 ms": sequential_p50(
                                       routes["runs list (2 filters, first page)"], 300, headers)}
            for name, make in routes.items():
                load(make, clients, 1.0, headers)  # warm-up under the same load, not timed
                cpu0 = cpu_seconds(server.pid)
                out[name] = load(make, clients, seconds, headers)
                # The server's own CPU per request: with one process (one core for Python) its
                # inverse bounds the requests/s, and clients / requests/s is then the latency.
                out[name]["server cpu ms"] = (cpu_seconds(server.pid) - cpu0) / out[name]["requests"] * 1e3
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    return out


def mlflow_side(python: str, runs: int, clients: int, seconds: float, pg: str | None, workdir: str,
                workers: int) -> dict[str, Any]:
    args = [python, str(Path(__file__).with_name("mlflow_runs.py")), "--runs", str(runs), "--clients", str(clients),
            "--workers", str(workers),
            "--seconds", str(seconds), "--dir", workdir] + (["--pg", pg] if pg else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    theirs: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return theirs


def show(mine: dict[str, Any], theirs: dict[str, Any] | None) -> None:
    db = mine["database"]
    print(f"[{db}] {mine['runs']:,} runs (filled in {mine['fill_s']:.1f} s); one client: service call p50 "
          f"{mine['direct p50 ms']:.2f} ms, over HTTP p50 {mine['first page sequential p50 ms']:.2f} ms "
          f"(+{mine['first page sequential p50 ms'] - mine['direct p50 ms']:.2f} ms: the server's; http.client) "
          f"or {mine['first page sequential httpx p50 ms']:.2f} ms with httpx's own parsing")
    for name, fig in mine.items():
        if not isinstance(fig, dict):
            continue
        line = (f"[{db}] {name:<36} {fig['req/s']:8.1f} req/s  p50 {fig['p50 ms']:7.1f}  p95 {fig['p95 ms']:7.1f}  "
                f"p99 {fig['p99 ms']:7.1f} ms  errors {fig['errors']:.0f}  "
                f"server CPU {fig['server cpu ms']:.2f} ms/req, load generator's {fig['client cpu ms']:.2f}")
        other = theirs.get(name) if theirs else None
        if isinstance(other, dict):
            line += (f" | MLflow {other['req/s']:7.1f} req/s p95 {other['p95 ms']:7.1f} ms: "
                     f"{fig['req/s'] / other['req/s']:.1f}x the requests/s")
        print(line, flush=True)
    if theirs:
        print(f"[{db}] MLflow {theirs['mlflow']} ({theirs['database']}): one client p50 "
              f"{theirs['first page sequential p50 ms']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pg", default=None, help="also on this PostgreSQL server (a fresh database)")
    parser.add_argument("--pg-workers", type=int, default=1,
                        help="server processes on PostgreSQL, ours and MLflow's alike (a 2-core machine: 1 or 2)")
    parser.add_argument("--mlflow-python", default=None, help="an environment with mlflow (.venv-bench/bin/python)")
    parser.add_argument("--dir", default=".")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    databases: list[tuple[str, str | None]] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-sqlite-") as tmp:
        databases.append((f"sqlite:///{tmp}/bench.db", None))
        if args.pg:
            name = "bench_" + new_id().replace("-", "")[:12]
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            databases.append((args.pg.rsplit("/", 1)[0] + "/" + name, args.pg))
        for db_url, pg in databases:
            workers = args.pg_workers if pg else 1  # SQLite: one process (serve refuses more)
            mine = ours(db_url, args.runs, args.clients, args.seconds, args.dir, workers)
            show(mine, None)
            if args.mlflow_python:
                show(mine, mlflow_side(args.mlflow_python, args.runs, args.clients, args.seconds, pg, args.dir,
                                             workers))


if __name__ == "__main__":
    main()
