"""``POST /verify``: ``nextstat-pro verify`` of an uploaded run export (the zip of
``GET /runs/{id}/export``), by the offline verifier (``verify.verify_run_folder``), which reads
files and nothing of the instance.

An uploaded zip is someone else's file: it is unpacked into a private temp folder only when
every member is a plain relative path (no absolute name, no ``..``, no backslash, no control
character), none is a link or a device, no path appears twice and it holds at most
``server.max_body_bytes`` once decompressed, counted as the bytes are written (a member's
declared size can lie; ``server.archives``). Otherwise it is refused whole before anything is
written, and the refusal is an ``auth.refused`` event (``unsafe_archive``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, Field

from ...verify import VerificationError, verify_run_folder
from ...verify.run_export import signer_label
from ..auth import Caller, Inst
from ..uploads import spool_folder, unpack_upload
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["verify"])

class ExportDoesNotVerify(VerificationError):
    # The CLI's exit code (7); a client's file that does not verify is not a server error.
    http_status = 422


class VerifiedSignature(BaseModel):
    """An electronic signature the verifier bound to the sealed log. Text from the export: a
    renderer shows it as text, never markup."""

    signer: str = Field(description="Printed name (username), and whether the key was made after an admin reset.")
    signed_at: str
    meaning: str
    decision: str
    reason: str


class RunVerificationReport(BaseModel):
    """What ``nextstat-pro verify`` checked and found to hold (a failure is a problem, exit code 7)."""

    run_id: str
    status: str
    files: int = Field(description="Files that match SHA256SUMS.")
    run_key_id: str = Field(description="The run-signing key that signed the DSSE attestation.")
    run_key_pinned: bool = Field(description="False: the export's own key was used (pin one with `key`).")
    log_key_pinned: bool = Field(description="False: the export's own log key was used (pin one with `log_key`).")
    signatures: list[VerifiedSignature]
    events: int = Field(description="Audit events of the run proven included in the log.")
    checkpoint_size: int = Field(description="The tree size of the checkpoint they are proven against.")


def _export_root(folder: Path) -> Path:
    """The run folder of an unpacked export: its one top-level folder (``run-<id>/``), or itself."""
    entries = list(folder.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder


@router.post("/verify", response_model=RunVerificationReport,
             summary="Verify an uploaded run export (zip) offline, as `nextstat-pro verify` does")
def verify_export(
    request: Request, inst: Inst, ctx: Caller,
    export: Annotated[UploadFile, File(description="The zip of GET /runs/{run_id}/export.")],
    key: Annotated[str | None, Form(max_length=4000, description="Pin the run-signing public key (PEM).")] = None,
    log_key: Annotated[str | None, Form(max_length=4000, description="Pin the audit log's verifier key.")] = None,
    digest: Annotated[str | None, Form(max_length=80, description="sha256:<hex> of the upload.")] = None,
) -> RunVerificationReport:
    with spool_folder() as folder:
        root = _export_root(unpack_upload(inst, ctx, request, export, folder, "export", digest, ("request", "verify")))
        try:
            r = verify_run_folder(root, key.encode() if key is not None else None, log_key)
        except VerificationError as exc:
            raise ExportDoesNotVerify(f"verification FAILED: {exc.message}") from None
    return RunVerificationReport(
        run_id=r.run_id, status=r.status, files=r.files, run_key_id=r.run_key_id, run_key_pinned=r.run_key_pinned,
        log_key_pinned=r.log_key_pinned, events=r.events, checkpoint_size=r.checkpoint_size,
        signatures=[VerifiedSignature(signer=signer_label(p), signed_at=str(p["signed_at"]), meaning=str(p["meaning"]),
                                      decision=str(p["decision"]), reason=str(p["reason"])) for p in r.signatures])
