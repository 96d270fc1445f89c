"""``audit verify``: re-derive the audit trail's hash chain."""

from __future__ import annotations

import typer

from ..audit import verify_chain
from .common import console, err_console, state

audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)


@audit_app.command("verify")
def verify(ctx: typer.Context) -> None:
    """Re-derive every event's hash and the chain; exit 0 only when all of it holds."""
    with state(ctx).instance().db.transaction() as session:
        report = verify_chain(session)
    if report.ok:
        console.print(f"[green]audit trail verified[/]: {report.events} events, chain intact")
        return
    err_console.print(f"audit trail BROKEN at seq {report.first_bad_seq}: {report.problem}")
    raise typer.Exit(7)
