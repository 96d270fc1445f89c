"""A signed report rendition's e-signatures bound to the sealed log, as a run export's are
(``esignatures.bind_signatures``), with no database.

The signature records in ``signatures.json`` carry each signer's public key as the instance's
``user_keys`` table held it: a mutable row, so it is not trusted on its own. The rendition also
carries ``audit/signature-events.json``: a checkpoint note signed by the log key, and, each with an
inclusion proof in that checkpoint, every sealed ``report.signed`` event of the signed report and
every ``user.key_created`` event of its signers. A signature then counts only when its key is the
one a sealed ``user.key_created`` event registered for the signer, that key was the signer's active
key when the sealed ``report.signed`` event was appended, and that event records the same signer,
meaning, decision, key and record digest (one event per record, one record per event, each record
id once).

All of that is evidence only as far as the log key is: ``--log-key`` pins it (the file's own
``log_key`` must then be that key); without it the file's own key is used, and whoever holds the
run-signing key could bring a log key, checkpoint and events of their own, so ``describe`` then
does not claim the binding. The checkpoint's origin line must name the log the key is for (an
instance's log key is named for its origin).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .errors import VerificationError
from .merkle import ProofError, verify_inclusion
from .note import Checkpoint, NoteError, Verifier, open_checkpoint
from .proofs import ProofVerificationError, event_leaf

SIGNATURE_EVENTS_NAME = "audit/signature-events.json"


def _included(event: dict[str, Any], proof: list[str], cp: Checkpoint) -> None:
    try:
        verify_inclusion(event["seq"] - 1, cp.size, event_leaf(event), [base64.b64decode(p) for p in proof], cp.root)
    except (ProofError, ProofVerificationError) as exc:
        raise VerificationError(f"{SIGNATURE_EVENTS_NAME}: audit event {event.get('seq')}: {exc}") from None


def _after(event: dict[str, Any]) -> dict[str, Any]:
    value = event.get("after")
    return value if isinstance(value, dict) else {}


def sealed_events(files: dict[str, bytes], report_id: str, log_key: str | None) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]], int]:
    """The rendition's proven ``report.signed`` events of ``report_id`` and ``user.key_created``
    events, and the checkpoint's size. ``log_key`` pins the log's key, which the rendition must carry;
    without it the attached key is used, which proves nothing about who signed (module docstring)."""
    if SIGNATURE_EVENTS_NAME not in files:
        raise VerificationError("the signers' keys are not bound to the sealed log: the rendition carries no "
                                f"{SIGNATURE_EVENTS_NAME} (signed before renditions did): sign the report again")
    doc = json.loads(files[SIGNATURE_EVENTS_NAME])
    try:
        own = Verifier.parse(doc["log_key"])
        verifier = Verifier.parse(log_key) if log_key is not None else own
        if str(own) != str(verifier):
            raise VerificationError(f"{SIGNATURE_EVENTS_NAME}: the rendition carries another log key than the pinned "
                                    "one")
        cp = open_checkpoint(doc["checkpoint"], verifier, origin=verifier.name)
    except NoteError as exc:
        raise VerificationError(f"{SIGNATURE_EVENTS_NAME}: checkpoint: {exc}") from None
    signed: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    seen: set[int] = set()
    for entry in doc["events"]:
        event = entry["event"]
        if event["seq"] in seen:
            raise VerificationError(f"{SIGNATURE_EVENTS_NAME}: audit event {event['seq']} appears twice")
        seen.add(event["seq"])
        _included(event, entry["proof"], cp)
        if event["action"] == "report.signed" and event["target"] == {"type": "report", "id": report_id}:
            signed.append(event)
        elif event["action"] == "user.key_created" and event["target"].get("type") == "user":
            keys.append(event)
        else:
            raise VerificationError(f"{SIGNATURE_EVENTS_NAME}: audit event {event['seq']} ({event['action']}) "
                                    "is neither a signing of this report nor a signer's key")
    return signed, keys, cp.size


def bind_report_signatures(records: list[dict[str, Any]], signed: list[dict[str, Any]],
                           keys: list[dict[str, Any]]) -> dict[str, bool]:
    """Fail unless every record is matched by its sealed events (see the module docstring); return,
    by record id, whether the signer's key was made after an administrator's password reset (its
    sealed user.key_created event's ``after_admin_reset``, shown as a run export's signer is)."""
    by_key: dict[str, dict[str, Any]] = {}
    for event in keys:
        key_id = _after(event).get("key_id")
        if not isinstance(key_id, str) or key_id in by_key:
            raise VerificationError(f"audit event {event['seq']} (user.key_created) registers no key or one twice")
        by_key[key_id] = event
    by_signature: dict[str, list[dict[str, Any]]] = {}
    for event in signed:
        by_signature.setdefault(str(_after(event).get("signature_id")), []).append(event)
    reset: dict[str, bool] = {}
    for record in records:
        sid, payload = record.get("id"), record["payload"]
        # One sealed event must not stand behind two printed signatures (as bind_signatures).
        if not isinstance(sid, str) or sid in reset:
            raise VerificationError(f"report signature {sid} appears twice in signatures.json" if isinstance(sid, str)
                                    else "a report signature record has no id")
        signer = payload.get("signer") or {}
        who = f"{signer.get('printed_name')} ({signer.get('username')})"
        created = by_key.get(str(record.get("key_id")))
        if created is None:
            raise VerificationError(f"report signature {sid} by {who}: key {str(record.get('key_id'))[:16]}… was "
                                    "registered by no sealed user.key_created event (a key the log never saw)")
        if created["target"].get("id") != signer.get("user_id"):
            raise VerificationError(f"report signature {sid} by {who}: its key was registered for another user "
                                    f"(audit event {created['seq']})")
        if _after(created).get("public_key") != record.get("public_key"):
            raise VerificationError(f"report signature {sid} by {who}: signatures.json carries another public key "
                                    f"than the sealed user.key_created event {created['seq']} registered")
        matches = by_signature.get(sid, [])
        if len(matches) != 1:
            raise VerificationError(f"report signature {sid}: {len(matches)} sealed report.signed events name it")
        event = matches[0]
        after = _after(event)
        expected = {"meaning": payload.get("meaning"), "decision": payload.get("decision"),
                    "key_id": record.get("key_id"), "record_digest": payload.get("record_digest"),
                    "signer_username": signer.get("username")}
        wrong = [k for k, v in expected.items() if after.get(k) != v]
        if (event.get("actor") or {}).get("id") != signer.get("user_id"):
            wrong.insert(0, "signer")
        if wrong:
            raise VerificationError(f"report signature {sid} by {who}: its sealed report.signed event "
                                    f"{event['seq']} records another {', '.join(wrong)}")
        if created["seq"] > event["seq"] or any(
                e["target"] == created["target"] and created["seq"] < e["seq"] < event["seq"] for e in keys):
            raise VerificationError(f"report signature {sid} by {who}: key {record['key_id'][:16]}… was not the "
                                    f"signer's active key at the signing (audit event {event['seq']})")
        reset[sid] = _after(created).get("after_admin_reset") is True
    extra = sorted(set(by_signature) - set(reset))
    if extra:
        raise VerificationError(f"report signature {extra[0]}: a sealed report.signed event records it, but "
                                "signatures.json does not hold it")
    return reset
