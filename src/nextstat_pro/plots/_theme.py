"""Colours and small drawing helpers shared by the plot kinds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# The band colours HEP readers expect of expected limits and pull plots (ROOT's kGreen/kYellow).
GREEN = "#00cc00"
YELLOW = "#ffcc00"
# mplhep's ROOT-style cycle (Petroff's colour-blind-safe six): data, fit, ...
BLUE, ORANGE, RED, PURPLE, GREY, VIOLET = "#5790fc", "#f89c20", "#e42536", "#964a8b", "#9c9ca1", "#7a21dd"
INK = "#000000"


def plain_labels(ax: Axes) -> None:
    """Tick labels and legend entries come from the data (parameter names): never mathtext."""
    for label in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        label.set_parse_math(False)
    legend = ax.get_legend()
    if legend is not None:
        for entry in legend.get_texts():
            entry.set_parse_math(False)


def pad_limits(ax: Axes, xs: Sequence[float], ys: Sequence[float], fraction: float = 0.04) -> None:
    """Limits a little beyond the data, so markers on the outermost points are not cut."""
    for values, setter in ((xs, ax.set_xlim), (ys, ax.set_ylim)):
        lo, hi = min(values), max(values)
        pad = (hi - lo) * fraction or 1.0
        setter(lo - pad, hi + pad)


def height_for(n_rows: int, base: float = 1.4, per_row: float = 0.28, least: float = 3.5) -> float:
    """A figure height that gives each of ``n_rows`` labelled rows room to be read."""
    return max(least, base + per_row * n_rows)


def colorbar(fig: Figure, mappable: Any, ax: Axes, label: str, *, plain: bool = False, **kwargs: Any) -> None:
    """A colour bar drawn as vectors: matplotlib rasterises a bar of many colours, and a raster
    image is what the SVG check refuses (and what PDF/A renders badly). ``plain``: tick labels
    as plain numbers (a log scale's default is 2×10¹)."""
    from matplotlib.ticker import LogFormatter, LogLocator, NullLocator

    bar = fig.colorbar(mappable, ax=ax, label=label, **kwargs)
    if bar.solids is not None:
        bar.solids.set_rasterized(False)
        bar.solids.set_edgecolor("face")  # no hairline seams between the vector cells
    bar.ax.minorticks_off()
    if plain:
        bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        bar.ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        bar.ax.yaxis.set_minor_locator(NullLocator())
