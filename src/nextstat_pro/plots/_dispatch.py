"""Which plots a result gets: each kind whose inputs the result (plus what the caller passes)
holds, in a fixed order; a kind it lacks the inputs of is left out, never faked."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import cls, contour, correlation, limits, pk, pulls, ranking, scan, toys
from ._data import Missing, is_job
from ._model import Plot, Prior
from .pk import PkObservations

MAX_ROWS = 40
"""Parameters shown at most in a pulls, ranking or correlation plot (the most telling ones)."""


def plots_for_result(
    task: str,
    result: Mapping[str, Any],
    *,
    priors: Mapping[str, Prior] | None = None,
    pk_data: PkObservations | None = None,
    grid_labels: Sequence[str] | None = None,
    max_rows: int = MAX_ROWS,
) -> list[Plot]:
    """The plots of one run's result (a task result, or a job's merged result).

    ``task``: the run's task ("fit", "upper-limit", ..., or a job's "grid", "scan", "toys").
    ``priors``: the constrained parameters' priors (``priors_from_workspace`` of the run's
    workspace), for a fit's pulls. ``pk_data``: the run's PK dataset, for pk-nlme's
    concentration-time plot. ``grid_labels``: the names of a grid's two coordinates (a
    patchset's ``metadata.labels``). A pure function of its arguments: same bytes every time."""
    if not isinstance(result, Mapping):
        return []
    job = is_job(result)
    kinds: list[Callable[[], Plot]] = []
    if job:
        if task == "grid":
            kinds += [lambda: contour.plot(result, labels=grid_labels),
                      lambda: limits.plot_grid(result, labels=grid_labels)]
        elif task == "scan":
            kinds.append(lambda: scan.plot(result))
        elif task == "toys":
            kinds.append(lambda: toys.plot(result))
    elif task == "fit":
        kinds += [lambda: pulls.plot(result, priors=priors, max_rows=max_rows),
                  lambda: correlation.plot(result, max_rows=max_rows)]
    elif task == "upper-limit":
        kinds += [lambda: limits.plot_single(result), lambda: cls.plot(result)]
    elif task == "scan":
        kinds.append(lambda: scan.plot(result))
    elif task == "ranking":
        kinds += [lambda: ranking.plot(result, max_rows=max_rows),
                  lambda: pulls.plot(result, priors=None, max_rows=max_rows)]
    elif task == "toys":
        kinds.append(lambda: toys.plot(result))
    elif task == "pk-nlme":
        if pk_data is not None:
            kinds.append(lambda: pk.plot(result, pk_data))
        kinds.append(lambda: correlation.plot(result, max_rows=max_rows))
    out = []
    for kind in kinds:
        try:
            out.append(kind())
        except Missing:
            continue
    return out
