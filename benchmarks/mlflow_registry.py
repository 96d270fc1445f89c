"""The MLflow side of bench_hub.py: the same registry operations on MLflow's model registry
(SQLite backend), printed as one JSON object. It runs in an environment of its own, since
MLflow is not a project dependency and its pins conflict with ours:

    python -m venv .venv-bench && .venv-bench/bin/pip install mlflow==3.17.2
    .venv-bench/bin/python benchmarks/mlflow_registry.py --models 100 --versions 100

Only the standard library and mlflow are imported here; tags and samples follow bench_hub.py.
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


def measure(models: int, versions: int, samples: int, workdir: str) -> dict[str, float]:
    import mlflow
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(dir=workdir, prefix=".bench-") as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
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
        for _ in range(samples // 10):
            m, v = rng.randrange(models), rng.randrange(versions)
            flt = " and ".join(f"tags.`{k}` = '{val}'" for k, val in (t.split("=") for t in tags(m, v)))
            t0 = time.perf_counter()
            found = client.search_model_versions(flt, max_results=1000)
            search.append(time.perf_counter() - t0)
            assert found
        return {"versions": models * versions, "mlflow": mlflow.__version__, "push/s": rate,
                "resolve p50": pct(get, .5), "resolve p95": pct(get, .95),
                "search p50": pct(search, .5), "search p95": pct(search, .95)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--dir", default=".")
    args = parser.parse_args()
    print(json.dumps(measure(args.models, args.versions, args.samples, args.dir)))


if __name__ == "__main__":
    main()
