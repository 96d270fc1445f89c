"""Verifying electronic signature records against the run they are attached to (21 CFR 11.70)
and against the sealed log, with no database.

A record's own ``public_key`` (in ``signatures.json``, read from the mutable ``user_keys``
table) is never trusted: the key a signature verifies under is the one the sealed
``user.key_created`` event registered for that key id and user, and that key must have been the
user's active key when the sealed ``run.signed`` event of the signature was appended. Records
are written by ``runs.esignatures``; their payload is ``signing.records.signature_payload``.
Proving each event's inclusion in the checkpoint is the caller's part (``run_export``).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..canonical import canonical_json
from .errors import VerificationError

# What a signature record and its run.signed event must agree on: (record side, event field).
_EVENT_FIELDS = ("meaning", "decision", "key_id", "manifest_digest")


def verify_signature(record: dict[str, Any], run_id: str, manifest_digest: str, public_key: str) -> dict[str, Any]:
    """Check one signature record against the run it is attached to and ``public_key`` (hex, the
    key the log registered); return its payload."""
    payload = record["payload"]
    data = canonical_json(payload)
    if payload.get("run_id") != run_id or payload.get("manifest_digest") != manifest_digest:
        raise VerificationError(f"signature {record.get('id')} is over another run or manifest")
    try:
        raw = bytes.fromhex(public_key)
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(record["signature"]), data)
    except (InvalidSignature, ValueError, TypeError):
        raise VerificationError(
            f"signature {record.get('id')} by {payload['signer']['printed_name']} does not verify") from None
    if hashlib.sha256(raw).hexdigest() != record["key_id"]:
        raise VerificationError(f"signature {record.get('id')} names another key than it carries")
    return payload  # type: ignore[no-any-return]


def bind_signatures(records: list[dict[str, Any]], signed_events: list[dict[str, Any]],
                    key_events: list[dict[str, Any]] | None, run_id: str,
                    manifest_digest: str) -> list[dict[str, Any]]:
    """Check every record against the sealed ``run.signed`` events (exactly one each, and none
    without a record) and the sealed ``user.key_created`` events (``None``: the export carries
    none); return the payloads, each signer marked ``key_after_admin_reset`` as its key's event
    says. Every event given is taken as proven in the checkpoint."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for event in signed_events:
        by_id.setdefault(str(_side(event, "after").get("signature_id")), []).append(event)
    keys: dict[str, dict[str, Any]] = {}
    for event in key_events or []:
        key_id = _side(event, "after").get("key_id")
        if not isinstance(key_id, str) or key_id in keys:
            raise VerificationError(f"audit event {event['seq']} (user.key_created) registers "
                                    f"{'no key' if not isinstance(key_id, str) else f'key {key_id} a second time'}")
        keys[key_id] = event

    payloads = []
    seen: set[str] = set()
    for record in records:
        sid = record.get("id")
        if not isinstance(sid, str) or sid in seen:
            raise VerificationError(f"signature {sid} appears twice in signatures.json" if isinstance(sid, str)
                                    else "a signature record has no id")
        seen.add(sid)
        payload = record["payload"]
        if payload.get("run_id") != run_id or payload.get("manifest_digest") != manifest_digest:
            raise VerificationError(f"signature {sid} is over another run or manifest")
        signer = payload.get("signer")
        # 21 CFR 11.50: a signature shows who signed; the username beside the printed name is
        # what tells two people of the same name apart.
        if not isinstance(signer, dict) or not all(
                isinstance(signer.get(k), str) and signer[k] for k in ("username", "printed_name")):
            raise VerificationError(f"signature {sid} does not name its signer's username and printed name")
        if key_events is None:
            raise VerificationError(
                f"signature {sid}: its signer's key is not bound to the log (exported before exports carried "
                "the signers' user.key_created events, audit/signer-keys.jsonl): export the run again")
        created = keys.get(record["key_id"])
        if created is None:
            raise VerificationError(f"signature {sid} by {_who(signer)}: key {str(record['key_id'])[:16]}… was "
                                    "registered by no sealed user.key_created event (a key the log never saw)")
        if created["target"] != {"type": "user", "id": signer.get("user_id")}:
            raise VerificationError(f"signature {sid} by {_who(signer)}: key {record['key_id'][:16]}… was "
                                    f"registered for another user (audit event {created['seq']})")
        registered = _side(created, "after").get("public_key")
        if record.get("public_key") not in (None, registered):
            raise VerificationError(f"signature {sid} by {_who(signer)}: signatures.json carries another public "
                                    f"key than the sealed user.key_created event {created['seq']} registered")
        verify_signature(record, run_id, manifest_digest, str(registered))

        matches = by_id.get(sid, [])
        if not matches:
            raise VerificationError(f"signature {sid}: its run.signed audit event is missing from the export")
        if len(matches) > 1:
            raise VerificationError(f"signature {sid}: {len(matches)} run.signed audit events name it")
        signed = matches[0]
        after = _side(signed, "after")
        wrong = [f for f in _EVENT_FIELDS if after.get(f) != (record["key_id"] if f == "key_id" else payload.get(f))]
        if signed["actor"].get("id") != signer.get("user_id") or \
                after.get("signer_username", signer["username"]) != signer["username"]:
            wrong.insert(0, "signer")
        if wrong:
            raise VerificationError(f"signature {sid} by {_who(signer)}: its sealed run.signed event {signed['seq']} "
                                    f"records another {', '.join(wrong)}")
        _check_active(sid, signer, created, signed, key_events)
        if _side(created, "after").get("after_admin_reset"):
            payload = {**payload, "signer": {**signer, "key_after_admin_reset": True}}
        payloads.append(payload)

    extra = sorted(set(by_id) - seen)
    if extra:
        event = by_id[extra[0]][0]
        raise VerificationError(f"signature {extra[0]}: the sealed run.signed event {event['seq']} records it, "
                                "but signatures.json does not hold it")
    return payloads


def _check_active(sid: str, signer: dict[str, Any], created: dict[str, Any], signed: dict[str, Any],
                  key_events: list[dict[str, Any]]) -> None:
    """The key was the user's active key when the run.signed event was appended: registered
    before it, and no later key of the user registered before it either (a new key replaces the
    active one in the transaction that retires it). The log's order decides, not clocks."""
    key_id = _side(created, "after")["key_id"]
    if created["seq"] > signed["seq"]:
        raise VerificationError(f"signature {sid} by {_who(signer)}: key {key_id[:16]}… was registered after "
                                f"the signing (audit event {created['seq']} > run.signed {signed['seq']})")
    newer = [e for e in key_events if e["target"] == created["target"] and created["seq"] < e["seq"] < signed["seq"]]
    if newer:
        raise VerificationError(f"signature {sid} by {_who(signer)}: key {key_id[:16]}… was no longer the user's "
                                f"active key at the signing (replaced by audit event {newer[0]['seq']})")


def _who(signer: dict[str, Any]) -> str:
    return f"{signer['printed_name']} ({signer['username']})"


def _side(event: dict[str, Any], side: str) -> dict[str, Any]:
    value = event.get(side)
    return value if isinstance(value, dict) else {}
