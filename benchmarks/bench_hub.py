"""Registry figures: import and push rates, reference resolution and 3-tag search, on SQLite and
PostgreSQL, and the same operations on MLflow's model registry (on SQLite, and on PostgreSQL with
--pg) when --mlflow-python names an environment with mlflow installed (it is not a project
dependency; see benchmarks/mlflow_registry.py).

    .venv/bin/python benchmarks/bench_hub.py --models 1000 --versions 100 [--pg URL] \
        [--mlflow-python .venv-bench/bin/python --mlflow-models 100 --mlflow-versions 100]

Every version is a distinct small workspace (simple_workspace.json with one observation changed),
validated, stored, tagged with 3 tags and audited, through the service layer. The registry is
filled by ``push_many`` in batches (what ``hub model import`` does: "import/s"), then --singles
more versions are pushed one by one into the full registry ("push/s"). MLflow has one way to
create a version, one call each; its rate is over its whole fill.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow_registry import pct, tags  # the same tags and percentiles on both sides

from nextstat_pro.engine import InputFile
from nextstat_pro.hub import service
from nextstat_pro.hub.service import PushRequest
from nextstat_pro.instance import Instance, init_instance
from nextstat_pro.projects import get_project

BASE = json.loads((Path(__file__).resolve().parents[2] / "shared/workspaces/simple_workspace.json").read_text())

DIR = "."  # where instances live (--dir)


def version_doc(m: int, v: int) -> bytes:
    doc = json.loads(json.dumps(BASE))
    doc["observations"][0]["data"][0] = 50.0 + m + v / 1000.0
    return json.dumps(doc).encode()


def request(m: int, v: int) -> PushRequest:
    return PushRequest(f"model-{m}", InputFile.from_bytes("workspace", "w.json", version_doc(m, v)), f"1.0.{v}",
                       tags=tuple(tags(m, v)))


def ours(inst: Instance, models: int, versions: int, samples: int, singles: int, batch: int) -> dict[str, float]:
    ctx = inst.context()
    elapsed = 0.0
    pending: list[PushRequest] = []
    for m in range(models):
        for v in range(versions):
            pending.append(request(m, v))  # built outside the clock, as a file read would be
            if len(pending) == batch or (m, v) == (models - 1, versions - 1):
                t0 = time.perf_counter()
                service.push_many(inst, ctx, "default", "model", pending)
                elapsed += time.perf_counter() - t0
                pending = []
    t0 = time.perf_counter()
    service.refresh_statistics(inst)  # as hub import ends
    elapsed += time.perf_counter() - t0
    import_rate = models * versions / elapsed
    # Single pushes into the full registry: new versions of existing models.
    singles_ = [request(k % models, versions + k // models) for k in range(singles)]
    start = time.perf_counter()
    for req in singles_:
        service.push(inst, ctx, "default", "model", req.name, req.inp, req.semver, tags=list(req.tags))
    push_rate = singles / (time.perf_counter() - start)
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
        assert docs and all(len(d.tags) == 3 for d in docs)
    return {"import/s": import_rate, "push/s": push_rate,
            "resolve p50": pct(resolve, .5), "resolve p95": pct(resolve, .95),
            "search p50": pct(search, .5), "search p95": pct(search, .95),
            "resolve call p50": pct(resolve_call, .5), "resolve call p95": pct(resolve_call, .95),
            "search call p50": pct(search_call, .5), "search call p95": pct(search_call, .95)}


def mlflow_side(python: str | None, models: int, versions: int, samples: int, pg: str | None = None,
                search_samples: int | None = None) -> dict[str, Any] | None:
    """MLflow's figures from benchmarks/mlflow_registry.py, run by ``python`` (an environment
    with mlflow installed), or None without one."""
    if python is None:
        return None
    script = Path(__file__).with_name("mlflow_registry.py")
    args = [python, str(script), "--models", str(models), "--versions", str(versions), "--samples", str(samples),
            "--dir", DIR] + (["--pg", pg] if pg else [])
    if search_samples is not None:
        args += ["--search-samples", str(search_samples)]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    theirs: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"MLflow {theirs['mlflow']} registry ({theirs['database']}) at {theirs['versions']:,} versions: "
          + ", ".join(f"{k} {v:.2f}" for k, v in theirs.items() if isinstance(v, float)), flush=True)
    return theirs


def report(label: str, mine: dict[str, float], *theirs: dict[str, Any] | None) -> None:
    """Each figure, and how it compares with each MLflow measurement given. A rate is compared
    with MLflow's push rate (it has no batch create); a call with MLflow's client call."""
    for key, value in mine.items():
        rate = key.endswith("/s")
        line = f"[{label}] {key:<17} NextStat Pro {value:10.2f}" + (" versions/s" if rate else " ms")
        for other in filter(None, theirs):
            figure = other["push/s" if rate else key.replace(" call", "")]
            ratio = value / figure if rate else figure / value
            line += f" | MLflow/{other['database']} {figure:9.2f}: {ratio:5.1f}x"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".", help="where the benchmark's instance lives (default: here, where an "
                        "instance's default home is; on this VM /tmp fsyncs cost twice as much)")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--singles", type=int, default=2000, help="single pushes into the full registry")
    parser.add_argument("--batch", type=int, default=500, help="versions per push_many (hub import's default)")
    parser.add_argument("--pg", default=None)
    parser.add_argument("--mlflow-python", default=None,
                        help="a Python with mlflow installed (see benchmarks/mlflow_registry.py)")
    parser.add_argument("--mlflow-models", type=int, default=100)
    parser.add_argument("--mlflow-versions", type=int, default=100)
    parser.add_argument("--mlflow-pg-models", type=int, default=None,
                        help="MLflow on PostgreSQL (with --pg): models (default: --mlflow-models)")
    parser.add_argument("--mlflow-pg-search-samples", type=int, default=20,
                        help="MLflow's tag search on PostgreSQL takes seconds: fewer samples")
    args = parser.parse_args()
    global DIR
    DIR = args.dir
    theirs = mlflow_side(args.mlflow_python, args.mlflow_models, args.mlflow_versions, args.samples)
    theirs_pg = None
    if args.pg:
        theirs_pg = mlflow_side(args.mlflow_python, args.mlflow_pg_models or args.mlflow_models, args.mlflow_versions,
                                args.samples, args.pg, args.mlflow_pg_search_samples)
    if theirs is None:
        print("no --mlflow-python: NextStat Pro figures only")
    sizes = (args.models, args.versions, args.samples, args.singles, args.batch)
    with tempfile.TemporaryDirectory(dir=DIR, prefix=".bench-") as tmp:
        inst = init_instance(Path(tmp) / "home", admin="bench", password="bench-password-1")
        print(f"NextStat Pro at {args.models * args.versions + args.singles:,} versions", flush=True)
        report("sqlite", ours(inst, *sizes), theirs)
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
            report("postgresql", ours(inst, *sizes), theirs_pg, theirs)
            inst.close()


if __name__ == "__main__":
    main()
