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


# --- the Newton step that finishes the engine's minimisation (engine/uncertainties.py) ------------

def _lumi_without_sigmas() -> dict[str, Any]:
    from .test_physics_vs_pyhf import GENERATED, generated

    return generated(dict(GENERATED)["lumi-without-sigmas"])


def _tight_minimum(model: Any) -> list[float]:
    """The NLL's minimum found independently of the product's code: L-BFGS-B on the engine's
    NLL and gradient from the engine's point, run to the rounding of the NLL."""
    from scipy.optimize import minimize

    start = ns.MaximumLikelihoodEstimator().fit_minimum(model).parameters
    result = minimize(lambda x: model.nll(list(x)), start, jac=lambda x: model.grad_nll(list(x)), method="L-BFGS-B",
                      bounds=model.suggested_bounds(), options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 100000})
    return list(result.x)


def test_newton_step_finishes_a_minimisation_that_stops_short() -> None:
    # lumi constrained by the data alone (width 1): mu x lumi is nearly flat and the engine's
    # minimiser stops 4e-3 of an uncertainty short.
    doc = _lumi_without_sigmas()
    model = load_model(Workspace(doc))
    names = model.parameter_names()
    best = _tight_minimum(model)
    result = run("fit", doc)
    sigma = {p["name"]: p["uncertainty"] for p in result["parameters"]}
    ours = [p["value"] for p in result["parameters"]]
    engine = ns.MaximumLikelihoodEstimator().fit_minimum(model).parameters

    def worst(values: list[float]) -> float:
        return max(abs(v - b) / sigma[n] for n, v, b in zip(names, values, best, strict=True))

    assert worst(engine) > 2e-3  # what the engine alone reports
    assert worst(ours) < 1e-4
    assert result["nll"] == pytest.approx(model.nll(best), abs=1e-9)
    step = result["quality"]["newton_step"]
    assert step["applied"] and step["hessian_refreshed"] and step["nll_decrease"] > 5e-6
    # The uncertainties are taken at the minimum, not at the engine's point (the Hessian changes by
    # 4e-3 between the two here; it changes by ~1e-4 over the 1e-5 sigma left between ours and the
    # tight minimum): central differences there, independent of the product's forward ones.
    h = 1e-4
    free = list(range(len(best)))
    hess = [[0.0] * len(free) for _ in free]
    for a in free:
        up, down = list(best), list(best)
        up[a] += h * sigma[names[a]]
        down[a] -= h * sigma[names[a]]
        gu, gd = model.grad_nll(up), model.grad_nll(down)
        for b in free:
            hess[a][b] = (gu[b] - gd[b]) / (2 * h * sigma[names[a]])
    import numpy as np

    cov = np.linalg.inv((np.asarray(hess) + np.asarray(hess).T) / 2)
    for a, n in enumerate(names):
        assert sigma[n] == pytest.approx(math.sqrt(cov[a, a]), rel=5e-4), n


def test_newton_step_holds_parameters_at_an_active_bound() -> None:
    # Fewer events than the background alone: mu sits at its lower bound 0, its gradient pushing
    # outwards. The step moves the other parameters only and stays inside every bound.
    from nextstat_pro.engine import uncertainties

    doc = json.loads(shared("workspaces", "simple_workspace.json").read_text())
    doc["observations"][0]["data"] = [40.0, 44.0]
    model = load_model(Workspace(doc))
    fit = uncertainties.fit(model)
    poi = model.poi_index()
    assert fit.values[poi] == 0.0
    assert fit.newton is not None and fit.newton.held_at_bound == [poi]
    assert fit.gradient[poi] > 0  # the true gradient, not the minimiser's projected 0
    for v, (lo, hi) in zip(fit.values, model.suggested_bounds(), strict=True):
        assert lo <= v <= hi


def test_fit_carries_the_gradient_the_quality_check_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    # The minimiser's final gradient is the engine's gradient at its point, bit for bit, over the
    # free parameters: the fit carries it to the quality check instead of evaluating it again.
    from nextstat_pro.engine import histfactory

    text = shared("workspaces", "example_bkgonly.json").read_text()
    model = load_model(Workspace(json.loads(text), text=text))
    seen: dict[str, Any] = {}
    real = histfactory.assess_fit

    def spy(names: Any, values: Any, bounds: Any, gradient: Any, converged: bool, grad_tol: float) -> Any:
        seen["gradient"] = gradient
        return real(names, values, bounds, gradient, converged, grad_tol)

    monkeypatch.setattr(histfactory, "assess_fit", spy)
    result, quality = histfactory._fit(model, 1e-3)
    assert seen["gradient"] is result.gradient
    assert quality["newton_step"]["applied"] is False  # example_bkgonly: 1e-5 sigma from its minimum
    direct = model.grad_nll(result.values)
    free = [i for i, f in enumerate(result.fixed) if not f]
    assert free and [result.gradient[i] for i in free] == [direct[i] for i in free]
    assert all(result.gradient[i] == 0.0 for i, f in enumerate(result.fixed) if f)


# --- asymptotic CLs from correct Asimov data (engine/asymptotics.py) --------------------------

def gamma_one_bin(n: float, s: float, b: float, rel: float) -> dict[str, Any]:
    """One bin: signal s * mu, background b * gamma with a Gamma constraint of relative width
    ``rel`` (as HistFactory XML imports write it); n observed."""
    return {
        "channels": [{"name": "c", "samples": [
            {"name": "signal", "data": [s], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "background", "data": [b], "modifiers": [
                {"name": "staterror_c", "type": "staterror", "data": [rel * b]}]}]}],
        "observations": [{"name": "c", "data": [n]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[0.0, 10.0]]},
            {"name": "staterror_c[0]", "constraint": {"type": "Gamma", "rel_uncertainty": rel}}]}}],
        "version": "1.0.0",
    }


class GammaByHand:
    """q-tilde for ``gamma_one_bin`` by hand: NLL = nu - n log nu + tau*gamma - tau*a*log(gamma)
    (constants dropped), nu = s*mu + b*gamma, tau = 1/rel^2; the observed aux datum a = 1, the
    Asimov one the gamma fitted to the data at mu = 0 (pyhf: aux count tau*gamma-hat)."""

    def __init__(self, n: float, s: float, b: float, rel: float) -> None:
        self.n, self.s, self.b, self.tau = n, s, b, 1.0 / rel**2
        self.gamma0 = self.gamma_hat(0.0, n, 1.0)
        self.n_asimov, self.a_asimov = b * self.gamma0, self.gamma0

    def nll(self, mu: float, gamma: float, n: float, a: float) -> float:
        nu = self.s * mu + self.b * gamma
        return nu - n * math.log(nu) + self.tau * gamma - self.tau * a * math.log(gamma)

    def gamma_hat(self, mu: float, n: float, a: float) -> float:
        """The root of dNLL/dgamma (increasing: the NLL is convex in gamma), by bisection."""
        lo, hi = 1e-9, 100.0
        for _ in range(200):
            mid = (lo + hi) / 2
            slope = self.b - n * self.b / (self.s * mu + self.b * mid) + self.tau - self.tau * a / mid
            lo, hi = (mid, hi) if slope < 0 else (lo, mid)
        return (lo + hi) / 2

    def q_observed(self, mu: float) -> float:
        mu_hat = (self.n - self.b) / self.s  # n > b: the bin is fitted exactly, gamma at 1
        if mu_hat > mu:
            return 0.0
        return 2 * (self.nll(mu, self.gamma_hat(mu, self.n, 1.0), self.n, 1.0) - self.nll(mu_hat, 1.0, self.n, 1.0))

    def q_asimov(self, mu: float) -> float:
        n, a = self.n_asimov, self.a_asimov
        return 2 * (self.nll(mu, self.gamma_hat(mu, n, a), n, a) - self.nll(0.0, self.gamma0, n, a))

    def cls(self, mu: float) -> float:
        q, qa = self.q_observed(mu), self.q_asimov(mu)
        t = math.sqrt(q) - math.sqrt(qa) if q <= qa else (q - qa) / (2 * math.sqrt(qa))
        sf = lambda x: 0.5 * math.erfc(x / math.sqrt(2))  # noqa: E731
        return sf(t + math.sqrt(qa)) / sf(t)


def test_gamma_constraint_hypotest_uses_correct_asimov_data() -> None:
    doc = gamma_one_bin(15.0, 5.0, 10.0, 0.3)
    hand = GammaByHand(15.0, 5.0, 10.0, 0.3)
    result = run("hypotest", doc, mu="1.5")
    assert result["cls"] == pytest.approx(hand.cls(1.5), rel=1e-6)
    assert result["asimov_check"]["recomputed"] is True
    # The engine alone leaves the Gamma constraint's Asimov aux datum at 1: another CLs.
    engine_cls = ns.hypotest(1.5, load_model(Workspace(doc)))
    assert abs(engine_cls / hand.cls(1.5) - 1) > 1e-2


def test_gamma_constraint_limits_use_correct_asimov_data() -> None:
    doc = gamma_one_bin(15.0, 5.0, 10.0, 0.3)
    hand = GammaByHand(15.0, 5.0, 10.0, 0.3)
    result = run("upper-limit", doc)
    assert result["asimov_check"]["recomputed"] is True
    # Each expected limit is where the hand's sqrt(q_A) gives CLs = alpha, the observed one where its CLs does.
    sf = lambda x: 0.5 * math.erfc(x / math.sqrt(2))  # noqa: E731
    for label, nsigma in (("-2sigma", 2), ("-1sigma", 1), ("median", 0), ("+1sigma", -1), ("+2sigma", -2)):
        mu = result["expected"][label]
        assert sf(nsigma + math.sqrt(hand.q_asimov(mu))) / sf(nsigma) == pytest.approx(0.05, rel=1e-5), label
    assert hand.cls(result["observed"]) == pytest.approx(0.05, rel=1e-5)
    engine_observed, engine_band = ns.upper_limit(load_model(Workspace(doc)), method="root", alpha=0.05, rtol=1e-6)
    assert abs(engine_band[2] / result["expected"]["median"] - 1) > 1e-2


def test_limits_the_engine_gets_right_are_the_engines() -> None:
    text = shared("workspaces", "simple_workspace.json").read_text()
    result = run("upper-limit", json.loads(text))
    observed, band = ns.upper_limit(load_model(Workspace(json.loads(text), text=text)), method="root", alpha=0.05,
                                    rtol=1e-6)
    assert result["asimov_check"]["recomputed"] is False
    assert result["asimov_check"]["engine_median_sqrt_qA_rel_deviation"] < 1e-5
    assert result["observed"] == observed and list(result["expected"].values()) == band
