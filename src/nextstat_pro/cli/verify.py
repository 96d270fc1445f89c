"""The verification commands: ``verify PATH`` (an exported run folder), ``audit verify-proof`` and
``audit verify`` (``--bundle``: an exported audit bundle; without it, the instance's whole trail).

What a QA reviewer runs on a laptop with the files alone: this module imports the ``verify``
package and nothing of the instance, so these commands load no database or S3 driver. Only
``audit verify`` of an instance imports the service layer, inside its body.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import InputError, IntegrityError
from ..text import shown
from ..verify import VerificationError, trusted_key, verify_bundle, verify_document, verify_run_folder
from ..verify.run_export import signer_label
from .lazy import open_state

# As cli.common's console, which this module does not import (it opens instances).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _read_key(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read key file {path}: {exc.strerror}") from None


def verify(
    path: Path,
    key: Path | None = typer.Option(None, "--key", help="Pin the instance's run-signing public key (PEM)."),
    log_key: Path | None = typer.Option(None, "--log-key", help="Pin the audit log's verifier key."),
) -> None:
    """Verify an exported run folder or a report PDF offline: artifacts, DSSE signature, e-signatures, proofs."""
    try:
        pem = key.read_bytes() if key else None
        log = log_key.read_text() if log_key else None
    except OSError as exc:
        raise InputError(f"cannot read key: {exc}") from None
    if path.suffix.lower() == ".pdf" and path.is_file():  # a report (verify/report_pdf.py)
        from ..verify.report_pdf import describe, verify_report_pdf

        try:
            lines = describe(verify_report_pdf(path, pem, log))
        except VerificationError as exc:
            raise VerificationError(f"verification FAILED: {exc}") from None
        for line in lines:  # plain text: what a report says is data from a file, never markup
            console.print(line, markup=False)
        return
    try:
        r = verify_run_folder(path, pem, log)
    except VerificationError as exc:
        raise VerificationError(f"verification FAILED: {exc}") from None
    console.print(f"[green]✔ verified[/] run {r.run_id} ({r.status})")
    console.print(f"  ✔ {r.files} files match SHA256SUMS")
    console.print(f"  ✔ DSSE/in-toto attestation signed by run key {r.run_key_id[:16]}…"
                  + ("" if r.run_key_pinned else " (the exported key: pin it with --key)"))
    for p in r.signatures:
        # The export is a file from elsewhere: its text is escaped, never markup or a terminal's
        # control sequence; the username tells two signers of the same printed name apart.
        console.print(f"  ✔ signed by [bold]{escape(shown(signer_label(p)))}[/] at {escape(shown(p['signed_at']))} — "
                      f"meaning: {escape(shown(p['meaning']))} ({escape(shown(p['decision']))}); "
                      f"reason: {escape(shown(p['reason']))}")
    if r.signatures:
        console.print("  ✔ each signature matches its sealed run.signed event, under the key the signer's sealed "
                      "user.key_created event registered (active at the signing)")
    else:
        console.print("  · no electronic signatures")
    console.print(f"  ✔ {r.events} audit events of the run included in the log at tree size {r.checkpoint_size}"
                  + ("" if r.log_key_pinned else " (the exported log key: pin it with --log-key)"))


def audit_verify(
    ctx: typer.Context,
    bundle: Path | None = typer.Option(None, "--bundle", help="Verify an exported bundle offline instead."),
    key: Path | None = typer.Option(None, "--key", help="The log's verifier key (trusted) for --bundle."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    no_state: bool = typer.Option(False, "--no-state", help="Skip re-deriving the state tables from the log."),
) -> None:
    """Re-derive the chain, the Merkle tree, every checkpoint and then the state tables (users, roles,
    runs, artifacts, registry, signatures, keys) from the sealed events; exit 0 only when all hold."""
    if bundle is not None:
        try:
            console.print(f"[green]bundle verified[/]: {verify_bundle(bundle, _read_key(key))}")
        except VerificationError as exc:
            raise VerificationError(f"bundle does NOT verify: {exc}") from None
        return
    from ..permissions import InsecurePermissionsError
    from .common import print_model, state

    open_state(ctx)
    st = state(ctx)
    if st.server is None:
        # Opened without the permission check that refuses every other command: audit verify
        # reports wide modes beside the trail's own findings instead of refusing to look.
        st.instance(check_permissions=False)
    report = st.client().verify_audit(not no_state)
    file_problems = report.file_permissions
    if as_json:
        print_model(report)
    if report.problem is not None:
        raise IntegrityError(f"audit trail BROKEN at seq {report.first_bad_seq}: {report.problem}")
    diff = report.state_difference
    if diff is not None:
        raise IntegrityError(f"state differs from the audit log: {diff.table} row {diff.key}: {diff.column} is "
                             f"{diff.found}, the sealed events say {diff.expected}")
    if file_problems:
        raise InsecurePermissionsError("audit trail intact, but instance files are too open: "
                                       + "; ".join(file_problems))
    if not as_json:
        console.print(
            f"[green]audit trail verified[/]: {report.events} events, chain and seals intact, tree of "
            f"{report.tree_size} re-derived, {report.checkpoints} stored and {report.witnessed} witnessed "
            f"checkpoints match; {report.unwitnessed} event(s) after the latest witnessed checkpoint"
            + (f" (the oldest waiting {report.oldest_unwitnessed_s:.1f} s)" if report.oldest_unwitnessed_s else "")
            + (f"; state re-derived from the log: {sum(report.state_rows.values())} rows of "
               f"{len(report.state_rows)} tables match" if report.state_checked else "; state tables not checked")
        )
        for warning in report.warnings:
            err_console.print(f"warning: {warning}")


def verify_proof(
    proof: Path = typer.Argument(..., help="A proof from `audit prove` or `audit consistency`."),
    key: Path = typer.Option(..., "--key", help="The log's verifier key (e.g. witness/log.pub)."),
) -> None:
    """Verify a proof offline: no instance, no database, no network."""
    try:
        doc = json.loads(proof.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read proof {proof}: {exc}") from None
    try:
        doc_key = doc.get("log_key") if isinstance(doc, dict) else None
        message = verify_document(doc, trusted_key(doc_key, _read_key(key)))
    except VerificationError as exc:
        raise VerificationError(f"proof does NOT verify: {exc}") from None
    console.print(f"[green]proof verified[/]: {message}")
