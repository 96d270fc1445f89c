"""The ranking (impact) plot: the POI's shift when each nuisance parameter is moved by ± its
prior width and the rest refitted, largest first, beside that parameter's pull and constraint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _data as d
from ._model import Plot
from ._render import render
from ._theme import BLUE, GREEN, INK, ORANGE, YELLOW, height_for, plain_labels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "ranking"


def impacts(result: Any) -> list[tuple[str, float, float, float | None, float | None]]:
    """(name, Δμ up, Δμ down, pull, constraint) in the result's order (largest impact first)."""
    rows = []
    for entry in map(d.record, d.items(result, "impacts")):
        pull = entry.get("pull") if d.finite(entry.get("pull")) else None
        constraint = entry.get("constraint") if d.finite(entry.get("constraint")) else None
        rows.append((d.text(entry, "name"), d.num(entry, "delta_mu_up"), d.num(entry, "delta_mu_down"),
                     None if pull is None else float(pull), None if constraint is None else float(constraint)))
    if not rows:
        raise d.Missing("impacts")
    return rows


def plot(result: Any, *, max_rows: int) -> Plot:
    rows = impacts(result)
    total = len(rows)
    rows = sorted(rows, key=lambda r: -max(abs(r[1]), abs(r[2])))[:max_rows]
    poi = d.text(d.mapping(result, "poi"), "name") if isinstance(result.get("poi"), dict) else "POI"
    title = f"Impacts on {poi}" + (f" ({len(rows)} largest of {total})" if total > len(rows) else "")

    def draw(fig: Figure) -> None:
        n = len(rows)
        ys = list(range(n))[::-1]
        left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
        left.barh(ys, [r[1] for r in rows], height=0.7, color=BLUE, label="+1σ (prior)")
        left.barh(ys, [r[2] for r in rows], height=0.7, color=ORANGE, alpha=0.85, label="−1σ (prior)")
        left.axvline(0, color=INK, lw=0.8)
        left.set_yticks(ys, [r[0] for r in rows])
        left.set_ylim(-0.7, n - 0.3)
        left.set_xlabel(f"Δ{poi}")
        left.xaxis.label.set_parse_math(False)
        left.legend(loc="lower right", fontsize="small")
        left.minorticks_off()
        right.axvspan(-2, 2, color=YELLOW, zorder=0)
        right.axvspan(-1, 1, color=GREEN, zorder=0)
        pulled = [(y, r) for y, r in zip(ys, rows, strict=True) if r[3] is not None]
        if pulled:
            right.errorbar([r[3] for _, r in pulled], [y for y, _ in pulled],
                           xerr=[r[4] if r[4] is not None else 0.0 for _, r in pulled], fmt="o", color=INK, ms=4,
                           lw=1.2, capsize=0, zorder=3)
        right.set_xlim(-2.5, 2.5)
        right.set_xlabel("pull (θ̂ − θ₀) / Δθ")
        right.tick_params(axis="y", which="both", left=False, right=False)
        right.minorticks_off()
        left.set_title(title, loc="left", fontsize="medium", parse_math=False)
        plain_labels(left)

    return render(NAME, title, (9.0, height_for(len(rows))), draw)
