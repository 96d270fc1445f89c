"""NS-Scale against the physical limit of this machine, in one run, same number of processes.

(a) 10,000 fits: a grid over a generated 10,000-patch patchset of example_bkgonly.json;
(b) 200 fits of tttt-prod_workspace.json: a grid over a 200-patch patchset (one observed bin
    nudged per patch, so every fit is a distinct problem);
each through ``submit --backend local`` (full audit, signing, registry), against a hand-written
``concurrent.futures.ProcessPoolExecutor`` loop over ``nextstat.fit`` on the same patched
workspaces (chunked per process, like the shards); and Dask and Ray on (b). Both workspaces'
measurements fix ``lumi``, so a run's fit also corrects the uncertainties (a free-parameter
Hessian, engine/uncertainties.py): the loop's "same numbers" variant (orjson, plus that
correction) does that too, and is the baseline that measures NS-Scale's own cost, on (a) and
(b); against ``nextstat.fit`` alone the ratio also carries the correction's cost. Every row
is interleaved with its baselines and repeated; medians are printed, with the machine's load.

    .venv/bin/python benchmarks/bench_scale.py [--workers 2] [--only a|b] [--repeat 3] [--repeat-b 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import jsonpatch
import nextstat as ns
import orjson

from nextstat_pro.db.models import ScaleJob
from nextstat_pro.engine import InputFile, uncertainties
from nextstat_pro.engine.inputs import pyhf_digest
from nextstat_pro.instance import init_instance
from nextstat_pro.scale import SubmitRequest, coordinate, submit

SHARED = Path(__file__).resolve().parents[2] / "shared" / "workspaces"
DIR = "."  # where instances live (--dir)


def patchset(base: dict[str, Any], n: int, path: str, value: Any) -> dict[str, Any]:
    return {"metadata": {"description": "benchmark grid", "digests": {"sha256": pyhf_digest(base, "sha256")},
                         "labels": ["i"], "references": {"hepdata": "ins0000000"}},
            "patches": [{"metadata": {"name": f"p{i:05d}", "values": [i]},
                         "patch": [{"op": "replace", "path": path, "value": value(i)}]} for i in range(n)],
            "version": "1.0.0"}


def _raw_chunk(args: tuple[str, list[list[dict[str, Any]]], bool, bool]) -> int:
    base_text, patches, fast_encoder, same_numbers = args
    base = json.loads(base_text)
    encode = (lambda doc: orjson.dumps(doc).decode()) if fast_encoder else json.dumps
    for patch in patches:
        model = ns.from_pyhf(encode(jsonpatch.apply_patch(base, patch)))
        if same_numbers:
            uncertainties.fit(model)
        else:
            ns.fit(model)
    return len(patches)


def raw(base: dict[str, Any], ps: dict[str, Any], workers: int, chunks: int, fast_encoder: bool = False,
        same_numbers: bool = False) -> float:
    """The hand-written loop; ``fast_encoder``: it re-encodes each patched workspace with
    orjson, as our workers do, instead of json (the limit of the engine itself);
    ``same_numbers``: it also corrects fixed-parameter uncertainties, as a run does."""
    patches = [p["patch"] for p in ps["patches"]]
    size = -(-len(patches) // chunks)
    jobs = [(json.dumps(base), patches[i:i + size], fast_encoder, same_numbers)
            for i in range(0, len(patches), size)]
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        done = sum(pool.map(_raw_chunk, jobs))
    assert done == len(patches)
    return time.perf_counter() - start


def ours(base: dict[str, Any], ps: dict[str, Any], workers: int, shards: int, backend: str) -> tuple[float, str]:
    """Seconds for submit + coordinate, and how the backend ran its workers."""
    with tempfile.TemporaryDirectory(dir=DIR, prefix=".bench-") as tmp:
        inst = init_instance(Path(tmp) / "home", admin="bench", password="bench-password-1")
        ctx = inst.context()
        inputs = [InputFile.from_bytes("workspace", "ws.json", json.dumps(base).encode()),
                  InputFile.from_bytes("patchset", "ps.json", json.dumps(ps).encode())]
        start = time.perf_counter()
        run_id = submit(inst, ctx, SubmitRequest("grid", "default", inputs, point_task="fit", shards=shards,
                                                 backend=backend, workers=workers))
        status = coordinate(inst, ctx, run_id)
        elapsed = time.perf_counter() - start
        assert status == "succeeded", status
        with inst.db.transaction() as s:
            handles = s.get(ScaleJob, run_id).handles
        inst.close()
        return elapsed, ",".join(handles)


def load() -> str:
    """The machine's load averages (1, 5, 15 min): others share it, and the figures move with it."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def line(label: str, n: int, seconds: float, baseline: float) -> None:
    rate = n / seconds
    print(f"{label:<44} {seconds:8.1f} s {rate:9.1f} fits/s {rate * 86400:14,.0f} fits/day  "
          f"ratio {baseline / seconds:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".", help="where the benchmark's instance lives (default: here, where an "
                        "instance's default home is; on this VM /tmp fsyncs cost twice as much)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=["a", "b"], default=None)
    parser.add_argument("--n-small", type=int, default=10_000)
    parser.add_argument("--n-tttt", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repeats of (a); medians are printed")
    parser.add_argument("--repeat-b", type=int, default=3, help="interleaved repeats of (b)")
    args = parser.parse_args()
    global DIR
    DIR = args.dir
    w = args.workers
    print(f"load at start: {load()} ({os.cpu_count()} CPUs)", flush=True)
    if args.only != "b":
        base = json.loads((SHARED / "example_bkgonly.json").read_text())
        ps = patchset(base, args.n_small, "/channels/0/samples/0/data", lambda i: [5.0 + i * 0.01, 2.0 + i * 0.005])
        # Interleaved repeats, medians: the machine's noise is ±20% between runs here.
        runs = []
        for k in range(args.repeat):
            runs.append((raw(base, ps, w, chunks=16), raw(base, ps, w, chunks=16, fast_encoder=True),
                         raw(base, ps, w, chunks=16, fast_encoder=True, same_numbers=True),
                         ours(base, ps, w, 16, "local")))
            r = runs[-1]
            print(f"  (a) repeat {k + 1}: json {r[0]:.2f} s, orjson {r[1]:.2f} s, same numbers {r[2]:.2f} s, submit "
                  f"{r[3][0]:.2f} s ({r[2] / r[3][0]:.2f}); load {load()}", flush=True)
        t_raw = statistics.median(r[0] for r in runs)
        t_fast = statistics.median(r[1] for r in runs)
        t_same = statistics.median(r[2] for r in runs)
        t_ours = statistics.median(r[3][0] for r in runs)
        print(f"(a) {args.n_small:,} fits of example_bkgonly.json + patch, {w} processes, medians of {args.repeat} "
              f"(workers: {sorted({r[3][1] for r in runs})})")
        line("  raw ProcessPoolExecutor loop (json)", args.n_small, t_raw, t_raw)
        line("  submit --backend local (16 shards)", args.n_small, t_ours, t_raw)
        line("  raw loop re-encoding with orjson", args.n_small, t_fast, t_fast)
        line("  submit --backend local, against it", args.n_small, t_ours, t_fast)
        line("  raw loop, the same numbers as a run", args.n_small, t_same, t_same)
        line("  submit --backend local, vs same", args.n_small, t_ours, t_same)
    if args.only != "a":
        base = json.loads((SHARED / "tttt-prod_workspace.json").read_text())
        first = base["observations"][0]["data"][0]
        ps = patchset(base, args.n_tttt, "/observations/0/data/0", lambda i: first + i * 0.01)
        # Interleaved like (a): the rows used to run one after the other, and drift between
        # them decided the figure.
        runs = []
        for k in range(args.repeat_b):
            runs.append((raw(base, ps, w, chunks=8), raw(base, ps, w, chunks=8, fast_encoder=True, same_numbers=True),
                         ours(base, ps, w, 8, "local")[0]))
            print(f"  (b) repeat {k + 1}: nextstat.fit {runs[-1][0]:.1f} s, same numbers {runs[-1][1]:.1f} s, "
                  f"submit {runs[-1][2]:.1f} s ({runs[-1][1] / runs[-1][2]:.2f}); load {load()}", flush=True)
        t_raw = statistics.median(r[0] for r in runs)
        t_same = statistics.median(r[1] for r in runs)
        t_local = statistics.median(r[2] for r in runs)
        print(f"(b) {args.n_tttt} fits of tttt-prod_workspace.json (249 parameters), {w} processes, medians of "
              f"{args.repeat_b}")
        line("  raw loop, nextstat.fit alone", args.n_tttt, t_raw, t_raw)
        line("  raw loop, the same numbers as a run", args.n_tttt, t_same, t_same)
        line("  submit --backend local (8 shards), vs same", args.n_tttt, t_local, t_same)
        line("  submit --backend local, vs nextstat.fit", args.n_tttt, t_local, t_raw)
        for backend in ("dask", "ray"):
            line(f"  submit --backend {backend} (8 shards), vs same", args.n_tttt, ours(base, ps, w, 8, backend)[0],
                 t_same)
    print(f"load at end: {load()}")


if __name__ == "__main__":
    main()
