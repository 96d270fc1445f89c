"""Asymptotic CLs (q-tilde) computed by the product from a correct Asimov dataset.

nextstat 0.10.1's asymptotic tests (``hypotest``, ``upper_limit``) are wrong in two ways that
show against pyhf 0.7.6 (docs/validation.md, measured):

- its Asimov dataset sets the auxiliary data of Gaussian constraints to the fitted values, as
  pyhf does, but leaves those of **Gamma** constraints (HistFactory XML imports' staterror
  ``constraint: Gamma``) at their nominal values: on histfactory_import q_A(1) is 1.3998, which
  is pyhf's likelihood with exactly that aux data (1.3998), against the right 3.0986; the
  limits come out 2-55 % too high;
- its free fit to the Asimov data, whose minimum is at the POI's bound 0, can stop short:
  on example_bkgonly + patch_channel1_signal_syst1 q_A(1) is 2.50862 against 2.50996, and the
  expected band is 2-7e-4 too high.

This module computes q-tilde on the Asimov data itself, using only the engine's likelihood:

- **Asimov main data**: ``ns.asimov_data`` at the fit to the data at POI 0 (as pyhf).
- **Asimov auxiliary data**: the engine cannot take auxiliary data, so its NLL with the Asimov
  main data (``with_observed_main``: nominal aux data) is corrected term by term. Moving a
  constraint's auxiliary datum adds ``-s*x`` to a Gaussian term and ``-k*log(x)`` to a Poisson
  or Gamma term (plus constants). With the right aux data the Asimov likelihood is stationary
  at the point that generated it (every term is), so each coefficient follows from the engine's
  gradient there: ``s = g_i``, ``k = g_i * x_i`` (the Poisson part of the main bins has zero
  gradient there). Which form a parameter's constraint has is probed on the engine's own
  likelihood (``constraint_forms``): the constraint's gradient is linear in the parameter for a
  Gaussian and ``tau - tau*a/x`` for a Poisson/Gamma, told apart at three points.
- **Free fit to the Asimov data**: not a fit. The corrected likelihood's minimum is the
  generating point (POI 0), so its NLL there is the free NLL exactly.
- **Fit at the tested POI**: scipy's L-BFGS-B on the corrected NLL with the engine's analytic
  gradient, started from the engine's own fit to the same main data.
- **Observed q-tilde**: the engine's fits to the data (its observed q-tilde agrees with pyhf's).
- **CLs and the expected band**: pyhf's asymptotic formulas (``AsymptoticCalculator``,
  ``calc_base_dist="normal"``); limits are the roots of ``CLs - alpha`` (toms748).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any

import nextstat as ns

from ..errors import TaskFailedError
from .blas import one_thread

# pyhf's band: test statistic n = 2, 1, 0, -1, -2 gives the -2 ... +2 sigma expected limits.
BAND_NSIGMA = (2, 1, 0, -1, -2)

PROBE_STEP = 0.02
"""Shift (times ``max(1, |x|)``) of every parameter between the three probes of the constraint
forms. A Poisson/Gamma gradient's second difference over its first is ``x/(x + 2h)`` (0.96 at
``x = 1``), a Gaussian's exactly 1; the engine's analytic gradients resolve both to ~1e-12."""

FORM_RTOL = 1e-6
"""Agreement asked of a probed gradient with the Gaussian or the Poisson form."""

FIT_GTOL = 1e-10
"""L-BFGS-B's projected-gradient tolerance for the fits to the Asimov data (its function
tolerance is set to the rounding of the NLL): q_A to ~1e-9 (checked against pyhf's on the
shared workspaces)."""

_NORMAL = NormalDist()


def _sf(x: float) -> float:
    """The standard normal's upper tail, accurate far out (erfc, not 1 - cdf)."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def _isf(p: float) -> float:
    return -_NORMAL.inv_cdf(p)


def pvalues(q: float, q_asimov: float) -> tuple[float, float, float]:
    """(CLs, CLs+b, CLb) for observed q-tilde ``q`` and Asimov ``q_asimov`` (pyhf's asymptotic
    formulas: the test statistic in -mu_hat/sigma space, normal base distribution)."""
    sqrt_qa = math.sqrt(max(q_asimov, 0.0))
    if sqrt_qa == 0.0:
        return 1.0, 0.5, 0.5  # mu at the background-only hypothesis: nothing excluded
    sqrt_q = math.sqrt(max(q, 0.0))
    t = sqrt_q - sqrt_qa if sqrt_q <= sqrt_qa else (q - q_asimov) / (2 * sqrt_qa)
    clsb, clb = _sf(t + sqrt_qa), _sf(t)
    return clsb / clb, clsb, clb


def expected_cls(q_asimov: float) -> list[float]:
    """The five expected CLs (-2 ... +2 sigma) for Asimov ``q_asimov``."""
    sqrt_qa = math.sqrt(max(q_asimov, 0.0))
    return [_sf(n + sqrt_qa) / _sf(n) for n in BAND_NSIGMA]


def _clamped(bounds: Sequence[tuple[float, float]], i: int, value: float) -> list[tuple[float, float]]:
    out = list(bounds)
    out[i] = (value, value)
    return out


def constraint_gradient(model: Any, x: Sequence[float]) -> list[float]:
    """The gradient of the constraint terms alone at ``x``: the NLL's gradient with the main
    data set to their expectation at ``x`` (where the main bins' Poisson terms have none)."""
    return list(model.with_observed_main(ns.asimov_data(model, list(x))).grad_nll(list(x)))


def constraint_forms(model: Any, x: Sequence[float], free: Sequence[int]) -> dict[int, str]:
    """For each free parameter: "poisson" (a Poisson or Gamma constraint: gradient
    ``tau - tau*a/x``), or "linear" (a Gaussian constraint, or none: a gradient linear in the
    parameter). Raises TaskFailedError for a gradient of neither form."""
    h = [PROBE_STEP * max(1.0, abs(v)) for v in x]
    points = [[v + k * s for v, s in zip(x, h, strict=True)] for k in range(3)]
    g0, g1, g2 = (constraint_gradient(model, p) for p in points)
    forms: dict[int, str] = {}
    for i in free:
        d1, d2 = g1[i] - g0[i], g2[i] - g1[i]
        scale = max(abs(d1), abs(d2), abs(g0[i]), 1e-300)
        if abs(d2 - d1) <= FORM_RTOL * scale + 1e-12:
            forms[i] = "linear"
        elif x[i] > 0 and abs(d2 * (x[i] + 2 * h[i]) - d1 * x[i]) <= FORM_RTOL * scale * (x[i] + 2 * h[i]):
            forms[i] = "poisson"
        else:
            raise TaskFailedError(f"the constraint of parameter {model.parameter_names()[i]} is neither Gaussian "
                                  "nor Poisson/Gamma in form: its Asimov data cannot be built")
    return forms


class Asymptotics:
    """q-tilde, CLs and upper limits of ``model`` from a correct Asimov dataset."""

    def __init__(self, model: Any) -> None:
        import numpy as np
        import scipy.optimize  # type: ignore[import-untyped]  # noqa: F401 - loads its BLAS before one_thread looks

        self.model = model
        self.bounds: list[tuple[float, float]] = list(model.suggested_bounds())
        self.poi: int = model.poi_index()
        lo, hi = self.bounds[self.poi]
        # q-tilde: mu-hat is not allowed below 0 (the engine brackets its limits from 0 too).
        self.lo, self.hi = max(lo, 0.0), hi
        self._mle = ns.MaximumLikelihoodEstimator()
        generating = self._mle.fit_minimum(model, bounds=_clamped(self.bounds, self.poi, 0.0))
        self.generating = list(generating.parameters)
        self.asimov = model.with_observed_main(ns.asimov_data(model, self.generating))
        free = [i for i, (a, b) in enumerate(self.bounds) if a != b and i != self.poi]
        forms = constraint_forms(model, self.generating, free)
        slope = np.asarray(self.asimov.grad_nll(self.generating))
        self._linear = np.zeros(len(self.bounds))
        self._log = np.zeros(len(self.bounds))
        for i in free:
            if forms[i] == "poisson":
                self._log[i] = slope[i] * self.generating[i]
            else:
                self._linear[i] = slope[i]
        self._has_log = bool(np.any(self._log != 0))
        self.nll_asimov_free = self.nll_asimov(np.asarray(self.generating))
        self._q_asimov: dict[float, float] = {}
        self._q_observed: dict[float, float] = {}
        self._free_fit: tuple[float, float] | None = None

    # --- the Asimov likelihood -------------------------------------------------------

    def nll_asimov(self, x: Any) -> float:
        import numpy as np

        value = float(self.asimov.nll(x.tolist())) - float(self._linear @ x)
        if self._has_log:
            mask = self._log != 0
            value -= float(self._log[mask] @ np.log(x[mask]))
        return value

    def grad_asimov(self, x: Any) -> Any:
        import numpy as np

        g = np.asarray(self.asimov.grad_nll(x.tolist())) - self._linear
        if self._has_log:
            mask = self._log != 0
            g[mask] -= self._log[mask] / x[mask]
        return g

    def q_asimov(self, mu: float) -> float:
        """q-tilde of the Asimov data at ``mu``."""
        if mu not in self._q_asimov:
            with one_thread():
                self._q_asimov[mu] = self._fit_q_asimov(mu)
        return self._q_asimov[mu]

    def _fit_q_asimov(self, mu: float) -> float:
        import numpy as np
        from scipy.optimize import minimize

        bounds = _clamped(self.bounds, self.poi, mu)
        start = self._mle.fit_minimum(self.asimov, bounds=bounds, init_pars=[*self.generating[:self.poi], mu,
                                                                            *self.generating[self.poi + 1:]])
        x0 = np.clip(np.asarray(start.parameters, dtype=float), [b[0] for b in bounds], [b[1] for b in bounds])
        result = minimize(self.nll_asimov, x0, jac=self.grad_asimov, method="L-BFGS-B", bounds=bounds,
                          options={"ftol": 1e-15, "gtol": FIT_GTOL, "maxiter": 20000, "maxcor": 20})
        best = min(float(result.fun), self.nll_asimov(x0))
        return max(2.0 * (best - self.nll_asimov_free), 0.0) if mu > 0 else 0.0

    # --- the data ----------------------------------------------------------------------

    def _free(self) -> tuple[float, float]:
        if self._free_fit is None:
            bounds = list(self.bounds)
            bounds[self.poi] = (self.lo, self.hi)
            f = self._mle.fit_minimum(self.model, bounds=bounds)
            self._free_fit = (float(f.parameters[self.poi]), float(f.nll))
        return self._free_fit

    def q_observed(self, mu: float) -> float:
        """q-tilde of the data at ``mu`` (0 when mu-hat is above mu)."""
        if mu not in self._q_observed:
            mu_hat, nll_hat = self._free()
            if mu_hat > mu:
                q = 0.0
            else:
                f = self._mle.fit_minimum(self.model, bounds=_clamped(self.bounds, self.poi, mu))
                q = max(2.0 * (float(f.nll) - nll_hat), 0.0)
            self._q_observed[mu] = q
        return self._q_observed[mu]

    # --- tests and limits ----------------------------------------------------------------

    def hypotest(self, mu: float) -> tuple[float, float, float]:
        """(CLs, CLs+b, CLb) at ``mu``."""
        return pvalues(self.q_observed(mu), self.q_asimov(mu))

    def upper_limit(self, alpha: float, rtol: float,
                    guesses: Sequence[float] | None = None) -> tuple[float, list[float]]:
        """The observed and the five expected CLs upper limits at level ``alpha``; ``guesses``:
        six starting values (observed, then -2 ... +2 sigma), where known."""
        with one_thread():
            return self._upper_limit(alpha, rtol, guesses)

    def _upper_limit(self, alpha: float, rtol: float, guesses: Sequence[float] | None) -> tuple[float, list[float]]:
        targets = [_isf(alpha * _sf(n)) - n for n in BAND_NSIGMA]  # sqrt(q_A) at each expected limit
        starts = list(guesses) if guesses is not None else [None] * 6
        observed = self._root(lambda mu: self.hypotest(mu)[0] - alpha, rtol, starts[0], "observed")

        def expected(z: float) -> Callable[[float], float]:
            return lambda mu: z - math.sqrt(self.q_asimov(mu))

        band = [self._root(expected(z), rtol, start, label)
                for z, start, label in zip(targets, starts[1:], ("-2 sigma", "-1 sigma", "median", "+1 sigma",
                                                                 "+2 sigma"), strict=True)]
        return observed, band

    def _root(self, f: Callable[[float], float], rtol: float, start: float | None, label: str) -> float:
        """The root of ``f`` (positive below the limit, negative above) in the POI's range,
        bracketed from ``start`` outwards when given."""
        from scipy.optimize import toms748

        a, b = self.lo, self.hi
        if start is not None and a < start < b:
            lo_try, hi_try = max(a, start * 0.98), min(b, start * 1.02)
            while lo_try > a and f(lo_try) < 0:
                lo_try = max(a, lo_try - 2 * (start - lo_try) - 0.02 * start)
            while hi_try < b and f(hi_try) > 0:
                hi_try = min(b, hi_try + 2 * (hi_try - start) + 0.02 * start)
            a, b = lo_try, hi_try
        fa, fb = f(a), f(b)
        if not fa > 0:
            raise TaskFailedError(f"upper limit ({label}): CLs at the POI's lower end {a:g} is already below alpha")
        if not fb < 0:
            raise TaskFailedError(f"upper limit ({label}): not reached within the POI's bounds (up to {b:g})")
        return float(toms748(f, a, b, rtol=rtol, xtol=1e-12))
