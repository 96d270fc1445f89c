"""HistFactory tasks on pyhf workspaces, computed with nextstat."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import nextstat as ns

from ..errors import InputError, TaskFailedError
from . import uncertainties
from .asymptotics import Asymptotics, expected_cls
from .inputs import Workspace
from .measurement import pyhf_settings
from .params import (
    FitParams,
    HypotestParams,
    RankingParams,
    ScanParams,
    ToysParams,
    UpperLimitParams,
)
from .quality import assess_fit
from .uncertainties import Fit

# The root finder's relative tolerance. The engine's default stops its expected-band roots
# about 1e-4 (relative) from pyhf's on two_channel_workspace.json
# (beyond the 1e-4 the cross-check allows); 1e-6 agrees to a few 1e-6 and costs nothing
# measurable (0.1 ms for the whole band there). docs/validation.md.
LIMIT_RTOL = 1e-6

LIMIT_CHECK_RTOL = 1e-5
"""The engine's limits are replaced by ours when its expected median limit is off by more than
this: sqrt(q_A) there, computed from correct Asimov data, differs from isf(alpha/2) by more than
this fraction (a limit's relative error is about the same: sqrt(q_A) is nearly proportional to
mu). Ten times the engine's root tolerance, a tenth of the cross-check's 1e-4."""

HYPOTEST_CHECK_RTOL = 1e-5
"""The engine's CLs are replaced by ours when they differ by more than this (relative)."""

RECOMPUTED = "; Asimov data and CLs computed by the product (the engine's were off: engine/asymptotics.py)"


def load_model(workspace: Workspace) -> Any:
    """The engine's model of ``workspace``, with the measurement's settings as pyhf reads them
    (engine/measurement.py: defaults the engine would read otherwise written out, settings it
    cannot honour refused)."""
    rewritten = pyhf_settings(workspace.document)
    text = workspace.json() if rewritten is None else Workspace(rewritten).json()
    try:
        return ns.from_pyhf(text)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"nextstat cannot build a model from the workspace: {exc}") from None


def _fit(model: Any, grad_tol: float, covariance: bool = False) -> tuple[Fit, dict[str, Any]]:
    result = uncertainties.fit(model, covariance)
    quality = assess_fit(
        model.parameter_names(),
        result.values,
        model.suggested_bounds(),
        result.gradient,
        result.converged,
        grad_tol,
    )
    if not result.hessian_ok:
        quality["ok"] = False
        quality["reasons"].append("the free parameters' Hessian is not positive definite: uncertainties unreliable")
    quality["engine_n_active_bounds"] = result.n_active_bounds
    quality["engine_final_grad_norm"] = result.final_grad_norm
    if result.newton is not None:
        # The step that finished the engine's minimisation (engine/uncertainties.py).
        quality["newton_step"] = {
            "applied": result.newton.applied,
            "max_shift_sigma": result.newton.max_shift_sigma,
            "nll_decrease": result.newton.nll_decrease,
            "hessian_refreshed": result.newton.hessian_refreshed,
        }
    return result, quality


def _named(model: Any, result: Fit) -> list[dict[str, Any]]:
    return [
        {"name": n, "value": v, "uncertainty": u, "fixed": f}
        for n, v, u, f in zip(model.parameter_names(), result.values, result.uncertainties, result.fixed, strict=True)
    ]


def _poi(model: Any, result: Fit) -> dict[str, Any]:
    i = model.poi_index()
    return {"name": model.parameter_names()[i], "value": result.values[i], "uncertainty": result.uncertainties[i],
            "fixed": result.fixed[i]}


def fit(model: Any, p: FitParams, seed: int | None) -> dict[str, Any]:
    result, quality = _fit(model, p.grad_tol, p.covariance)
    out = {
        "quality": quality,
        "poi": _poi(model, result),
        "parameters": _named(model, result),
        "nll": result.nll,
        "n_iter": result.n_iter,
    }
    if result.covariance is not None:
        names = model.parameter_names()
        out["covariance"] = {"parameters": [n for n, f in zip(names, result.fixed, strict=True) if not f],
                             "matrix": result.covariance}
    return out


def hypotest(model: Any, p: HypotestParams, seed: int | None) -> dict[str, Any]:
    result, quality = _fit(model, p.grad_tol)
    cls, (clsb, clb) = ns.hypotest(p.mu, model, return_tail_probs=True)
    # The engine's Asimov data can be wrong (engine/asymptotics.py): its CLs are kept when ours,
    # from correct Asimov data, agree; otherwise ours are reported.
    calc = Asymptotics(model)
    ours = calc.hypotest(p.mu)
    deviation = abs(ours[0] - cls) / max(ours[0], 1e-300)
    recomputed = deviation > HYPOTEST_CHECK_RTOL
    if recomputed:
        cls, clsb, clb = ours
    return {
        "quality": quality,
        "poi": _poi(model, result),
        "mu_tested": p.mu,
        "cls": cls,
        "clsb": clsb,
        "clb": clb,
        "test_statistic": "qtilde",
        "method": "asymptotic" + (RECOMPUTED if recomputed else ""),
        "asimov_check": {"engine_cls_rel_deviation": deviation, "recomputed": recomputed},
    }


def upper_limit(model: Any, p: UpperLimitParams, seed: int | None) -> dict[str, Any]:
    result, quality = _fit(model, p.grad_tol)
    try:
        observed, band = ns.upper_limit(model, method="root", alpha=p.alpha, rtol=LIMIT_RTOL)
    except (ValueError, RuntimeError) as exc:
        raise TaskFailedError(f"upper limit failed: {exc}") from None
    # The engine's expected median limit is where its Asimov q-tilde equals isf(alpha/2)**2;
    # ours (engine/asymptotics.py: correct Asimov data) is computed there. When the two differ,
    # every limit is computed by ours (they all rest on the same Asimov data).
    calc = Asymptotics(model)
    target = -NormalDist().inv_cdf(p.alpha / 2)
    deviation = abs(math.sqrt(calc.q_asimov(band[2])) / target - 1)
    recomputed = deviation > LIMIT_CHECK_RTOL
    if recomputed:
        observed, band = calc.upper_limit(p.alpha, LIMIT_RTOL, guesses=[observed, *band])
    out = {
        "quality": quality,
        "poi": _poi(model, result),
        "alpha": p.alpha,
        "cl": 1 - p.alpha,
        "observed": observed,
        "expected": dict(zip(BAND, band, strict=True)),
        "method": "asymptotic CLs (qtilde), root finding" + (RECOMPUTED if recomputed else ""),
        "asimov_check": {"engine_median_sqrt_qA_rel_deviation": deviation, "recomputed": recomputed},
    }
    if p.cls_points:
        out["cls_scan"] = cls_curve(calc, p.cls_points, 1.2 * max(observed, *band))
    return out


BAND = ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")


def cls_curve(calc: Asymptotics, points: int, top: float) -> dict[str, Any]:
    """CLs at ``points`` POI values evenly from 0 to ``top``: observed, and the expected band
    from the Asimov test statistic, all from our asymptotics (the ones the limits rest on), so
    the curve crosses alpha where the limits are."""
    mus = [top * i / max(points - 1, 1) for i in range(points)]
    expected = [expected_cls(calc.q_asimov(mu)) for mu in mus]
    return {"mu": mus, "cls_observed": [calc.hypotest(mu)[0] for mu in mus],
            "cls_expected": {k: [e[i] for e in expected] for i, k in enumerate(BAND)}}


def scan(model: Any, p: ScanParams, seed: int | None) -> dict[str, Any]:
    if p.mu_max <= p.mu_min:
        raise InputError(f"scan needs mu_max > mu_min (got {p.mu_min} .. {p.mu_max})")
    step = (p.mu_max - p.mu_min) / (p.points - 1)
    mus = [p.mu_min + i * step for i in range(p.points)]
    result, quality = _fit(model, p.grad_tol)
    out = ns.profile_scan(model, mus)
    return {
        "quality": quality,
        "poi": _poi(model, result),
        "mu_hat": out["mu_hat"],
        "nll_hat": out["nll_hat"],
        "points": out["points"],
        "all_points_converged": all(pt["converged"] for pt in out["points"]),
    }


def ranking(model: Any, p: RankingParams, seed: int | None) -> dict[str, Any]:
    """The engine's impacts: the POI's shift when a nuisance parameter is fixed at its nominal
    value ± its prior width and the rest refitted (pre-fit impacts). ``constraint`` is the
    post-fit over the prior width; the engine takes the post-fit width from its own (all-free)
    Hessian, so it is rescaled to the uncertainty the fit reports, and fixed parameters
    (no uncertainty to propagate) are listed apart instead of ranked."""
    result, quality = _fit(model, p.grad_tol)
    ours = {n: (u, f) for n, u, f in zip(model.parameter_names(), result.uncertainties, result.fixed, strict=True)}
    # One more fit (ranking refits twice per parameter anyway): the engine's widths differ from
    # ours with fixed parameters (all-free Hessian) and by ~1e-4 without (its own Hessian).
    engine_widths = dict(zip(model.parameter_names(), ns.fit(model).uncertainties, strict=True))
    impacts = []
    for entry in ns.ranking(model):
        width, fixed = ours[entry["name"]]
        if fixed:
            continue
        engine_width = engine_widths[entry["name"]]
        if engine_width > 0:
            entry["constraint"] = entry["constraint"] * width / engine_width
        impacts.append(entry)
    impacts.sort(key=lambda r: -max(abs(r["delta_mu_up"]), abs(r["delta_mu_down"])))
    return {"quality": quality, "poi": _poi(model, result), "impacts": impacts,
            "impact_method": "pre-fit: parameter fixed at nominal ± prior width, others refitted",
            "fixed_parameters": [n for n, (_, f) in ours.items() if f]}


def toys(model: Any, p: ToysParams, seed: int | None) -> dict[str, Any]:
    """Fit ``n_toys`` Poisson toys; toy k is generated with seed ``seed + k``."""
    if seed is None:
        raise InputError("task toys needs --seed")
    result, quality = _fit(model, p.grad_tol)
    generation = list(result.values)
    poi = model.poi_index()
    if p.mu is not None:
        generation[poi] = p.mu
    fits = ns.fit_toys(model, generation, n_toys=p.n_toys, seed=seed)
    bounds = model.suggested_bounds()
    lo, hi = bounds[poi]
    rows = [
        {
            "toy": k,
            "seed": seed + k,
            "poi": f.parameters[poi],
            "nll": f.nll,
            "converged": f.converged,
            "poi_at_bound": f.parameters[poi] in (lo, hi),
        }
        for k, f in enumerate(fits)
    ]
    converged = [r["poi"] for r in rows if r["converged"]]
    mean = sum(converged) / len(converged) if converged else None
    var = sum((x - mean) ** 2 for x in converged) / (len(converged) - 1) if len(converged) > 1 else None
    return {
        "quality": quality,
        "poi": _poi(model, result),
        "generation_poi": generation[poi],
        "n_toys": p.n_toys,
        "n_converged": len(converged),
        "poi_mean": mean,
        "poi_std": var**0.5 if var is not None else None,
        "toys": rows,
    }
