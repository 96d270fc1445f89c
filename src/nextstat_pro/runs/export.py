"""Exporting a run: its artifacts, inputs and manifest into a folder, checkable offline.

The folder holds ``manifest.json`` (the exact stored bytes, so its sha256 is the run's
content hash), ``outputs/<name>``, ``inputs/<role>/<name>`` and ``SHA256SUMS`` in the
format ``sha256sum -c`` reads; for ``nextstat-pro verify``, also the signed attestation,
the e-signatures and every audit event of the run and its artifacts with inclusion proofs
(``audit/``), and the ``user.key_created`` events of the signers' keys with theirs
(``audit/signer-keys.jsonl``: a signature is checked with the key the sealed log registered).
It is assembled in a temporary sibling folder and renamed into place, so a failed export
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..audit import merkle, tree
from ..audit.events import append_event
from ..audit.proofs import b64
from ..audit.records import EventFilter, checkpoint_in, query_events
from ..db.models import PurgedObject, Run
from ..errors import IntegrityError, NotFoundError, UsageError
from ..files import place_folder, require_empty
from ..signing.records import signatures_of
from .records import read_run
from .service import MANIFEST_NAME
from .views import RunExport

if TYPE_CHECKING:
    from ..instance import Instance

SUMS_NAME = "SHA256SUMS"
ENVELOPE_NAME = "run.intoto.jsonl"
RUN_KEY_NAME = "keys/run-signing.pub"
SIGNATURES_NAME = "signatures.json"
SIGNER_KEYS_NAME = "audit/signer-keys.jsonl"
PAGE = 5000
PROOF_BATCH = 500


def read_manifest(instance: Instance, digest: str) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(instance.store.get(digest))
    return manifest


def export_run(instance: Instance, ctx: RequestContext, run_ref: str, dest: Path) -> Path:
    """``export``, for in-process callers that want the folder's path."""
    return Path(export_folder(instance, ctx, run_ref, dest).path)


def export_folder(instance: Instance, ctx: RequestContext, run_ref: str, dest: Path) -> RunExport:
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
            manifest = json.loads(files[MANIFEST_NAME])
            files.update(_signed_extras(instance, session, run, manifest))
            files[SUMS_NAME] = _sums(files)
            append_event(
                session, ctx, action="run.exported", target=("run", run.id), project=manifest["project"],
                after={"manifest_digest": run.manifest_digest, "destination": str(dest.resolve()), "files": len(files)},
            )
            place_folder(files, dest)
            placed = True
            done = RunExport(run_id=run.id, path=str(dest.resolve()), manifest_digest=run.manifest_digest,
                             files=len(files))
    except BaseException:
        if placed:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    return done


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


def _signed_extras(instance: Instance, session: Session, run: Run, manifest: dict[str, Any]) -> dict[str, bytes]:
    """What `nextstat-pro verify` needs offline: the DSSE envelope and the run-signing public
    key, the e-signatures, and the run's audit events and its signers' key events with
    inclusion proofs against a checkpoint and the log key."""
    files: dict[str, bytes] = {}
    if run.envelope_digest is not None:
        files[ENVELOPE_NAME] = instance.store.get(run.envelope_digest) + b"\n"
        files[RUN_KEY_NAME] = instance.run_keys().public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # The checkpoint comes first: integrating takes the log's writer lock for the rest of this
    # transaction, so nothing can be appended between it and the reads below, and the
    # signatures read next all have their run.signed events under it.
    cp = checkpoint_in(instance, session)
    signatures = signatures_of(session, run.id)
    files[SIGNATURES_NAME] = (json.dumps(signatures, indent=2) + "\n").encode()
    events = _run_events(session, run.id, manifest)
    keys = _signer_key_events(session, signatures, events)
    late = [e for e in [*events, *keys] if e["seq"] > cp.size]
    if late:
        # Cannot happen while every appender takes the log lock; if it ever does, an export
        # without these events would claim to hold the whole record, so refuse instead.
        raise IntegrityError(
            f"audit event {late[0]['seq']} ({late[0]['action']}) of run {run.id} is not covered by the "
            f"checkpoint at tree size {cp.size}; nothing was exported")
    proofs = [{"seq": e["seq"], "proof": [b64(p) for p in proof]}
              for e, proof in zip(events, _inclusion_proofs(session, [e["seq"] for e in events], cp.size),
                                  strict=True)]
    files["audit/events.jsonl"] = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events).encode()
    # Apart from the run's events (whose file holds only what is about the run): the key events are
    # about users, and a verifier takes each signer's public key from them, not from signatures.json.
    files[SIGNER_KEYS_NAME] = "".join(
        json.dumps({"event": e, "proof": [b64(p) for p in proof]}, ensure_ascii=False) + "\n"
        for e, proof in zip(keys, _inclusion_proofs(session, [e["seq"] for e in keys], cp.size), strict=True)
    ).encode()
    files["audit/proofs.jsonl"] = "".join(json.dumps(p) + "\n" for p in proofs).encode()
    files["audit/checkpoint.note"] = cp.note.encode()
    files["audit/log.pub"] = f"{instance.log_verifier()}\n".encode()
    return files


def _run_events(session: Session, run_id: str, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every audit event of the run, in seq order: those about the run itself (lifecycle,
    signatures, jobs, earlier exports...) and those about its artifacts (outputs and inputs)
    that belong to it.

    An artifact's target is its digest, which several runs can share (the same input, or a
    deterministic output); an artifact event that names a run (``artifact.stored`` in
    ``after``, ``artifact.purged`` in ``before``) belongs to that run only. One that names no
    run is about the bytes alone and is kept: it attests the very bytes this run holds."""
    digests = sorted({entry["digest"] for entry in [*manifest["outputs"], *manifest["inputs"]]})
    wanted = EventFilter(targets=(("run", run_id), *(("artifact", d) for d in digests)))
    events: list[dict[str, Any]] = []
    cursor = 0
    while True:
        # Paged, not capped: a job's run collects an event per shard and must never be cut short.
        page = query_events(session, wanted, after_seq=cursor, limit=PAGE)
        if not page:
            return events
        events.extend(e for e in page if _belongs_to_run(e, run_id))
        cursor = page[-1]["seq"]


def _signer_key_events(session: Session, signatures: list[dict[str, Any]],
                       events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every ``user.key_created`` event of each user that a signature record or a ``run.signed``
    event names, in seq order: the event that registered the signing key, and those of the
    user's other keys, which tell when it stopped being the active one (a new key replaces the
    active key in the transaction that retires it, so there is no separate retirement event)."""
    users = {str(r["payload"]["signer"]["user_id"]) for r in signatures
             if isinstance(r.get("payload"), dict) and isinstance(r["payload"].get("signer"), dict)
             and r["payload"]["signer"].get("user_id")}
    users |= {str(e["actor"]["id"]) for e in events if e["action"] == "run.signed"}
    if not users:
        return []
    wanted = EventFilter(action="user.key_created", targets=tuple(("user", u) for u in sorted(users)))
    found: list[dict[str, Any]] = []
    cursor = 0
    while page := query_events(session, wanted, after_seq=cursor, limit=PAGE):
        found.extend(page)
        cursor = page[-1]["seq"]
    return found


def _belongs_to_run(event: dict[str, Any], run_id: str) -> bool:
    """False only for an event about another run's use of a shared artifact."""
    if event["target"]["type"] == "run":
        return bool(event["target"]["id"] == run_id)
    named = {side["run_id"] for side in (event.get("before"), event.get("after"))
             if isinstance(side, dict) and "run_id" in side}
    return not named or run_id in named


def _inclusion_proofs(session: Session, seqs: list[int], size: int) -> list[list[bytes]]:
    """Proofs of many events with one node query per batch, not one per event (a job's run
    has thousands); batched to stay under SQLite's limit on bound parameters."""
    def paths(batch: list[int], node: merkle.NodeFn) -> list[list[bytes]]:
        return [merkle.inclusion_proof(node, seq - 1, size) for seq in batch]

    proofs: list[list[bytes]] = []
    for start in range(0, len(seqs), PROOF_BATCH):
        proofs.extend(tree.with_nodes(session, partial(paths, seqs[start:start + PROOF_BATCH])))
    return proofs
