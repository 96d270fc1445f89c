"""Opening DSSE envelopes (Ed25519) that carry in-toto Statement v1 payloads.

Signing an envelope needs the run-signing key: ``signing.dsse``. Both meet at the envelope
dict and at ``pae`` and ``key_id`` here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import VerificationError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


class EnvelopeError(VerificationError):
    """A DSSE envelope is malformed, not signed by the key, or does not carry a statement."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()


def open_envelope(envelope: dict[str, Any], public: Ed25519PublicKey, public_raw: bytes) -> dict[str, Any]:
    """Verify the envelope's signature by ``public``; return the in-toto statement."""
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise EnvelopeError(f"unexpected payload type {envelope.get('payloadType')!r}")
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
    except (KeyError, binascii.Error, TypeError):
        raise EnvelopeError("envelope payload is missing or not base64") from None
    kid = key_id(public_raw)
    matching = [s for s in envelope.get("signatures", []) if s.get("keyid") == kid]
    if not matching:
        raise EnvelopeError(f"no signature by key {kid[:16]}… in the envelope")
    for sig in matching:
        try:
            public.verify(base64.b64decode(sig["sig"], validate=True), pae(PAYLOAD_TYPE, payload))
            break
        except (InvalidSignature, binascii.Error, KeyError):
            continue
    else:
        raise EnvelopeError("the envelope's signature does not verify")
    try:
        statement = json.loads(payload)
    except ValueError:
        raise EnvelopeError("payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise EnvelopeError("payload is not an in-toto Statement v1")
    return statement
