"""``nextstat-pro verify PATH``: check an exported run folder offline (no database, no network).

Checks, stopping at the first failure (which it names): every file against SHA256SUMS and
no unlisted file; the DSSE envelope's signature by the run-signing key (pinned with --key,
else the exported key, whose fingerprint is printed); the statement's subjects against the
files and its manifest digest against manifest.json; every electronic signature against
its signer's key and this run's manifest; every audit event of the run by inclusion in the
exported checkpoint, signed by the log key (pinned with --log-key, else the exported one).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..audit import merkle
from ..audit.note import NoteError, Verifier, open_checkpoint
from ..audit.proofs import ProofVerificationError, event_leaf
from .dsse import EnvelopeError, key_id, open_envelope
from .records import verify_signature


class VerificationFailed(Exception):
    pass


@dataclass
class RunVerification:
    run_id: str
    status: str
    run_key_id: str
    run_key_pinned: bool
    log_key_pinned: bool
    files: int
    signatures: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    checkpoint_size: int = 0


def _read(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except FileNotFoundError:
        raise VerificationFailed(f"{name} is missing") from None


def _check_sums(folder: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in _read(folder, "SHA256SUMS").decode().splitlines():
        digest, _, name = line.partition("  ")
        if not name:
            raise VerificationFailed(f"malformed SHA256SUMS line {line!r}")
        actual = hashlib.sha256(_read(folder, name)).hexdigest()
        if actual != digest:
            raise VerificationFailed(f"{name}: digest mismatch (file changed)")
        sums[name] = digest
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    extra = sorted(present - sums.keys())
    if extra:
        raise VerificationFailed(f"{extra[0]} is not listed in SHA256SUMS")
    return sums


MALFORMED = (ValueError, KeyError, TypeError, IndexError, AttributeError)


def verify_run_folder(folder: Path, run_key_pem: bytes | None = None, log_key: str | None = None) -> RunVerification:
    """Verify an exported run folder; any failure, malformed content included, is a
    VerificationFailed naming what is wrong (never a traceback)."""
    try:
        return _verify_run_folder(folder, run_key_pem, log_key)
    except VerificationFailed:
        raise
    except MALFORMED as exc:
        raise VerificationFailed(f"malformed export ({type(exc).__name__}: {exc})") from None


def _verify_run_folder(folder: Path, run_key_pem: bytes | None, log_key: str | None) -> RunVerification:
    if not folder.is_dir():
        raise VerificationFailed(f"{folder} is not a folder")
    sums = _check_sums(folder)
    manifest_bytes = _read(folder, "manifest.json")
    manifest = json.loads(manifest_bytes)
    manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()

    pem = run_key_pem if run_key_pem is not None else _read(folder, "keys/run-signing.pub")
    public = serialization.load_pem_public_key(pem)
    if not isinstance(public, Ed25519PublicKey):
        raise VerificationFailed("the run-signing key is not an Ed25519 key")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if run_key_pem is not None and _read(folder, "keys/run-signing.pub") != run_key_pem:
        raise VerificationFailed("the export carries another run-signing key than the pinned one")
    try:
        envelope = json.loads(_read(folder, "run.intoto.jsonl").decode().splitlines()[0])
        statement = open_envelope(envelope, public, raw)
    except (EnvelopeError, ValueError, IndexError) as exc:
        raise VerificationFailed(f"run.intoto.jsonl: {exc}") from None
    for subject in statement["subject"]:
        if sums.get(subject["name"]) != subject["digest"]["sha256"]:
            raise VerificationFailed(f"{subject['name']}: not the artifact the attestation signed")
    predicate = statement["predicate"]
    if predicate.get("manifest_digest") != manifest_digest or predicate.get("run_id") != manifest["run_id"]:
        raise VerificationFailed("the attestation is over another run or manifest")

    result = RunVerification(manifest["run_id"], manifest["status"], key_id(raw), run_key_pem is not None,
                             log_key is not None, len(sums))
    for record in json.loads(_read(folder, "signatures.json")):
        try:
            result.signatures.append(verify_signature(record, manifest["run_id"], manifest_digest))
        except ValueError as exc:
            raise VerificationFailed(str(exc)) from None

    try:
        verifier = Verifier.parse(log_key if log_key is not None else _read(folder, "audit/log.pub").decode())
        cp = open_checkpoint(_read(folder, "audit/checkpoint.note").decode(), verifier)
    except NoteError as exc:
        raise VerificationFailed(f"audit checkpoint: {exc}") from None
    proofs = {p["seq"]: p["proof"] for p in map(json.loads, _read(folder, "audit/proofs.jsonl").decode().splitlines())}
    for line in _read(folder, "audit/events.jsonl").decode().splitlines():
        event = json.loads(line)
        if event["target"] != {"type": "run", "id": manifest["run_id"]}:
            raise VerificationFailed(f"audit event {event['seq']} is about another record")
        try:
            merkle.verify_inclusion(event["seq"] - 1, cp.size, event_leaf(event),
                                    [base64.b64decode(p) for p in proofs.get(event["seq"], [])], cp.root)
        except (merkle.ProofError, ProofVerificationError) as exc:
            raise VerificationFailed(f"audit event {event['seq']}: {exc}") from None
        result.events += 1
    if result.events == 0:
        raise VerificationFailed("the export holds no audit events of the run")
    result.checkpoint_size = cp.size
    return result
