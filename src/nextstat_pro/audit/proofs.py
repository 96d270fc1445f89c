"""Proof documents (JSON) built from the log: an event's inclusion proof, the consistency proof
between two checkpoints. Verifying them offline is ``verify.proofs``."""

from __future__ import annotations

import base64
from typing import Any

from ..verify.note import Verifier
from ..verify.proofs import CONSISTENCY, INCLUSION, ProofVerificationError

# ProofVerificationError is re-exported for tests/test_security_csv.py.
__all__ = ["ProofVerificationError", "b64", "consistency_document", "inclusion_document"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def inclusion_document(event: dict[str, Any], proof: list[bytes], checkpoint_note: str,
                       key: Verifier) -> dict[str, Any]:
    return {
        "type": INCLUSION,
        "log_key": str(key),
        "checkpoint": checkpoint_note,
        "leaf_index": event["seq"] - 1,
        "event": event,
        "proof": [b64(p) for p in proof],
    }


def consistency_document(note1: str, note2: str, proof: list[bytes], key: Verifier) -> dict[str, Any]:
    return {"type": CONSISTENCY, "log_key": str(key), "checkpoint1": note1, "checkpoint2": note2,
            "proof": [b64(p) for p in proof]}
