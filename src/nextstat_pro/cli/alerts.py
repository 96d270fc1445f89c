"""``nextstat-pro alerts``: alert channels, rules, deliveries and the dispatcher."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

import typer
from rich.table import Table

from ..alerts import service
from ..alerts.rules import KINDS
from ..errors import UsageError
from .common import JsonOption, ProjectOption, console, print_model, state

alerts_app = typer.Typer(help="Alerts: channels, rules, deliveries and the dispatcher.", no_args_is_help=True)
channel_app = typer.Typer(help="Where alerts go: webhooks (signed) and e-mail.", no_args_is_help=True)
rule_app = typer.Typer(help="When to alert.", no_args_is_help=True)
alerts_app.add_typer(channel_app, name="channel")
alerts_app.add_typer(rule_app, name="rule")


@channel_app.command("add")
def channel_add(ctx: typer.Context, name: str,
                webhook: str | None = typer.Option(None, "--webhook", help="Webhook URL (signed, Standard Webhooks)."),
                email: str | None = typer.Option(None, "--email", help="E-mail address(es), comma-separated."),
                slack: bool = typer.Option(False, "--slack", help="Send a Slack-compatible body to the webhook."),
                project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """Add a channel. A webhook's signing secret is printed this once: give it to the receiver."""
    st = state(ctx)
    if (webhook is None) == (email is None):
        raise UsageError("give either --webhook URL or --email ADDR[,ADDR]")
    created = service.add_channel(st.instance(), st.context(), st.project(project), name, webhook=webhook,
                                  email=email, slack=slack)
    if as_json:
        print_model(created)
        return
    console.print(f"added {created.channel.kind} channel [bold]{name}[/] → {created.channel.target}")
    if created.secret:
        console.print(f"signing secret (shown once): {created.secret}", markup=False)


@channel_app.command("list")
def channel_list(ctx: typer.Context, project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """List the project's channels."""
    st = state(ctx)
    rows = service.list_channels(st.instance(), st.context(), st.project(project))
    if as_json:
        print_model(rows)
        return
    table = Table("channel", "kind", "target", "previous secret valid until", "created")
    for r in rows:
        until = r.previous_secret_valid_until.isoformat() if r.previous_secret_valid_until else ""
        table.add_row(r.name, r.kind, r.target, until, r.created_at.isoformat())
    console.print(table)


@alerts_app.command("rotate")
def rotate(ctx: typer.Context, name: str, reason: str = typer.Option(..., "--reason"),
           grace_hours: float = typer.Option(24.0, "--grace-hours", help="How long the old secret stays valid."),
           project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """Rotate a webhook channel's signing secret (the new one is printed once)."""
    st = state(ctx)
    rotated = service.rotate_secret(st.instance(), st.context(), st.project(project), name, reason,
                                    grace_s=grace_hours * 3600)
    if as_json:
        print_model(rotated)
        return
    console.print(f"new signing secret of [bold]{name}[/] (shown once): ", end="")
    console.print(rotated.secret, markup=False)
    console.print(f"the previous secret stays valid until {rotated.previous_valid_until.isoformat()}")


def _options(pairs: list[str], named: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in named.items() if v is not None}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--option takes key=value, not {pair!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


@rule_app.command("add")
def rule_add(ctx: typer.Context, name: str,
             when: str = typer.Option(..., "--when", help=f"One of: {', '.join(KINDS)}."),
             channel: str = typer.Option(..., "--channel"),
             after: float | None = typer.Option(None, "--after", help="stuck: seconds without shard progress."),
             baseline: str | None = typer.Option(None, "--baseline",
                                                 help="regression: previous-version or alias:NAME."),
             sigmas: float | None = typer.Option(None, "--sigmas", help="regression: k (parameter shift / its error)."),
             limit_pct: float | None = typer.Option(None, "--limit-pct", help="regression: limit or CLs change (%)."),
             wall_pct: float | None = typer.Option(None, "--wall-pct", help="regression: wall-time growth (%)."),
             option: list[str] = typer.Option([], "--option", help="Other option key=value (repeatable)."),
             project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """Add a rule: alerts of a kind, sent to a channel."""
    st = state(ctx)
    options = _options(option, {"after_s": after, "baseline": baseline, "sigmas": sigmas, "limit_pct": limit_pct,
                                "wall_pct": wall_pct})
    row = service.add_rule(st.instance(), st.context(), st.project(project), name, when, channel, options)
    if as_json:
        print_model(row)
        return
    console.print(f"added rule [bold]{row.name}[/]: {row.kind} → {row.channel} {json.dumps(row.options)}",
                  markup=True)


@rule_app.command("list")
def rule_list(ctx: typer.Context, project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """List the project's rules."""
    st = state(ctx)
    rows = service.list_rules(st.instance(), st.context(), st.project(project))
    if as_json:
        print_model(rows)
        return
    table = Table("rule", "kind", "channel", "options", "enabled")
    for r in rows:
        table.add_row(r.name, r.kind + (" (instance-wide)" if r.instance_wide else ""), r.channel,
                      json.dumps(r.options), "yes" if r.enabled else "no")
    console.print(table)


@rule_app.command("disable")
def rule_disable(ctx: typer.Context, name: str, reason: str = typer.Option(..., "--reason"),
                 project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """Disable a rule (it stays listed, and its alerts stay recorded)."""
    st = state(ctx)
    row = service.disable_rule(st.instance(), st.context(), st.project(project), name, reason)
    if as_json:
        print_model(row)
        return
    console.print(f"disabled rule [bold]{row.name}[/]")


@alerts_app.command("deliveries")
def deliveries(ctx: typer.Context, failed: bool = typer.Option(False, "--failed", help="Only failed deliveries."),
               limit: int = typer.Option(100, "--limit"), project: str | None = ProjectOption,
               as_json: bool = JsonOption) -> None:
    """Alerts sent (or being retried, or dead-lettered), with every attempt."""
    st = state(ctx)
    rows = service.list_deliveries(st.instance(), st.context(), st.project(project), failed=failed, limit=limit)
    if as_json:
        print_model(rows)
        return
    table = Table("created", "rule", "status", "attempts", "count", "title", "last error")
    for r in rows:
        table.add_row(r.created_at.isoformat(timespec="seconds"), r.rule, r.status, str(len(r.attempts)),
                      str(r.count), r.title, r.last_error or "")
    console.print(table)


@alerts_app.command("test")
def test(ctx: typer.Context, rule: str, project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """Send a test notification through RULE's channel now."""
    st = state(ctx)
    row = service.test_rule(st.instance(), st.context(), st.project(project), rule)
    if as_json:
        print_model(row)
    else:
        console.print(f"test notification {row.alert_id}: {row.status}"
                      + (f" ({row.last_error})" if row.last_error else ""), markup=False)
    if row.status != "delivered":
        raise typer.Exit(1)


@alerts_app.command("run")
def run(ctx: typer.Context,
        poll: float = typer.Option(0.1, "--poll", help="Seconds between looks at the log.")) -> None:
    """Run the alert dispatcher until SIGINT or SIGTERM (for deployments without `serve`). It acts as
    the instance (its keys and database), like `serve`; any number may run, one sends at a time."""
    from ..alerts.dispatcher import run_dispatcher

    st = state(ctx)
    instance = st.instance()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_dispatcher(instance, stop, poll_s=poll)
