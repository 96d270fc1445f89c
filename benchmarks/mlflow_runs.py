"""The MLflow side of bench_server.py: an MLflow tracking server holding N runs, and its
``runs/search`` with two filters under the same closed-loop load as ours. It runs in its own
environment (.venv-bench: mlflow 3.17.2, psycopg2 for --pg), started by bench_server.py:

    .venv-bench/bin/python benchmarks/mlflow_runs.py --runs 100000 --clients 32 --seconds 10 [--pg URL]

The runs are written into MLflow's own tables with its SQLAlchemy models (its API would need
~10^5 calls to fill; the rows are what those calls write: a run, its status, tags and params),
then ``mlflow server`` serves them; its search is measured with the filter
``attributes.status = 'FINISHED' and tags.task = 'fit'``, newest first, 50 per page (first page,
and a deep page through its page token). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_load import load, sequential_p50  # noqa: E402

STATUSES = ["FINISHED"] * 8 + ["FAILED", "RUNNING"]
TASKS = ["fit", "fit", "upper-limit", "scan", "hypotest"]


def fill(db_url: str, runs: int, artifact_root: str) -> str:
    """``runs`` runs in one experiment, written in batches; returns the experiment id."""
    from mlflow.store.tracking.dbmodels.models import SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(db_url, artifact_root)
    exp_id = store.create_experiment("bench")
    rng = random.Random(7)
    t0 = 1_700_000_000_000
    with store.ManagedSessionMaker() as session:
        batch: list[object] = []
        for i in range(runs):
            run_id = uuid.uuid4().hex
            status = rng.choice(STATUSES)
            task = TASKS[i % len(TASKS)]
            start = t0 + i * 1000
            batch.append(SqlRun(run_uuid=run_id, name=f"run-{i}", source_type="LOCAL", source_name="bench",
                                entry_point_name="", user_id="admin", status=status, start_time=start,
                                end_time=start + 500, source_version="", lifecycle_stage="active",
                                artifact_uri=f"{artifact_root}/{run_id}", experiment_id=int(exp_id)))
            batch.append(SqlTag(key="task", value=task, run_uuid=run_id))
            batch.append(SqlTag(key="mlflow.user", value="admin", run_uuid=run_id))
            batch.append(SqlParam(key="seed", value=str(i), run_uuid=run_id))
            if len(batch) >= 20_000:
                session.bulk_save_objects(batch)
                session.commit()
                batch = []
        session.bulk_save_objects(batch)
        session.commit()
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pg", default=None)
    parser.add_argument("--dir", default=".")
    args = parser.parse_args()
    import mlflow

    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-mlflow-") as tmp:
        db = fresh_pg(args.pg) if args.pg else f"sqlite:///{tmp}/mlflow.db"
        t0 = time.perf_counter()
        exp_id = fill(db, args.runs, f"{tmp}/artifacts")
        fill_s = time.perf_counter() - t0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", db,
                                   "--default-artifact-root", f"{tmp}/artifacts", "--host", "127.0.0.1",
                                   "--port", str(port), "--workers", str(args.workers)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            import httpx

            deadline = time.time() + 120
            while True:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("mlflow server did not start")
                time.sleep(0.5)
            body = {"experiment_ids": [exp_id], "filter": "attributes.status = 'FINISHED' and tags.task = 'fit'",
                    "max_results": 50, "order_by": ["attributes.start_time DESC"]}
            search = f"{url}/api/2.0/mlflow/runs/search"
            # The deep page at the depth of ours (runs // 5 into the filtered list), by MLflow's
            # own page-token function (an offset: its search reads and skips the rows before it).
            from mlflow.utils.search_utils import SearchUtils

            token = SearchUtils.create_page_token(args.runs // 5).decode()
            deep = httpx.post(search, json={**body, "page_token": token}, timeout=120).json()
            if not deep.get("runs"):
                raise SystemExit("the deep page is empty")

            def first_page(_i: int) -> tuple[str, str, dict[str, object]]:
                return "POST", search, {"json": body}

            def deep_page(_i: int) -> tuple[str, str, dict[str, object]]:
                return "POST", search, {"json": {**body, "page_token": token}}

            out: dict[str, object] = {"mlflow": mlflow.__version__, "database": "postgresql" if args.pg else "sqlite",
                                      "runs": args.runs, "fill_s": fill_s,
                                      "first page sequential p50 ms": sequential_p50(first_page, 50)}
            out["runs list (2 filters, first page)"] = load(first_page, args.clients, args.seconds)
            out["runs list (2 filters, deep page)"] = load(deep_page, args.clients, args.seconds)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
