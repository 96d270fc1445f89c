"""``run TASK`` and ``runs list|show|artifacts|export``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..db.models import Project, Run
from ..engine import TASKS, InputFile, parse_pairs
from ..errors import UsageError
from ..projects import get_project
from ..runs import RunRequest, export_run, list_runs, read_manifest, read_run, run_task
from ..runs.lease import recover_abandoned
from ..runs.records import versions_of
from ..runs.references import resolve_inputs
from ..runs.service import RESULT_NAME, VersionUse
from .common import JsonOption, ProjectOption, console, print_json, state

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
    params = parse_pairs(param)
    if model is not None and (workspace is not None or patchset is not None):
        raise UsageError("give --model REF or --workspace FILE, not both")
    dataset_file = Path(dataset) if dataset is not None and Path(dataset).exists() else None
    inputs = [
        InputFile.read(role, path)
        for role, path in (("workspace", workspace), ("patchset", patchset), ("dataset", dataset_file))
        if path is not None
    ]
    actor = st.context()
    versions: list[VersionUse] = []
    if model is not None or (dataset is not None and dataset_file is None):
        refs = [("patchset" if "#" in model else "model", model)] if model else []
        if dataset is not None and dataset_file is None:
            refs.append(("dataset", dataset))
        files, versions, ref_patch = resolve_inputs(st.instance(), actor, st.project(project), refs)
        inputs += files
        patch = ref_patch or patch
    outcome = run_task(
        st.instance(), actor,
        RunRequest(task=task, project=st.project(project), params=params, seed=seed, inputs=inputs, patch=patch,
                   versions=versions),
    )
    if as_json:
        print_json({"run_id": outcome.run_id, "status": outcome.status, "manifest_digest": outcome.manifest_digest,
                    "error": outcome.error, "result": outcome.result})
    else:
        colour = "green" if outcome.status == "succeeded" else "red"
        console.print(f"run {outcome.run_id} [{colour}]{outcome.status}[/]  content hash {outcome.manifest_digest}")
        if outcome.result is not None:
            console.print(summary(outcome.result))
        else:
            console.print(f"[red]error:[/] {outcome.error}")
    if outcome.status != "succeeded":
        raise typer.Exit(8)


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


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since {value!r} is not a date (use YYYY-MM-DD or an ISO 8601 time)") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _row(run: Run, project: str) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "project": project,
        "task": run.task,
        "status": run.status,
        "fit_ok": run.fit_ok,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "seed": run.seed,
        "patch": run.patch,
        "params": run.params,
        "error": run.error,
        "manifest_digest": run.manifest_digest,
    }


@runs_app.command("list")
def list_(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status"),
    task: str | None = typer.Option(None, "--task"),
    since: str | None = typer.Option(None, "--since", help="Only runs created at or after this date/time."),
    limit: int = typer.Option(100, "--limit"),
    project: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """List runs, newest first."""
    st = state(ctx)
    actor = st.context()
    with st.instance().db.transaction() as session:
        proj = get_project(session, st.project(project))
        runs = list_runs(session, actor, proj, status, task, _parse_since(since), limit)
        used = versions_of(session, [r.id for r in runs])
        rows = [_row(r, proj.name) | {"versions": used.get(r.id, [])} for r in runs]
    if as_json:
        print_json(rows)
        return
    table = Table("run", "task", "status", "fit", "created (UTC)", "seconds", "inputs (registry)", "patch",
                  "params (non-default)", title=f"runs in {proj.name}")
    for r in rows:
        seconds = ""
        if r["finished_at"] and r["started_at"]:
            elapsed = datetime.fromisoformat(r["finished_at"]) - datetime.fromisoformat(r["started_at"])
            seconds = f"{elapsed.total_seconds():.2f}"
        colour = {"succeeded": "green", "failed": "red"}.get(r["status"], "yellow")
        fit = {True: "ok", False: "[red]NOT ok[/]", None: "-"}[r["fit_ok"]]
        defaults = TASKS[r["task"]].params().model_dump() if r["task"] in TASKS else {}
        params = " ".join(f"{k}={v}" for k, v in r["params"].items() if defaults.get(k) != v)
        table.add_row(r["run_id"], r["task"], f"[{colour}]{r['status']}[/]", fit, r["created_at"][:19], seconds,
                      " ".join(r["versions"]), r["patch"] or "", params)
    console.print(table)


@runs_app.command("show")
def show(ctx: typer.Context, run_ref: str, as_json: bool = JsonOption) -> None:
    """Show one run: status, inputs, outputs, manifest."""
    st = state(ctx)
    inst = st.instance()
    actor = st.context()
    with inst.db.transaction() as session:
        run = read_run(session, actor, run_ref)
        project = session.get(Project, run.project_id)
        assert project is not None
        row = _row(run, project.name)
        row["inputs"] = [{"role": i.role, "name": i.name, "digest": i.digest, "size": i.size} for i in run.inputs]
        row["artifacts"] = [{"name": a.name, "digest": a.digest, "size": a.size} for a in run.artifacts]
        row["versions"] = versions_of(session, [run.id]).get(run.id, [])
    manifest = read_manifest(inst, row["manifest_digest"]) if row["manifest_digest"] else None
    if as_json:
        print_json({**row, "manifest": manifest})
        return
    for key in ("run_id", "project", "task", "status", "fit_ok", "seed", "patch", "created_at", "started_at",
                "finished_at", "error", "manifest_digest"):
        console.print(f"[bold]{key:>16}[/] {row[key]}")
    console.print(f"[bold]{'params':>16}[/] {json.dumps(row['params'])}")
    for i in row["inputs"]:
        console.print(f"[bold]{'input':>16}[/] {i['role']:<9} {i['name']}  {i['digest']}")
    for label in row["versions"]:
        console.print(f"[bold]{'registry':>16}[/] {label}")
    for a in row["artifacts"]:
        console.print(f"[bold]{'artifact':>16}[/] {a['name']:<13} {a['digest']}  {a['size']} B")
    if manifest and row["status"] == "succeeded":
        entry = next(o for o in manifest["outputs"] if o["name"] == RESULT_NAME)
        result = json.loads(inst.store.get(entry["digest"]))
        console.print(f"[bold]{'result':>16}[/] {summary(result)}")


@runs_app.command("artifacts")
def artifacts(ctx: typer.Context, run_ref: str, as_json: bool = JsonOption) -> None:
    """List a run's stored artifacts (and its manifest)."""
    st = state(ctx)
    actor = st.context()
    with st.instance().db.transaction() as session:
        run = read_run(session, actor, run_ref)
        rows = [{"name": a.name, "digest": a.digest, "size": a.size, "media_type": a.media_type} for a in run.artifacts]
        if run.manifest_digest:
            rows.append({"name": "manifest.json", "digest": run.manifest_digest, "size": None,
                         "media_type": "application/json"})
    if as_json:
        print_json(rows)
        return
    table = Table("artifact", "digest", "bytes", "type")
    for r in rows:
        table.add_row(str(r["name"]), str(r["digest"]), str(r["size"] or ""), str(r["media_type"]))
    console.print(table)


@runs_app.command("recover")
def recover(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Mark runs whose process died (their lease expired) failed, reason abandoned. Every command
    does this on its way; this one says what it found."""
    st = state(ctx)
    recovered = recover_abandoned(st.instance(), st.context(recover=False))
    if as_json:
        print_json(recovered)
        return
    listed = ": " + " ".join(recovered) if recovered else ""
    console.print(f"{len(recovered)} abandoned run(s) marked failed{listed}")


@runs_app.command("export")
def export(ctx: typer.Context, run_ref: str, dest: Path) -> None:
    """Write a run's artifacts, inputs, manifest and SHA256SUMS into DEST (new or empty)."""
    st = state(ctx)
    actor = st.context()
    path = export_run(st.instance(), actor, run_ref, dest)
    console.print(f"exported to {path} (check: cd {path} && sha256sum -c SHA256SUMS)")
