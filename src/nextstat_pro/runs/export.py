"""Exporting a run: its artifacts, inputs and manifest into a folder, checkable offline.

The folder holds ``manifest.json`` (the exact stored bytes, so its sha256 is the run's
content hash), ``outputs/<name>``, ``inputs/<role>/<name>`` and ``SHA256SUMS`` in the
format ``sha256sum -c`` reads. It is assembled in a temporary sibling folder and renamed
into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from ..audit import tree
from ..audit.events import append_event
from ..audit.proofs import b64
from ..audit.service import EventFilter, checkpoint_in, query_events
from ..db.models import PurgedObject, Run
from ..errors import NotFoundError, UsageError
from ..files import place_folder, require_empty
from ..identity.actors import RequestContext
from ..instance import Instance
from ..signing.records import signatures_of
from .records import read_run
from .service import MANIFEST_NAME

SUMS_NAME = "SHA256SUMS"
ENVELOPE_NAME = "run.intoto.jsonl"
RUN_KEY_NAME = "keys/run-signing.pub"
SIGNATURES_NAME = "signatures.json"


def read_manifest(instance: Instance, digest: str) -> dict[str, Any]:
    return json.loads(instance.store.get(digest))


def export_run(instance: Instance, ctx: RequestContext, run_ref: str, dest: Path) -> Path:
    """Export a finished run. The folder appears and its audit event commits together:
    if either fails, neither remains."""
    require_empty(dest)
    placed = False
    try:
        with instance.db.transaction() as session:
            run = read_run(session, ctx, run_ref, "run.export")
            if run.manifest_digest is None:
                raise UsageError(f"run {run.id} is {run.status}: only finished runs can be exported")
            files = _collect(instance, session, run.manifest_digest)
            files.update(_signed_extras(instance, session, run))
            files[SUMS_NAME] = _sums(files)
            manifest = json.loads(files[MANIFEST_NAME])
            append_event(
                session, ctx, action="run.exported", target=("run", run.id), project=manifest["project"],
                after={"manifest_digest": run.manifest_digest, "destination": str(dest.resolve()), "files": len(files)},
            )
            place_folder(files, dest)
            placed = True
    except BaseException:
        if placed:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def _collect(instance: Instance, session: Session, manifest_digest: str) -> dict[str, bytes]:
    """Every file of the export, read (and digest-checked) from the store, plus SHA256SUMS."""

    def get(digest: str) -> bytes:
        try:
            return instance.store.get(digest)
        except NotFoundError:
            tomb = session.get(PurgedObject, digest)
            if tomb is None:
                raise
            raise NotFoundError(
                f"object {digest} was purged under the retention policy on {tomb.purged_at:%Y-%m-%d} "
                f"({tomb.reason}); the run's manifest and audit trail remain"
            ) from None

    manifest_bytes = get(manifest_digest)
    manifest = json.loads(manifest_bytes)
    files: dict[str, bytes] = {MANIFEST_NAME: manifest_bytes}
    for entry in manifest["outputs"]:
        files[f"outputs/{entry['name']}"] = get(entry["digest"])
    for entry in manifest["inputs"]:
        files[f"inputs/{entry['role']}/{entry['name']}"] = get(entry["digest"])
    return files


def _sums(files: dict[str, bytes]) -> bytes:
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                   for name, data in sorted(files.items()) if name != SUMS_NAME).encode()


def _signed_extras(instance: Instance, session: Session, run: Run) -> dict[str, bytes]:
    """What `nextstat-pro verify` needs offline: the DSSE envelope and the run-signing public
    key, the e-signatures with their signers' public keys, and the run's audit events with
    inclusion proofs against a checkpoint and the log key."""
    files: dict[str, bytes] = {}
    if run.envelope_digest is not None:
        files[ENVELOPE_NAME] = instance.store.get(run.envelope_digest) + b"\n"
        files[RUN_KEY_NAME] = instance.run_keys().public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    files[SIGNATURES_NAME] = (json.dumps(signatures_of(session, run.id), indent=2) + "\n").encode()
    cp = checkpoint_in(instance, session)
    events = [e for e in query_events(session, EventFilter(target_type="run", target_id=run.id), limit=10_000)
              if e["seq"] <= cp.size]
    proofs = [{"seq": e["seq"], "proof": [b64(p) for p in tree.inclusion(session, e["seq"], cp.size)]}
              for e in events]
    files["audit/events.jsonl"] = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events).encode()
    files["audit/proofs.jsonl"] = "".join(json.dumps(p) + "\n" for p in proofs).encode()
    files["audit/checkpoint.note"] = cp.note.encode()
    files["audit/log.pub"] = f"{instance.log_verifier()}\n".encode()
    return files
