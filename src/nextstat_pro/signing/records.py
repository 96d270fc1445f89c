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

