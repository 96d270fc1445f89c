"""The standing cross-check: what a run reports against pyhf 0.7.6 (numpy backend).

For every workspace in ../shared, a patched workspace per patch of each pyhf patchset and
generated workspaces covering every modifier type and every measurement setting, the run's
best fit, uncertainties, NLL and asymptotic CLs upper limit (observed and the 5 expected
quantiles) must agree with pyhf within the tolerances of ``nextstat_pro.engine.crosscheck``
(explained in docs/validation.md). Measurement settings the engine cannot honour must be
refused by our side (InputError), never computed wrong.

tttt-prod (249 parameters) and tHu (184) are compared with a stored pyhf reference
(tests/golden/pyhf_reference_*.json): on this machine pyhf needs minutes for their fit and
Hessian (a pyhf NLL evaluation costs 2-7 ms there, batched or not, and a Hessian needs
n(n-1) + 2n + 1 of them), far beyond this file's budget. The stored reference records the
workspace's digest, pyhf's version and the reference settings; the test fails when any of
them changed. Regenerate with

    .venv/bin/python tests/test_physics_vs_pyhf.py --write-reference tHu tttt-prod
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import nextstat as ns
import pytest

from nextstat_pro.engine import crosscheck as cc
from nextstat_pro.engine import execute, prepare
from nextstat_pro.engine.inputs import InputFile
from nextstat_pro.errors import InputError

if __package__:
    from .conftest import shared
else:  # run as a script (--write-reference)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import shared

# pyhf validates with jsonschema's deprecated RefResolver (in tests that build pyhf models directly).
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")

GOLDEN = Path(__file__).resolve().parent / "golden"


def ws_input(name: str) -> InputFile:
    return InputFile.read("workspace", shared("workspaces", name))


def doc_input(document: dict[str, Any], name: str = "generated.json") -> InputFile:
    return InputFile.from_bytes("workspace", name, json.dumps(document).encode())


def assert_agree(report: cc.CrosscheckReport) -> None:
    bad = report.failures()
    lines = [f"{r.quantity}: ours {r.ours!r} pyhf {r.reference!r} diff {r.difference!r} tol {r.tolerance!r}"
             f"{' - ' + r.note if r.note else ''}" for r in bad]
    assert not bad, f"{report.workspace} {report.patch or ''} disagrees with pyhf:\n" + "\n".join(lines)
    assert report.ok


def quantities(report: cc.CrosscheckReport) -> set[str]:
    return {r.quantity.split(" (")[0] for r in report.rows}


def assert_complete(report: cc.CrosscheckReport, ref: cc.Side, limit: bool = True) -> None:
    """pyhf computed the fit, and every parameter's value and uncertainty, the NLL and (with
    ``limit``) the 6 limits were compared."""
    assert ref.fit is not None, ref.fit_error
    assert ref.fit.uncertainties is not None, ref.fit.uncertainty_error
    names = list(ref.fit.values)
    q = quantities(report)
    expected = {f"value {n}" for n in names} | {f"uncertainty {n}" for n in names} | {"NLL"}
    if limit:
        expected |= {"upper limit observed"} | {f"upper limit expected {k}" for k in cc.EXPECTED_LABELS}
    assert expected <= q, sorted(expected - q)


# --- the workspaces in ../shared --------------------------------------------------------

SMALL = ["simple", "two_channel", "complex", "histfactory_import", "example_bkgonly"]

# Disagreements with pyhf that the product does not correct yet (issue 13 stays open on them;
# docs/validation.md). Strict: the day one of them agrees, its test fails until it leaves this list.
# Empty since the product computes the Asimov data itself where the engine's are off
# (engine/asymptotics.py: histfactory_import, example_patchset:patch_channel1_signal_syst1) and
# finishes the engine's minimisation with a Newton step (engine/uncertainties.py: lumi-without-sigmas).
KNOWN_DISAGREEMENTS: dict[str, str] = {}


def known(case_id: str, *values: Any) -> Any:
    """A parameter set, marked as an expected (strict) failure when it is a known disagreement."""
    reason = KNOWN_DISAGREEMENTS.get(case_id)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(*values, id=case_id, marks=marks)


@pytest.mark.parametrize("name", [known(n, n) for n in SMALL])
def test_shared_workspace_agrees_with_pyhf(name: str) -> None:
    filename = name if name.startswith("example") else f"{name}_workspace"
    inp = ws_input(f"{filename}.json")
    ref = cc.reference_from_inputs(inp, None, None)
    report = cc.report(inp.name, None, cc.ours(inp, None, None), ref)
    assert_complete(report, ref)
    assert_agree(report)


def test_histfactory_import_gamma_constraint_is_pyhf_shapesys() -> None:
    """The `constraint` field pyhf's schema refuses: its Gamma constraint is built for pyhf as a
    shapesys (Poisson, tau = 1/rel^2); the two NLLs then differ by sum(log tau) at every point."""
    document = json.loads(shared("workspaces", "histfactory_import_workspace.json").read_text())
    translated, offset, notes = cc._translate_extensions(document)
    import pyhf

    pyhf.set_backend("numpy")
    ws = pyhf.Workspace(translated)
    model = ws.model()
    data = ws.data(model)
    engine = ns.from_pyhf(json.dumps(document))
    assert model.config.par_names == engine.parameter_names()
    for point in ([1.0, 0.0, 1.0, 1.0, 1.0], [0.3, 1.2, 0.8, 1.3, 0.9], [2.5, -0.7, 1.1, 0.95, 1.2]):
        assert engine.nll(point) == pytest.approx(-float(model.logpdf(point, data)[0]) + offset, abs=1e-10)
    assert offset == pytest.approx(-sum(math.log(t) for t in (10.0, 18.0, 9.0)), rel=1e-9)
    # Without the translation (the field dropped: pyhf's Normal constraint) the two NLLs differ
    # by more than a constant: the Gamma constraint is not a normalisation detail.
    plain = copy.deepcopy(document)
    for p in plain["measurements"][0]["config"]["parameters"]:
        p.pop("constraint", None)
    ws_plain = pyhf.Workspace(plain)
    m_plain = ws_plain.model()
    d_plain = ws_plain.data(m_plain)
    gaps = [engine.nll(x) + float(m_plain.logpdf(x, d_plain)[0]) for x in ([1.0, 0.0, 1.0, 1.0, 1.0],
                                                                          [0.3, 1.2, 0.8, 1.3, 0.9])]
    assert abs(gaps[0] - gaps[1]) > 1e-2
    assert notes


# --- pyhf's patchsets against example_bkgonly.json ---------------------------------------

def _patches(patchset: str) -> list[str]:
    document = json.loads(shared("workspaces", patchset).read_text())
    return [p["metadata"]["name"] for p in document["patches"]]


PATCH_CASES = [(ps, p) for ps in ("example_patchset.json", "example_patchset_2_patches.json") for p in _patches(ps)]


@pytest.mark.parametrize(("patchset", "patch"),
                         [known(f"{ps.removesuffix('.json')}:{p}", ps, p) for ps, p in PATCH_CASES])
def test_pyhf_patchset_patch_agrees_with_pyhf(patchset: str, patch: str) -> None:
    """Each patch of each pyhf patchset: both sides apply it and agree, or both refuse it
    (example_patchset_2_patches.json was made for another workspace: its md5 digest is that
    of the string "test")."""
    ws, ps = ws_input("example_bkgonly.json"), InputFile.read("patchset", shared("workspaces", patchset))
    ref = cc.reference_from_inputs(ws, ps, patch)
    if ref.fit is None:
        assert ref.fit_error is not None and "PatchSetVerificationError" in ref.fit_error
        with pytest.raises(InputError, match="made for another workspace"):
            cc.crosscheck(ws, ps, patch)
        return
    report = cc.report(ws.name, patch, cc.ours(ws, ps, patch), ref)
    assert_complete(report, ref)
    assert_agree(report)


# --- generated workspaces: every modifier type, every measurement setting -----------------

def generated(parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every modifier type in three channels: a signal region (signal, a background with
    normsys + histosys + staterror, another with a normfactor + shapesys sharing the staterror,
    a data-driven one with a shapefactor) and two control regions that fix the normfactor and
    the shapefactor. Observations away from the nominal (a signal of about 1.4, pulled
    backgrounds) so that every parameter moves; every parameter is well determined."""
    lumi = {"name": "lumi", "type": "lumi", "data": None}
    bkg_xs = {"name": "bkg_xs", "type": "normsys", "data": {"hi": 1.07, "lo": 0.95}}
    bkg_norm = {"name": "bkg_norm", "type": "normfactor", "data": None}
    fakes = {"name": "fake_shape", "type": "shapefactor", "data": None}
    sr = {"name": "SR", "samples": [
        {"name": "signal", "data": [8.0, 12.0], "modifiers": [
            {"name": "mu", "type": "normfactor", "data": None}, lumi,
            {"name": "sig_xs", "type": "normsys", "data": {"hi": 1.1, "lo": 0.92}}]},
        {"name": "bkg", "data": [50.0, 36.0], "modifiers": [
            lumi, bkg_xs,
            {"name": "jes", "type": "histosys", "data": {"hi_data": [53.0, 36.5], "lo_data": [47.5, 35.0]}},
            {"name": "staterror_SR", "type": "staterror", "data": [3.0, 2.6]}]},
        {"name": "other", "data": [10.0, 8.0], "modifiers": [
            lumi, bkg_norm, {"name": "other_unc", "type": "shapesys", "data": [2.0, 1.6]},
            {"name": "staterror_SR", "type": "staterror", "data": [1.0, 0.9]}]},
        {"name": "fakes", "data": [5.0, 4.0], "modifiers": [fakes]},
    ]}
    cr_fakes = {"name": "CR_fakes", "samples": [
        {"name": "fakes", "data": [80.0, 60.0], "modifiers": [fakes]},
        {"name": "bkg", "data": [20.0, 15.0], "modifiers": [
            lumi, bkg_xs,
            {"name": "jes", "type": "histosys", "data": {"hi_data": [21.0, 15.5], "lo_data": [19.0, 14.6]}}]},
    ]}
    cr_other = {"name": "CR_other", "samples": [
        {"name": "other", "data": [200.0], "modifiers": [lumi, bkg_norm]},
        {"name": "bkg", "data": [30.0], "modifiers": [lumi, bkg_xs]},
    ]}
    if parameters is None:
        parameters = [LUMI]
    return {
        "channels": [sr, cr_fakes, cr_other],
        "observations": [{"name": "SR", "data": [79.0, 64.0]}, {"name": "CR_fakes", "data": [107.0, 70.0]},
                         {"name": "CR_other", "data": [251.0]}],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": parameters}}],
        "version": "1.0.0",
    }


LUMI = {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.9, 1.1]], "inits": [1.0]}

# (id, measurement parameters)
GENERATED: list[tuple[str, list[dict[str, Any]]]] = [
    ("defaults", [LUMI]),
    ("fixed-normsys", [LUMI, {"name": "bkg_xs", "fixed": True}]),
    ("fixed-histosys-at-init", [LUMI, {"name": "jes", "fixed": True, "inits": [0.5]}]),
    ("fixed-staterror", [LUMI, {"name": "staterror_SR", "fixed": True}]),
    ("fixed-lumi", [{**LUMI, "fixed": True}]),
    ("fixed-normfactor-and-shapefactor", [LUMI, {"name": "bkg_norm", "fixed": True, "inits": [1.1]},
                                          {"name": "fake_shape", "fixed": True}]),
    ("bounds", [LUMI, {"name": "mu", "bounds": [[0.0, 5.0]]}, {"name": "bkg_xs", "bounds": [[-3.0, 3.0]]},
                {"name": "bkg_norm", "bounds": [[0.5, 2.0]]},
                {"name": "fake_shape", "bounds": [[0.5, 1.5], [0.5, 1.5]]}]),
    ("inits", [LUMI, {"name": "mu", "inits": [2.0]}, {"name": "bkg_xs", "inits": [0.5]},
               {"name": "jes", "inits": [-0.4]}, {"name": "bkg_norm", "inits": [1.3]},
               {"name": "fake_shape", "inits": [1.1, 0.9]}, {"name": "staterror_SR", "inits": [1.05, 0.97]}]),
    # pyhf 0.7.6 needs a lumi's auxdata, bounds and inits; without sigmas its width is 1 (the
    # +2 sigma expected limit is then above 10, the POI's default bound, where pyhf cannot test).
    ("lumi-without-sigmas", [{"name": "lumi", "auxdata": [1.0], "bounds": [[0.5, 1.5]], "inits": [1.0]},
                             {"name": "mu", "bounds": [[0.0, 50.0]]}]),
    ("lumi-shifted-auxdata-sigmas", [{"name": "lumi", "auxdata": [0.98], "sigmas": [0.03], "bounds": [[0.8, 1.2]],
                                      "inits": [1.0]}]),
    ("staterror-sigmas-only", [LUMI, {"name": "staterror_SR", "sigmas": [0.08, 0.1]}]),
    ("staterror-auxdata-only", [LUMI, {"name": "staterror_SR", "auxdata": [1.03, 0.98]}]),
    ("staterror-auxdata-and-sigmas", [LUMI, {"name": "staterror_SR", "auxdata": [1.03, 0.98], "sigmas": [0.08, 0.1]}]),
    # auxdata the engine cannot honour, but written at pyhf's defaults (shapesys: tau = (10/2)^2, (8/1.6)^2)
    ("auxdata-at-pyhf-defaults", [LUMI, {"name": "bkg_xs", "auxdata": [0.0]}, {"name": "jes", "auxdata": [0.0]},
                                  {"name": "other_unc", "auxdata": [25.0, 25.0]}]),
]


def _generated_ids() -> list[str]:
    return [case[0] for case in GENERATED]


@pytest.mark.parametrize(("case", "parameters"), [known(c, c, p) for c, p in GENERATED])
def test_generated_workspace_agrees_with_pyhf(case: str, parameters: list[dict[str, Any]]) -> None:
    document = generated(parameters)
    inp = doc_input(document, f"generated-{case}.json")
    ref = cc.reference(document)
    report = cc.report(inp.name, None, cc.ours(inp, None, None), ref)
    assert_complete(report, ref)
    assert_agree(report)


def test_generated_workspace_covers_every_modifier_type_and_setting() -> None:
    types = {m["type"] for c in generated()["channels"] for s in c["samples"] for m in s["modifiers"]}
    assert types == {"normfactor", "normsys", "histosys", "shapesys", "staterror", "lumi", "shapefactor"}
    settings = {k for _, params in GENERATED for p in params for k in p if k != "name"}
    assert settings == {"fixed", "bounds", "inits", "auxdata", "sigmas"}


# Settings pyhf honours and the engine cannot: the product must refuse them.
REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("normsys-auxdata", {"name": "bkg_xs", "auxdata": [0.5]}),
    ("histosys-auxdata", {"name": "jes", "auxdata": [-0.3]}),
    ("shapesys-auxdata", {"name": "other_unc", "auxdata": [20.0, 18.0]}),
    ("shapesys-factors", {"name": "other_unc", "factors": [20.0, 30.0]}),
]


@pytest.mark.parametrize(("case", "setting"), REFUSED, ids=[c for c, _ in REFUSED])
@pytest.mark.parametrize("task", ["fit", "upper-limit"])
def test_unsupported_setting_is_refused(case: str, setting: dict[str, Any], task: str) -> None:
    document = generated([LUMI, setting])
    # pyhf builds it (the input is valid HistFactory) and the setting changes its likelihood ...
    import pyhf

    pyhf.set_backend("numpy")
    ws = pyhf.Workspace(document)
    model = ws.model()
    base = generated()
    base_model = pyhf.Workspace(base).model()
    point = model.config.suggested_init()
    assert float(model.logpdf(point, ws.data(model))[0]) != pytest.approx(
        float(base_model.logpdf(point, pyhf.Workspace(base).data(base_model))[0]), abs=1e-6)
    # ... and our side refuses it, naming the parameter, instead of computing another likelihood.
    with pytest.raises(InputError, match=setting["name"]):
        execute(prepare(task, {}, [doc_input(document)]), None)


# --- tttt-prod and tHu: against the stored pyhf reference ---------------------------------

LARGE = ["tttt-prod", "tHu"]


def reference_settings() -> dict[str, float]:
    return {"REFERENCE_FIT_TOLERANCE": cc.REFERENCE_FIT_TOLERANCE, "HESSIAN_STEP": cc.HESSIAN_STEP,
            "HESSIAN_STEP_START": cc.HESSIAN_STEP_START, "REFERENCE_LIMIT_RTOL": cc.REFERENCE_LIMIT_RTOL,
            "REFERENCE_LIMIT_ATOL": cc.REFERENCE_LIMIT_ATOL}


def golden_path(name: str) -> Path:
    return GOLDEN / f"pyhf_reference_{name}.json"


def load_reference(name: str) -> cc.Side:
    import pyhf

    path = golden_path(name)
    if not path.exists():
        pytest.fail(f"{path} is missing: regenerate it (see this file's docstring)")
    stored = json.loads(path.read_text())
    data = shared("workspaces", f"{name}_workspace.json").read_bytes()
    assert stored["workspace_sha256"] == hashlib.sha256(data).hexdigest(), f"{name}: the workspace changed"
    assert stored["pyhf"] == pyhf.__version__, f"{name}: the reference was computed with pyhf {stored['pyhf']}"
    assert stored["settings"] == reference_settings(), f"{name}: the reference settings changed"
    return cc.Side.model_validate(stored["side"])


@pytest.mark.parametrize("name", LARGE)
def test_large_workspace_agrees_with_stored_pyhf_reference(name: str) -> None:
    ref = load_reference(name)
    inp = ws_input(f"{name}_workspace.json")
    with_limit = ref.limit_error != "not computed"
    report = cc.report(inp.name, None, cc.ours(inp, None, None, limit=with_limit), ref)
    assert_complete(report, ref, limit=with_limit and ref.limit is not None)
    assert_agree(report)


def write_reference(name: str) -> None:
    import time

    import pyhf

    path = shared("workspaces", f"{name}_workspace.json")
    data = path.read_bytes()
    start = time.perf_counter()
    side = cc.reference(json.loads(data), limit=name != "tttt-prod")
    stored = {"workspace": path.name, "workspace_sha256": hashlib.sha256(data).hexdigest(), "pyhf": pyhf.__version__,
              "settings": reference_settings(), "seconds": time.perf_counter() - start, "side": side.model_dump()}
    golden_path(name).write_text(json.dumps(stored, indent=1) + "\n")
    print(f"{name}: {stored['seconds']:.0f} s, fit error {side.fit_error}, limit error {side.limit_error}")


# --- the comparison itself can fail ---------------------------------------------------------

@pytest.fixture(scope="module")
def fixed_case() -> tuple[InputFile, InputFile, str, cc.Side, cc.Side]:
    ws, ps = ws_input("example_bkgonly.json"), InputFile.read("patchset", shared("workspaces", "example_patchset.json"))
    patch = "patch_channel1_signal_syst1"
    return ws, ps, patch, cc.ours(ws, ps, patch, limit=False), cc.reference_from_inputs(ws, ps, patch, limit=False)


def test_engine_raw_uncertainties_would_fail_on_fixed_parameters(fixed_case: Any) -> None:
    """The engine's own result.uncertainties (a Hessian with every parameter free) are what
    runs reported before: the cross-check must reject them (lumi is fixed by the measurement)."""
    ws, ps, patch, ours, ref = fixed_case
    prepared = prepare("fit", {}, [ws, ps], patch)
    raw = ns.fit(prepared.subject)
    names = prepared.subject.parameter_names()
    assert ours.fit is not None
    raw_fit = ours.fit.model_copy(update={"uncertainties": dict(zip(names, raw.uncertainties, strict=True))})
    rows = {r.quantity: r for r in cc.compare(ours.model_copy(update={"fit": raw_fit}), ref)}
    assert not rows["uncertainty lumi (fixed)"].ok
    assert not rows["uncertainty SigXsecOverSM"].ok
    assert rows["uncertainty SigXsecOverSM"].reference == pytest.approx(0.644, abs=1e-3)
    assert raw_fit.uncertainties is not None
    assert raw_fit.uncertainties["SigXsecOverSM"] == pytest.approx(0.849, abs=1e-3)


@pytest.mark.parametrize("what", ["value", "uncertainty", "nll", "fixed-flag", "missing-parameter"])
def test_each_quantity_outside_tolerance_fails(fixed_case: Any, what: str) -> None:
    _, _, _, ours, ref = fixed_case
    assert ours.fit is not None and ref.fit is not None and ref.fit.uncertainties is not None
    fit = ours.fit
    poi = "SigXsecOverSM"
    sigma = ref.fit.uncertainties[poi]
    if what == "value":  # 3e-3 sigma: beyond VALUE_SIGMA_TOL and beyond 1e-3 relative
        shift = max(1.5 * cc.VALUE_SIGMA_TOL * sigma, 1.5 * cc.VALUE_RTOL * abs(ref.fit.values[poi]))
        fit = fit.model_copy(update={"values": {**fit.values, poi: ref.fit.values[poi] + shift}})
        key = f"value {poi}"
    elif what == "uncertainty":
        wrong = sigma * (1 + 2 * cc.UNCERTAINTY_RTOL)
        fit = fit.model_copy(update={"uncertainties": {**ref.fit.uncertainties, poi: wrong}})
        key = f"uncertainty {poi}"
    elif what == "nll":
        fit = fit.model_copy(update={"nll": ref.fit.nll + 2 * cc.NLL_ATOL})
        key = "NLL"
    elif what == "fixed-flag":
        fit = fit.model_copy(update={"fixed": []})
        key = "fixed parameters"
    else:
        fit = fit.model_copy(update={"values": {k: v for k, v in fit.values.items() if k != "syst1"}})
        key = "value syst1"
    rows = {r.quantity.split(" (")[0]: r for r in cc.compare(ours.model_copy(update={"fit": fit}), ref)}
    assert not rows[key].ok


def test_limits_outside_tolerance_and_one_sided_failures_fail() -> None:
    limit = cc.LimitOutcome(observed=2.0, expected=[0.6, 0.8, 1.1, 1.6, 2.2])
    ref = cc.Side(name="pyhf", limit=limit, fit_error="x")
    off = cc.LimitOutcome(observed=2.0 * (1 + 2 * cc.LIMIT_RTOL),
                          expected=[0.6, 0.8, 1.1, 1.6, 2.2 * (1 - 2 * cc.LIMIT_RTOL)])
    rows = {r.quantity: r for r in cc.compare(cc.Side(name="ours", limit=off, fit_error="x"), ref)}
    assert not rows["upper limit observed"].ok and not rows["upper limit expected +2sigma"].ok
    assert rows["upper limit expected median"].ok
    assert rows["fit"].ok  # both failed: agree
    one_sided = {r.quantity: r for r in cc.compare(cc.Side(name="ours", limit_error="CLs(0)=0", fit_error="x"), ref)}
    assert not one_sided["upper limit"].ok and "ours failed" in (one_sided["upper limit"].note or "")


def test_reference_hessian_matches_an_analytic_model() -> None:
    """One bin, n = 150 observed, nu = mu * 100 + 50 * gamma with a staterror gamma of 10 %:
    the reference's finite-difference Hessian against the analytic one at the best fit."""
    document = {
        "channels": [{"name": "c", "samples": [
            {"name": "s", "data": [100.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "b", "data": [50.0], "modifiers": [{"name": "st", "type": "staterror", "data": [5.0]}]}]}],
        "observations": [{"name": "c", "data": [150.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    side = cc.reference(document, limit=False)
    assert side.fit is not None and side.fit.uncertainties is not None
    mu, gamma = side.fit.values["mu"], side.fit.values["st[0]"]
    # NLL = nu - n log nu + (gamma - 1)^2 / (2 * 0.1^2); nu = 100 mu + 50 gamma
    nu, n = 100 * mu + 50 * gamma, 150.0
    w = n / nu**2
    h = [[w * 100 * 100, w * 100 * 50], [w * 100 * 50, w * 50 * 50 + 1 / 0.1**2]]
    det = h[0][0] * h[1][1] - h[0][1] ** 2
    assert side.fit.uncertainties["mu"] == pytest.approx((h[1][1] / det) ** 0.5, rel=1e-6)
    assert side.fit.uncertainties["st[0]"] == pytest.approx((h[0][0] / det) ** 0.5, rel=1e-6)


# --- the command ------------------------------------------------------------------------------

def test_cli_crosscheck_json_and_exit_codes(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(shared("workspaces", "simple_workspace.json"))
    out = cli("crosscheck", path, "--json")
    assert out.code == 0, out.err
    report = cc.CrosscheckReport.model_validate_json(out.out)
    assert report.ok and report.against == "pyhf" and len(report.rows) == 3 + 3 + 1 + 6
    table = cli("crosscheck", path)
    assert table.code == 0 and "upper limit expected median" in table.out and "agree" in table.out
    # Outside tolerance: exit 8 and a one-line error.
    real = cc.ours

    def shifted(*args: Any, **kwargs: Any) -> cc.Side:
        side = real(*args, **kwargs)
        assert side.fit is not None
        return side.model_copy(update={"fit": side.fit.model_copy(update={"nll": side.fit.nll + 1.0})})

    monkeypatch.setattr(cc, "ours", shifted)
    bad = cli("crosscheck", path)
    assert bad.code == 8 and "NLL" in bad.out and "error:" in bad.err
    usage = cli("crosscheck", path, "--against", "root")
    assert usage.code == 2


if __name__ == "__main__":
    if sys.argv[1:2] != ["--write-reference"] or not sys.argv[2:]:
        sys.exit("usage: tests/test_physics_vs_pyhf.py --write-reference NAME...  (NAME: tttt-prod, tHu)")
    for workspace in sys.argv[2:]:
        write_reference(workspace)
