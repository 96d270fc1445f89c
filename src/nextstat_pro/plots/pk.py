"""PK concentration against time with the fitted one-compartment oral model.

The result holds the estimates (``parameters``: CL, V, Ka; ``eta``: each subject's random
effects) but not the observations, so the caller passes the run's dataset (``pk_data``, e.g.
engine.inputs.PkDataset). Individual parameters are log-normal, as the engine's FOCE model
has them: CL_i = CL·exp(η_CL,i) and likewise V and Ka; the concentration after an oral dose
D is  D·Ka / (V·(Ka − k)) · (exp(−k·t) − exp(−Ka·t))  with k = CL / V (bioavailability 1).
Drawn on a log concentration axis: observations (points), each subject's individual fit
(thin lines) and the typical subject's curve (η = 0) per dose (thick lines)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InputError
from . import _data as d
from ._model import Plot
from ._render import render
from ._theme import BLUE, ORANGE, PURPLE, RED, VIOLET

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "pk-concentration"
COLOURS = (BLUE, ORANGE, RED, PURPLE, VIOLET)
CURVE_POINTS = 200


class PkObservations(Protocol):
    """What the plot reads of a PK dataset (engine.inputs.PkDataset has it)."""

    @property
    def subject_ids(self) -> Sequence[str]: ...
    @property
    def times(self) -> Sequence[float]: ...
    @property
    def concentrations(self) -> Sequence[float]: ...
    @property
    def subject_index(self) -> Sequence[int]: ...
    @property
    def doses(self) -> Sequence[float]: ...


def concentration(t: float, dose: float, cl: float, v: float, ka: float) -> float:
    k = cl / v
    if abs(ka - k) < 1e-12 * ka:  # the limit ka -> k
        return dose / v * k * t * math.exp(-k * t)
    return dose * ka / (v * (ka - k)) * (math.exp(-k * t) - math.exp(-ka * t))


def estimates(result: Any) -> tuple[tuple[float, float, float], list[list[float]]]:
    theta = {d.text(p, "name"): d.num(p, "value") for p in map(d.record, d.items(result, "parameters"))}
    if not {"CL", "V", "Ka"} <= theta.keys() or min(theta["CL"], theta["V"], theta["Ka"]) <= 0:
        raise d.Missing("CL, V, Ka")
    eta = [d.numbers(row) for row in d.items(result, "eta")]
    if any(len(row) != 3 for row in eta):
        raise d.Missing("eta")
    return (theta["CL"], theta["V"], theta["Ka"]), eta


def plot(result: Any, data: PkObservations) -> Plot:
    (cl, v, ka), eta = estimates(result)
    n_subjects = len(data.subject_ids)
    if len(eta) != n_subjects or result.get("n_observations") not in (None, len(data.times)):
        raise InputError(f"the PK dataset given ({n_subjects} subjects, {len(data.times)} observations) is not the "
                         f"one this result was fitted to ({len(eta)} subjects, {result.get('n_observations')})")
    t_max = max(data.times)
    grid = [t_max * i / (CURVE_POINTS - 1) for i in range(CURVE_POINTS)][1:]
    doses = sorted(set(data.doses))
    colour = {dose: COLOURS[i % len(COLOURS)] for i, dose in enumerate(doses)}
    title = f"Concentration against time ({n_subjects} subjects, one-compartment oral fit)"

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for s in range(n_subjects):
            e = eta[s]
            dose = data.doses[s]
            curve = [concentration(t, dose, cl * math.exp(e[0]), v * math.exp(e[1]), ka * math.exp(e[2])) for t in grid]
            ax.plot(grid, curve, color=colour[dose], lw=0.6, alpha=0.35)
        for dose in doses:
            ts = [t for t, c, i in zip(data.times, data.concentrations, data.subject_index, strict=True)
                  if data.doses[i] == dose and c > 0]
            cs = [c for t, c, i in zip(data.times, data.concentrations, data.subject_index, strict=True)
                  if data.doses[i] == dose and c > 0]
            ax.plot(ts, cs, "o", color=colour[dose], ms=3, alpha=0.7, label=f"observed, dose {dose:g}")
            ax.plot(grid, [concentration(t, dose, cl, v, ka) for t in grid], color=colour[dose], lw=2.4,
                    label=f"typical subject, dose {dose:g}")
        ax.plot([], [], color="#555555", lw=0.6, label="individual fits")
        ax.set_yscale("log")
        positive = [c for c in data.concentrations if c > 0]
        if positive:
            ax.set_ylim(bottom=min(positive) / 2)
        ax.set_xlabel("time")
        ax.set_ylabel("concentration")
        ax.legend(loc="upper right", fontsize="small")
        ax.set_title(title, loc="left", fontsize="medium")

    return render(NAME, title, (7.5, 5.5), draw)
