"""The distribution of the POI fitted to Poisson toys: a histogram of the converged toys, the
value they were generated at, and their mean ± standard deviation. From a toys run
(``toys`` rows) or a toys job (each point's ``result``)."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from . import _data as d
from ._model import Plot
from ._render import render
from ._theme import BLUE, INK, RED

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "toys"


def fitted(result: Any) -> tuple[list[float], int, float | None]:
    """(POI of each converged toy, number of toys, POI the toys were generated at if known)."""
    rows = [p for _, p in d.job_points(result)] if d.is_job(result) else list(d.items(result, "toys"))
    values = [d.num(r, "poi") for r in map(d.record, rows) if r.get("converged") and d.finite(r.get("poi"))]
    if len(values) < 2:
        raise d.Missing("two converged toys")
    generated = result.get("generation_poi")
    return values, len(rows), float(generated) if d.finite(generated) else None


def plot(result: Any) -> Plot:
    values, total, generated = fitted(result)
    mean, std = statistics.fmean(values), statistics.stdev(values)
    title = f"POI fitted to {len(values)} converged toys" + (f" of {total}" if total != len(values) else "")

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        bins = max(10, min(80, int(math.sqrt(len(values)) * 2)))
        ax.hist(values, bins=bins, histtype="stepfilled", color=BLUE, alpha=0.6, edgecolor=BLUE,
                label="fitted POI")
        if generated is not None:
            ax.axvline(generated, color=RED, lw=1.8, label=f"generated at {generated:.3g}")
        ax.axvline(mean, color=INK, lw=1.2, ls="--", label=f"mean {mean:.3g} ± {std:.3g} (std)")
        ax.axvspan(mean - std, mean + std, color=INK, alpha=0.08)
        ax.set_xlabel("fitted POI")
        ax.set_ylabel("toys per bin")
        ax.legend(loc="upper right", fontsize="small")
        ax.set_title(title, loc="left", fontsize="medium")

    return render(NAME, title, (7.0, 5.0), draw)
