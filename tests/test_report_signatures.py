"""Report e-signatures bound to the sealed log (verify/report_signatures.py): a signed rendition
carries the report.signed and user.key_created events with inclusion proofs, and ``verify`` refuses
a signature whose key the log never registered for the signer, even in a rendition the instance
itself signed (its operator can change the user_keys table and re-sign renditions)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nextstat_pro.canonical import canonical_json
from nextstat_pro.compliance.audit_reports import audit_trail
from nextstat_pro.compliance.render import build
from nextstat_pro.compliance.service import sign_report
from nextstat_pro.compliance.templates import unpack
from nextstat_pro.instance import Instance
from nextstat_pro.verify import VerificationError
from nextstat_pro.verify.report_pdf import describe, read_attachments, verify_report_pdf
from nextstat_pro.verify.report_signatures import SIGNATURE_EVENTS_NAME

from .identity_helpers import add_user, session_for

VIC = "vic-password-12"
DERIVED = {"report.json", "data.json", "report.html", "template.json", "report.intoto.jsonl", "keys/run-signing.pub"}


def test_report_signature_keys_are_bound_to_the_sealed_log(sqlite_instance: Instance, tmp_path: Path) -> None:
    inst = sqlite_instance
    add_user(inst, "vic", "viewer", VIC)
    w = audit_trail(inst, inst.context(), project="default")
    signed = sign_report(inst, session_for(inst, "vic", VIC), w.report_id, "review", "checked", VIC, "vic",
                         out=tmp_path / "s")
    pdf = Path(signed.rendition.pdf_path or "")
    v = verify_report_pdf(pdf, log_key=(inst.home / "witness" / "log.pub").read_text())
    assert [s["username"] for s in v.signatures] == ["vic"]
    assert any("bound to its signer by the sealed log" in line for line in describe(v))
    files = read_attachments(pdf.read_bytes())
    doc = json.loads(files[SIGNATURE_EVENTS_NAME])
    assert sorted(e["event"]["action"] for e in doc["events"]) == ["report.signed", "user.key_created"]
    record = json.loads(files["report.json"])

    def forged(name: str, edit: Callable[[dict[str, bytes], dict[str, Any]], None]) -> Path:
        """The rendition rebuilt, as the instance's operator could, with ``edit`` applied."""
        evidence = {n: d for n, d in files.items() if n not in DERIVED}
        data = json.loads(files["data.json"])
        edit(evidence, data)
        b = build(report_id=record["report_id"], kind=record["kind"], project=record["project"],
                  title=record["title"], template=unpack(files["template.json"], "t"), data=data,
                  inputs=record["inputs"], evidence=evidence, created=record["created"], keys=inst.run_keys())
        out = tmp_path / f"{name}.pdf"
        out.write_bytes(b.pdf)
        return out

    def swap_key(evidence: dict[str, bytes], data: dict[str, Any]) -> None:
        """Vic's key replaced by the operator's, with a valid signature under it."""
        attacker = Ed25519PrivateKey.generate()
        raw = attacker.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        records = json.loads(evidence["signatures.json"])
        records[0].update(public_key=raw.hex(), key_id=hashlib.sha256(raw).hexdigest(),
                          signature=base64.b64encode(attacker.sign(canonical_json(records[0]["payload"]))).decode())
        evidence["signatures.json"] = json.dumps(records).encode()
        data["report_signatures"][0]["key_id"] = records[0]["key_id"]

    def drop_events(evidence: dict[str, bytes], data: dict[str, Any]) -> None:
        del evidence[SIGNATURE_EVENTS_NAME]

    def drop_signed_event(evidence: dict[str, bytes], data: dict[str, Any]) -> None:
        d = json.loads(evidence[SIGNATURE_EVENTS_NAME])
        d["events"] = [e for e in d["events"] if e["event"]["action"] != "report.signed"]
        evidence[SIGNATURE_EVENTS_NAME] = json.dumps(d).encode()

    def edit_event(evidence: dict[str, bytes], data: dict[str, Any]) -> None:
        d = json.loads(evidence[SIGNATURE_EVENTS_NAME])
        d["events"][-1]["event"]["after"]["meaning"] = "approval"
        evidence[SIGNATURE_EVENTS_NAME] = json.dumps(d).encode()

    cases = {"key": (swap_key, "registered by no sealed user.key_created event"),
             "none": (drop_events, "not bound to the sealed log"),
             "unsigned": (drop_signed_event, "0 sealed report.signed events name it"),
             "edited": (edit_event, "does not match its hash")}
    for name, (edit, message) in cases.items():
        with pytest.raises(VerificationError, match=message):
            verify_report_pdf(forged(name, edit))


def _rebuilt(inst: Instance, files: dict[str, bytes], out: Path,
             edit: Callable[[dict[str, bytes], dict[str, Any]], None]) -> Path:
    """A signed rendition rebuilt, as the instance's operator (who holds the run-signing key) could."""
    record = json.loads(files["report.json"])
    evidence = {n: d for n, d in files.items() if n not in DERIVED}
    data = json.loads(files["data.json"])
    edit(evidence, data)
    b = build(report_id=record["report_id"], kind=record["kind"], project=record["project"], title=record["title"],
              template=unpack(files["template.json"], "t"), data=data, inputs=record["inputs"], evidence=evidence,
              created=record["created"], keys=inst.run_keys())
    out.write_bytes(b.pdf)
    return out


def _own_log(files: dict[str, bytes], key_name: str | None) -> tuple[Callable[..., None], str]:
    """An edit giving the rendition the operator's own signing key for the signer, meaning changed
    to approval, and sealed-looking events proven in a checkpoint of the operator's own log key
    (named ``key_name``, or for the instance's origin), as /tmp/rv/forge.py of the review did."""
    from nextstat_pro.audit.merkle import MemoryTree, inclusion_proof
    from nextstat_pro.signing.keys import KeyPair
    from nextstat_pro.signing.notes import sign_checkpoint
    from nextstat_pro.verify.merkle import leaf_hash
    from nextstat_pro.verify.note import Checkpoint, Verifier

    att = Ed25519PrivateKey.generate()
    raw = att.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = hashlib.sha256(raw).hexdigest()
    doc = json.loads(files[SIGNATURE_EVENTS_NAME])
    origin = doc["checkpoint"].split("\n", 1)[0]
    log = KeyPair(Ed25519PrivateKey.generate())
    verifier = Verifier.for_key(key_name or origin, log)

    def edit(evidence: dict[str, bytes], data: dict[str, Any]) -> None:
        records = json.loads(evidence["signatures.json"])
        records[0]["payload"]["meaning"] = "approval"  # the signer never approved
        records[0].update(public_key=raw.hex(), key_id=kid,
                          signature=base64.b64encode(att.sign(canonical_json(records[0]["payload"]))).decode())
        events = sorted((e["event"] for e in doc["events"]), key=lambda e: e["seq"])
        for i, e in enumerate(events):
            e["after"].update(key_id=kid, public_key=raw.hex()) if e["action"] == "user.key_created" else \
                e["after"].update(key_id=kid, meaning="approval")
            e["seq"] = i + 1
            e.pop("hash")
            e["hash"] = hashlib.sha256(canonical_json(e)).hexdigest()
        tree = MemoryTree([leaf_hash(canonical_json({k: v for k, v in e.items() if k != "hash"})) for e in events])
        note = sign_checkpoint(Checkpoint(origin, len(events), tree.root()), verifier.name, log)
        evidence["signatures.json"] = json.dumps(records).encode()
        evidence[SIGNATURE_EVENTS_NAME] = json.dumps({"checkpoint": note, "log_key": str(verifier), "events": [
            {"event": e, "proof": [base64.b64encode(p).decode() for p in inclusion_proof(tree.node, i, len(events))]}
            for i, e in enumerate(events)]}).encode()
        data["report_signatures"][0].update(key_id=kid, meaning="approval")

    return edit, str(verifier)


def test_report_signatures_need_a_pinned_log_key_and_unique_records(instance: Instance, tmp_path: Path) -> None:
    """Review findings on commit 6949fe7: without --log-key the binding is not claimed (an operator
    can bring a log of their own), a pinned key must be the rendition's, the checkpoint's origin
    must name the key's log, one sealed event cannot stand behind two printed signatures, and a key
    made under a password an administrator chose is shown as such (as for run exports)."""
    inst = instance
    add_user(inst, "vic", "viewer", VIC)  # created by an admin: the key's event says after_admin_reset
    w = audit_trail(inst, inst.context(), project="default")
    signed = sign_report(inst, session_for(inst, "vic", VIC), w.report_id, "review", "checked", VIC, "vic",
                         out=tmp_path / "s")
    pdf = Path(signed.rendition.pdf_path or "")
    log_key = (inst.home / "witness" / "log.pub").read_text()
    pinned = verify_report_pdf(pdf, log_key=log_key)
    assert pinned.log_key_pinned and pinned.signatures[0]["key_after_admin_reset"] is True
    lines = describe(pinned)
    assert any("bound to its signer by the sealed log (log key pinned)" in line for line in lines)
    assert any(line.startswith("  ✔ e-signature by Vic") and "an administrator chose" in line for line in lines), lines
    unpinned = describe(verify_report_pdf(pdf))
    assert not any("bound to its signer" in line for line in unpinned)
    assert any("NOT established: pin it with --log-key" in line for line in unpinned), unpinned
    assert any(line.startswith("  · e-signature by") for line in unpinned)

    files = read_attachments(pdf.read_bytes())
    edit, forged_key = _own_log(files, None)
    forged = _rebuilt(inst, files, tmp_path / "own-log.pdf", edit)
    lines = describe(verify_report_pdf(forged))  # the file's own log key: verifies, claims nothing
    assert not any("bound to its signer" in line for line in lines) and any("NOT established" in ln for ln in lines)
    with pytest.raises(VerificationError, match="carries another log key than the pinned one"):
        verify_report_pdf(forged, log_key=log_key)
    with pytest.raises(VerificationError, match="checkpoint is for log"):
        verify_report_pdf(_rebuilt(inst, files, tmp_path / "named.pdf", _own_log(files, "forged-log")[0]))
    assert forged_key != log_key.strip()

    def twice(evidence: dict[str, bytes], data: dict[str, Any]) -> None:
        records = json.loads(evidence["signatures.json"])
        evidence["signatures.json"] = json.dumps(records + records[:1]).encode()
        data["report_signatures"].append(data["report_signatures"][0])

    with pytest.raises(VerificationError, match="appears twice in signatures.json"):
        verify_report_pdf(_rebuilt(inst, files, tmp_path / "twice.pdf", twice), log_key=log_key)
