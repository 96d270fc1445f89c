"""The task registry, input preparation and execution.

A task is a pure function of (validated inputs, parameters, seed) → result dict; this
module adds the provenance every result carries (engine, platform, inputs, wall time).
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from typing import Any, Literal

import nextstat as ns

from ..errors import FieldError, TaskFailedError, UnknownTaskError
from . import histfactory, pharma
from .inputs import InputFile, apply_patch, load_pk_dataset, load_workspace
from .params import (
    FitParams,
    HypotestParams,
    PkNlmeParams,
    RankingParams,
    ScanParams,
    TaskParams,
    ToysParams,
    UpperLimitParams,
    build_params,
)

RESULT_SCHEMA = "https://nextstat.pro/schemas/run-result/v1"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: Literal["histfactory", "pk"]
    params: type[TaskParams]
    fn: Callable[[Any, Any, int | None], dict[str, Any]]
    summary: str


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("fit", "histfactory", FitParams, histfactory.fit, "maximum-likelihood fit"),
        TaskSpec("hypotest", "histfactory", HypotestParams, histfactory.hypotest, "asymptotic CLs at mu"),
        TaskSpec("upper-limit", "histfactory", UpperLimitParams, histfactory.upper_limit,
                 "observed + expected CLs limit"),
        TaskSpec("scan", "histfactory", ScanParams, histfactory.scan, "profile likelihood scan of the POI"),
        TaskSpec("ranking", "histfactory", RankingParams, histfactory.ranking, "nuisance-parameter impacts on the POI"),
        TaskSpec("toys", "histfactory", ToysParams, histfactory.toys, "fits of Poisson toys (toy k: seed+k)"),
        TaskSpec("pk-nlme", "pk", PkNlmeParams, pharma.pk_nlme, "population PK, one-compartment oral, FOCE(I)"),
    )
}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r} (tasks: {', '.join(TASKS)})") from None


@dataclass(frozen=True)
class PreparedTask:
    """Everything a task needs, validated: nothing about it can fail as bad input any more."""

    spec: TaskSpec
    params: TaskParams
    inputs: list[InputFile]
    subject: Any  # a nextstat model (HistFactory) or a PkDataset
    patch: str | None
    extensions: list[str]


def prepare(
    task: str,
    raw_params: dict[str, Any],
    inputs: list[InputFile],
    patch: str | None = None,
    patchset: dict[str, Any] | None = None,
) -> PreparedTask:
    """Validate a task's inputs and parameters and load its model. ``patchset``: the parsed
    patchset input, when the caller has parsed it already (a grid of 10^4 patches)."""
    spec = get_task(task)
    params = build_params(spec.params, task, raw_params)
    roles = {i.role: i for i in inputs}
    extensions: list[str] = []
    if spec.kind == "histfactory":
        if "workspace" not in roles:
            raise FieldError(f"task {task} needs a workspace", "workspace")
        if "dataset" in roles:
            raise FieldError(f"task {task} takes no dataset", "dataset")
        if ("patchset" in roles) != (patch is not None):
            raise FieldError("a patchset and a patch name go together", "patchset", "patch")
        workspace = load_workspace(roles["workspace"])
        if patch is not None:
            workspace = apply_patch(workspace, roles["patchset"], patch, patchset)
        extensions = workspace.extensions
        subject: Any = histfactory.load_model(workspace)
    else:
        if "dataset" not in roles:
            raise FieldError(f"task {task} needs a dataset", "dataset")
        if set(roles) != {"dataset"} or patch is not None:
            raise FieldError(f"task {task} takes only a dataset", "dataset")
        subject = load_pk_dataset(roles["dataset"])
    return PreparedTask(spec, params, inputs, subject, patch, extensions)


@cache
def platform_info() -> dict[str, str]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "nextstat_pro": version("nextstat-pro"),
    }


def engine_info() -> dict[str, str]:
    return {"name": "nextstat", "version": ns.__version__}


def execute(prepared: PreparedTask, seed: int | None) -> dict[str, Any]:
    """Run the task; raise TaskFailedError (or InputError) when the engine cannot."""
    start = time.perf_counter()
    try:
        output = prepared.spec.fn(prepared.subject, prepared.params, seed)
    except (ValueError, RuntimeError) as exc:
        # The engine's own errors that the task module did not already translate.
        raise TaskFailedError(f"{prepared.spec.name} failed in nextstat: {exc}") from None
    wall = time.perf_counter() - start
    return {
        "schema": RESULT_SCHEMA,
        "task": prepared.spec.name,
        "params": prepared.params.model_dump(),
        "seed": seed,
        "inputs": [{"role": i.role, "name": i.name, "digest": i.digest} for i in prepared.inputs],
        "patch": prepared.patch,
        "schema_extensions": prepared.extensions,
        "engine": engine_info(),
        "platform": platform_info(),
        "wall_time_s": wall,
        **output,
    }
