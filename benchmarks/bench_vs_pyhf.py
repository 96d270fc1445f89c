"""Fit and upper-limit wall time of ours against pyhf 0.7.6, in one run on this machine.

OURS is what a run computes: ``engine.tasks.prepare`` + ``execute`` of the tasks ``fit`` and
``upper-limit`` on the workspace's bytes (parsing, schema validation, the model, the fit; the
limit's own fit and CLs root finding). PYHF is what a pyhf user runs on the same bytes:
``json.loads``, ``Workspace``, ``model``, ``data``, then ``pyhf.infer.mle.fit`` or
``pyhf.infer.intervals.upper_limits.upper_limit`` (root finding, its default rtol 1e-4, the
engine's default too), each with pyhf's default optimizer (scipy SLSQP) on the numpy backend
and, with ``--also PYTHON:BACKEND``, on other backends (pytorch, jax) installed in their own
environments (``make bench`` builds ``.bench-venv-torch`` and ``.bench-venv-jax``; the time
is taken inside that process, from the bytes to the result, so its start-up is not counted).
Modes are interleaved in every repeat (machine noise hits all alike) and medians are printed
with the speed ratio pyhf/ours (> 1: ours is faster). Figures go to docs/benchmarks.md.

pyhf's ``upper_limit`` brackets from the POI's lower bound; from 0 it would halve that bound
for ever when CLs(0) < alpha, so there it is preceded by one hypotest at 0, counted in its time
(toms748_scan evaluates the same point first). tHu's POI bounds are [-100, 100]: pyhf's first
hypotest at -100 fails to minimise, the engine (bracketing from 0) fails with "CLs(0)=0". On
tttt-prod (249 parameters) one pyhf fit takes about a minute and its limit ~45 hypotests of
5 fits each (hours): ``--tttt-limit check`` (default) asks pyhf for the CLs at OUR observed and
expected limits instead (six hypotests: each should be alpha), prints the implied limit
differences, and estimates pyhf's scan time as one hypotest times the number of hypotests its
scan needed on the other workspaces; ``full`` runs the scan.

    .venv/bin/python benchmarks/bench_vs_pyhf.py [--repeat 3] [--workspaces simple tttt-prod tHu]
        [--also .bench-venv-torch/bin/python:pytorch --also .bench-venv-jax/bin/python:jax]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared" / "workspaces"
ALPHA = 0.05


# --- pyhf, any backend (also runs as a worker in another environment: no nextstat_pro here) ---

def pyhf_run(path: Path, task: str, backend: str) -> dict[str, Any]:
    """Time one pyhf fit or upper limit from the file's bytes; returns seconds, outcome, hypotests."""
    warnings.simplefilter("ignore")
    logging.getLogger("pyhf").setLevel(logging.CRITICAL)  # a failed fit's log is not a figure
    import pyhf

    pyhf.set_backend(backend)
    data_bytes = path.read_bytes()
    counter = {"hypotests": 0}
    real_hypotest = pyhf.infer.hypotest

    def counted(*args: Any, **kwargs: Any) -> Any:
        counter["hypotests"] += 1
        return real_hypotest(*args, **kwargs)

    start = time.perf_counter()
    try:
        ws = pyhf.Workspace(json.loads(data_bytes))
        model = ws.model(measurement_name=ws["measurements"][0]["name"])
        data = ws.data(model)
        if task == "fit":
            best = pyhf.infer.mle.fit(data, model)
            outcome: Any = float(best[model.config.poi_index])
        else:
            import pyhf.infer.intervals.upper_limits as ul

            ul.hypotest = counted  # counts the scan's hypotests
            try:
                lo = model.config.suggested_bounds()[model.config.poi_index][0]
                if lo == 0:
                    obs, exp = counted(lo, data, model, return_expected_set=True)
                    if min([float(obs)] + [float(e) for e in exp]) < ALPHA:
                        raise RuntimeError(f"CLs(0) < {ALPHA}: pyhf's toms748_scan would halve the bound 0 for ever")
                limit, _ = ul.upper_limit(data, model)
            finally:
                ul.hypotest = real_hypotest
            outcome = float(limit)
    except Exception as exc:  # noqa: BLE001 - a failure is a figure too (time to failure)
        outcome = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"
    return {"seconds": time.perf_counter() - start, "outcome": outcome, "hypotests": counter["hypotests"]}


def pyhf_check_limits(path: Path, observed: float, expected: list[float]) -> dict[str, Any]:
    """pyhf's CLs at OUR limits: a limit mu* is right when CLs(mu*) = alpha, so six hypotests
    (observed CLs at our observed limit, expected quantile k at our expected limit k) check
    the whole band where pyhf's own root finding would take ~45. The three fits every
    hypotest repeats are memoised (crosscheck's helper: bit for bit pyhf's answer); the first
    hypotest, which runs all five fits, is timed alone."""
    warnings.simplefilter("ignore")
    from nextstat_pro.engine.crosscheck import _memoised_repeated_fits, _pyhf_numpy

    with _pyhf_numpy(None) as pyhf:  # None: pyhf's default optimizer tolerance, as a user has it
        ws = pyhf.Workspace(json.loads(path.read_bytes()))
        model = ws.model(measurement_name=ws["measurements"][0]["name"])
        data = ws.data(model)
        with _memoised_repeated_fits(pyhf):
            start = time.perf_counter()
            obs, _ = pyhf.infer.hypotest(observed, data, model, return_expected_set=True)
            first = time.perf_counter() - start
            cls = [float(obs)]
            for k, mu in enumerate(expected):
                cls.append(float(pyhf.infer.hypotest(mu, data, model, return_expected_set=True)[1][k]))
    return {"hypotest_seconds": first, "cls": cls, "seconds": time.perf_counter() - start}


def engine_cls_slopes(path: Path, limits: list[float]) -> list[float]:
    """dCLs/dmu of the observed and each expected CLs curve at our limits (the engine's curve,
    central differences of 1e-3 relative): converts a CLs difference into a limit difference."""
    import nextstat as ns

    model = ns.from_pyhf(path.read_text())
    slopes = []
    for k, mu in enumerate(limits):
        h = 1e-3 * mu
        curve = ns.cls_curve(model, [mu - h, mu + h], alpha=ALPHA)
        lo, hi = curve["points"]
        value = (lambda p: p["cls"]) if k == 0 else (lambda p, k=k: p["expected"][k - 1])
        slopes.append((value(hi) - value(lo)) / (2 * h))
    return slopes


def worker_main(argv: list[str]) -> None:
    """``--worker BACKEND TASK PATH``: one timed pyhf run, printed as JSON (another environment)."""
    backend, task, path = argv
    print(json.dumps(pyhf_run(Path(path), task, backend)))


def pyhf_in(python: str, backend: str, path: Path, task: str) -> dict[str, Any]:
    out = subprocess.run([python, __file__, "--worker", backend, task, str(path)], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        return {"seconds": float("nan"), "outcome": f"failed: worker exited {out.returncode}: {out.stderr[-200:]}",
                "hypotests": 0}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- ours: through the tasks, as a run ------------------------------------------------------

def ours_run(path: Path, task: str) -> dict[str, Any]:
    from nextstat_pro.engine import InputFile, execute, prepare
    from nextstat_pro.errors import TaskFailedError

    data = path.read_bytes()
    start = time.perf_counter()
    try:
        result = execute(prepare(task, {}, [InputFile.from_bytes("workspace", path.name, data)]), None)
        outcome: Any = result["observed"] if task == "upper-limit" else result["poi"]["value"]
    except TaskFailedError as exc:
        outcome = f"failed: {exc.message[:80]}"
    return {"seconds": time.perf_counter() - start, "outcome": outcome}


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repeats per row (medians)")
    parser.add_argument("--workspaces", nargs="*", default=["simple", "tttt-prod", "tHu"])
    parser.add_argument("--also", action="append", default=[], metavar="PYTHON:BACKEND",
                        help="another pyhf backend and a Python that has it, e.g. .bench-venv-torch/bin/python:pytorch")
    parser.add_argument("--tttt-limit", choices=["check", "full", "skip"], default="check",
                        help="check: pyhf's CLs at our tttt limits and an estimate of its scan's time; full: the scan")
    args = parser.parse_args()

    others = [tuple(spec.rsplit(":", 1)) for spec in args.also]
    modes = ["ours", "pyhf numpy"] + [f"pyhf {backend}" for _, backend in others]
    rows: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    hypotests: list[int] = []
    warm = SHARED / "simple_workspace.json"  # imports and first-call costs are nobody's figure
    ours_run(warm, "fit")
    pyhf_run(warm, "fit", "numpy")
    for _ in range(args.repeat):
        for name in args.workspaces:
            path = SHARED / f"{name}_workspace.json"
            for task in ("fit", "upper-limit"):
                if task == "upper-limit" and name == "tttt-prod" and args.tttt_limit != "full":
                    runs = {"ours": ours_run(path, task)}
                else:
                    runs = {"ours": ours_run(path, task), "pyhf numpy": pyhf_run(path, task, "numpy")}
                    for python, backend in others:
                        runs[f"pyhf {backend}"] = pyhf_in(python, backend, path, task)
                if task == "upper-limit" and isinstance(runs.get("pyhf numpy", {}).get("outcome"), float):
                    hypotests.append(runs["pyhf numpy"]["hypotests"])
                for mode, run in runs.items():
                    rows.setdefault((name, task), {}).setdefault(mode, []).append(run)

    print(f"{args.repeat} interleaved repeats, medians; ratio = pyhf / ours (> 1: ours faster)")
    header = f"{'workspace':<11}{'task':<13}" + "".join(f"{m:>16}" for m in modes) + "".join(
        f"{'x ' + m.removeprefix('pyhf '):>12}" for m in modes[1:])
    print(header)
    print("(* = failed: the time to the failure; no ratio)")
    for (name, task), by_mode in rows.items():
        medians = {m: statistics.median(r["seconds"] for r in runs) for m, runs in by_mode.items()}
        failed = {m for m, runs in by_mode.items() if all(isinstance(r["outcome"], str) for r in runs)}
        cells = "".join(f"{fmt(medians[m]) + ('*' if m in failed else '') if m in medians else '-':>16}" for m in modes)
        ratios = "".join(f"{medians[m] / medians['ours']:>12.1f}" if m in medians and not failed & {m, "ours"}
                         else f"{'-':>12}" for m in modes[1:])
        print(f"{name:<11}{task:<13}{cells}{ratios}")
        for m, runs in by_mode.items():
            outcome = runs[-1]["outcome"]
            if isinstance(outcome, str):
                print(f"{'':<24}{m}: {outcome}")
    if "tttt-prod" in args.workspaces and args.tttt_limit == "check":
        path = SHARED / "tttt-prod_workspace.json"
        from nextstat_pro.engine import InputFile, execute, prepare

        ours = execute(prepare("upper-limit", {}, [InputFile.read("workspace", path)]), None)
        labels = ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")
        limits = [ours["observed"]] + [ours["expected"][k] for k in labels]
        check = pyhf_check_limits(path, limits[0], limits[1:])
        slopes = engine_cls_slopes(path, limits)
        ours_s = statistics.median(r["seconds"] for r in rows[("tttt-prod", "upper-limit")]["ours"])
        n = max(hypotests) if hypotests else 45
        estimate = check["hypotest_seconds"] * n
        print(f"tttt-prod upper-limit, pyhf numpy ESTIMATED: one hypotest took {fmt(check['hypotest_seconds'])}, x {n} "
              f"hypotests (the most its toms748 scan needed above) = {fmt(estimate)}: ratio ~{estimate / ours_s:.0f}")
        print("tttt-prod limits checked with pyhf (a limit mu* is right when pyhf's CLs(mu*) = alpha):")
        for label, mu, c, slope in zip(("observed", *labels), limits, check["cls"], slopes, strict=True):
            # ours - pyhf's root, to first order: (CLs_pyhf(mu*) - alpha) / (dCLs/dmu)
            print(f"    {label:<9} ours {mu:.6g}  pyhf CLs there {c:.6f}  -> ours - pyhf ~ {(c - ALPHA) / slope:+.2e} "
                  f"({(c - ALPHA) / slope / mu:+.1e} relative)")
        print(f"    ({fmt(check['seconds'])} for the six hypotests)")


if __name__ == "__main__":
    main()
