"""Maximum-likelihood fits whose uncertainties come from the free parameters only.

nextstat 0.10.1 reports, for a model whose measurement fixes parameters, the square roots
of the diagonal of the inverse Hessian taken with *every* parameter free at the fixed best
fit: a fixed parameter gets an uncertainty and inflates those of the parameters correlated
with it (example_bkgonly.json + patch_channel1_signal_syst1: POI ± 0.849 against pyhf's
0.644; tttt-prod, whose measurement fixes ``lumi``: up to 34 %). The best fit and NLL are
right. This module is the one place that corrects it: for such a model it minimises without
the engine's Hessian (``fit_minimum``, the same minimiser: the same best fit bit for bit)
and inverts the Hessian of the free parameters, built by finite differences of the engine's
analytic gradient; fixed parameters get uncertainty 0. A model without fixed parameters
keeps the engine's own uncertainties (checked against pyhf in tests/test_physics_vs_pyhf.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nextstat as ns

if TYPE_CHECKING:
    import numpy as np

# Forward differences of the analytic gradient with a step of 1e-6 * max(|value|, 1): on
# tttt-prod they agree with central differences (steps of 1e-4 of each uncertainty) to
# about 1e-6 relative on the uncertainties, at half the gradient evaluations (measured; the
# cross-check against pyhf allows 1e-3).
RELATIVE_STEP = 1e-6


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


def fixed_mask(bounds: Sequence[tuple[float, float]]) -> list[bool]:
    """The engine fixes a parameter by collapsing its bounds (a measurement's ``fixed``)."""
    return [lo == hi for lo, hi in bounds]


def fit(model: Any, covariance: bool = False) -> Fit:
    """Fit ``model``; ``covariance``: also return the free parameters' covariance matrix."""
    bounds = model.suggested_bounds()
    fixed = fixed_mask(bounds)
    if not any(fixed) and not covariance:
        r = ns.fit(model)
        return Fit(list(r.parameters), list(r.uncertainties), fixed, r.nll, r.n_iter, bool(r.converged),
                   r.n_active_bounds, r.final_grad_norm, None, True)
    m = ns.MaximumLikelihoodEstimator().fit_minimum(model)
    values = list(m.parameters)
    gradient = m.final_gradient if m.final_gradient is not None else model.grad_nll(values)
    cov, ok = free_covariance(model, values, fixed)
    free = [i for i, f in enumerate(fixed) if not f]
    uncertainties = [0.0] * len(values)
    for a, i in enumerate(free):
        uncertainties[i] = math.sqrt(abs(cov[a, a]))
    active = sum(1 for v, (lo, hi), f in zip(values, bounds, fixed, strict=True) if not f and v in (lo, hi))
    grad_norm = math.sqrt(sum(g * g for g, f in zip(gradient, fixed, strict=True) if not f))
    return Fit(values, uncertainties, fixed, m.nll, m.n_iter, bool(m.converged), active, grad_norm,
               cov.tolist() if covariance else None, ok)


def free_covariance(model: Any, values: Sequence[float], fixed: Sequence[bool]) -> tuple[np.ndarray[Any, Any], bool]:
    """The inverse of the free parameters' Hessian of the NLL at ``values``, and whether that
    Hessian is positive definite (when not, the inverse is returned all the same and the fit
    is marked: uncertainties there mean little)."""
    # Imported here, not with the module: numpy starts its BLAS threads on import, and a
    # process with threads cannot fork its local workers safely (scale/backends/local.py).
    import numpy as np

    x = np.asarray(values, dtype=float)
    free = np.flatnonzero(~np.asarray(fixed, dtype=bool))
    g0 = np.asarray(model.grad_nll(x.tolist()))[free]
    hessian = np.empty((free.size, free.size))
    for a, i in enumerate(free):
        step = RELATIVE_STEP * max(abs(x[i]), 1.0)
        shifted = x.copy()
        shifted[i] += step
        hessian[a] = (np.asarray(model.grad_nll(shifted.tolist()))[free] - g0) / step
    hessian = (hessian + hessian.T) / 2
    try:
        np.linalg.cholesky(hessian)
        ok = True
    except np.linalg.LinAlgError:
        ok = False
    try:
        return np.linalg.inv(hessian), ok
    except np.linalg.LinAlgError:
        return np.linalg.pinv(hessian), False
