"""``audit``: checkpoints, proofs, the log, history, export, retention (``audit verify`` and
``audit verify-proof`` are in ``cli.verify``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ..audit.records import EventFilter
from ..errors import InputError
from ..runs import retention
from .common import JsonOption, ProjectOption, console, print_model, state

# The commands of the audit group that open the instance; cli.main composes the group with the
# verification commands of cli.verify (``audit verify``, ``audit verify-proof``).
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention of run artifacts.", no_args_is_help=True)
audit_app.add_typer(retention_app, name="retention")


@audit_app.command("checkpoint")
def checkpoint(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Integrate new events and sign a checkpoint (stored and witnessed)."""
    cp = state(ctx).client().make_checkpoint()
    if as_json:
        print_model(cp)
        return
    console.print(cp.note, end="", markup=False)


@audit_app.command("checkpoints")
def checkpoints(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List the stored checkpoints."""
    rows = state(ctx).client().list_checkpoints()
    if as_json:
        print_model(rows)
        return
    table = Table("tree size", "root (hex)", "signed at")
    for r in rows:
        table.add_row(str(r.size), r.root, r.created_at.isoformat())
    console.print(table)


@audit_app.command("prove")
def prove(ctx: typer.Context, event: str = typer.Argument(..., help="Event id (or seq).")) -> None:
    """Print an inclusion proof (JSON) of EVENT against the latest checkpoint."""
    print_model(state(ctx).client().prove(event))


@audit_app.command("consistency")
def consistency(ctx: typer.Context, size1: int, size2: int) -> None:
    """Print a consistency proof (JSON) between the checkpoints at SIZE1 and SIZE2."""
    print_model(state(ctx).client().consistency(size1, size2))


@audit_app.command("log")
def log(
    ctx: typer.Context,
    actor: str | None = typer.Option(None, "--actor", help="User id or printed name."),
    action: str | None = typer.Option(None, "--action", help="Exact action, or a prefix ending in '.'."),
    target_type: str | None = typer.Option(None, "--target-type"),
    target_id: str | None = typer.Option(None, "--target-id"),
    project: str | None = ProjectOption,
    since: str | None = typer.Option(None, "--since"),
    until: str | None = typer.Option(None, "--until"),
    text: str | None = typer.Option(None, "--text", help="Free text anywhere in the event."),
    after: int = typer.Option(0, "--after", help="Page cursor: show events after this seq."),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = JsonOption,
) -> None:
    """Query the audit log (oldest first; page with --after LAST_SEQ). Without --project it reads the
    whole log (an auditor or an instance admin); with it, that project's events (its viewers)."""
    f = EventFilter(actor, action, target_type, target_id, project, since, until, text)
    events = state(ctx).client().read_events(f, after, limit)
    if as_json:
        print_model(events)
        return
    table = Table("seq", "time (UTC)", "actor", "action", "target", "project", "reason")
    for e in events:
        table.add_row(str(e.seq), e.ts, e.actor.name, e.action, f"{e.target.type} {e.target.id}", e.project or "",
                      e.reason or "")
    console.print(table)
    if len(events) == limit:
        console.print(f"next page: --after {events[-1].seq}")


@audit_app.command("history")
def history(ctx: typer.Context, target: str = typer.Argument(..., help="TYPE:ID, e.g. run:0193…"),
            as_json: bool = JsonOption) -> None:
    """Every change of one record, oldest first, with before and after values."""
    ttype, _, tid = target.partition(":")
    if not tid:
        raise InputError(f"target {target!r} is not TYPE:ID")
    events = state(ctx).client().history(ttype, tid)
    if as_json:
        print_model(events)
        return
    for e in events:
        console.print(f"{e.seq} {e.ts} {e.actor.name} {e.action}" + (f" reason: {e.reason}" if e.reason else ""),
                      markup=False)
        console.print(f"    before {json.dumps(e.before)}", markup=False)
        console.print(f"    after  {json.dumps(e.after)}", markup=False)


@audit_app.command("export")
def export(
    ctx: typer.Context,
    dest: Path,
    fmt: str = typer.Option("jsonl", "--format", help="csv, json or jsonl (events.jsonl is always included)."),
    since: str | None = typer.Option(None, "--from"),
    until: str | None = typer.Option(None, "--to"),
) -> None:
    """Export events, checkpoint, proofs and public key as a bundle verifiable offline."""
    summary = state(ctx).client().export_audit(dest, fmt, since, until)
    console.print(f"exported {summary.events} events to {dest} (verify: nextstat-pro audit verify --bundle {dest})")


@retention_app.command("status")
def retention_status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """What the retention policy keeps, holds and allows to purge."""
    st = state(ctx)
    st.local_only("audit retention")
    items = retention.status(st.instance(), st.context())
    if as_json:
        print_model(items)
        return
    table = Table("run", "project", "state", "rule")
    for i in items:
        table.add_row(i.run_id, i.project, i.state, i.rule)
    console.print(table)


@retention_app.command("apply")
def retention_apply(
    ctx: typer.Context,
    reason: str = typer.Option("retention policy", "--reason"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be purged."),
) -> None:
    """Purge the artifact bytes of every eligible run (tombstones stay in the audit trail)."""
    st = state(ctx)
    st.local_only("audit retention")
    items = retention.apply(st.instance(), st.context(), reason, dry_run)
    verb = "would purge" if dry_run else "purged"
    console.print(f"{verb} the artifacts of {len(items)} run(s)")
    for i in items:
        console.print(f"  {i.run_id}  {i.rule}")


@retention_app.command("purge")
def retention_purge(ctx: typer.Context, run: str, reason: str = typer.Option(..., "--reason")) -> None:
    """Purge one run's artifact bytes; refused while it is retained or on hold."""
    st = state(ctx)
    st.local_only("audit retention")
    removed = retention.purge(st.instance(), st.context(), [run], reason)
    console.print(f"purged {len(removed)} object(s) of run {run}")
