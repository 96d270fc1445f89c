"""Result regressions: a run's result compared with its baseline's, number by number (pure).

What counts as a regression (docs/alerts.md): a parameter (the POI included) that moved by more than
``sigmas`` of its own uncertainty (the baseline's); an upper limit (observed or expected median) or a
CLs value that changed by more than ``limit_pct`` percent; a grid point whose exclusion
(CLs < alpha) flipped; wall time that grew by more than ``wall_pct`` percent.
"""

from __future__ import annotations

import math
from typing import Any

EXCLUSION_ALPHA = 0.05


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _relative(base: float, now: float) -> float:
    if base == now:
        return 0.0
    return abs(now - base) / abs(base) * 100 if base != 0 else math.inf


def _parameters(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    params = {p["name"]: p for p in result.get("parameters") or [] if isinstance(p, dict) and "name" in p}
    poi = result.get("poi")
    if isinstance(poi, dict) and "name" in poi:
        params.setdefault(poi["name"], poi)
    return params


def compare(base: dict[str, Any], now: dict[str, Any], *, sigmas: float, limit_pct: float,
            wall_pct: float) -> list[dict[str, Any]]:
    """The differences beyond tolerance, each ``{"what", "baseline", "current", "change", "limit"}``."""
    out: list[dict[str, Any]] = []
    base_params, now_params = _parameters(base), _parameters(now)
    for name in sorted(base_params.keys() & now_params.keys()):
        b, n = base_params[name], now_params[name]
        value_b, value_n, unc = _number(b.get("value")), _number(n.get("value")), _number(b.get("uncertainty"))
        if value_b is None or value_n is None or b.get("fixed") or not unc:
            continue
        pulls = abs(value_n - value_b) / unc
        if pulls > sigmas:
            out.append({"what": f"parameter {name}", "baseline": value_b, "current": value_n,
                        "change": f"{pulls:.3g} sigma", "limit": f"{sigmas:g} sigma"})
    scalars = [("observed upper limit", base.get("observed"), now.get("observed")),
               ("expected upper limit (median)", (base.get("expected") or {}).get("median"),
                (now.get("expected") or {}).get("median")),
               ("CLs", base.get("cls"), now.get("cls"))]
    for what, raw_b, raw_n in scalars:
        b_val, n_val = _number(raw_b), _number(raw_n)
        if b_val is None or n_val is None:
            continue
        pct = _relative(b_val, n_val)
        if pct > limit_pct:
            out.append({"what": what, "baseline": b_val, "current": n_val, "change": f"{pct:.3g} %",
                        "limit": f"{limit_pct:g} %"})
    out.extend(_grid(base, now))
    wall_b, wall_n = _number(base.get("wall_time_s")), _number(now.get("wall_time_s"))
    if wall_b is not None and wall_n is not None and wall_n > wall_b:
        pct = _relative(wall_b, wall_n)
        if pct > wall_pct:
            out.append({"what": "wall time (s)", "baseline": wall_b, "current": wall_n, "change": f"+{pct:.3g} %",
                        "limit": f"{wall_pct:g} %"})
    return out


def _grid(base: dict[str, Any], now: dict[str, Any]) -> list[dict[str, Any]]:
    """Points of a grid (``points``: dicts with ``cls``, matched by position) whose exclusion flipped."""
    points_b, points_n = base.get("points"), now.get("points")
    if not isinstance(points_b, list) or not isinstance(points_n, list):
        return []
    out = []
    for i, (b, n) in enumerate(zip(points_b, points_n, strict=False)):
        if not isinstance(b, dict) or not isinstance(n, dict):
            continue
        cls_b, cls_n = _number(b.get("cls")), _number(n.get("cls"))
        if cls_b is None or cls_n is None:
            continue
        if (cls_b < EXCLUSION_ALPHA) != (cls_n < EXCLUSION_ALPHA):
            where = {k: v for k, v in b.items() if k not in ("cls", "clsb", "clb")}
            out.append({"what": f"exclusion at grid point {i} {where}", "baseline": cls_b, "current": cls_n,
                        "change": "excluded" if cls_n < EXCLUSION_ALPHA else "no longer excluded",
                        "limit": f"CLs < {EXCLUSION_ALPHA:g}"})
    return out
