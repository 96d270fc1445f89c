"""What a run's plots need beside its result, read from the run's recorded inputs: the
constraints' priors of a fit's workspace (pulls), a PK study's observations (concentration-time),
a signal grid's coordinate names (the exclusion contour's axes). Shared by the dashboard and the
compliance reports, so both draw the same plots of the same run."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import InputError
from .priors import priors_from_workspace

MAX_INPUT_BYTES = 64 * 1024 * 1024
"""Inputs larger than this are not read for a plot (the plot is then drawn without them)."""

Reader = Callable[[str], bytes | None]
"""role -> the run's input of that role ("workspace", "patchset", "dataset"), or None."""


def plot_context(task: str, read: Reader) -> dict[str, Any]:
    """Keyword arguments of ``plots_for_result`` for a run of ``task`` whose inputs ``read``
    gives. An input that is missing or does not parse leaves its plot out (``plots_for_result``
    never fakes one), it does not fail the page or the report."""
    out: dict[str, Any] = {}
    try:
        if task == "fit":
            data = read("workspace")
            if data is not None:
                out["priors"] = priors_from_workspace(json.loads(data))
        elif task == "pk-nlme":
            data = read("dataset")
            if data is not None:
                from ..engine.inputs import InputFile, load_pk_dataset

                out["pk_data"] = load_pk_dataset(InputFile.from_bytes("dataset", "dataset.csv", data))
        elif task == "grid":
            data = read("patchset")
            labels = json.loads(data).get("metadata", {}).get("labels") if data is not None else None
            if isinstance(labels, list) and all(isinstance(x, str) for x in labels):
                out["grid_labels"] = labels
    except (ValueError, AttributeError, TypeError, KeyError, InputError):
        pass  # an input the engine itself would refuse: no context; the plots that need it are left out
    return out
