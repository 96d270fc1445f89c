"""Electronic signature records: the signed payload and reading them with their signers' public
keys. Verifying one against the run it is attached to needs no database: ``verify.esignatures``."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Signature, User, UserKey

PAYLOAD_TYPE = "nextstat-pro/e-signature/v1"


def signature_payload(run_id: str, manifest_digest: str, user: User, meaning: str, decision: str, reason: str,
                      signed_at: str, key: UserKey | None = None) -> dict[str, Any]:
    """What the signer signs. With ``key`` (the signing key) a key made after an administrator's
    reset (``UserKey.after_admin_reset``) is said in the signed payload itself
    (``signer.key_after_admin_reset``), so no copy of the signature can drop it; the field is
    absent otherwise, and payloads signed before it existed verify unchanged."""
    signer: dict[str, Any] = {"user_id": user.id, "username": user.username, "printed_name": user.printed_name}
    if key is not None and key.after_admin_reset:
        signer["key_after_admin_reset"] = True
    return {"type": PAYLOAD_TYPE, "run_id": run_id, "manifest_digest": manifest_digest, "signer": signer,
            "meaning": meaning, "decision": decision, "reason": reason, "signed_at": signed_at}


def signatures_of(session: Session, run_id: str) -> list[dict[str, Any]]:
    """Signature records with their signer's public key: what an offline verifier needs, and
    ``key_after_admin_reset``: whether that key was made after an administrator's reset (the key
    row's mark; the payload says it too for signatures made since the mark is signed)."""
    out = []
    for sig in session.scalars(select(Signature).where(Signature.run_id == run_id).order_by(Signature.signed_at)):
        key = session.get(UserKey, sig.key_id)
        out.append({"id": sig.id, "payload": json.loads(sig.payload),
                    "key_id": sig.key_id, "public_key": key.public_key if key else None,
                    "key_after_admin_reset": bool(key.after_admin_reset) if key else None,
                    "signature": sig.signature})
    return out

