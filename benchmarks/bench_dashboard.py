"""The dashboard's runs page at scale: server time of ``GET /runs`` (session check, the service
reads, rendering: the whole app, in process) with 0, 1 and 3 filters, first and deep pages.

    .venv/bin/python benchmarks/bench_dashboard.py [--runs 100000] [--repeat 30] [--pg URL] [--dir DIR] \
        [--browser] [--mlflow-python .venv-bench/bin/python]

The runs are loaded in bulk (rows as ``run_task`` writes them, without their audit events: the
page reads the runs table; the live stream reads the log's tail by primary key). Targets from
issue 18: p95 <= 50 ms at 10^5 runs on SQLite, <= 100 ms at 10^6 on PostgreSQL.

With ``--mlflow-python`` the same count of runs goes into an MLflow tracking server (its own
environment, on the same database server) and each case gets MLflow's row beside ours: the search
its UI's runs table sends with the same filters (benchmarks/mlflow_runs.py --dashboard).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from nextstat_pro.db.models import Project, Run, User
from nextstat_pro.identity.users import create_user, grant_role
from nextstat_pro.ids import new_id
from nextstat_pro.instance import Instance, init_instance
from nextstat_pro.runs.reads import _encode_cursor
from nextstat_pro.server.app import create_app
from nextstat_pro.web import mount

PASSWORD = "bench-password-123"
STATUSES = ("succeeded",) * 8 + ("failed", "cancelled")
TASKS = ("fit", "upper-limit", "scan", "ranking", "hypotest")


def load_runs(inst: Instance, n: int) -> None:
    create_user(inst, inst.context(), username="erin", printed_name="Erin Editor", password=PASSWORD)
    grant_role(inst, inst.context(), "erin", "default", "editor", "bench")
    with inst.db.transaction() as s:
        project = s.scalar(select(Project.id).where(Project.name == "default"))
        users = list(s.scalars(select(User.id).order_by(User.username)))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    chunk = 10_000
    for first in range(0, n, chunk):
        rows: list[dict[str, Any]] = []
        for i in range(first, min(n, first + chunk)):
            created = start + timedelta(seconds=i)
            status = STATUSES[i % len(STATUSES)]
            rows.append({"id": new_id(), "project_id": project, "task": TASKS[i % len(TASKS)], "status": status,
                         "params": {"grad_tol": "0.1"}, "seed": None, "patch": None, "created_by": users[i % 2],
                         "created_at": created, "started_at": created,
                         "finished_at": created + timedelta(milliseconds=200 + i % 700),
                         "fit_ok": (i % 13 != 0) if status == "succeeded" else None,
                         "manifest_digest": "sha256:" + "ab" * 32})
        with inst.db.transaction() as s:
            s.execute(insert(Run), rows)


def deep_cursor(inst: Instance, n: int) -> str:
    """The cursor of a page halfway down the list (what following 'Next page' would reach)."""
    with inst.db.transaction() as s:
        run = s.scalars(select(Run).order_by(Run.created_at.desc(), Run.id.desc()).offset(n // 2).limit(1)).one()
        return _encode_cursor(run)


def measure(client: Any, path: str, repeat: int) -> tuple[float, float]:
    client.get(path)  # warm: plans, caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--pg", help="PostgreSQL URL (a fresh, empty database)")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--browser", action="store_true",
                        help="also Chromium's navigation-to-load time and status-change-to-page latency")
    parser.add_argument("--mlflow-python", help="an environment with mlflow (.venv-bench/bin/python)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # starlette's TestClient warns about its httpx dependency
    from fastapi.testclient import TestClient

    home = Path(tempfile.mkdtemp(prefix="bench-dashboard-", dir=args.dir)) / "home"
    inst = init_instance(home, admin="admin", password=PASSWORD, printed_name="Ada Admin", db_url=args.pg)
    t0 = time.perf_counter()
    load_runs(inst, args.runs)
    print(f"{inst.db.dialect}: {args.runs} runs loaded in {time.perf_counter() - t0:.1f} s")
    deep = deep_cursor(inst, args.runs)
    cases = {
        "no filter": "/runs?project=default",
        "1 filter (status=failed)": "/runs?project=default&status=failed",
        "3 filters (status, task, author)": "/runs?project=default&status=succeeded&task=fit&author=erin",
    }
    theirs = mlflow_side(args.mlflow_python, args.runs, args.repeat, args.pg, home.parent) \
        if args.mlflow_python else {}
    with TestClient(create_app(inst, background=(), mounts=(mount,))) as client:
        client.post("/login", data={"username": "admin", "password": PASSWORD, "next": "/"})
        print(f"{'case':40} {'page':6} {'p50 ms':>8} {'p95 ms':>8}"
              + (f" | MLflow {theirs['mlflow']} search p50 / p95 ms" if theirs else ""))
        for name, path in cases.items():
            for which, suffix in (("first", ""), ("deep", f"&cursor={deep}")):
                p50, p95 = measure(client, path + suffix, args.repeat)
                other = theirs.get(f"{name}|{which}")
                print(f"{name:40} {which:6} {p50:8.1f} {p95:8.1f}"
                      + (f" | {other['p50 ms']:8.1f} {other['p95 ms']:8.1f}" if isinstance(other, dict) else ""))
    if args.browser:
        browser_figures(inst, args.repeat)
    inst.close()


def mlflow_side(python: str, runs: int, repeat: int, pg: str | None, workdir: Path) -> dict[str, Any]:
    """MLflow's row of each case, from benchmarks/mlflow_runs.py in its own environment."""
    import json
    import subprocess

    args = [python, str(Path(__file__).with_name("mlflow_runs.py")), "--dashboard", "--runs", str(runs),
            "--repeat", str(repeat), "--dir", str(workdir)] + (["--pg", pg] if pg else [])
    t0 = time.perf_counter()
    out = subprocess.run(args, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    theirs: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"MLflow {theirs['mlflow']} ({theirs['database']}): {runs} runs loaded in {theirs['fill_s']:.1f} s "
          f"(the side took {time.perf_counter() - t0:.0f} s)")
    return theirs


def _serve(inst: Instance) -> tuple[Any, str]:
    import socket
    import threading

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(inst, background=(), mounts=(mount,)), host="127.0.0.1",
                                           port=port, log_level="warning", timeout_graceful_shutdown=1))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def browser_figures(inst: Instance, repeat: int) -> None:
    """Chromium (Debian's, /usr/bin/chromium): navigation start to the load event of the runs page,
    and how long a run's status change takes to show on an open runs page (server-sent events)."""
    from playwright.sync_api import expect, sync_playwright

    from nextstat_pro.runs.records import create_run, transition

    server, url = _serve(inst)
    admin = inst.context()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            page = browser.new_page()
            page.goto(f"{url}/login?next=/runs")
            page.fill("#username", "admin")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/runs")
            loads = []
            for _ in range(repeat):
                page.goto(f"{url}/runs?project=default")
                loads.append(page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                                           " return n.loadEventEnd - n.startTime; })()"))
            loads.sort()
            print(f"page load (navigation to load event)         p50 {statistics.median(loads):6.1f} ms  "
                  f"p95 {loads[max(0, int(len(loads) * 0.95) - 1)]:6.1f} ms")
            delays = []
            for _ in range(min(repeat, 20)):
                with inst.db.transaction() as s:
                    run_id = create_run(s, admin, _default(s), "fit", {}, None, []).run_id
                page.goto(f"{url}/runs?project=default")
                page.wait_for_selector("#runs[data-live=connected]")
                cell = f'tr[data-run-id="{run_id}"] .status'
                with inst.db.transaction() as s:
                    run = s.get(Run, run_id)
                    assert run is not None
                    transition(s, admin, run, "default", "running")
                t0 = time.perf_counter()
                expect(page.locator(cell)).to_have_text("running", timeout=5000)
                delays.append((time.perf_counter() - t0) * 1000)
            delays.sort()
            print(f"status change to page (SSE)                  p50 {statistics.median(delays):6.1f} ms  "
                  f"p95 {delays[max(0, int(len(delays) * 0.95) - 1)]:6.1f} ms")
            browser.close()
    finally:
        server.should_exit = True


def _default(session: Any) -> Project:
    project = session.scalar(select(Project).where(Project.name == "default"))
    assert project is not None
    return project


if __name__ == "__main__":
    main()
