"""Overhead of a recorded run over a raw nextstat fit, in one run on this machine.

For each workspace, interleaved: N raw fits (``nextstat.from_pyhf`` + ``nextstat.fit`` on the
file's text, as a user calling the engine directly would), N fits computing the numbers a run
reports without recording them (the same engine calls plus the product's correction of
fixed-parameter uncertainties, engine/uncertainties.py: a free-parameter Hessian when the
measurement fixes parameters, as tttt-prod's fixes ``lumi``), and N fits recorded as runs
through the service layer (validation, store, manifest, audit events; SQLite, or PostgreSQL
with --db). Prints per-fit medians, the overhead per run over the same numbers computed
directly, and throughput ratios (from the medians) against both baselines. Figures go to
docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_run_overhead.py [--n 50] [--db URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import nextstat as ns

from nextstat_pro.engine import InputFile, uncertainties
from nextstat_pro.engine.histfactory import load_model
from nextstat_pro.engine.inputs import Workspace
from nextstat_pro.instance import init_instance
from nextstat_pro.runs import RunRequest, run_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "workspaces"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".", help="where the benchmark's instance lives (default: here, where an "
                        "instance's default home is; on this VM /tmp fsyncs cost twice as much)")
    parser.add_argument("--n", type=int, default=50, help="fits per workspace and mode")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temp home)")
    parser.add_argument("--workspaces", nargs="*", default=["simple_workspace.json", "tttt-prod_workspace.json"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-") as tmp:
        inst = init_instance(Path(tmp) / "home", admin="bench", password="bench-password-1", db_url=args.db)
        ctx = inst.context()
        print(f"database: {inst.db.dialect}; {args.n} fits per row; medians per fit")
        print(f"{'workspace':<28}{'raw ms':>10}{'same ms':>10}{'recorded ms':>13}{'overhead ms':>13}"
              f"{'ratio vs same':>15}{'ratio vs raw':>14}")
        for name in args.workspaces:
            path = SHARED / name
            raw, same, rec = [], [], []
            # Interleave the three so machine noise hits them alike.
            for _ in range(args.n):
                t0 = time.perf_counter()
                text = path.read_text()
                ns.fit(ns.from_pyhf(text))
                raw.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                text = path.read_text()
                uncertainties.fit(load_model(Workspace(json.loads(text), text=text)))
                same.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                out = run_task(inst, ctx, RunRequest("fit", "default", {}, None, [InputFile.read("workspace", path)]))
                rec.append(time.perf_counter() - t0)
                assert out.status == "succeeded"
            raw_ms, same_ms, rec_ms = (statistics.median(x) * 1e3 for x in (raw, same, rec))
            # Throughput ratios from the medians: a fit's own time varies by +-10% from one call
            # to the next here, more than a run's overhead on tttt, and medians are what
            # the overhead column reports too.
            print(f"{name:<28}{raw_ms:>10.2f}{same_ms:>10.2f}{rec_ms:>13.2f}{rec_ms - same_ms:>13.2f}"
                  f"{same_ms / rec_ms:>15.3f}{raw_ms / rec_ms:>14.3f}")
        inst.close()


if __name__ == "__main__":
    main()
