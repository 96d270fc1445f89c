"""Proof documents (JSON, from ``audit prove`` and ``audit consistency``) verified offline:
nothing but the proof, the checkpoint inside it and the log's public key; no database, no
network. Building them is ``audit.proofs``."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from ..canonical import canonical_json
from .errors import VerificationError
from .merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from .note import Checkpoint, NoteError, Verifier, open_checkpoint

INCLUSION = "nextstat-pro/audit-inclusion-proof/v1"
CONSISTENCY = "nextstat-pro/audit-consistency-proof/v1"


class ProofVerificationError(VerificationError):
    """A proof document or an audit bundle does not verify, or is malformed."""


def unb64(values: Any) -> list[bytes]:
    """Proof hashes from their base64 text."""
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except (binascii.Error, TypeError):
        raise ProofVerificationError("proof hashes are not base64") from None


def event_leaf(event: dict[str, Any]) -> bytes:
    """Check an event document's own hash; return its leaf hash in the tree."""
    body = {k: v for k, v in event.items() if k != "hash"}
    data = canonical_json(body)
    if hashlib.sha256(data).hexdigest() != event.get("hash"):
        raise ProofVerificationError(f"event {event.get('seq')} does not match its hash (changed)")
    return leaf_hash(data)


def _checkpoint(note: Any, key: Verifier) -> Checkpoint:
    try:
        return open_checkpoint(str(note), key)
    except NoteError as exc:
        raise ProofVerificationError(f"checkpoint does not verify: {exc}") from None


def verify_inclusion_document(doc: dict[str, Any], key: Verifier) -> Checkpoint:
    cp = _checkpoint(doc.get("checkpoint"), key)
    event = doc.get("event")
    if not isinstance(event, dict) or event.get("seq") != doc.get("leaf_index", -2) + 1:
        raise ProofVerificationError("proof's leaf index does not match its event")
    try:
        verify_inclusion(doc["leaf_index"], cp.size, event_leaf(event), unb64(doc.get("proof")), cp.root)
    except ProofError as exc:
        raise ProofVerificationError(f"inclusion proof fails: {exc}") from None
    return cp


def verify_consistency_document(doc: dict[str, Any], key: Verifier) -> tuple[Checkpoint, Checkpoint]:
    cp1, cp2 = _checkpoint(doc.get("checkpoint1"), key), _checkpoint(doc.get("checkpoint2"), key)
    if cp1.origin != cp2.origin:
        raise ProofVerificationError("the two checkpoints are of different logs")
    try:
        verify_consistency(cp1.size, cp2.size, unb64(doc.get("proof")), cp1.root, cp2.root)
    except ProofError as exc:
        raise ProofVerificationError(f"consistency proof fails: {exc}") from None
    return cp1, cp2


def verify_document(doc: Any, key: Verifier) -> str:
    """Verify either kind; return a one-line description of what holds. Anything else,
    malformed documents included, raises ProofVerificationError."""
    if not isinstance(doc, dict):
        raise ProofVerificationError("a proof is a JSON object from `audit prove` or `audit consistency`")
    try:
        return _verify_document(doc, key)
    except ProofVerificationError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ProofVerificationError(f"malformed proof ({type(exc).__name__}: {exc})") from None


def _verify_document(doc: dict[str, Any], key: Verifier) -> str:
    if doc.get("type") == INCLUSION:
        cp = verify_inclusion_document(doc, key)
        return f"event {doc['event']['seq']} ({doc['event']['action']}) is in the log at tree size {cp.size}"
    if doc.get("type") == CONSISTENCY:
        a, b = verify_consistency_document(doc, key)
        return f"the log at size {b.size} extends the log at size {a.size}"
    raise ProofVerificationError(f"unknown proof type {doc.get('type')!r}")


def trusted_key(doc_key: str | None, key_text: str | None) -> Verifier:
    """The key to verify with: the one the user supplies, which must equal the proof's."""
    try:
        if key_text is None:
            raise ProofVerificationError("no log key given (--key FILE with the log's verifier key)")
        key = Verifier.parse(key_text)
    except NoteError as exc:
        raise ProofVerificationError(str(exc)) from None
    if doc_key is not None and doc_key.strip() != str(key):
        raise ProofVerificationError("the proof names another log key than the one given")
    return key
