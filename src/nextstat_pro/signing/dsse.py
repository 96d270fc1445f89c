"""Signing DSSE envelopes (Ed25519) carrying in-toto Statement v1 payloads with the run-signing
key. Opening them needs no key and no database: ``verify.dsse``."""

from __future__ import annotations

import base64
from typing import Any

from ..canonical import canonical_json
from ..verify.dsse import PAYLOAD_TYPE, key_id, pae
from .keys import KeyPair


def sign_statement(statement: dict[str, Any], keys: KeyPair) -> dict[str, Any]:
    payload = canonical_json(statement)
    sig = keys.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": key_id(keys.public_raw), "sig": base64.b64encode(sig).decode()}],
    }
