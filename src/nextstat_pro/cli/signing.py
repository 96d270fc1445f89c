"""``sign RUN``: electronic signatures (``verify PATH``, the offline check of an export, is in ``cli.verify``)."""

from __future__ import annotations

import os

import typer
from rich.markup import escape

from ..verify.run_export import signer_label
from .common import console, state
from .identity import secret


def sign(
    ctx: typer.Context,
    run_ref: str,
    meaning: str = typer.Option(..., "--meaning", help="authorship, review, approval or responsibility."),
    reason: str = typer.Option(..., "--reason"),
    reject: bool = typer.Option(False, "--reject", help="Sign a rejection instead of an approval."),
    username: str | None = typer.Option(None, "--username", "-u",
                                        help="Needed for the first signing of a session (21 CFR 11.200)."),
) -> None:
    """Electronically sign a run: your password is asked every time, your username too when
    this is the first signing of the session or it was idle."""
    client = state(ctx).client()
    username = username or os.environ.get("NSP_SIGN_USER")
    result = client.sign_run(run_ref, meaning, reason, secret("Password to sign"), username,
                             "reject" if reject else "approve")
    p = result.payload
    console.print(f"[green]signed[/] {escape(signer_label(p))}, "
                  f"{p['signed_at']}, meaning: {p['meaning']} ({p['decision']}), reason: {escape(p['reason'])}; "
                  f"run is now [bold]{result.approval_state}[/]")

