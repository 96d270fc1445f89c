"""Upper limits with their expected band (the "Brazil band").

- An upper-limit run: its observed limit over the expected median and ±1σ/±2σ band, one row.
- A grid job of upper limits: the limits along the grid's first coordinate (at the lowest
  value of the second, for a 2-D grid), observed over the expected band.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _data as d
from ._model import Plot
from ._render import render
from ._theme import GREEN, INK, YELLOW

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

NAME = "brazil"
DEFAULT_ALPHA = 0.05  # engine.params.UpperLimitParams' default (a test checks): a job's params may omit it
BAND = ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")


def band(limit: Mapping[str, Any]) -> tuple[float, list[float]]:
    """(observed, [-2σ, -1σ, median, +1σ, +2σ]) of an upper-limit result."""
    expected = d.mapping(limit, "expected")
    return d.num(limit, "observed"), [d.num(expected, k) for k in BAND]


def cl_text(params: Any) -> str:
    try:
        alpha = d.num(params, "alpha")
    except d.Missing:
        alpha = DEFAULT_ALPHA
    return f"{100 * (1 - alpha):.3g} % CL"


def plot_single(result: Any) -> Plot:
    observed, exp = band(result)
    poi = _poi_name(result)
    title = f"Upper limit on {poi} ({cl_text(result)})"

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.fill_betweenx([0, 1], exp[0], exp[4], color=YELLOW, label="expected ±2σ")
        ax.fill_betweenx([0, 1], exp[1], exp[3], color=GREEN, label="expected ±1σ")
        ax.plot([exp[2]] * 2, [0, 1], color=INK, ls="--", lw=1.5, label=f"expected {exp[2]:.3g}")
        ax.plot([observed] * 2, [0, 1], color=INK, lw=2.5, label=f"observed {observed:.3g}")
        ax.set_ylim(0, 1.9)
        ax.set_yticks([])
        ax.minorticks_off()
        ax.tick_params(axis="y", which="both", left=False, right=False)
        ax.set_xlim(0, max(exp[4], observed) * 1.15)
        ax.set_xlabel(f"upper limit on {poi}")
        _legend(ax, ncols=2)
        ax.set_title(title, loc="left", fontsize="medium", parse_math=False)
        ax.xaxis.label.set_parse_math(False)

    return render(NAME, title, (7.0, 3.2), draw)


def grid_slice(result: Any) -> tuple[list[tuple[float, float, list[float]]], str]:
    """The grid's limits along its first coordinate: (x, observed, band) sorted by x, and a
    note naming the slice."""
    rows = []
    for values, point in d.job_points(result):
        coords = [d.number(v) for v in (values if isinstance(values, list) else [values])]
        if not coords:
            raise d.Missing("grid values")
        observed, exp = band(point)
        rows.append((coords, observed, exp))
    if not rows:
        raise d.Missing("grid points")
    note = ""
    if len(rows[0][0]) > 1:
        lowest = min(r[0][1] for r in rows)
        rows = [r for r in rows if r[0][1] == lowest]
        note = f" at second coordinate {lowest:g}"
    line = sorted((r[0][0], r[1], r[2]) for r in rows)
    if len({x for x, _, _ in line}) < 2:
        raise d.Missing("two points along the first coordinate")
    return line, note


def plot_grid(result: Any, *, labels: Sequence[str] | None = None) -> Plot:
    line, note = grid_slice(result)
    names = list(labels or [])
    xlabel = names[0] if names and names[0] else "first grid coordinate"
    if note and len(names) > 1 and names[1]:
        note = note.replace("second coordinate", names[1])
    title = f"Upper limits along the grid{note} ({cl_text(result.get('params', {}))})"

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        xs = [x for x, _, _ in line]
        ax.fill_between(xs, [b[0] for _, _, b in line], [b[4] for _, _, b in line], color=YELLOW,
                        label="expected ±2σ")
        ax.fill_between(xs, [b[1] for _, _, b in line], [b[3] for _, _, b in line], color=GREEN,
                        label="expected ±1σ")
        ax.plot(xs, [b[2] for _, _, b in line], color=INK, ls="--", lw=1.5, label="expected")
        ax.plot(xs, [o for _, o, _ in line], color=INK, marker="o", ms=3.5, lw=2, label="observed")
        ax.axhline(1.0, color="#e42536", lw=1, ls=":", label="POI = 1")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.xaxis.label.set_parse_math(False)
        ax.set_ylabel("upper limit on the POI")
        _legend(ax, ncols=1)
        ax.set_title(title, loc="left", fontsize="medium", parse_math=False)

    return render(NAME, title, (7.0, 5.0), draw)


def _legend(ax: Axes, ncols: int) -> None:
    legend = ax.legend(loc="upper left", fontsize="small", ncols=ncols)
    for entry in legend.get_texts():
        entry.set_parse_math(False)


def _poi_name(result: Any) -> str:
    try:
        return d.text(d.mapping(result, "poi"), "name")
    except d.Missing:
        return "POI"
