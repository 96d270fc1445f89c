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
