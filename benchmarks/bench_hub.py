"""Registry figures: push rate, reference resolution and 3-tag search, on SQLite and PostgreSQL,
and the same operations on MLflow's model registry when --mlflow-python names an environment with
mlflow installed (it is not a project dependency; see benchmarks/mlflow_registry.py).

    .venv/bin/python benchmarks/bench_hub.py --models 1000 --versions 100 [--pg URL] \
        [--mlflow-python .venv-bench/bin/python --mlflow-models 100 --mlflow-versions 100]

Every version is a distinct small workspace (simple_workspace.json with one observation changed),
validated, stored, tagged with 3 tags and audited, through the service layer.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path

from mlflow_registry import pct, tags  # the same tags and percentiles on both sides
from nextstat_pro.engine import InputFile
from nextstat_pro.hub import service
from nextstat_pro.instance import Instance, init_instance
from nextstat_pro.projects import get_project

BASE = json.loads((Path(__file__).resolve().parents[2] / "shared/workspaces/simple_workspace.json").read_text())

DIR = "."  # where instances live (--dir)


def version_doc(m: int, v: int) -> bytes:
    doc = json.loads(json.dumps(BASE))
    doc["observations"][0]["data"][0] = 50.0 + m + v / 1000.0
    return json.dumps(doc).encode()


def ours(inst: Instance, models: int, versions: int, samples: int) -> dict[str, float]:
    ctx = inst.context()
    start = time.perf_counter()
    for m in range(models):
        for v in range(versions):
            service.push(inst, ctx, "default", "model", f"model-{m}", InputFile.from_bytes(
                "workspace", "w.json", version_doc(m, v)), f"1.0.{v}", tags=tags(m, v))
    push_rate = models * versions / (time.perf_counter() - start)
    rng = random.Random(1)
    resolve, search, resolve_call, search_call = [], [], [], []
    # The database functions, inside one transaction (as a run resolves its references)...
    with inst.db.transaction() as s:
        project = get_project(s, "default")
        for _ in range(samples):
            ref = f"model-{rng.randrange(models)}@1.0.{rng.randrange(versions)}"
            t0 = time.perf_counter()
            service.resolve_in(s, project, "model", ref)
            resolve.append(time.perf_counter() - t0)
        for _ in range(samples // 10):
            m, v = rng.randrange(models), rng.randrange(versions)
            want = dict(t.split("=") for t in tags(m, v))
            t0 = time.perf_counter()
            found = service.search(s, project, "model", want)
            search.append(time.perf_counter() - t0)
            assert found
    # ...and the service calls a user makes (own transaction, RBAC check; the search returns
    # every version's document with its tags and aliases), like MLflow's client calls.
    for _ in range(samples):
        ref = f"model-{rng.randrange(models)}@1.0.{rng.randrange(versions)}"
        t0 = time.perf_counter()
        service.resolve(inst, ctx, "default", "model", ref)
        resolve_call.append(time.perf_counter() - t0)
    for _ in range(samples // 10):
        m, v = rng.randrange(models), rng.randrange(versions)
        t0 = time.perf_counter()
        docs = service.list_items(inst, ctx, "default", "model", tags(m, v))
        search_call.append(time.perf_counter() - t0)
        assert docs and all(len(d["tags"]) == 3 for d in docs)
    return {"push/s": push_rate,
            "resolve p50": pct(resolve, .5), "resolve p95": pct(resolve, .95),
            "search p50": pct(search, .5), "search p95": pct(search, .95),
            "resolve call p50": pct(resolve_call, .5), "resolve call p95": pct(resolve_call, .95),
            "search call p50": pct(search_call, .5), "search call p95": pct(search_call, .95)}


def mlflow_side(python: str | None, models: int, versions: int, samples: int) -> dict[str, float] | None:
    """MLflow's figures from benchmarks/mlflow_registry.py, run by ``python`` (an environment
    with mlflow installed), or None without one."""
    if python is None:
        return None
    script = Path(__file__).with_name("mlflow_registry.py")
    out = subprocess.run([python, str(script), "--models", str(models), "--versions", str(versions),
                          "--samples", str(samples), "--dir", DIR], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(label: str, mine: dict[str, float], theirs: dict[str, float] | None) -> None:
    for key, value in mine.items():
        line = f"[{label}] {key:<17} NextStat Pro {value:10.2f}" + (" versions/s" if key == "push/s" else " ms")
        if theirs:
            other = theirs[key.replace(" call", "")]  # MLflow's client calls are whole calls
            ratio = value / other if key == "push/s" else other / value
            line += f" | MLflow {other:10.2f} | NextStat Pro is {ratio:.1f}x faster"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".", help="where the benchmark's instance lives (default: here, where an "
                        "instance's default home is; on this VM /tmp fsyncs cost twice as much)")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--pg", default=None)
    parser.add_argument("--mlflow-python", default=None,
                        help="a Python with mlflow installed (see benchmarks/mlflow_registry.py)")
    parser.add_argument("--mlflow-models", type=int, default=100)
    parser.add_argument("--mlflow-versions", type=int, default=100)
    args = parser.parse_args()
    global DIR
    DIR = args.dir
    theirs = mlflow_side(args.mlflow_python, args.mlflow_models, args.mlflow_versions, args.samples)
    if theirs is None:
        print("no --mlflow-python: NextStat Pro figures only")
    else:
        print(f"MLflow {theirs['mlflow']} registry (SQLite) at {args.mlflow_models * args.mlflow_versions:,} "
              "versions", flush=True)
    with tempfile.TemporaryDirectory(dir=DIR, prefix=".bench-") as tmp:
        inst = init_instance(Path(tmp) / "home", admin="bench", password="bench-password-1")
        print(f"NextStat Pro at {args.models * args.versions:,} versions")
        report("sqlite", ours(inst, args.models, args.versions, args.samples), theirs)
        inst.close()
    if args.pg:
        import psycopg

        from nextstat_pro.ids import new_id

        name = "hub_" + new_id().replace("-", "")[:12]
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        with tempfile.TemporaryDirectory(dir=DIR, prefix=".bench-") as tmp:
            inst = init_instance(Path(tmp) / "home", admin="bench", password="bench-password-1",
                                 db_url=args.pg.rsplit("/", 1)[0] + "/" + name)
            report("postgresql", ours(inst, args.models, args.versions, args.samples), theirs)
            inst.close()


if __name__ == "__main__":
    main()
