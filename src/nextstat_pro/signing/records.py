"""Electronic signature records: the signed payload, reading them with their signers'
public keys, and verifying one against the run it is attached to (no database needed)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..canonical import canonical_json
from ..db.models import Signature, User, UserKey

PAYLOAD_TYPE = "nextstat-pro/e-signature/v1"


def signature_payload(run_id: str, manifest_digest: str, user: User, meaning: str, decision: str, reason: str,
                      signed_at: str) -> dict[str, Any]:
    return {"type": PAYLOAD_TYPE, "run_id": run_id, "manifest_digest": manifest_digest,
            "signer": {"user_id": user.id, "username": user.username, "printed_name": user.printed_name},
            "meaning": meaning, "decision": decision, "reason": reason, "signed_at": signed_at}


def signatures_of(session: Session, run_id: str) -> list[dict[str, Any]]:
    """Signature records with their signer's public key: what an offline verifier needs."""
    out = []
    for sig in session.scalars(select(Signature).where(Signature.run_id == run_id).order_by(Signature.signed_at)):
        key = session.get(UserKey, sig.key_id)
        out.append({"id": sig.id, "payload": json.loads(sig.payload),
                    "key_id": sig.key_id, "public_key": key.public_key if key else None,
                    "signature": sig.signature})
    return out


def verify_signature(record: dict[str, Any], run_id: str, manifest_digest: str) -> dict[str, Any]:
    """Check one signature record against the run it is attached to; return its payload."""
    payload = record["payload"]
    data = canonical_json(payload)
    if payload.get("run_id") != run_id or payload.get("manifest_digest") != manifest_digest:
        raise ValueError(f"signature {record.get('id')} is over another run or manifest")
    try:
        raw = bytes.fromhex(record["public_key"])
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(record["signature"]), data)
    except (InvalidSignature, ValueError, TypeError):
        raise ValueError(f"signature {record.get('id')} by {payload['signer']['printed_name']} does not verify") \
            from None
    if hashlib.sha256(raw).hexdigest() != record["key_id"]:
        raise ValueError(f"signature {record.get('id')} names another key than it carries")
    return payload  # type: ignore[no-any-return]
