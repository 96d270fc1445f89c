"""The engine behaviours the product corrects (engine/uncertainties.py, engine/measurement.py),
checked against answers computed by hand; tests/test_physics_vs_pyhf.py checks them against pyhf."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import nextstat as ns
import pytest

from nextstat_pro.engine import InputFile, execute, prepare
from nextstat_pro.engine.histfactory import load_model
from nextstat_pro.engine.inputs import Workspace
from nextstat_pro.engine.measurement import pyhf_settings
from nextstat_pro.errors import InputError

from .conftest import shared


def one_bin(n: float, s: float, b: float, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """One bin: signal s * mu * lumi, background b * normsys(syst); n observed."""
    return {
        "channels": [{"name": "sr", "samples": [
            {"name": "signal", "data": [s], "modifiers": [
                {"name": "mu", "type": "normfactor", "data": None},
                {"name": "lumi", "type": "lumi", "data": None}]},
            {"name": "background", "data": [b], "modifiers": [
                {"name": "syst", "type": "normsys", "data": {"hi": 1.2, "lo": 0.8}}]}]}],
        "observations": [{"name": "sr", "data": [n]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": parameters}}],
        "version": "1.0.0",
    }


FIXED = [{"name": "lumi", "auxdata": [1.0], "sigmas": [0.1], "bounds": [[0.5, 1.5]], "inits": [1.0], "fixed": True},
         {"name": "syst", "fixed": True}]


def run(task: str, doc: dict[str, Any], **params: str) -> dict[str, Any]:
    inp = InputFile.from_bytes("workspace", "w.json", json.dumps(doc).encode())
    return execute(prepare(task, dict(params), [inp]), None)


def test_fixed_parameters_get_no_uncertainty_and_do_not_inflate_others() -> None:
    # With lumi and syst fixed only mu is free: a Poisson bin gives mu_hat = (n - b) / s and
    # sigma(mu) = sqrt(n) / s exactly (the curvature of n*log(mu s + b) - (mu s + b) at its minimum).
    doc = one_bin(25.0, 10.0, 5.0, FIXED)
    result = run("fit", doc)
    rows = {p["name"]: p for p in result["parameters"]}
    assert rows["mu"]["value"] == pytest.approx(2.0, rel=1e-5)
    assert rows["mu"]["uncertainty"] == pytest.approx(math.sqrt(25.0) / 10.0, rel=1e-5)
    assert (rows["lumi"]["uncertainty"], rows["lumi"]["fixed"]) == (0.0, True)
    assert (rows["syst"]["uncertainty"], rows["syst"]["fixed"]) == (0.0, True)
    assert rows["mu"]["fixed"] is False
    # The engine alone reports the all-free Hessian's widths: lumi and syst inflate mu's.
    raw = ns.fit(ns.from_pyhf(json.dumps(doc)))
    names = ns.from_pyhf(json.dumps(doc)).parameter_names()
    assert raw.uncertainties[names.index("mu")] > 1.05 * rows["mu"]["uncertainty"]
    assert raw.uncertainties[names.index("lumi")] > 0
    # The fit-quality verdict lists fixed parameters apart from parameters at a bound.
    assert sorted(result["quality"]["fixed"]) == ["lumi", "syst"]
    assert result["quality"]["at_bound"] == []
    assert result["quality"]["ok"] is True


def test_every_task_reports_the_free_parameters_uncertainty() -> None:
    doc = one_bin(25.0, 10.0, 5.0, FIXED)
    expected = math.sqrt(25.0) / 10.0
    for task in ("fit", "hypotest", "upper-limit", "scan", "ranking", "toys"):
        params = {"n_toys": "3"} if task == "toys" else {}
        inp = InputFile.from_bytes("workspace", "w.json", json.dumps(doc).encode())
        result = execute(prepare(task, params, [inp]), 7 if task == "toys" else None)
        assert result["poi"]["uncertainty"] == pytest.approx(expected, rel=1e-5), task


def test_ranking_leaves_fixed_parameters_out_and_rescales_constraints() -> None:
    bkg = InputFile.read("workspace", shared("workspaces", "example_bkgonly.json"))
    patchset = InputFile.read("patchset", shared("workspaces", "example_patchset.json"))
    result = execute(prepare("ranking", {}, [bkg, patchset], patch="patch_channel1_signal_syst1"), None)
    fit = execute(prepare("fit", {}, [bkg, patchset], patch="patch_channel1_signal_syst1"), None)
    widths = {p["name"]: p["uncertainty"] for p in fit["parameters"]}
    assert result["fixed_parameters"] == ["lumi"]
    assert "lumi" not in {r["name"] for r in result["impacts"]}
    # staterror_channel1[1]: prior width 0.1 (its relative MC uncertainty), so constraint = sigma / 0.1.
    entry = next(r for r in result["impacts"] if r["name"] == "staterror_channel1[1]")
    assert entry["constraint"] == pytest.approx(widths["staterror_channel1[1]"] / 0.1, rel=1e-6)


def test_best_fit_is_the_engines_bit_for_bit() -> None:
    # With fixed parameters the fit runs without the engine's Hessian (fit_minimum): same minimiser, same point.
    text = shared("workspaces", "example_bkgonly.json").read_text()
    doc = json.loads(text)
    model = load_model(Workspace(doc, text=text))
    inp = InputFile.from_bytes("workspace", "w.json", text.encode())
    ours = execute(prepare("fit", {}, [inp]), None)
    raw = ns.fit(model)
    assert [p["value"] for p in ours["parameters"]] == list(raw.parameters)
    assert ours["nll"] == raw.nll


def test_covariance_on_request_is_the_free_parameters() -> None:
    doc = one_bin(25.0, 10.0, 5.0, FIXED[:1])  # lumi fixed, syst free
    result = run("fit", doc, covariance="true")
    cov = result["covariance"]
    assert cov["parameters"] == [p["name"] for p in result["parameters"] if not p["fixed"]]
    widths = {p["name"]: p["uncertainty"] for p in result["parameters"]}
    matrix = cov["matrix"]
    for a, name in enumerate(cov["parameters"]):
        assert math.sqrt(matrix[a][a]) == pytest.approx(widths[name], rel=1e-12)
        for b in range(len(matrix)):
            assert matrix[a][b] == pytest.approx(matrix[b][a], rel=1e-9)
    assert "covariance" not in run("fit", doc)


def test_lumi_without_sigmas_gets_pyhfs_width() -> None:
    # pyhf: a lumi setting without sigmas is a unit-width Gaussian; the engine alone uses 0.02.
    settings = [{"name": "lumi", "auxdata": [1.0], "bounds": [[0.0, 10.0]], "inits": [1.0]}]
    doc = one_bin(25.0, 10.0, 5.0, settings)
    rewritten = pyhf_settings(doc)
    assert rewritten is not None
    assert rewritten["measurements"][0]["config"]["parameters"][0]["sigmas"] == [1.0]
    assert doc["measurements"][0]["config"]["parameters"][0].get("sigmas") is None  # the input is not changed
    point = [1.0, 1.5, 0.0]
    ours = load_model(Workspace(doc))
    explicit = copy.deepcopy(doc)
    explicit["measurements"][0]["config"]["parameters"][0]["sigmas"] = [1.0]
    reference = ns.from_pyhf(json.dumps(explicit))
    names = ours.parameter_names()
    x = [point[["mu", "lumi", "syst"].index(n)] for n in names]
    assert ours.nll(x) == reference.nll(x)
    assert ns.from_pyhf(json.dumps(doc)).nll(x) != reference.nll(x)  # what the correction is for


def test_staterror_halves_are_completed_as_pyhf_does() -> None:
    doc = json.loads(shared("workspaces", "example_bkgonly.json").read_text())
    staterror = next(m for c in doc["channels"] for s in c["samples"] for m in s["modifiers"]
                     if m["type"] == "staterror")
    name = staterror["name"]
    with_sigmas = copy.deepcopy(doc)
    with_sigmas["measurements"][0]["config"]["parameters"].append({"name": name, "sigmas": [0.2, 0.3]})
    out = pyhf_settings(with_sigmas)
    assert out is not None
    setting = next(p for p in out["measurements"][0]["config"]["parameters"] if p["name"] == name)
    assert setting == {"name": name, "sigmas": [0.2, 0.3], "auxdata": [1.0, 1.0]}
    # auxdata alone: sigmas computed from the samples' uncertainties, as pyhf's staterror builder does.
    with_aux = copy.deepcopy(doc)
    with_aux["measurements"][0]["config"]["parameters"].append({"name": name, "auxdata": [1.1, 0.9]})
    out = pyhf_settings(with_aux)
    assert out is not None
    setting = next(p for p in out["measurements"][0]["config"]["parameters"] if p["name"] == name)
    channel = next(c for c in doc["channels"] if any(m["name"] == name for s in c["samples"] for m in s["modifiers"]))
    users = [(s["data"], m["data"]) for s in channel["samples"] for m in s["modifiers"] if m["name"] == name]
    by_hand = [math.sqrt(sum(u[b] ** 2 for _, u in users)) / sum(d[b] for d, _ in users) for b in range(2)]
    assert setting["sigmas"] == pytest.approx(by_hand, rel=1e-12)
    # auxdata of 1.0 alone is the engine's default already: nothing to rewrite.
    plain = copy.deepcopy(doc)
    plain["measurements"][0]["config"]["parameters"].append({"name": name, "auxdata": [1.0, 1.0]})
    assert pyhf_settings(plain) is None


@pytest.mark.parametrize(("setting", "message"), [
    ({"name": "syst", "auxdata": [0.5]}, "normsys auxdata other than"),
    ({"name": "syst", "sigmas": [2.0]}, "takes no sigmas"),
])
def test_settings_the_engine_cannot_honour_are_refused(setting: dict[str, Any], message: str) -> None:
    doc = one_bin(25.0, 10.0, 5.0, [*FIXED[:1], setting])
    inp = InputFile.from_bytes("workspace", "w.json", json.dumps(doc).encode())
    with pytest.raises(InputError, match=message):
        prepare("fit", {}, [inp])
    # pyhf's default auxdata is accepted.
    doc = one_bin(25.0, 10.0, 5.0, [*FIXED[:1], {"name": "syst", "auxdata": [0.0]}])
    prepare("fit", {}, [InputFile.from_bytes("workspace", "w.json", json.dumps(doc).encode())])


def test_shapesys_settings_other_than_pyhfs_defaults_are_refused() -> None:
    doc = one_bin(25.0, 10.0, 5.0, FIXED[:1])
    doc["channels"][0]["samples"][1]["modifiers"].append({"name": "shape", "type": "shapesys", "data": [2.0]})
    defaults = [(5.0 / 2.0) ** 2]
    for key in ("auxdata", "factors"):
        ok = copy.deepcopy(doc)
        ok["measurements"][0]["config"]["parameters"].append({"name": "shape", key: defaults})
        prepare("fit", {}, [InputFile.from_bytes("workspace", "w.json", json.dumps(ok).encode())])
        bad = copy.deepcopy(doc)
        bad["measurements"][0]["config"]["parameters"].append({"name": "shape", key: [4.0]})
        with pytest.raises(InputError, match=f"shapesys {key} other than pyhf's defaults"):
            prepare("fit", {}, [InputFile.from_bytes("workspace", "w.json", json.dumps(bad).encode())])
