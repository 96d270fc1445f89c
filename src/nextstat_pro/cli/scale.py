"""``submit``, ``runs resume``, ``runs cancel``, ``runs shards`` and ``worker run-shard``: adapters over
``scale.service`` and ``scale.coordinator`` (the coordinator runs here with --wait, else in a process
of the service's; this command never re-launches itself)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..engine import parse_pairs
from ..errors import UsageError
from ..scale import service
from ..scale.views import JobProgress, JobSummary
from .common import ProjectOption, State, console, err_console, options_for, print_model, state

SHOWN = 30  # rows of the merged table printed after --wait

worker_app = typer.Typer(help="Stateless workers (what backends run on cluster nodes).", no_args_is_help=True)


def submit(
    ctx: typer.Context,
    task: str = typer.Argument(..., help="grid, scan, toys or fit-many."),
    model: list[str] = typer.Option([], "--model", "-m", help="Registry REF (grid: a patchset REF; fit-many: repeat)."),
    workspace: Path | None = typer.Option(None, "--workspace", "-w"),
    patchset: Path | None = typer.Option(None, "--patchset"),
    patches: str | None = typer.Option(None, "--patches", help="grid: only these patches (comma-separated)."),
    point: str = typer.Option("upper-limit", "--point-task", help="grid: upper-limit, hypotest or fit per patch."),
    param: list[str] = typer.Option([], "--param", help="scan: mu_min, mu_max, points; toys: n_toys, mu; ..."),
    shards: int = typer.Option(4, "--shards"),
    backend: str = typer.Option("local", "--backend"),
    backend_opt: list[str] = typer.Option([], "--backend-opt", help="key=value (address, partition, time, ...)."),
    workers: int = typer.Option(2, "--workers", help="Parallel workers (local, dask, ray)."),
    seed: int | None = typer.Option(None, "--seed"),
    retries: int = typer.Option(2, "--retries", help="Retries per shard."),
    result_name: str | None = typer.Option(None, "--result-name", help="Registry dataset for the merged points."),
    wait: bool = typer.Option(False, "--wait", help="Coordinate here with a progress bar, then print the summary."),
    project: str | None = ProjectOption,
    as_json: bool = typer.Option(False, "--json", help="Print the job (JSON): as submitted, with --wait as it ended."),
) -> None:
    """Submit many fits as one run; prints the run id at once."""
    st = state(ctx)
    client = st.client()
    req = service.SubmitRequest(
        task=task, project=st.project(project), params=parse_pairs(param),  # type: ignore[arg-type]
        seed=seed, shards=shards, backend=backend, backend_options=parse_pairs(backend_opt), workers=workers,
        point_task=point, patches=patches.split(",") if patches else None, max_retries=retries,
        result_name=result_name, given=service.JobInputs(workspace=workspace, patchset=patchset, models=model))
    with options_for(seed="--seed", shards="--shards", workers="--workers", models="--model",
                     workspace="--workspace", patchset="--patchset"):
        run_id = client.submit(req)
    if as_json and wait:
        # One document on stdout: the job as it ended (no progress bar, no table).
        status = client.coordinate(run_id, lambda _p: None)
        print_model(client.job_status(run_id))
        if status != "succeeded":
            raise typer.Exit(8)
        return
    job = client.job_status(run_id)
    if as_json:
        print_model(job)
    else:
        console.print(f"submitted run {run_id} ({task}, {job.progress.shards_total} shard(s) on {backend})")
    if wait:
        _wait(st, run_id)
    else:
        # A coordinator process of the service's, handed this request's context (not the
        # credential): it outlives this command.
        started = client.start_coordinator(run_id)
        (err_console if as_json else console).print(
            f"coordinating in the background (pid {started.pid}, log: {started.log or 'on the server'}); "
            f"follow with: nextstat-pro runs show {run_id}")


def _wait(st: State, run_id: str) -> None:
    client = st.client()
    start = time.perf_counter()
    # Refreshed by the coordinator's callback (at least every 0.2 s), not by Rich's own
    # thread: with no thread running, the local backend can fork its workers.
    with Progress(TextColumn("[bold]shards"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeRemainingColumn(), console=console, transient=False, auto_refresh=False) as bar:
        task = bar.add_task("shards", total=None, rate="")

        def show(p: JobProgress) -> None:
            rate = p.points_done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, total=p.shards_total, completed=p.shards_done,
                       rate=f"{p.points_done}/{p.points_total} fits, {rate:.1f} fits/s", refresh=True)

        status = client.coordinate(run_id, show)
    elapsed = time.perf_counter() - start
    colour = "green" if status == "succeeded" else "red"
    console.print(f"run {run_id} [{colour}]{status}[/] in {elapsed:.1f} s")
    summary = client.job_summary(run_id)
    if summary:
        _print_summary(summary)
    if status != "succeeded":
        raise typer.Exit(8)


def _print_summary(summary: JobSummary) -> None:
    from rich.table import Table

    rows = summary.points
    if not rows:
        return
    keys = [k for k in ("observed", "median", "cls", "poi", "q_mu", "nll") if any(getattr(r, k) is not None
                                                                                   for r in rows)]
    table = Table("#", "item", *keys, "ok", title=f"{summary.task}: {len(rows)} points "
                  f"({summary.failed} failed), result {summary.result_digest[:19]}…")
    for r in rows[:SHOWN]:
        table.add_row(str(r.index), str(r.item), *[_fmt(getattr(r, k)) for k in keys], "yes" if r.ok else "no")
    console.print(table)
    if len(rows) > SHOWN:
        console.print(f"… {len(rows) - SHOWN} more (nextstat-pro runs export {summary.run_id} DIR)")


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


def resume(ctx: typer.Context, run_ref: str, wait: bool = typer.Option(True, "--wait/--no-wait")) -> None:
    """Rerun only the missing or failed shards of a job, then collect."""
    st = state(ctx)
    if wait:
        _wait(st, run_ref)
    else:
        started = st.client().start_coordinator(run_ref)
        console.print(f"resuming in the background (pid {started.pid}, log: {started.log or 'on the server'})")


def cancel(ctx: typer.Context, run_ref: str, reason: str = typer.Option(..., "--reason")) -> None:
    """Cancel a job (its coordinator stops the backend)."""
    state(ctx).client().cancel_job(run_ref, reason)
    console.print(f"cancelled {run_ref}")


def shards(ctx: typer.Context, run_ref: str) -> None:
    """Per-shard status of a job (JSON)."""
    print_model(state(ctx).client().job_status(run_ref))


@worker_app.command("run-shard")
def run_shard(spec: str = typer.Option(..., "--spec", help="STORE_URL#sha256:... of the job spec."),
              shard: int = typer.Option(..., "--shard")) -> None:
    """Compute one shard from the store (no database needed) and write its result."""
    from ..scale.worker import run_shard_uri

    try:
        digest = run_shard_uri(spec, shard)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    typer.echo(digest)
