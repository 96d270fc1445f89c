"""The profile-likelihood scan of the POI: -2 Δln L against the tested value, with the 68 %
and 95 % crossings (1 and 3.84). From a scan run (``points`` with ``mu`` and ``nll_mu``,
relative to ``nll_hat``) or a scan job (each point's ``result``; relative to the smallest
scanned NLL, as a job does not fit the free minimum)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _data as d
from ._model import Plot
from ._render import render
from ._theme import BLUE, GREY, INK

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "profile-likelihood"


def curve(result: Any) -> tuple[list[tuple[float, float]], float | None, str]:
    """(mu, NLL) points in mu order, the best-fit mu if known, and what ΔNLL is relative to."""
    if d.is_job(result):
        raw = [p for _, p in d.job_points(result)]
        mu_hat, reference = None, "smallest scanned"
    else:
        raw = list(d.items(result, "points"))
        mu_hat, reference = d.num(result, "mu_hat"), "best fit"
    points = sorted((d.num(p, "mu"), d.num(p, "nll_mu")) for p in map(d.record, raw))
    if len(points) < 2:
        raise d.Missing("two scan points")
    return points, mu_hat, reference


def plot(result: Any) -> Plot:
    points, mu_hat, reference = curve(result)
    nll_ref = d.num(result, "nll_hat") if reference == "best fit" else min(n for _, n in points)
    poi = _poi_name(result)
    title = f"Profile likelihood of {poi}"

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        mus = [m for m, _ in points]
        values = [2 * (n - nll_ref) for _, n in points]
        ax.plot(mus, values, "-o", color=BLUE, ms=3.5, lw=1.5, label=f"−2 Δln L (from the {reference} NLL)")
        # The y range is the curve's: a scan that stays below a level does not get squashed
        # under it (the level is drawn only when the curve reaches it).
        top = max(values) * 1.25 if max(values) > 0 else 1.0
        for level, label in ((1.0, "68 % CL"), (3.84, "95 % CL")):
            if level < top:
                ax.axhline(level, color=GREY, lw=1, ls="--")
                ax.text(mus[-1], level, f" {label}", va="bottom", ha="right", fontsize="x-small", color=GREY)
        if mu_hat is not None:
            ax.axvline(mu_hat, color=INK, lw=0.8, ls=":", label=f"best fit {mu_hat:.3g}")
        ax.set_xlabel(poi)
        ax.set_ylabel("−2 Δln L")
        ax.set_ylim(min(0.0, *values), top)
        legend = ax.legend(loc="best", fontsize="small")
        for entry in legend.get_texts():
            entry.set_parse_math(False)
        ax.set_title(title, loc="left", fontsize="medium", parse_math=False)
        ax.xaxis.label.set_parse_math(False)

    return render(NAME, title, (7.0, 5.0), draw)


def _poi_name(result: Any) -> str:
    try:
        return d.text(d.mapping(result, "poi"), "name")
    except d.Missing:
        return "POI"
