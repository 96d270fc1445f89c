"""The exclusion contour over a 2-D signal grid (a grid job: one point per patch, ``values``
its two grid coordinates).

Upper-limit points: where the observed limit on the POI crosses 1 (solid), the expected
median (dashed) and its ±1σ (dotted); each point is marked and coloured by its observed
limit, so a reader sees where the contour comes from. Hypotest points: where the observed CLs
crosses 0.05. Contours are drawn on a Delaunay triangulation of the points in log(limit),
which interpolates a limit falling with mass more evenly than the limit itself. A level the
points never cross draws no line (and says so in the legend)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _data as d
from ._model import Plot
from ._render import render
from ._theme import BLUE, INK, RED, colorbar, pad_limits
from .limits import band

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

NAME = "exclusion"
CLS_LEVEL = 0.05


def grid(result: Any) -> tuple[str, list[tuple[float, float]], dict[str, list[float]]]:
    """("upper-limit" or "hypotest", the points' coordinates, the series to contour)."""
    task = d.text(result, "point_task")
    coords: list[tuple[float, float]] = []
    series: dict[str, list[float]] = {}
    for values, point in d.job_points(result):
        if not isinstance(values, list) or len(values) != 2:
            raise d.Missing("two grid coordinates")
        xy = (d.number(values[0]), d.number(values[1]))
        if task == "upper-limit":
            observed, exp = band(point)
            row = {"observed": observed, "-1sigma": exp[1], "median": exp[2], "+1sigma": exp[3]}
        elif task == "hypotest":
            row = {"cls": d.num(point, "cls")}
        else:
            raise d.Missing("a grid of limits or CLs")
        if any(v <= 0 for v in row.values()):
            continue  # log scale below; a zero limit or CLs is no point of a contour
        coords.append(xy)
        for key, value in row.items():
            series.setdefault(key, []).append(value)
    if len(set(coords)) < 3 or len({x for x, _ in coords}) < 2 or len({y for _, y in coords}) < 2:
        raise d.Missing("a 2-D grid of at least three points")
    return task, coords, series


def plot(result: Any, *, labels: Sequence[str] | None = None) -> Plot:
    task, coords, series = grid(result)
    xlabel, ylabel = (list(labels) + ["", ""])[:2] if labels else ("", "")
    xlabel, ylabel = xlabel or "grid coordinate 1", ylabel or "grid coordinate 2"
    title = "Exclusion contour" + (" (upper limit on the POI = 1)" if task == "upper-limit" else
                                   f" (observed CLs = {CLS_LEVEL:g})")

    def draw(fig: Figure) -> None:
        import matplotlib.colors as mcolors
        import numpy as np
        from matplotlib.tri import Triangulation

        ax = fig.add_subplot()
        xs = np.array([x for x, _ in coords])
        ys = np.array([y for _, y in coords])
        tri = Triangulation(xs, ys)
        colour = series["observed" if task == "upper-limit" else "cls"]
        dots = ax.scatter(xs, ys, c=colour, cmap="viridis", norm=mcolors.LogNorm(), s=18, zorder=3)
        colorbar(fig, dots, ax, "observed upper limit" if task == "upper-limit" else "observed CLs",
                 plain=True)
        if task == "upper-limit":
            lines = [("observed", "-", 2.2, "observed"), ("median", "--", 1.8, "expected"),
                     ("-1sigma", ":", 1.4, "expected ±1σ"), ("+1sigma", ":", 1.4, None)]
            level = 0.0
        else:
            lines = [("cls", "-", 2.2, "observed")]
            level = math.log10(CLS_LEVEL)
        for key, style, width, label in lines:
            z = np.log10(np.array(series[key]))
            colour_line = RED if key in ("observed", "cls") else INK
            if z.min() < level < z.max():
                ax.tricontour(tri, z, levels=[level], colors=[colour_line], linestyles=[style], linewidths=[width],
                              zorder=4)
                if label:
                    ax.plot([], [], color=colour_line, ls=style, lw=width, label=label)
            elif label:
                ax.plot([], [], color=colour_line, ls=style, lw=width, label=f"{label}: not crossed on this grid")
        pad_limits(ax, xs.tolist(), ys.tolist())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        _legend(ax)
        ax.set_title(title, loc="left", fontsize="medium")
        ax.xaxis.label.set_parse_math(False)
        ax.yaxis.label.set_parse_math(False)

    return render(NAME, title, (7.5, 5.5), draw)


def _legend(ax: Axes) -> None:
    legend = ax.legend(loc="upper right", fontsize="small", frameon=True, facecolor="white", edgecolor=BLUE)
    for entry in legend.get_texts():
        entry.set_parse_math(False)
