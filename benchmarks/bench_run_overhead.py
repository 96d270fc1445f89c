"""Overhead of a recorded run over a raw nextstat fit, in one run on this machine.

For each workspace: N raw fits (``nextstat.from_pyhf`` + ``nextstat.fit`` on the file's
text, as a user calling the engine directly would), then the same N fits recorded as
runs through the service layer (validation, store, manifest, audit events; SQLite, or
PostgreSQL with --db). Prints per-fit medians, the overhead per run and the throughput
ratio recorded/raw (from the medians). Figures go to docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_run_overhead.py [--n 50] [--db URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nextstat as ns

from nextstat_pro.engine import InputFile
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
        print(f"{'workspace':<28}{'raw ms':>10}{'recorded ms':>13}{'overhead ms':>13}{'throughput ratio':>18}")
        for name in args.workspaces:
            path = SHARED / name
            raw, rec = [], []
            # Interleave raw and recorded fits so machine noise hits both alike.
            for _ in range(args.n):
                t0 = time.perf_counter()
                text = path.read_text()
                ns.fit(ns.from_pyhf(text))
                raw.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                out = run_task(inst, ctx, RunRequest("fit", "default", {}, None, [InputFile.read("workspace", path)]))
                rec.append(time.perf_counter() - t0)
                assert out.status == "succeeded"
            raw_ms, rec_ms = statistics.median(raw) * 1e3, statistics.median(rec) * 1e3
            # Throughput ratio from the medians: a fit's own time varies by +-10% from one call
            # to the next here, more than a run's overhead on tttt, and medians are what
            # the overhead column reports too.
            ratio = raw_ms / rec_ms
            print(f"{name:<28}{raw_ms:>10.2f}{rec_ms:>13.2f}{rec_ms - raw_ms:>13.2f}{ratio:>18.3f}")
        inst.close()


if __name__ == "__main__":
    main()
