"""``crosscheck WORKSPACE``: what a run reports, side by side with pyhf's answer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from ..engine.inputs import InputFile
from ..errors import TaskFailedError
from .common import JsonOption, console

if TYPE_CHECKING:  # the comparison (numpy, pyhf) is imported when the command runs, not at CLI start
    from ..engine.crosscheck import CrosscheckReport, CrosscheckRow


class CrosscheckDisagreement(TaskFailedError):
    """The cross-check ran, and some quantity differs from the reference beyond its tolerance
    (exit 8, "task failed": the comparison is the task, and its verdict is negative)."""


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.8g}"


def _table(report: CrosscheckReport) -> Table:
    title = f"{report.workspace}" + (f" + {report.patch}" if report.patch else "")
    table = Table("quantity", "ours", report.against, "ours - ref", "tolerance", "", title=title,
                  caption=f"ours: {report.engine}, through the run's tasks ({report.ours_seconds:.2f} s); "
                          f"reference: {report.reference} ({report.reference_seconds:.2f} s)")
    for row in report.rows:
        table.add_row(row.quantity, _num(row.ours), _num(row.reference), _num(row.difference), _num(row.tolerance),
                      "[green]agree[/]" if row.ok else "[red]DIFFERS[/]")
    return table


def _summary(bad: list[CrosscheckRow]) -> str:
    named = ", ".join(r.quantity for r in bad[:5]) + (" ..." if len(bad) > 5 else "")
    return f"{len(bad)} quantit{'y' if len(bad) == 1 else 'ies'} outside tolerance: {named}"


def crosscheck(
    workspace: Path = typer.Argument(..., help="pyhf JSON workspace."),
    patchset: Path | None = typer.Option(None, "--patchset", help="pyhf patchset (with --patch)."),
    patch: str | None = typer.Option(None, "--patch", help="Name of the patch to apply."),
    against: str = typer.Option("pyhf", "--against", help="Reference implementation: pyhf (numpy backend)."),
    as_json: bool = JsonOption,
) -> None:
    """Compare a run's fit (values, uncertainties, NLL) and CLs upper limit with pyhf's.

    Exits 8 when a quantity differs beyond its tolerance (docs/validation.md)."""
    from ..engine.crosscheck import crosscheck as run_crosscheck

    inputs = [InputFile.read("workspace", workspace)]
    patchset_input = InputFile.read("patchset", patchset) if patchset is not None else None
    report = run_crosscheck(inputs[0], patchset_input, patch, against)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        console.print(_table(report))
        for note in report.notes:
            console.print(f"note: {note}", markup=False)
        for row in report.rows:
            if row.note and not row.ok:
                console.print(f"{row.quantity}: {row.note}", markup=False)
        console.print("[green]agrees with pyhf within tolerance[/]" if report.ok else "[red]differs from pyhf[/]")
    if not report.ok:
        raise CrosscheckDisagreement(_summary(report.failures()))
