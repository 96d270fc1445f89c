"""Deterministic SVG plots of run results (matplotlib + mplhep), shared by the compliance
reports and the dashboard: ``plots_for_result(task, result, ...) -> list[Plot]``.

A pure function of the result: the same result gives byte-identical SVG in every process, so
callers cache a plot under (result digest, ``Plot.name``, ``RENDERER_VERSION``). docs/plots.md."""

from ._dispatch import MAX_ROWS, plots_for_result
from ._model import Plot, Prior
from ._render import RENDERER_VERSION, UnsafeSVGError, check_inert
from .pk import PkObservations
from .priors import priors_from_workspace

__all__ = [
    "MAX_ROWS",
    "RENDERER_VERSION",
    "PkObservations",
    "Plot",
    "Prior",
    "UnsafeSVGError",
    "check_inert",
    "plots_for_result",
    "priors_from_workspace",
]
