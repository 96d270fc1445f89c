"""``sign RUN`` (electronic signatures) and ``verify PATH`` (offline check of an exported run)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..errors import InputError, IntegrityError
from ..signing.esignatures import sign_run
from ..signing.verify_export import VerificationFailed, verify_run_folder
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
    st = state(ctx)
    actor = st.context()
    username = username or os.environ.get("NSP_SIGN_USER")
    result = sign_run(st.instance(), actor, run_ref, meaning, reason, secret("Password to sign"), username,
                      "reject" if reject else "approve")
    p = result.payload
    console.print(f"[green]signed[/] {p['signer']['printed_name']}, {p['signed_at']}, meaning: {p['meaning']}"
                  f" ({p['decision']}), reason: {p['reason']}; run is now [bold]{result.approval_state}[/]")


def verify(
    path: Path,
    key: Path | None = typer.Option(None, "--key", help="Pin the instance's run-signing public key (PEM)."),
    log_key: Path | None = typer.Option(None, "--log-key", help="Pin the audit log's verifier key."),
) -> None:
    """Verify an exported run folder offline: artifacts, DSSE signature, e-signatures, audit proofs."""
    try:
        pem = key.read_bytes() if key else None
        log = log_key.read_text() if log_key else None
    except OSError as exc:
        raise InputError(f"cannot read key: {exc}") from None
    try:
        r = verify_run_folder(path, pem, log)
    except VerificationFailed as exc:
        raise IntegrityError(f"verification FAILED: {exc}") from None
    console.print(f"[green]✔ verified[/] run {r.run_id} ({r.status})")
    console.print(f"  ✔ {r.files} files match SHA256SUMS")
    console.print(f"  ✔ DSSE/in-toto attestation signed by run key {r.run_key_id[:16]}…"
                  + ("" if r.run_key_pinned else " (the exported key: pin it with --key)"))
    for p in r.signatures:
        console.print(f"  ✔ signed by [bold]{p['signer']['printed_name']}[/] at {p['signed_at']} — "
                      f"meaning: {p['meaning']} ({p['decision']}); reason: {p['reason']}")
    if not r.signatures:
        console.print("  · no electronic signatures")
    console.print(f"  ✔ {r.events} audit events of the run included in the log at tree size {r.checkpoint_size}"
                  + ("" if r.log_key_pinned else " (the exported log key: pin it with --log-key)"))
