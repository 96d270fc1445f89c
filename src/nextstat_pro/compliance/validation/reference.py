"""Operational qualification of the statistics: reference computations on shipped inputs.

Each case of ``data/golden.json`` runs one task exactly as a run does (``engine.prepare`` +
``engine.execute``) on an input that ships with the package (the seeded examples of
``nextstat_pro.examples`` and ``data/oq_small_workspace.json``) and compares named quantities of the
result with golden values at stated tolerances: ``|observed - expected| <= abs + rel * |expected|``.
The golden values were computed once with the released engine and reviewed;
``python -m nextstat_pro.compliance.validation.reference --write`` recomputes them (after an engine
upgrade, as a change under change control: the diff is the evidence).

The HistFactory results are also cross-checked against an independent implementation, pyhf's numpy
backend (``engine.crosscheck``, at its own tolerances): on the small workspace best fit, uncertainties,
NLL and the CLs upper limit; on the example workspace (38 parameters, every modifier type) best fit,
uncertainties and NLL. pyhf's limit on the example costs ~30 s on an idle machine and several minutes
on a busy one (each of its toms748 steps is a pyhf fit of 38 parameters), and the limit code is the
same for both workspaces, so the example's limit is held to its golden values instead.
``crosscheck="small"`` (the suite's variant) skips the example's cross-check (~5 s).
"""

from __future__ import annotations

import json
import sys
import time
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ...engine import InputFile, execute, prepare
from ...errors import NSPError
from .models import Check, make_check

DATA = "data"
GOLDEN = "golden.json"
SMALL_WORKSPACE = "oq_small_workspace.json"
EXAMPLE_PATCH = "sig_1200_100"


@cache
def shipped_inputs() -> dict[str, InputFile]:
    """The OQ's inputs by name: all ship with the package (generated from fixed seeds, or data)."""
    from ...examples import histfactory_workspace, pk_dataset, signal_patchset

    workspace = histfactory_workspace()
    small = resources.files(__package__).joinpath(DATA).joinpath(SMALL_WORKSPACE).read_bytes()
    return {
        "small-workspace": InputFile.from_bytes("workspace", SMALL_WORKSPACE, small),
        "example-workspace": InputFile.from_bytes("workspace", "example_workspace.json",
                                                  json.dumps(workspace, indent=1).encode()),
        "example-patchset": InputFile.from_bytes("patchset", "example_signal_patchset.json",
                                                 json.dumps(signal_patchset(workspace, 25), indent=1).encode()),
        "example-pk": InputFile.from_bytes("dataset", "example_pk.csv", pk_dataset().encode()),
    }


def golden() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(resources.files(__package__).joinpath(DATA).joinpath(GOLDEN).read_bytes())
    return doc


def lookup(result: Any, path: str) -> Any:
    """A quantity of a result by path: dotted keys, list indexes, and ``[name=X]`` to pick the list
    entry whose ``name`` is X (``parameters[name=CL].value``, ``expected.median``, ``points.2.q_mu``)."""
    value = result
    for part in path.split("."):
        key, _, selector = part.partition("[")
        if key:
            value = value[int(key)] if isinstance(value, list) else value[key]
        if selector:
            field, _, wanted = selector.rstrip("]").partition("=")
            matches = [v for v in value if isinstance(v, dict) and str(v.get(field)) == wanted]
            if len(matches) != 1:
                raise KeyError(f"{path}: {len(matches)} entries with {field}={wanted}")
            value = matches[0]
    return value


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    inputs = shipped_inputs()
    files = [inputs[name] for name in case["inputs"]]
    return execute(prepare(case["task"], case.get("params", {}), files, case.get("patch")), case.get("seed"))


def _compare(case: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for q in case["quantities"]:
        note: str | None = None
        try:
            observed: float | None = float(lookup(result, q["path"]))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            observed, note = None, f"missing: {exc}"
        expected = float(q["expected"])
        allowance = float(q.get("abs", 0.0)) + float(q.get("rel", 0.0)) * abs(expected)
        ok = observed is not None and abs(observed - expected) <= allowance
        rows.append({"quantity": q["path"], "expected": expected, "observed": observed,
                     "difference": None if observed is None else observed - expected,
                     "tolerance": allowance, "rule": f"abs {q.get('abs', 0.0):g} + rel {q.get('rel', 0.0):g}",
                     "passed": ok, "note": note})
    return rows


def check_case(case: dict[str, Any]) -> Check:
    started = time.perf_counter()
    inputs = shipped_inputs()
    evidence: dict[str, Any] = {"task": case["task"], "params": case.get("params", {}), "patch": case.get("patch"),
                                "inputs": {n: inputs[n].digest for n in case["inputs"]}}
    try:
        result = run_case(case)
    except NSPError as exc:
        evidence["error"] = exc.message
        return make_check(case["id"], "OQ", case["what"], "the task succeeds and every quantity is within tolerance",
                          f"the task failed: {exc.message}", False, evidence, time.perf_counter() - started)
    rows = _compare(case, result)
    quality = result.get("quality", {})
    quality_ok = bool(quality.get("ok", True))
    evidence |= {"quantities": rows, "quality_ok": quality_ok, "engine": result.get("engine")}
    failed = [r["quantity"] for r in rows if not r["passed"]]
    worst = max((abs(r["difference"]) / r["tolerance"] for r in rows
                 if r["difference"] is not None and r["tolerance"] > 0), default=0.0)
    observed = (f"{len(rows) - len(failed)}/{len(rows)} quantities within tolerance "
                f"(worst {worst:.2g} of its allowance); fit quality {'ok' if quality_ok else 'NOT ok'}")
    if failed:
        observed += f"; outside: {', '.join(failed)}"
    expected = "; ".join(f"{q['path']} = {q['expected']:.10g} ± (abs {q.get('abs', 0):g} + rel {q.get('rel', 0):g})"
                         for q in case["quantities"])
    return make_check(case["id"], "OQ", case["what"], expected, observed, not failed and quality_ok, evidence,
                      time.perf_counter() - started)


def check_crosscheck(check_id: str, input_name: str, limit: bool = True) -> Check:
    from ...engine import crosscheck as cc

    started = time.perf_counter()
    workspace = shipped_inputs()[input_name]
    evidence: dict[str, Any] = {"input": input_name, "digest": workspace.digest, "upper_limit": limit}
    try:
        rep = cc.report(workspace.name, None, cc.ours(workspace, None, None, limit=limit),
                        cc.reference_from_inputs(workspace, None, None, limit=limit))
    except NSPError as exc:
        evidence["error"] = exc.message
        return make_check(check_id, "OQ", f"Cross-check of {input_name} against pyhf.", "agreement",
                          f"refused: {exc.message}", False, evidence, time.perf_counter() - started)
    failures = rep.failures()
    evidence |= {"reference": rep.reference, "engine": rep.engine, "rows": [r.model_dump() for r in rep.rows],
                 "notes": rep.notes}
    observed = f"{len(rep.rows) - len(failures)}/{len(rep.rows)} quantities agree"
    if failures:
        observed += "; disagree: " + ", ".join(r.quantity for r in failures[:10])
    quantities = "best fit, uncertainties, NLL" + (" and CLs upper limits" if limit else "")
    return make_check(check_id, "OQ",
                      f"The {quantities} on {input_name} cross-checked against an independent implementation "
                      "(pyhf, numpy backend).",
                      "every quantity agrees within engine/crosscheck.py's tolerances (values 1e-3 rel or 2e-3 "
                      "sigma, uncertainties 1e-3 rel, NLL 5e-5 abs" + (", limits 1e-4 rel)" if limit else ")"),
                      observed, rep.ok, evidence, time.perf_counter() - started)


def reference_checks(crosscheck: str = "all") -> list[Check]:
    """Every golden case, then the pyhf cross-checks (``small``: the small workspace only)."""
    checks = [check_case(c) for c in golden()["cases"]]
    checks.append(check_crosscheck("OQ-XCHK-SMALL", "small-workspace"))
    if crosscheck == "all":
        checks.append(check_crosscheck("OQ-XCHK-EXAMPLE", "example-workspace", limit=False))
    return checks


def write_golden(path: Path) -> None:
    """Recompute every case's expected values with the installed engine (keeps ids and tolerances)."""
    doc = json.loads(path.read_text())
    for case in doc["cases"]:
        result = run_case(case)
        for q in case["quantities"]:
            q["expected"] = float(lookup(result, q["path"]))
    from ...engine import engine_info

    info = engine_info()
    doc["engine"] = f"{info['name']} {info['version']}"
    path.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        print("usage: python -m nextstat_pro.compliance.validation.reference --write", file=sys.stderr)
        raise SystemExit(2)
    write_golden(Path(__file__).with_name(DATA) / GOLDEN)
