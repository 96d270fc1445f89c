"""CLs against the tested POI value: the observed curve over the expected band, the level
alpha, and where the observed curve crosses it.

It needs the CLs curve itself, recorded as ``cls_scan``::

    {"mu": [...], "cls_observed": [...],
     "cls_expected": {"-2sigma": [...], "-1sigma": [...], "median": [...], "+1sigma": [...], "+2sigma": [...]}}

(``cls_expected`` optional). An upper-limit run whose result has no ``cls_scan`` gets no plot
of this kind: its limits alone do not determine the curve (docs/plots.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _data as d
from ._model import Plot
from ._render import render
from ._theme import BLUE, GREEN, INK, RED, YELLOW

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "cls"
BAND = ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")


def curves(result: Any) -> tuple[list[float], list[float], list[list[float]] | None]:
    scan = d.mapping(result, "cls_scan")
    mus = d.numbers(d.member(scan, "mu"))
    observed = d.numbers(d.member(scan, "cls_observed"))
    if len(mus) < 2 or len(observed) != len(mus):
        raise d.Missing("cls_scan points")
    expected = None
    if scan.get("cls_expected") is not None:
        exp = d.mapping(scan, "cls_expected")
        expected = [d.numbers(d.member(exp, k)) for k in BAND]
        if any(len(e) != len(mus) for e in expected):
            raise d.Missing("cls_expected length")
    order = sorted(range(len(mus)), key=lambda i: mus[i])
    return ([mus[i] for i in order], [observed[i] for i in order],
            None if expected is None else [[e[i] for i in order] for e in expected])


def plot(result: Any) -> Plot:
    mus, observed, expected = curves(result)
    alpha = d.num(result, "alpha")
    title = f"CLs against the POI ({100 * (1 - alpha):.3g} % CL)"
    poi = d.text(d.mapping(result, "poi"), "name") if isinstance(result.get("poi"), dict) else "POI"

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        if expected is not None:
            ax.fill_between(mus, expected[0], expected[4], color=YELLOW, label="expected ±2σ")
            ax.fill_between(mus, expected[1], expected[3], color=GREEN, label="expected ±1σ")
            ax.plot(mus, expected[2], color=INK, ls="--", lw=1.5, label="expected")
        ax.plot(mus, observed, color=INK, lw=2, marker="o", ms=3, label="observed")
        ax.axhline(alpha, color=RED, lw=1, label=f"α = {alpha:g}")
        if isinstance(result.get("observed"), int | float) and d.finite(result["observed"]):
            ax.axvline(float(result["observed"]), color=BLUE, lw=1, ls=":",
                       label=f"observed limit {float(result['observed']):.3g}")
        ax.set_xlabel(poi)
        ax.set_ylabel("CLs")
        ax.set_ylim(0, 1.05)
        legend = ax.legend(loc="upper right", fontsize="small")
        for entry in legend.get_texts():
            entry.set_parse_math(False)
        ax.xaxis.label.set_parse_math(False)
        ax.set_title(title, loc="left", fontsize="medium")

    return render(NAME, title, (7.0, 5.0), draw)
