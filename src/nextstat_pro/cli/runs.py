"""``run TASK`` and ``runs list|show|artifacts|export``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..engine import TASKS, parse_pairs
from ..errors import UsageError
from ..runs.lease import recover_abandoned
from ..runs.listing import RunFilter, time_bound
from ..runs.references import RunInputs
from ..runs.service import RunRequest
from ..signing.approval import APPROVAL_STATES
from .common import JsonOption, ProjectOption, console, options_for, print_model, state

runs_app = typer.Typer(help="Recorded runs: list, show, artifacts, export.", no_args_is_help=True)


def run(
    ctx: typer.Context,
    task: str = typer.Argument(..., help=f"One of: {', '.join(TASKS)}."),
    workspace: Path | None = typer.Option(None, "--workspace", "-w", help="pyhf JSON workspace."),
    model: str | None = typer.Option(None, "--model", "-m",
                                     help="Registry model REF (or patchset REF#PATCH) instead of --workspace."),
    patchset: Path | None = typer.Option(None, "--patchset", help="pyhf patchset (with --patch)."),
    patch: str | None = typer.Option(None, "--patch", help="Name of the patch to apply."),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="CSV dataset file (pk-nlme), or a registry REF."),
    param: list[str] = typer.Option([], "--param", help="Task parameter key=value (repeatable)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (toys: toy k uses seed+k)."),
    project: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Execute TASK in-process and record it as a run."""
    st = state(ctx)
    given = RunInputs(workspace=workspace, model=model, patchset=patchset, patch=patch, dataset=dataset)
    with options_for(**_RUN_OPTIONS):
        outcome = st.client().run_task(RunRequest(task=task, project=st.project(project), params=parse_pairs(param),
                                                  seed=seed, given=given))
    if as_json:
        print_model(outcome)
    else:
        colour = "green" if outcome.status == "succeeded" else "red"
        console.print(f"run {outcome.run_id} [{colour}]{outcome.status}[/]  content hash {outcome.manifest_digest}")
        if outcome.result is not None:
            console.print(summary(outcome.result))
        else:
            console.print(f"[red]error:[/] {outcome.error}")
    if outcome.status != "succeeded":
        raise typer.Exit(8)


_RUN_OPTIONS = {"workspace": "--workspace", "model": "--model", "patchset": "--patchset", "patch": "--patch",
                "dataset": "--dataset", "seed": "--seed"}


def summary(result: dict[str, Any]) -> str:
    """One line of the headline numbers of a result."""
    parts = []
    if "observed" in result:
        exp = result["expected"]
        parts.append(f"CLs upper limit: observed {result['observed']:.4g}, expected {exp['median']:.4g} "
                     f"[{exp['-1sigma']:.4g}, {exp['+1sigma']:.4g}]")
    elif "cls" in result:
        parts.append(f"CLs({result['mu_tested']:g}) = {result['cls']:.4g}")
    elif result["task"] == "pk-nlme":
        parts.append(", ".join(f"{p['name']}={p['value']:.4g}" for p in result["parameters"])
                     + f", OFV={result['ofv']:.4g}")
    elif "toys" in result:
        parts.append(f"{result['n_converged']}/{result['n_toys']} toys converged, POI mean {result['poi_mean']}")
    if "poi" in result and result["task"] != "pk-nlme":
        poi = result["poi"]
        parts.append(f"{poi['name']} = {poi['value']:.4g} ± {poi['uncertainty']:.3g}")
    q = result.get("quality", {})
    parts.append("fit quality ok" if q.get("ok") else "fit quality NOT ok: " + "; ".join(q.get("reasons", [])))
    return " | ".join(parts)


def _parse_time(value: str | None, option: str, *, end: bool = False) -> datetime | None:
    """A date (YYYY-MM-DD) or ISO 8601 time, UTC unless it says otherwise; with ``end`` a date
    takes in its whole day (``--until 2026-11-30`` includes the 30th)."""
    if value is None:
        return None
    try:
        return time_bound(value, end=end)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a date (use YYYY-MM-DD or an ISO 8601 time)") from None


_FIT = {"ok": True, "bad": False}


@runs_app.command("list")
def list_(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status"),
    task: str | None = typer.Option(None, "--task"),
    since: str | None = typer.Option(None, "--since", help="Only runs created at or after this date/time."),
    until: str | None = typer.Option(None, "--until",
                                     help="Only runs created before this time, or on or before this date."),
    author: str | None = typer.Option(None, "--author", help="Only runs of this username."),
    fit: str | None = typer.Option(None, "--fit", help="Fit quality: ok or bad."),
    version: str | None = typer.Option(None, "--version", help="Only runs that used this registry version: NAME, "
                                       "NAME@SEMVER, NAME@sha256:PREFIX or sha256:PREFIX."),
    approval: str | None = typer.Option(None, "--approval",
                                        help=f"Approval state: {', '.join(APPROVAL_STATES)}."),
    text: str | None = typer.Option(None, "--text", "-q", help="Free text: run id prefix, task, error, author or "
                                    "registry item name (case-insensitive)."),
    min_duration: float | None = typer.Option(None, "--min-duration", help="Only runs that took at least this "
                                              "many seconds (finished - started; unfinished runs never match)."),
    max_duration: float | None = typer.Option(None, "--max-duration",
                                              help="Only runs that took at most this many seconds."),
    sort: str = typer.Option("created", "--sort", help="created (newest first) or oldest (oldest first)."),
    limit: int = typer.Option(100, "--limit"),
    project: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """List runs, newest first (or oldest first with --sort oldest)."""
    st = state(ctx)
    name = st.project(project)
    if fit is not None and fit not in _FIT:
        raise UsageError(f"--fit {fit!r}: give ok or bad")
    f = RunFilter(status=status, task=task, since=_parse_time(since, "--since"),
                  until=_parse_time(until, "--until", end=True), created_by=author, fit_ok=_FIT.get(fit or ""),
                  version=version, approval=approval, text=text, min_duration_s=min_duration,
                  max_duration_s=max_duration, sort=sort)
    rows = st.client().list_runs(name, f, limit)
    if as_json:
        print_model(rows)
        return
    table = Table("run", "task", "status", "fit", "created (UTC)", "seconds", "inputs (registry)", "patch",
                  "params (non-default)", title=f"runs in {name}")
    for r in rows:
        seconds = f"{(r.finished_at - r.started_at).total_seconds():.2f}" if r.finished_at and r.started_at else ""
        colour = {"succeeded": "green", "failed": "red"}.get(r.status, "yellow")
        fit = {True: "ok", False: "[red]NOT ok[/]", None: "-"}[r.fit_ok]
        defaults = TASKS[r.task].params().model_dump() if r.task in TASKS else {}
        params = " ".join(f"{k}={v}" for k, v in r.params.items() if defaults.get(k) != v)
        table.add_row(r.run_id, r.task, f"[{colour}]{r.status}[/]", fit, _utc(r.created_at), seconds,
                      " ".join(r.versions), r.patch or "", params)
    console.print(table)


def _utc(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if ts is not None else "None"


@runs_app.command("show")
def show(ctx: typer.Context, run_ref: str, as_json: bool = JsonOption) -> None:
    """Show one run: status, inputs, outputs, manifest."""
    client = state(ctx).client()
    detail = client.show_run(run_ref)
    if as_json:
        print_model(detail)
        return
    for key in ("run_id", "project", "task", "status", "fit_ok", "seed", "patch", "created_at", "started_at",
                "finished_at", "error", "manifest_digest"):
        value = getattr(detail, key)
        console.print(f"[bold]{key:>16}[/] {value.isoformat() if isinstance(value, datetime) else value}")
    console.print(f"[bold]{'params':>16}[/] {json.dumps(detail.params)}")
    for i in detail.inputs:
        console.print(f"[bold]{'input':>16}[/] {i.role:<9} {i.name}  {i.digest}")
    for label in detail.versions:
        console.print(f"[bold]{'registry':>16}[/] {label}")
    for a in detail.artifacts:
        console.print(f"[bold]{'artifact':>16}[/] {a.name:<13} {a.digest}  {a.size} B")
    result = client.run_result(detail.run_id) if detail.status == "succeeded" else None
    if result is not None:
        console.print(f"[bold]{'result':>16}[/] {summary(result)}")


@runs_app.command("artifacts")
def artifacts(ctx: typer.Context, run_ref: str, as_json: bool = JsonOption) -> None:
    """List a run's stored artifacts (and its manifest)."""
    rows = state(ctx).client().run_artifacts(run_ref)
    if as_json:
        print_model(rows)
        return
    table = Table("artifact", "digest", "bytes", "type")
    for r in rows:
        table.add_row(r.name, r.digest, str(r.size or ""), r.media_type)
    console.print(table)


@runs_app.command("recover")
def recover(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Mark runs whose process died (their lease expired) failed, reason abandoned. Every command
    does this on its way; this one says what it found."""
    st = state(ctx)
    st.local_only("runs recover")
    recovered = recover_abandoned(st.instance(), st.context(recover=False))
    if as_json:
        print_model(recovered)
        return
    listed = ": " + " ".join(recovered.root) if recovered.root else ""
    console.print(f"{len(recovered.root)} abandoned run(s) marked failed{listed}")


@runs_app.command("export")
def export_(ctx: typer.Context, run_ref: str, dest: Path, as_json: bool = JsonOption) -> None:
    """Write a run's artifacts, inputs, manifest and SHA256SUMS into DEST (new or empty)."""
    done = state(ctx).client().export_run(run_ref, dest)
    if as_json:
        print_model(done)
        return
    console.print(f"exported to {done.path} (check: cd {done.path} && sha256sum -c SHA256SUMS)")
