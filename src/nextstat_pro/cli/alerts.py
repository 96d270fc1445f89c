"""``nextstat-pro alerts``: alert channels, rules, deliveries and the dispatcher."""

from __future__ import annotations

import typer

alerts_app = typer.Typer(help="Alerts: channels, rules, deliveries and the dispatcher.", no_args_is_help=True)
