"""Verifying an electronic signature record against the run it is attached to (21 CFR 11.70):
the record carries its signer's public key, so no database is needed. Records are written by
``runs.esignatures``; their payload is ``signing.records.signature_payload``."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..canonical import canonical_json
from .errors import VerificationError


def verify_signature(record: dict[str, Any], run_id: str, manifest_digest: str) -> dict[str, Any]:
    """Check one signature record against the run it is attached to; return its payload."""
    payload = record["payload"]
    data = canonical_json(payload)
    if payload.get("run_id") != run_id or payload.get("manifest_digest") != manifest_digest:
        raise VerificationError(f"signature {record.get('id')} is over another run or manifest")
    try:
        raw = bytes.fromhex(record["public_key"])
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(record["signature"]), data)
    except (InvalidSignature, ValueError, TypeError):
        raise VerificationError(
            f"signature {record.get('id')} by {payload['signer']['printed_name']} does not verify") from None
    if hashlib.sha256(raw).hexdigest() != record["key_id"]:
        raise VerificationError(f"signature {record.get('id')} names another key than it carries")
    return payload  # type: ignore[no-any-return]
