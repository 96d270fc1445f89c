"""The MLflow side of bench_server.py: an MLflow tracking server holding N runs, and its
``runs/search`` with two filters under the same closed-loop load as ours. It runs in its own
environment (.venv-bench: mlflow 3.17.2, psycopg2 for --pg), started by bench_server.py:

    .venv-bench/bin/python benchmarks/mlflow_runs.py --runs 100000 --clients 32 --seconds 10 [--pg URL]

The runs are written into MLflow's own tables with its SQLAlchemy models (its API would need
~10^5 calls to fill; the rows are what those calls write: a run, its status, tags and params),
then ``mlflow server`` serves them; its search is measured with the filter
``attributes.status = 'FINISHED' and tags.task = 'fit'``, newest first, 50 per page (first page,
and a deep page through its page token). Prints one JSON object.

With ``--dashboard`` (bench_dashboard.py's side) it times instead, one request at a time, the search
the MLflow UI's runs table sends (``ajax-api``) with the dashboard benchmark's filters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_load import load, pct, sequential_p50, wait_until_up  # noqa: E402

STATUSES = ["FINISHED"] * 8 + ["FAILED", "RUNNING"]
TASKS = ["fit", "fit", "upper-limit", "scan", "hypotest"]


USERS = ("admin", "erin")
# The dashboard benchmark's cases (bench_dashboard.py --mlflow-python): MLflow's search with the
# filters of ours, each with the share of runs it keeps (counted while filling) for its deep page.
CASES = {
    "no filter": ("", lambda status, task, user: True),
    "1 filter (status=failed)": ("attributes.status = 'FAILED'", lambda status, task, user: status == "FAILED"),
    "3 filters (status, task, author)": (
        "attributes.status = 'FINISHED' and tags.task = 'fit' and attributes.user_id = 'erin'",
        lambda status, task, user: status == "FINISHED" and task == "fit" and user == "erin"),
}


def fill(db_url: str, runs: int, artifact_root: str, matches: dict[str, int] | None = None) -> str:
    """``runs`` runs in one experiment, written in batches; returns the experiment id.
    ``matches`` receives how many runs each of ``CASES`` keeps."""
    from mlflow.store.tracking.dbmodels.models import SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(db_url, artifact_root)
    exp_id = store.create_experiment("bench")
    rng = random.Random(7)
    t0 = 1_700_000_000_000
    # Core INSERTs of the rows its ORM objects would write (bulk_save_objects took ~3 ms a run:
    # most of an hour for 10^6).
    with store.ManagedSessionMaker() as session:
        rows: dict[Any, list[dict[str, object]]] = {SqlRun.__table__: [], SqlTag.__table__: [], SqlParam.__table__: []}

        def flush() -> None:
            for table, batch in rows.items():
                if batch:
                    session.execute(table.insert(), batch)
                    batch.clear()
            session.commit()

        for i in range(runs):
            run_id = uuid.uuid4().hex
            status = rng.choice(STATUSES)
            task = TASKS[i % len(TASKS)]
            user = USERS[i % 2]
            if matches is not None:
                for name, (_, keeps) in CASES.items():
                    matches[name] = matches.get(name, 0) + keeps(status, task, user)
            start = t0 + i * 1000
            rows[SqlRun.__table__].append({
                "run_uuid": run_id, "name": f"run-{i}", "source_type": "LOCAL", "source_name": "bench",
                "entry_point_name": "", "user_id": user, "status": status, "start_time": start,
                "end_time": start + 500, "source_version": "", "lifecycle_stage": "active",
                "artifact_uri": f"{artifact_root}/{run_id}", "experiment_id": int(exp_id)})
            rows[SqlTag.__table__] += [{"key": "task", "value": task, "run_uuid": run_id},
                                       {"key": "mlflow.user", "value": user, "run_uuid": run_id}]
            rows[SqlParam.__table__].append({"key": "seed", "value": str(i), "run_uuid": run_id})
            if len(rows[SqlRun.__table__]) >= 10_000:
                flush()
        flush()
    return str(exp_id)


def fresh_pg(server: str) -> str:
    import psycopg2

    server = "postgresql://" + server.split("://", 1)[1]
    name = f"mlflow_runs_{int(time.time() * 1000)}"
    conn = psycopg2.connect(server)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return "postgresql+psycopg2://" + server.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def serving(db: str, tmp: str, workers: int) -> Iterator[str]:
    """``mlflow server`` on ``db``, answering /health; yields its URL."""

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", db,
                               "--default-artifact-root", f"{tmp}/artifacts", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", str(workers)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/health", server, "mlflow server", 120)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def dashboard_cases(url: str, exp_id: str, runs: int, matches: dict[str, int], repeat: int) -> dict[str, object]:
    """What the MLflow UI's runs table asks its server (``ajax-api/2.0/mlflow/runs/search``, newest
    first, 50 rows) for each of ``CASES``, first page and a page half way down the filtered runs
    (by its page token: an offset), one request at a time: p50 and p95 in ms."""
    import httpx
    from mlflow.utils.search_utils import SearchUtils

    search = f"{url}/ajax-api/2.0/mlflow/runs/search"
    out: dict[str, object] = {}
    with httpx.Client(timeout=300) as client:
        for name, (flt, _) in CASES.items():
            body: dict[str, object] = {"experiment_ids": [exp_id], "filter": flt, "max_results": 50,
                                       "order_by": ["attributes.start_time DESC"]}
            token = SearchUtils.create_page_token(matches[name] // 2).decode()
            for which, extra in (("first", {}), ("deep", {"page_token": token})):
                request = {**body, **extra}
                first = client.post(search, json=request)
                first.raise_for_status()
                if not first.json().get("runs"):
                    raise SystemExit(f"MLflow search {name} {which}: no runs")
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    client.post(search, json=request).raise_for_status()
                    times.append(time.perf_counter() - t0)
                out[f"{name}|{which}"] = {"p50 ms": pct(times, 0.5), "p95 ms": pct(times, 0.95)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pg", default=None)
    parser.add_argument("--dir", default=".")
    parser.add_argument("--dashboard", action="store_true",
                        help="bench_dashboard.py's cases, one request at a time, instead of the load")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    import mlflow

    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-mlflow-") as tmp:
        db = fresh_pg(args.pg) if args.pg else f"sqlite:///{tmp}/mlflow.db"
        t0 = time.perf_counter()
        matches: dict[str, int] = {}
        exp_id = fill(db, args.runs, f"{tmp}/artifacts", matches)
        fill_s = time.perf_counter() - t0
        out: dict[str, object] = {"mlflow": mlflow.__version__, "database": "postgresql" if args.pg else "sqlite",
                                  "runs": args.runs, "fill_s": fill_s}
        with serving(db, tmp, args.workers) as url:
            if args.dashboard:
                out.update(dashboard_cases(url, exp_id, args.runs, matches, args.repeat))
            else:
                out.update(server_load(url, exp_id, args.runs, args.clients, args.seconds))
    print(json.dumps(out))


def server_load(url: str, exp_id: str, runs: int, clients: int, seconds: float) -> dict[str, object]:
    """bench_server.py's side: the search with two filters under the closed-loop load."""
    import httpx

    body = {"experiment_ids": [exp_id], "filter": "attributes.status = 'FINISHED' and tags.task = 'fit'",
            "max_results": 50, "order_by": ["attributes.start_time DESC"]}
    search = f"{url}/api/2.0/mlflow/runs/search"
    # The deep page at the depth of ours (runs // 5 into the filtered list), by MLflow's
    # own page-token function (an offset: its search reads and skips the rows before it).
    from mlflow.utils.search_utils import SearchUtils

    token = SearchUtils.create_page_token(runs // 5).decode()
    deep = httpx.post(search, json={**body, "page_token": token}, timeout=120).json()
    if not deep.get("runs"):
        raise SystemExit("the deep page is empty")

    def first_page(_i: int) -> tuple[str, str, dict[str, object]]:
        return "POST", search, {"json": body}

    def deep_page(_i: int) -> tuple[str, str, dict[str, object]]:
        return "POST", search, {"json": {**body, "page_token": token}}

    out: dict[str, object] = {"first page sequential p50 ms": sequential_p50(first_page, 50)}
    for name, request in (("first page", first_page), ("deep page", deep_page)):
        load(request, clients, 1.0)  # warm-up under the same load, not timed (as bench_server.py's)
        out[f"runs list (2 filters, {name})"] = load(request, clients, seconds)
    return out


if __name__ == "__main__":
    main()
