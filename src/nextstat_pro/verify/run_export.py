"""``nextstat-pro verify PATH``: check an exported run folder (``runs export``) offline: no database, no network.

Checks, stopping at the first failure (which it names): every file against SHA256SUMS and
no unlisted file; the DSSE envelope's signature by the run-signing key (pinned with --key,
else the exported key, whose fingerprint is printed); the statement's subjects against the
files and its manifest digest against manifest.json; every exported audit event (about the
run, or about one of its artifacts and not owned by another run) by inclusion in the exported
checkpoint, signed by the log key (pinned with --log-key, else the exported one); that none is
missing that the manifest implies: run.created, run.started, the final run.<status> event
recording this manifest, artifact.stored of every output, a record of every input (its
artifact.stored, or its line in run.created); and every electronic signature bound to the
sealed log (``esignatures.bind_signatures``): one run.signed event each and a record for each
such event, verified under the public key that the signer's sealed user.key_created event
(proven in the checkpoint too) registered, which was the user's active key at the signing.
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

from .dsse import EnvelopeError, key_id, open_envelope
from .errors import VerificationError
from .esignatures import bind_signatures
from .merkle import ProofError, verify_inclusion
from .note import Checkpoint, NoteError, Verifier, open_checkpoint
from .proofs import ProofVerificationError, event_leaf

SIGNER_KEYS = "audit/signer-keys.jsonl"


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
        raise VerificationError(f"{name} is missing") from None


def _check_sums(folder: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in _read(folder, "SHA256SUMS").decode().splitlines():
        digest, _, name = line.partition("  ")
        if not name:
            raise VerificationError(f"malformed SHA256SUMS line {line!r}")
        actual = hashlib.sha256(_read(folder, name)).hexdigest()
        if actual != digest:
            raise VerificationError(f"{name}: digest mismatch (file changed)")
        sums[name] = digest
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    extra = sorted(present - sums.keys())
    if extra:
        raise VerificationError(f"{extra[0]} is not listed in SHA256SUMS")
    return sums


MALFORMED = (ValueError, KeyError, TypeError, IndexError, AttributeError)


def signer_label(payload: dict[str, Any]) -> str:
    """``Alice Smith (asmith)``: how a signature's signer is shown, so that two signers of one
    printed name are told apart, and whether the signing key was made after an administrator's
    password reset (the signed payload says so: docs/identity.md). Raw text: a renderer escapes it
    (``text.shown``)."""
    signer = payload["signer"]
    label = f"{signer['printed_name']} ({signer['username']})"
    if signer.get("key_after_admin_reset"):
        label += " [signing key made under a password an administrator chose]"
    return label


def verify_run_folder(folder: Path, run_key_pem: bytes | None = None, log_key: str | None = None) -> RunVerification:
    """Verify an exported run folder; any failure, malformed content included, is a
    VerificationError naming what is wrong (never a traceback)."""
    try:
        return _verify_run_folder(folder, run_key_pem, log_key)
    except VerificationError:
        raise
    except MALFORMED as exc:
        raise VerificationError(f"malformed export ({type(exc).__name__}: {exc})") from None


def _verify_run_folder(folder: Path, run_key_pem: bytes | None, log_key: str | None) -> RunVerification:
    if not folder.is_dir():
        raise VerificationError(f"{folder} is not a folder")
    sums = _check_sums(folder)
    manifest_bytes = _read(folder, "manifest.json")
    manifest = json.loads(manifest_bytes)
    manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()

    pem = run_key_pem if run_key_pem is not None else _read(folder, "keys/run-signing.pub")
    public = serialization.load_pem_public_key(pem)
    if not isinstance(public, Ed25519PublicKey):
        raise VerificationError("the run-signing key is not an Ed25519 key")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if run_key_pem is not None and _read(folder, "keys/run-signing.pub") != run_key_pem:
        raise VerificationError("the export carries another run-signing key than the pinned one")
    try:
        envelope = json.loads(_read(folder, "run.intoto.jsonl").decode().splitlines()[0])
        statement = open_envelope(envelope, public, raw)
    except (EnvelopeError, ValueError, IndexError) as exc:
        raise VerificationError(f"run.intoto.jsonl: {exc}") from None
    for subject in statement["subject"]:
        if sums.get(subject["name"]) != subject["digest"]["sha256"]:
            raise VerificationError(f"{subject['name']}: not the artifact the attestation signed")
    predicate = statement["predicate"]
    if predicate.get("manifest_digest") != manifest_digest or predicate.get("run_id") != manifest["run_id"]:
        raise VerificationError("the attestation is over another run or manifest")

    result = RunVerification(manifest["run_id"], manifest["status"], key_id(raw), run_key_pem is not None,
                             log_key is not None, len(sums))
    records = json.loads(_read(folder, "signatures.json"))
    if not isinstance(records, list):
        raise VerificationError("signatures.json is not a list of signatures")
    for record in records:
        # Before the audit part, so that a signature moved from another run is named as such.
        if record["payload"].get("run_id") != manifest["run_id"] or \
                record["payload"].get("manifest_digest") != manifest_digest:
            raise VerificationError(f"signature {record.get('id')} is over another run or manifest")

    try:
        verifier = Verifier.parse(log_key if log_key is not None else _read(folder, "audit/log.pub").decode())
        cp = open_checkpoint(_read(folder, "audit/checkpoint.note").decode(), verifier)
    except NoteError as exc:
        raise VerificationError(f"audit checkpoint: {exc}") from None
    proofs = {p["seq"]: p["proof"] for p in map(json.loads, _read(folder, "audit/proofs.jsonl").decode().splitlines())}
    run_id = manifest["run_id"]
    artifacts = {entry["digest"] for entry in [*manifest["outputs"], *manifest["inputs"]]}
    events: dict[int, dict[str, Any]] = {}
    for line in _read(folder, "audit/events.jsonl").decode().splitlines():
        event = json.loads(line)
        seq = event["seq"]
        if not _about_this_run(event, run_id, artifacts):
            raise VerificationError(f"audit event {seq} is about another record")
        if seq in events:
            raise VerificationError(f"audit event {seq} appears twice")
        if seq not in proofs:
            raise VerificationError(f"audit event {seq} ({event['action']}) has no inclusion proof")
        _included(event, proofs[seq], cp)
        events[seq] = event
    if not events:
        raise VerificationError("the export holds no audit events of the run")
    _check_complete(list(events.values()), manifest, manifest_digest)
    result.signatures = bind_signatures(
        records, [e for e in events.values() if e["action"] == "run.signed"], _key_events(folder, sums, cp),
        run_id, manifest_digest)
    result.events = len(events)
    result.checkpoint_size = cp.size
    return result


def _included(event: dict[str, Any], proof: list[str], cp: Checkpoint) -> None:
    try:
        verify_inclusion(event["seq"] - 1, cp.size, event_leaf(event), [base64.b64decode(p) for p in proof], cp.root)
    except (ProofError, ProofVerificationError) as exc:
        raise VerificationError(f"audit event {event['seq']}: {exc}") from None


def _key_events(folder: Path, sums: dict[str, str], cp: Checkpoint) -> list[dict[str, Any]] | None:
    """The signers' ``user.key_created`` events, each proven in the checkpoint; None for an
    export made before exports carried them (its signatures then fail: ``bind_signatures``)."""
    if SIGNER_KEYS not in sums:
        return None
    out: dict[int, dict[str, Any]] = {}
    for line in _read(folder, SIGNER_KEYS).decode().splitlines():
        entry = json.loads(line)
        event = entry["event"]
        if event["action"] != "user.key_created" or event["target"].get("type") != "user":
            raise VerificationError(f"{SIGNER_KEYS}: audit event {event['seq']} ({event['action']}) is not the "
                                    "registration of a user's key")
        if event["seq"] in out:
            raise VerificationError(f"{SIGNER_KEYS}: audit event {event['seq']} appears twice")
        _included(event, entry["proof"], cp)
        out[event["seq"]] = event
    return [out[seq] for seq in sorted(out)]


def _about_this_run(event: dict[str, Any], run_id: str, artifacts: set[str]) -> bool:
    """The run itself, or one of its artifacts unless the event names another run as its
    owner (an artifact's digest can be shared by several runs; see runs/export.py)."""
    target = event["target"]
    if target == {"type": "run", "id": run_id}:
        return True
    if target.get("type") != "artifact" or target.get("id") not in artifacts:
        return False
    named = {side["run_id"] for side in (event.get("before"), event.get("after"))
             if isinstance(side, dict) and "run_id" in side}
    return not named or run_id in named


def _check_complete(events: list[dict[str, Any]], manifest: dict[str, Any], manifest_digest: str) -> None:
    """What the signed manifest implies the export must hold. Each event proves itself, but only
    these expectations catch one left out (nothing signed lists the seqs); the signatures and
    their run.signed events are matched both ways by ``bind_signatures``."""
    run_id = manifest["run_id"]
    by_action: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event["target"]["type"] == "run":
            by_action.setdefault(event["action"], []).append(event)
    for action in ("run.created", "run.started"):
        if action not in by_action:
            raise VerificationError(f"the run's {action} audit event is missing from the export")
    end = f"run.{manifest['status']}"
    if not any(_side(e, "after").get("manifest_digest") == manifest_digest for e in by_action.get(end, [])):
        raise VerificationError(f"the run's {end} audit event (recording this manifest) is missing from the export")

    stored: set[str] = set()
    for event in events:
        after = _side(event, "after")
        if event["action"] == "artifact.stored" and after.get("run_id", run_id) == run_id \
                and after.get("digest") == event["target"]["id"]:
            stored.add(event["target"]["id"])
    for entry in manifest["outputs"]:
        if entry["digest"] not in stored:
            raise VerificationError(f"outputs/{entry['name']} ({entry['digest']}): its artifact.stored audit "
                                     "event is missing from the export")
    # An input is stored when the run is created, and the run.created event records it with its
    # digest; an artifact.stored event of this run attests it as well where the instance wrote one.
    created = {(i.get("name"), i.get("digest"))
               for e in by_action["run.created"] for i in _side(e, "after").get("inputs", [])}
    for entry in manifest["inputs"]:
        if entry["digest"] not in stored and (entry["name"], entry["digest"]) not in created:
            raise VerificationError(f"inputs/{entry.get('role')}/{entry['name']} ({entry['digest']}): no audit "
                                     "event of the export records it (artifact.stored or run.created)")



def _side(event: dict[str, Any], side: str) -> dict[str, Any]:
    value = event.get(side)
    return value if isinstance(value, dict) else {}
