"""Our own verdict on a fit: the engine says ``converged=True`` even at a parameter bound."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BOUND_RTOL = 1e-6


def _at(value: float, bound: float) -> bool:
    return abs(value - bound) <= BOUND_RTOL * max(1.0, abs(bound))


def assess_fit(
    names: Sequence[str],
    values: Sequence[float],
    bounds: Sequence[tuple[float, float]],
    gradient: Sequence[float],
    converged: bool,
    grad_tol: float,
) -> dict[str, Any]:
    """A fit is good when the minimiser converged, no free parameter sits on a bound and
    the projected gradient norm (free parameters only; at a bound, only the component
    pointing inside) is below ``grad_tol``. Fixed parameters (lower == upper: the measurement
    fixes them) are no defect: they are listed apart from those at a bound."""
    at_bound: list[str] = []
    fixed: list[str] = []
    squares = 0.0
    for name, value, (lo, hi), g in zip(names, values, bounds, gradient, strict=True):
        if lo == hi:
            fixed.append(name)
            continue
        at_lo, at_hi = _at(value, lo), _at(value, hi)
        if at_lo or at_hi:
            at_bound.append(name)
            # The NLL decreases along -g; a component pushing through the bound is not a defect.
            if (at_lo and g > 0) or (at_hi and g < 0):
                continue
        squares += g * g
    grad_norm = math.sqrt(squares)
    reasons = []
    if not converged:
        reasons.append("minimiser did not converge")
    if at_bound:
        reasons.append(f"{len(at_bound)} parameter(s) at a bound: {', '.join(at_bound[:5])}")
    if not math.isfinite(grad_norm) or grad_norm > grad_tol:
        reasons.append(f"projected gradient norm {grad_norm:.3g} above tolerance {grad_tol:g}")
    return {
        "ok": not reasons,
        "converged": bool(converged),
        "at_bound": at_bound,
        "fixed": fixed,
        "projected_grad_norm": grad_norm,
        "grad_tol": grad_tol,
        "reasons": reasons,
    }
