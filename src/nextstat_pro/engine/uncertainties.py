"""Maximum-likelihood fits: the engine's minimiser, finished with one Newton step where it
stops short, and uncertainties from the free parameters' Hessian.

Two engine behaviours (nextstat 0.10.1) are corrected here, in this one place
(docs/validation.md, "What the product corrects"):

- **Uncertainties with fixed parameters.** For a model whose measurement fixes parameters the
  engine reports the square roots of the diagonal of the inverse Hessian taken with *every*
  parameter free at the fixed best fit: a fixed parameter gets an uncertainty and inflates
  those of the parameters correlated with it (example_bkgonly.json + patch_channel1_signal_syst1:
  POI ± 0.849 against pyhf's 0.644). Here the Hessian is taken over the free parameters only,
  by forward differences of the engine's analytic gradient, and inverted; fixed parameters get
  uncertainty 0.
- **Minima along weakly determined directions.** The engine's minimiser stops up to 4e-3 of
  an uncertainty short of the minimum along a flat direction (generated lumi-without-sigmas:
  twice the NLL 2e-5 high, and the uncertainties taken there 3.5e-3 off). With that Hessian
  one Newton step ``x - H^-1 g`` lands on the minimum (1.6e-5 sigma from pyhf's, checked). The
  step is computed from what the fit has anyway (the Hessian, the minimiser's final gradient),
  taken only when it moves a parameter by at least ``NEWTON_MIN_SHIFT`` of its uncertainty (so
  a fit already at its minimum costs nothing more), and kept only when the NLL falls.

Every fit therefore runs the engine's minimiser without its own Hessian (``fit_minimum``, the
minimiser of ``nextstat.fit``: the same point bit for bit) and takes ours: for a model without
fixed parameters it costs what the engine's Hessian would (measured: docs/validation.md), and
ours agrees with pyhf's to ~1e-6 where the engine's is 5e-5-1e-4 off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nextstat as ns

from .blas import one_thread

if TYPE_CHECKING:
    import numpy as np

# Forward differences of the analytic gradient with a step of 1e-6 * max(|value|, 1): on
# tttt-prod they agree with central differences (steps of 1e-4 of each uncertainty) to
# about 1e-6 relative on the uncertainties, at half the gradient evaluations (measured; the
# cross-check against pyhf allows 1e-3).
RELATIVE_STEP = 1e-6

NEWTON_MIN_SHIFT = 1e-4
"""The Newton step is taken when it moves some parameter by at least this fraction of its
uncertainty. Below, the fit is at its minimum for every purpose (the cross-check allows 2e-3
sigma; a shift of 1e-4 sigma changes twice the NLL by 1e-8) and the step would cost an NLL and a
gradient evaluation for nothing. Measured engine shortfalls: 1e-6 to 1e-5 sigma on the shared
small workspaces and example_bkgonly (+ patch), 1e-4 to 4e-3 sigma on tttt-prod, tHu and the
generated workspaces."""

HESSIAN_REFRESH = 3e-4
"""After a Newton step the Hessian is taken again at the new point when the quadratic model
was off there by more than this: the Newton decrement at the new point relative to that at the
old, ``sqrt(g1' H^-1 g1 / g0' H^-1 g0)``, bounds the relative change of the curvature along the
step, and the uncertainties moved by 0.4-2 times it in every case measured (tttt-prod 1.4e-4 ->
2.6e-4, tHu 2.4e-4 -> 4.2e-4, lumi-without-sigmas 1e-2 -> 4.3e-3). At 3e-4 an old Hessian is
kept only where it is good to ~6e-4 (the cross-check allows 1e-3), and tttt-prod's 248-gradient
Hessian is not taken twice."""

ONE_THREAD_FROM = 32  # free parameters from which the linear algebra runs with one BLAS thread

BOUND_RTOL = 1e-6  # a parameter this close to a bound (relative, as engine/quality.py) is at it


@dataclass(frozen=True)
class NewtonStep:
    """The Newton step that finishes a fit, as considered and (``applied``) taken."""

    applied: bool
    max_shift_sigma: float  # the step's largest shift of a parameter, in its uncertainty
    nll_decrease: float  # NLL before - after (0 when not applied)
    hessian_refreshed: bool  # the Hessian was taken again at the new point
    held_at_bound: list[int]  # free parameters at an active bound, left where they are


@dataclass(frozen=True)
class Fit:
    """A fit as the tasks report it."""

    values: list[float]
    uncertainties: list[float]
    fixed: list[bool]
    nll: float
    n_iter: int
    converged: bool
    n_active_bounds: int
    final_grad_norm: float
    covariance: list[list[float]] | None  # free parameters only, in model order; when asked for
    hessian_ok: bool  # False: the free parameters' Hessian is not positive definite
    gradient: list[float]  # the NLL's gradient at ``values``; fixed parameters' entries are 0
    newton: NewtonStep | None  # None when the Hessian was not positive definite (no step)


def fixed_mask(bounds: Sequence[tuple[float, float]]) -> list[bool]:
    """The engine fixes a parameter by collapsing its bounds (a measurement's ``fixed``)."""
    return [lo == hi for lo, hi in bounds]


def _at(value: float, bound: float) -> bool:
    return abs(value - bound) <= BOUND_RTOL * max(1.0, abs(bound))


def fit(model: Any, covariance: bool = False) -> Fit:
    """Fit ``model``; ``covariance``: also return the free parameters' covariance matrix."""
    import numpy as np

    bounds = model.suggested_bounds()
    fixed = fixed_mask(bounds)
    m = ns.MaximumLikelihoodEstimator().fit_minimum(model)
    values = list(m.parameters)
    nll = float(m.nll)
    free = [i for i, f in enumerate(fixed) if not f]
    at_bound = []
    for i in free:  # the engine keeps values inside their bounds: v - lo >= 0, hi - v >= 0
        lo, hi = bounds[i]
        if values[i] - lo <= BOUND_RTOL * max(1.0, abs(lo)) or hi - values[i] <= BOUND_RTOL * max(1.0, abs(hi)):
            at_bound.append(i)
    # The minimiser's final gradient is the engine's gradient at its point, bit for bit, with the
    # fixed parameters' entries and those of parameters at an active bound projected out
    # (zeroed): the step needs the latter's sign, so those fits evaluate it once more.
    if m.final_gradient is None or at_bound:
        gradient = list(model.grad_nll(values))
        for i, f in enumerate(fixed):
            if f:
                gradient[i] = 0.0
    else:
        gradient = list(m.final_gradient)
    hessian = free_hessian(model, values, free, gradient)
    # One BLAS thread for large matrices (engine/blas.py: OpenBLAS's threads stall beside the
    # engine's); for small ones switching costs more (27 us) than it could save.
    with one_thread() if len(free) >= ONE_THREAD_FROM else nullcontext():
        cov, ok = _invert(hessian)
        sigma = np.sqrt(np.abs(np.diag(cov)))
        newton = None
        if ok and free:
            newton, values, nll, gradient, hessian = _newton(model, bounds, free, at_bound, values, nll, gradient,
                                                             hessian, cov, sigma)
            if newton.hessian_refreshed:
                cov, ok = _invert(hessian)
                sigma = np.sqrt(np.abs(np.diag(cov)))
    uncertainties = [0.0] * len(values)
    for i, u in zip(free, sigma.tolist(), strict=True):
        uncertainties[i] = u
    active = sum(1 for i in free if values[i] in bounds[i])
    grad_norm = math.sqrt(sum(gradient[i] ** 2 for i in free))
    return Fit(values, uncertainties, fixed, nll, m.n_iter, bool(m.converged), active, grad_norm,
               cov.tolist() if covariance else None, ok, gradient, newton)


def free_hessian(model: Any, values: Sequence[float], free: Sequence[int],
                 gradient: Sequence[float]) -> np.ndarray[Any, Any]:
    """The free parameters' Hessian of the NLL at ``values`` by forward differences of the
    engine's gradient; ``gradient`` is the gradient at ``values`` (the minimiser's final one:
    not evaluated again)."""
    # Imported here, not with the module: numpy starts its BLAS threads on import, and a
    # process with threads cannot fork its local workers safely (scale/backends/local.py).
    import numpy as np

    g0 = np.asarray(gradient, dtype=float)[free]
    point = list(values)
    rows = []
    steps = []
    for i in free:
        x = point[i]
        point[i] = x + RELATIVE_STEP * max(abs(x), 1.0)
        steps.append(point[i] - x)  # the step as represented, not as intended
        rows.append(model.grad_nll(point))
        point[i] = x
    hessian = (np.asarray(rows, dtype=float).reshape(len(free), -1)[:, free] - g0) / np.asarray(steps)[:, None]
    symmetric: np.ndarray[Any, Any] = (hessian + hessian.T) / 2
    return symmetric


def _invert(hessian: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], bool]:
    """The inverse of ``hessian`` and whether it is positive definite (when not, the inverse is
    returned all the same and the fit is marked: uncertainties there mean little)."""
    import numpy as np

    try:
        np.linalg.cholesky(hessian)
        ok = True
    except np.linalg.LinAlgError:
        ok = False
    try:
        return np.linalg.inv(hessian), ok
    except np.linalg.LinAlgError:
        return np.linalg.pinv(hessian), False


def _newton(model: Any, bounds: Sequence[tuple[float, float]], free: list[int], at_bound: list[int],
            values: list[float], nll: float, gradient: list[float], hessian: np.ndarray[Any, Any],
            cov: np.ndarray[Any, Any], sigma: np.ndarray[Any, Any],
            ) -> tuple[NewtonStep, list[float], float, list[float], np.ndarray[Any, Any]]:
    """One Newton step over the free parameters that are not held at an active bound (at a
    bound with the gradient pushing outwards), shortened so that no parameter leaves its
    bounds. ``cov`` is the inverse of ``hessian`` (positive definite), ``sigma`` the square
    roots of its diagonal. Returns the step's record and the (possibly new) point, NLL,
    gradient and Hessian.

    Only matrix-vector products with the covariance already inverted: a further LAPACK call on
    a 248 x 248 matrix (tttt-prod) right after the engine's threads ran stalls for 0.1-0.3 s
    on this 2-core machine now and then (OpenBLAS waking its threads; measured), and the step
    needs none. The held parameters' block is eliminated with the Schur complement
    ``C_mm - C_mh C_hh^-1 C_hm`` (the inverse of the moving parameters' Hessian block)."""
    import numpy as np

    g_free = np.asarray(gradient)[free]
    held: list[int] = []
    if at_bound:
        position = {i: a for a, i in enumerate(free)}
        held = [position[i] for i in at_bound if (_at(values[i], bounds[i][0]) and gradient[i] > 0)
                or (_at(values[i], bounds[i][1]) and gradient[i] < 0)]
    held_params = [free[a] for a in held]
    if held:
        moving = [a for a in range(len(free)) if a not in set(held)]
        if not moving:
            return NewtonStep(False, 0.0, 0.0, False, held_params), values, nll, gradient, hessian
        c_mh = cov[np.ix_(moving, held)]
        try:
            inverse = cov[np.ix_(moving, moving)] - c_mh @ np.linalg.solve(cov[np.ix_(held, held)], c_mh.T)
        except np.linalg.LinAlgError:
            return NewtonStep(False, 0.0, 0.0, False, held_params), values, nll, gradient, hessian
        g = g_free[moving]
        delta = -(inverse @ g)
        shift = float(np.max(np.abs(delta) / sigma[moving]))
    else:
        moving = list(range(len(free)))
        inverse, g = cov, g_free
        delta = -(cov @ g)
        shift = float(np.max(np.abs(delta) / sigma))
    if not math.isfinite(shift) or shift < NEWTON_MIN_SHIFT:
        return NewtonStep(False, shift, 0.0, False, held_params), values, nll, gradient, hessian
    # The largest fraction of the step that stays inside every bound.
    fraction = 1.0
    for a, d in zip(moving, delta.tolist(), strict=True):
        i = free[a]
        lo, hi = bounds[i]
        if d > 0 and values[i] + d > hi:
            fraction = min(fraction, (hi - values[i]) / d)
        elif d < 0 and values[i] + d < lo:
            fraction = min(fraction, (lo - values[i]) / d)
    new = list(values)
    for a, d in zip(moving, delta.tolist(), strict=True):
        i = free[a]
        new[i] = min(max(values[i] + fraction * d, bounds[i][0]), bounds[i][1])
    new_nll = float(model.nll(new))
    if not new_nll < nll:
        return NewtonStep(False, shift, 0.0, False, held_params), values, nll, gradient, hessian
    new_gradient = list(model.grad_nll(new))
    for i, (lo, hi) in enumerate(bounds):
        if lo == hi:
            new_gradient[i] = 0.0
    g1 = np.asarray([new_gradient[free[a]] for a in moving])
    before = float(-(g @ delta))  # g0' H^-1 g0 over the moving parameters
    after = float(g1 @ (inverse @ g1))
    refresh = before > 0 and math.sqrt(max(after, 0.0) / before) > HESSIAN_REFRESH
    if refresh:
        hessian = free_hessian(model, new, free, new_gradient)
    return NewtonStep(True, shift, nll - new_nll, refresh, held_params), new, new_nll, new_gradient, hessian
