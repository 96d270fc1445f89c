"""Performance qualification: the customer's own workload, run through the instance being qualified.

The workload is a YAML file (format ``nextstat-pro.pq/1``, docs/validation-pack.md)::

    format: nextstat-pro.pq/1
    project: analysis              # the project the runs are recorded in (the caller needs editor there)
    description: Quarterly limits of the tttt analysis
    tasks:
      - name: tttt-fit             # unique; the check id is PQ-<name>
        task: fit                  # any task of ``nextstat-pro tasks``
        inputs:                    # as ``run`` takes them: files relative to this YAML file, or registry refs
          workspace: inputs/tttt.json
          # model: tttt@1.2.0      # a registry model (or patchset REF#PATCH) instead of files
          # patchset: inputs/signals.json
          # patch: sig_1000_100
          # dataset: inputs/pk.csv # or a registry dataset REF
        params: {}                 # the task's parameters (``--param``)
        seed: null
        repeat: 1                  # record this many runs of the task (1 to 10000)
        expect:
          status: succeeded        # succeeded (default) or failed
          fit_ok: true             # the result's quality verdict (omit: not checked)
          max_seconds: 60          # wall time of each run (omit: not checked)
          values:                  # quantities of result.json, as the OQ's golden values name them
            - {path: poi.value, value: 1.35, abs: 0.01, rel: 0.0}

The whole file is checked before the first run (bad YAML, an unknown key, a missing input file: an
``InputError`` naming the place, and nothing is run). Each run is an ordinary recorded run (stored,
signed, audited) of the instance, made by the caller; a run that fails is a PQ result, not an error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ...access.context import RequestContext
from ...canonical import digest_of
from ...errors import InputError, NSPError
from ...runs import RunInputs, RunRequest, run_task
from .models import Check, Workload, make_check
from .reference import lookup

if TYPE_CHECKING:
    from ...instance import Instance

FORMAT = "nextstat-pro.pq/1"
MAX_REPEAT = 10_000
_CLOSED = ConfigDict(extra="forbid", frozen=True)


class ExpectedValue(BaseModel):
    model_config = _CLOSED
    path: str
    value: float
    abs: float = Field(default=0.0, ge=0)
    rel: float = Field(default=0.0, ge=0)


class Expectation(BaseModel):
    model_config = _CLOSED
    status: Literal["succeeded", "failed"] = "succeeded"
    fit_ok: bool | None = None
    max_seconds: float | None = Field(default=None, gt=0)
    values: list[ExpectedValue] = []


class PqTask(BaseModel):
    model_config = _CLOSED
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    task: str
    inputs: RunInputs
    params: dict[str, Any] = {}
    seed: int | None = None
    repeat: int = Field(default=1, ge=1, le=MAX_REPEAT)
    expect: Expectation = Expectation()


class PqWorkload(BaseModel):
    model_config = _CLOSED
    format: Literal["nextstat-pro.pq/1"]
    project: str
    description: str | None = None
    tasks: list[PqTask] = Field(min_length=1)

    @field_validator("tasks")
    @classmethod
    def _unique(cls, tasks: list[PqTask]) -> list[PqTask]:
        names = [t.name for t in tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"task names must be unique: {', '.join(dup)}")
        return tasks


def load_workload(path: Path) -> tuple[PqWorkload, bytes]:
    """Read and check the workload file; relative input paths are made relative to its folder.
    Raises InputError naming the field or the missing file; runs nothing."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the PQ workload {path}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InputError(f"{path.name}: not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path.name}: the workload must be a mapping with format, project and tasks")
    try:
        workload = PqWorkload.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(f"{path.name}: {where or 'workload'}: {err['msg']} (format {FORMAT})") from None
    base = path.resolve().parent
    tasks = []
    for task in workload.tasks:
        given = task.inputs
        fixed: dict[str, Any] = {}
        for key in ("workspace", "patchset"):
            value = getattr(given, key)
            if value is not None:
                full = value if value.is_absolute() else base / value
                if not full.is_file():
                    raise InputError(f"{path.name}: tasks.{task.name}.inputs.{key}: no file {full}")
                fixed[key] = full
        if given.dataset is not None and (base / given.dataset).is_file():
            fixed["dataset"] = str(base / given.dataset)
        tasks.append(task.model_copy(update={"inputs": given.model_copy(update=fixed)}))
    return workload.model_copy(update={"tasks": tasks}), data


def _judge(task: PqTask, outcome_status: str, result: dict[str, Any] | None, seconds: float,
           error: str | None) -> list[dict[str, Any]]:
    exp = task.expect
    rows: list[dict[str, Any]] = [{"what": "status", "expected": exp.status, "observed": outcome_status,
             "passed": outcome_status == exp.status, "note": error}]
    if exp.fit_ok is not None:
        ok = None if result is None else bool((result.get("quality") or {}).get("ok"))
        rows.append({"what": "fit quality ok", "expected": exp.fit_ok, "observed": ok, "passed": ok == exp.fit_ok})
    if exp.max_seconds is not None:
        rows.append({"what": "wall time (s)", "expected": f"<= {exp.max_seconds:g}", "observed": round(seconds, 3),
                     "passed": seconds <= exp.max_seconds})
    for v in exp.values:
        try:
            observed: float | None = float(lookup(result, v.path)) if result is not None else None
        except (KeyError, IndexError, TypeError, ValueError):
            observed = None
        allowance = v.abs + v.rel * abs(v.value)
        rows.append({"what": v.path, "expected": f"{v.value:g} ± {allowance:g}", "observed": observed,
                     "passed": observed is not None and abs(observed - v.value) <= allowance})
    return rows


def run_pq_task(instance: Instance, ctx: RequestContext, project: str, task: PqTask) -> Check:
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    for _ in range(task.repeat):
        t = time.perf_counter()
        request = RunRequest(task.task, project, task.params, task.seed, given=task.inputs)
        try:
            outcome = run_task(instance, ctx, request)
        except NSPError as exc:  # refused before a run existed (a registry reference, a permission)
            seconds = time.perf_counter() - t
            runs.append({"run_id": None, "status": "refused", "manifest_digest": None, "seconds": round(seconds, 3),
                         "checks": _judge(task, "refused", None, seconds, exc.message)})
            continue
        seconds = time.perf_counter() - t
        runs.append({"run_id": outcome.run_id, "status": outcome.status, "manifest_digest": outcome.manifest_digest,
                     "seconds": round(seconds, 3),
                     "checks": _judge(task, outcome.status, outcome.result, seconds, outcome.error)})
    failed_runs = [r for r in runs if not all(c["passed"] for c in r["checks"])]
    slowest = max(r["seconds"] for r in runs)
    evidence = {"task": task.task, "params": task.params, "seed": task.seed, "inputs": task.inputs.model_dump(
        mode="json", exclude_none=True), "expect": task.expect.model_dump(mode="json"), "runs": runs}
    expected = f"status {task.expect.status}" + (f", fit ok {task.expect.fit_ok}" if task.expect.fit_ok is not None
                                                  else "") + \
        (f", each run <= {task.expect.max_seconds:g} s" if task.expect.max_seconds is not None else "") + \
        "".join(f", {v.path} = {v.value:g} ± {v.abs + v.rel * abs(v.value):g}" for v in task.expect.values)
    observed = f"{len(runs) - len(failed_runs)}/{len(runs)} run(s) as expected; slowest {slowest:.3g} s"
    if failed_runs:
        first = failed_runs[0]
        why = "; ".join(f"{c['what']}: {c['observed']}" + (f" ({c['note']})" if c.get("note") else "")
                        for c in first["checks"] if not c["passed"])
        observed += f"; first not as expected: run {first['run_id'] or '(refused)'}: {why}"
    return make_check(f"PQ-{task.name}", "PQ", f"The customer's task {task.name!r} ({task.task}, {task.repeat} run(s)) "
                      "recorded on this instance.", expected, observed, not failed_runs, evidence,
                      time.perf_counter() - started)


def performance_qualification(instance: Instance, ctx: RequestContext, path: Path) -> tuple[list[Check], Workload]:
    workload, data = load_workload(path)
    checks = [run_pq_task(instance, ctx, workload.project, task) for task in workload.tasks]
    info = Workload(file=path.name, digest=digest_of(data), project=workload.project,
                    description=workload.description, tasks=len(workload.tasks),
                    runs=sum(len(c.evidence["runs"]) for c in checks))
    return checks, info
