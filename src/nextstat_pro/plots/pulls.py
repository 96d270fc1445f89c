"""Pulls and constraints: each constrained parameter's best fit from its nominal value and its
post-fit width, both in units of its prior width, over the ±1 and ±2 bands.

From a ranking result (the engine reports ``pull`` and ``constraint`` per parameter) or from a
fit result together with the priors of its workspace (``priors_from_workspace``): a fit result
alone does not say which parameters are constrained, nor how."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _data as d
from ._model import Plot, Prior
from ._render import render
from ._theme import GREEN, INK, YELLOW, height_for, plain_labels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "pulls"


def rows_from_ranking(result: Any) -> list[tuple[str, float, float]]:
    rows = []
    for entry in map(d.record, d.items(result, "impacts")):
        rows.append((d.text(entry, "name"), d.num(entry, "pull"), d.num(entry, "constraint")))
    return rows


def rows_from_fit(result: Any, priors: Mapping[str, Prior]) -> list[tuple[str, float, float]]:
    rows = []
    for p in map(d.record, d.items(result, "parameters")):
        name = d.text(p, "name")
        prior = priors.get(name)
        if prior is None or p.get("fixed") or not prior.width > 0:
            continue
        value, width = d.num(p, "value"), d.num(p, "uncertainty")
        rows.append((name, (value - prior.centre) / prior.width, width / prior.width))
    return rows


def plot(result: Any, *, priors: Mapping[str, Prior] | None, max_rows: int) -> Plot:
    if "impacts" in result:
        rows = rows_from_ranking(result)
    elif priors is not None:
        rows = rows_from_fit(result, priors)
    else:
        raise d.Missing("priors")
    if not rows:
        raise d.Missing("constrained parameters")
    total = len(rows)
    # Too many to read: those furthest from their prior (pulled, or constrained away from 1)
    # are kept, in the result's order (a stable sort keeps it for ties).
    if total > max_rows:
        keep = {id(r) for r in sorted(rows, key=lambda r: -max(abs(r[1]), abs(1 - r[2])))[:max_rows]}
        shown = [r for r in rows if id(r) in keep]
    else:
        shown = rows
    title = "Pulls and constraints" + (f" ({len(shown)} furthest of {total})" if total > len(shown) else "")

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        n = len(shown)
        ys = list(range(n))[::-1]
        ax.axvspan(-2, 2, color=YELLOW, zorder=0, label="±2")
        ax.axvspan(-1, 1, color=GREEN, zorder=0, label="±1")
        ax.axvline(0, color=INK, lw=0.8, ls="--", zorder=1)
        ax.errorbar([r[1] for r in shown], ys, xerr=[r[2] for r in shown], fmt="o", color=INK, ms=4,
                    capsize=0, lw=1.2, zorder=3, label="post-fit")
        ax.set_yticks(ys, [r[0] for r in shown])
        ax.set_ylim(-0.7, n - 0.3)
        ax.yaxis.set_minor_locator(_no_minor())
        span = max(2.5, *(abs(r[1]) + r[2] + 0.3 for r in shown))
        ax.set_xlim(-span, span)
        ax.set_xlabel("(θ̂ − θ₀) / Δθ")
        ax.set_title(title, loc="left", fontsize="medium")
        plain_labels(ax)

    return render(NAME, title, (7.0, height_for(len(shown))), draw)


def _no_minor() -> Any:
    from matplotlib.ticker import NullLocator

    return NullLocator()
