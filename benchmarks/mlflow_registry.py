"""The MLflow side of bench_hub.py: the same registry operations on MLflow's model registry
(SQLite backend, or PostgreSQL with --pg), printed as one JSON object. It runs in an
environment of its own, since MLflow is not a project dependency and its pins conflict with ours:

    python -m venv .venv-bench && .venv-bench/bin/pip install mlflow==3.17.2 psycopg2-binary==2.9.13
    .venv-bench/bin/python benchmarks/mlflow_registry.py --models 100 --versions 100 [--pg URL]

Only the standard library, mlflow and (for --pg) psycopg2, MLflow's PostgreSQL driver, are
imported here; tags and samples follow bench_hub.py.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time


def tags(m: int, v: int) -> list[str]:
    return [f"analysis=a{m % 20}", f"campaign=c{v % 10}", f"status=s{(m + v) % 4}"]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3


def fresh_database(server: str) -> str:
    """A new, empty database on the PostgreSQL server ``server`` (a URL); its URL for MLflow,
    which reaches PostgreSQL through psycopg2."""
    import psycopg2

    server = "postgresql://" + server.split("://", 1)[1]
    name = f"mlflow_{int(time.time() * 1000)}_{random.randrange(1 << 20)}"
    conn = psycopg2.connect(server)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return "postgresql+psycopg2://" + server.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name


def measure(models: int, versions: int, samples: int, workdir: str, pg: str | None,
            search_samples: int) -> dict[str, float]:
    import mlflow
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(dir=workdir, prefix=".bench-") as tmp:
        mlflow.set_tracking_uri(fresh_database(pg) if pg else f"sqlite:///{tmp}/mlflow.db")
        client = MlflowClient()
        start = time.perf_counter()
        for m in range(models):
            client.create_registered_model(f"model-{m}")
            for v in range(versions):
                client.create_model_version(f"model-{m}", f"file://{tmp}/m{m}/v{v}",
                                            tags=dict(t.split("=") for t in tags(m, v)))
        rate = models * versions / (time.perf_counter() - start)
        rng = random.Random(1)
        get, search = [], []
        for _ in range(samples):
            t0 = time.perf_counter()
            client.get_model_version(f"model-{rng.randrange(models)}", str(rng.randrange(versions) + 1))
            get.append(time.perf_counter() - t0)
        for _ in range(search_samples):
            m, v = rng.randrange(models), rng.randrange(versions)
            flt = " and ".join(f"tags.`{k}` = '{val}'" for k, val in (t.split("=") for t in tags(m, v)))
            t0 = time.perf_counter()
            found = client.search_model_versions(flt, max_results=1000)
            search.append(time.perf_counter() - t0)
            assert found
        return {"versions": models * versions, "mlflow": mlflow.__version__,
                "database": "PostgreSQL" if pg else "SQLite", "push/s": rate,
                "resolve p50": pct(get, .5), "resolve p95": pct(get, .95),
                "search p50": pct(search, .5), "search p95": pct(search, .95)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--dir", default=".")
    parser.add_argument("--search-samples", type=int, default=None, help="default: a tenth of --samples")
    parser.add_argument("--pg", default=None, help="a PostgreSQL server URL: MLflow's store in a new database on it")
    args = parser.parse_args()
    search = args.search_samples if args.search_samples is not None else args.samples // 10
    print(json.dumps(measure(args.models, args.versions, args.samples, args.dir, args.pg, search)))


if __name__ == "__main__":
    main()
