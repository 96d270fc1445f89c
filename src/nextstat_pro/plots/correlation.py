"""The correlation matrix of the fitted parameters, from the covariance a result records:
a fit run with ``covariance=true`` (``covariance.parameters`` + ``matrix``) or a PK fit
(``covariance.parameter_names`` + ``matrix``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from . import _data as d
from ._model import Plot
from ._render import render
from ._theme import colorbar, plain_labels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "correlation"
ANNOTATE_UP_TO = 12  # printed coefficients stay legible up to this many parameters


def correlations(result: Any) -> tuple[list[str], list[list[float]]]:
    cov = d.mapping(result, "covariance")
    names = cov.get("parameters") or cov.get("parameter_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) < 2:
        raise d.Missing("covariance parameters")
    matrix = [d.numbers(row) for row in d.items(cov, "matrix")]
    if len(matrix) != len(names) or any(len(row) != len(names) for row in matrix):
        raise d.Missing("covariance matrix shape")
    sd = [math.sqrt(matrix[i][i]) if matrix[i][i] > 0 else 0.0 for i in range(len(names))]
    keep = [i for i, s in enumerate(sd) if s > 0]
    if len(keep) < 2:
        raise d.Missing("two parameters with a variance")
    # Symmetrised: the engine's PK covariance differs from its transpose in the last digits.
    corr = [[max(-1.0, min(1.0, (matrix[i][j] + matrix[j][i]) / 2 / (sd[i] * sd[j]))) for j in keep] for i in keep]
    return [names[i] for i in keep], corr


def plot(result: Any, *, max_rows: int) -> Plot:
    names, corr = correlations(result)
    total = len(names)
    if total > max_rows:
        # The parameters most correlated with any other are those a reader looks for.
        strength = [max(abs(c) for j, c in enumerate(row) if j != i) for i, row in enumerate(corr)]
        keep = sorted(sorted(range(total), key=lambda i: -strength[i])[:max_rows])
        names = [names[i] for i in keep]
        corr = [[corr[i][j] for j in keep] for i in keep]
    n = len(names)
    title = "Correlation matrix" + (f" ({n} most correlated of {total} parameters)" if n < total else "")

    def draw(fig: Figure) -> None:
        import numpy as np

        ax = fig.add_subplot()
        # pcolormesh, not imshow: vector cells (no raster image in the SVG, nor in a PDF/A).
        mesh = ax.pcolormesh(np.arange(n + 1) - 0.5, np.arange(n + 1) - 0.5, np.array(corr), cmap="RdBu_r",
                             vmin=-1, vmax=1, edgecolors="face", linewidth=0)
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
        ax.tick_params(which="both", top=False, right=False)
        ax.minorticks_off()
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_aspect("equal")
        if n <= ANNOTATE_UP_TO:
            for i in range(n):
                for j in range(n):
                    value = corr[i][j]
                    label = f"{value:.2f}".replace("-0.00", "0.00")
                    ax.text(j, i, label, ha="center", va="center", fontsize="x-small",
                            color="white" if abs(value) > 0.6 else "black")
        colorbar(fig, mesh, ax, "correlation", shrink=0.8)
        ax.set_title(title, loc="left", fontsize="medium")
        plain_labels(ax)

    side = max(5.0, min(16.0, 2.5 + 0.32 * n))
    return render(NAME, title, (side + 1.2, side), draw)
