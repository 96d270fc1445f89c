"""NS-Compliance reports on SQLite and PostgreSQL: run certificates, audit-trail reports and reviews,
template versions, PDF/A-3b structure, embedded evidence, determinism, offline verification."""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from sqlalchemy import select

from nextstat_pro.compliance.audit_reports import audit_review, audit_trail, risk_group
from nextstat_pro.compliance.certificate import run_certificate
from nextstat_pro.compliance.models import Report
from nextstat_pro.compliance.registry import list_templates, push_template
from nextstat_pro.compliance.render import build
from nextstat_pro.compliance.service import list_reports, sign_report, write_report
from nextstat_pro.compliance.templates import builtin, builtin_templates, load_folder, render, unpack
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import ConflictError, InputError, PermissionDeniedError
from nextstat_pro.hub import service as hub
from nextstat_pro.instance import Instance
from nextstat_pro.runs import RunRequest, run_task
from nextstat_pro.runs.esignatures import sign_run
from nextstat_pro.signing.keys import load_or_create_keypair
from nextstat_pro.verify import VerificationError
from nextstat_pro.verify.report_pdf import read_attachments, verify_report_pdf

from .conftest import one_line_error, shared
from .identity_helpers import add_user, session_for

RITA = "rita-password-1"
VIC = "vic-password-12"
NASTY = 'checked <script>alert("x")</script> & <b>bold</b>'


def fit(inst: Instance) -> str:
    inputs = [InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))]
    return run_task(inst, inst.context(), RunRequest("fit", "default", {}, None, inputs)).run_id


def pdftotext(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def page_one_png(pdf: Path, dest: Path) -> Path:
    """Page 1 as a PNG beside the test's files, for a person to look at."""
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(dest)],
                   check=True)
    png = dest.with_suffix(".png")
    assert png.stat().st_size > 1000
    return png


def assert_pdfa(path: Path) -> None:
    with pikepdf.open(path) as pdf:
        meta = pdf.open_metadata()
        assert meta.pdfa_status == "3B"
        assert "/OutputIntents" in pdf.Root and len(pdf.Root.OutputIntents) == 1
        assert pdf.Root.OutputIntents[0].S == "/GTS_PDFA1"
        assert "/Metadata" in pdf.Root  # the XMP packet
        assert meta.get("pdfaid:part") == "3"
    check = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_run_certificate(instance: Instance, tmp_path: Path) -> None:
    add_user(instance, "rita", "viewer", RITA)
    run_id = fit(instance)
    sign_run(instance, session_for(instance, "rita", RITA), run_id, "review", NASTY, RITA, "rita")
    start = time.perf_counter()
    w = run_certificate(instance, instance.context(), run_id, tmp_path / "out", plots=False)
    elapsed = time.perf_counter() - start
    pdf, html = Path(w.pdf_path or ""), Path(w.html_path or "")
    assert pdf.name == "run-certificate.pdf" and html.name == "run-certificate.html"
    assert elapsed < 20  # the benchmark holds the 2 s target; CI machines are shared
    page_one_png(pdf, tmp_path / "run-certificate-page1")
    assert_pdfa(pdf)
    text = pdftotext(pdf)
    manifest_digest = json.loads(instance.store.get(w.record_digest))["inputs"][0]["manifest_digest"]
    # 21 CFR 11.50: printed name, time (UTC), meaning and reason, and what was signed.
    for needle in ("Rita (rita)", "meaning: review", "checked <script>", "UTC", manifest_digest[:40]):
        assert needle in text.replace("\n", " ") or needle in text, needle
    # HTML-unsafe text (the reason) is escaped in the HTML, never markup.
    page = html.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;" in page
    # The evidence: attachments extracted and verified offline, the embedded run export included.
    files = read_attachments(pdf.read_bytes())
    assert {"report.json", "data.json", "report.html", "template.json", "report.intoto.jsonl",
            "run/manifest.json", "run/SHA256SUMS", "run/audit/checkpoint.note"} <= files.keys()
    assert files["report.html"] == html.read_bytes()
    v = verify_report_pdf(pdf)
    assert v.report_id == w.report_id and v.rerendered and v.run is not None and v.run.run_id == run_id
    assert len(v.run.signatures) == 1 and v.signatures == []  # the run's e-signature; none on the report yet
    # Recorded: stored by digest, audited, listed; the stored copy is the file written.
    with instance.db.transaction() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "report.created")).one()
        assert event.target_id == w.report_id
    assert instance.store.get(w.pdf_digest) == pdf.read_bytes()
    assert [r.report_id for r in list_reports(instance, instance.context(), "default")] == [w.report_id]
    again = write_report(instance, instance.context(), w.report_id[:13], tmp_path / "again")
    assert Path(again.pdf_path or "").read_bytes() == pdf.read_bytes()


def test_tampered_report_fails_verify(sqlite_instance: Instance, tmp_path: Path) -> None:
    inst = sqlite_instance
    w = run_certificate(inst, inst.context(), fit(inst), tmp_path, plots=False)
    pdf = Path(w.pdf_path or "")
    verify_report_pdf(pdf)

    def tampered(name: str, edit: Any) -> Path:
        out = tmp_path / name
        with pikepdf.open(pdf) as doc:
            edit(doc)
            doc.save(out)
        return out

    def swap_data(doc: pikepdf.Pdf) -> None:
        data = json.loads(doc.attachments["data.json"].get_file().read_bytes())
        data["run"]["status"] = "succeeded, honestly"
        doc.attachments["data.json"] = pikepdf.AttachedFileSpec(doc, json.dumps(data).encode(), filename="data.json")

    def draw_on_page(doc: pikepdf.Pdf) -> None:
        doc.pages[0].contents_add(pikepdf.Stream(doc, b"q 0 0 1 rg 100 100 50 50 re f Q"), prepend=False)

    def drop_evidence(doc: pikepdf.Pdf) -> None:
        del doc.attachments["run/audit/events.jsonl"]

    cases = {"data.pdf": (swap_data, "data.json: digest mismatch"),
             "page.pdf": (draw_on_page, "its pages were changed"),
             "dropped.pdf": (drop_evidence, "run/audit/events.jsonl is signed but missing")}
    for name, (edit, message) in cases.items():
        with pytest.raises(VerificationError, match=re.escape(message)):
            verify_report_pdf(tampered(name, edit))
    raw = bytearray(pdf.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (tmp_path / "flip.pdf").write_bytes(bytes(raw))
    with pytest.raises(VerificationError):
        verify_report_pdf(tmp_path / "flip.pdf")


def test_build_is_deterministic(tmp_path: Path) -> None:
    """The same inputs give byte-identical HTML and PDF, renders a second apart."""
    keys = load_or_create_keypair(tmp_path / "run.key", create=True)
    args: dict[str, Any] = dict(report_id="01900000-0000-7000-8000-000000000000", kind="audit-trail", project="p",
                                title="T <i>", template=builtin("audit-trail"),
                                data={"filters": {"project": "p", "target": None}, "checkpoint": {
                                    "size": 1, "root": "00", "statement": "s"},
                                    "range": {"from_": None, "to": None, "count": 0, "first_seq": None,
                                              "last_seq": None, "printed": 0, "events_file": "f",
                                              "events_digest": "d"}, "events": [], "by_action": []},
                                inputs=[], evidence={"x.txt": b"evidence"}, created="2026-01-02T03:04:05.000000Z",
                                keys=keys)
    first = build(**args)
    time.sleep(1.1)
    second = build(**args)
    assert first.html == second.html and first.pdf == second.pdf
    (tmp_path / "a.pdf").write_bytes(first.pdf)
    assert_pdfa(tmp_path / "a.pdf")
    assert verify_report_pdf(tmp_path / "a.pdf").rerendered


def _custom_template(tmp_path: Path, version: str, sop: str) -> Path:
    folder = tmp_path / f"tpl-{version}"
    src = Path(__file__).parent.parent / "src/nextstat_pro/compliance/templates/run-certificate"
    shutil.copytree(src, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest))
    page = (folder / "report.html.j2").read_text().replace("<h1>Run certificate</h1>",
                                                           f"<h1>Run certificate</h1><p>ACME {sop}</p>")
    (folder / "report.html.j2").write_text(page)
    return folder


def test_template_versions_leave_old_reports_unchanged(instance: Instance, tmp_path: Path) -> None:
    ctx = instance.context()
    run_id = fit(instance)
    old = run_certificate(instance, ctx, run_id, tmp_path / "old", plots=False)
    old_pdf = Path(old.pdf_path or "").read_bytes()
    pushed = push_template(instance, ctx, "default", _custom_template(tmp_path, "1.1.0", "SOP-123"))
    assert pushed.created and pushed.label == "run-certificate@1.1.0"
    assert not push_template(instance, ctx, "default", _custom_template(tmp_path / "y", "1.1.0", "SOP-123")).created
    with pytest.raises(ConflictError, match="immutable"):
        push_template(instance, ctx, "default", _custom_template(tmp_path / "x", "1.1.0", "SOP-999"))
    rows = {(r.name, r.version): r for r in list_templates(instance, ctx, "default")}
    assert rows["run-certificate", "1.0.0"].builtin and not rows["run-certificate", "1.1.0"].builtin
    assert {("audit-trail", "1.0.0"), ("audit-review", "1.0.0")} <= rows.keys()
    new = run_certificate(instance, ctx, run_id, tmp_path / "new", plots=False)
    assert new.template == "run-certificate@1.1.0" and new.template_digest == pushed.digest
    assert "ACME SOP-123" in pdftotext(Path(new.pdf_path or ""))
    # The old report: its row, its stored bytes and what verify says are as they were.
    assert old.template_digest == rows["run-certificate", "1.0.0"].digest
    again = write_report(instance, ctx, old.report_id, tmp_path / "again")
    assert Path(again.pdf_path or "").read_bytes() == old_pdf
    assert verify_report_pdf(Path(again.pdf_path or "")).template["version"] == "1.0.0"
    pinned = run_certificate(instance, ctx, run_id, tmp_path / "pinned", "run-certificate@1.0.0", plots=False)
    assert pinned.template_digest == old.template_digest
    with instance.db.transaction() as s:
        assert s.scalars(select(AuditEvent.action).where(AuditEvent.action == "hub.template.pushed")).all()


def test_audit_trail_report(instance: Instance, tmp_path: Path) -> None:
    ctx = instance.context()
    fit(instance)
    w = audit_trail(instance, ctx, project="default", out=tmp_path)
    pdf = Path(w.pdf_path or "")
    assert_pdfa(pdf)
    page_one_png(pdf, tmp_path / "audit-trail-page1")
    files = read_attachments(pdf.read_bytes())
    events = [json.loads(line) for line in gzip.decompress(files["audit/events.jsonl.gz"]).splitlines()]
    with instance.db.transaction() as s:
        expected = s.scalars(select(AuditEvent.seq).where(AuditEvent.project == "default",
                                                          AuditEvent.action != "report.created")).all()
    assert [e["seq"] for e in events] == list(expected)
    proofs = json.loads(files["audit/proofs.json"])
    assert proofs["count"] == len(events) and len(proofs["ends"]) == 2
    text = pdftotext(pdf)
    assert "UTC" in text and "run.created" in text and "proven included" in text.replace("\n", " ")
    data = json.loads(files["data.json"])
    created = [e for e in data["events"] if e["action"] == "run.created"][0]
    assert created["modified_later"]  # the run started and finished after it was created
    verify_report_pdf(pdf)
    # Any period length, one target.
    run_created = [e for e in events if e["action"] == "run.created"][0]
    target = f"run:{run_created['target']['id']}"
    one = audit_trail(instance, ctx, project="default", target=target, since="2000-01-01", until="2100-01-01")
    rows = json.loads(instance.store.get(one.data_digest))["events"]
    assert {r["target"] for r in rows} == {target} and len(rows) >= 3


def test_audit_review_groups_signs_and_chains(instance: Instance, tmp_path: Path) -> None:
    admin = instance.context()
    add_user(instance, "vic", "viewer", VIC)
    vic = session_for(instance, "vic", VIC)
    with pytest.raises(PermissionDeniedError):
        hub.push(instance, vic, "default", "model", "m", InputFile.read("workspace", shared(
            "workspaces", "simple_workspace.json")))
    fit(instance)
    with pytest.raises(PermissionDeniedError):  # a viewer may not review the project's trail
        audit_review(instance, vic, None, "2100-01-01", project="default")
    now = datetime.now(UTC)
    until = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    findings = [{"severity": "minor", "text": "denied push by <vic>", "seq": 1}]
    first = audit_review(instance, admin, None, until, findings=findings, out=tmp_path / "r1")
    data = json.loads(instance.store.get(first.data_digest))
    groups = [g["key"] for g in data["groups"]]
    assert groups[:4] == ["security", "signatures", "retention", "roles"]
    security = data["groups"][0]
    assert security["count"] >= 1 and {e["action"] for e in security["events"]} == {"access.denied"}
    assert data["gaps"] == [] and data["previous"] is None
    text = pdftotext(Path(first.pdf_path or ""))
    assert "Security events" in text and "denied push by <vic>" in text
    assert "&lt;vic&gt;" in Path(first.html_path or "").read_text()
    # The reviewer signs with meaning review; the rendition shows the manifestation and verifies.
    signed = sign_report(instance, vic, first.report_id, "review", "period reviewed", VIC, "vic",
                         out=tmp_path / "r1s")
    assert signed.approval_state == "in review" and signed.rendition.parent_id == first.report_id
    spdf = Path(signed.rendition.pdf_path or "")
    stext = pdftotext(spdf)
    assert "Vic (vic)" in stext and "meaning: review" in stext and first.record_digest[:30] in stext
    v = verify_report_pdf(spdf)
    assert [s["meaning"] for s in v.signatures] == ["review"]
    assert_pdfa(spdf)
    page_one_png(spdf, tmp_path / "audit-review-page1")
    # The next review starts where the signed one ended; a later start leaves a reported gap.
    fit(instance)
    later = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    nxt = audit_review(instance, admin, None, "2100-01-01")
    nd = json.loads(instance.store.get(nxt.data_digest))
    assert nd["range"]["from_"] == until and nd["previous"]["report_id"] == first.report_id and nd["gaps"] == []
    gap = audit_review(instance, admin, later, "2100-01-01")
    gd = json.loads(instance.store.get(gap.data_digest))
    assert gd["gaps"] and gd["gaps"][0]["from_"] == until and gd["gaps"][0]["events"] >= 3
    assert "not reviewed" in pdftotext(Path(write_report(instance, admin, gap.report_id, tmp_path / "g").pdf_path
                                            or ""))
    # A changed signature record in the rendition fails verify.
    with pikepdf.open(spdf) as doc:
        records = json.loads(doc.attachments["signatures.json"].get_file().read_bytes())
        records[0]["payload"]["reason"] = "nothing to see"
        doc.attachments["signatures.json"] = pikepdf.AttachedFileSpec(doc, json.dumps(records).encode(),
                                                                      filename="signatures.json")
        doc.save(tmp_path / "forged.pdf")
    with pytest.raises(VerificationError):
        verify_report_pdf(tmp_path / "forged.pdf")


def test_risk_groups() -> None:
    assert risk_group({"action": "auth.failed"}) == "security"
    assert risk_group({"action": "signature.refused"}) == "signatures"
    assert risk_group({"action": "run.signed", "after": {"decision": "reject"}}) == "signatures"
    assert risk_group({"action": "artifact.purged"}) == "retention"
    assert risk_group({"action": "role.granted"}) == "roles"
    assert risk_group({"action": "run.created"}) == "other"


def test_templates_are_checked_and_escape(tmp_path: Path) -> None:
    shipped = {t.name for t in builtin_templates()}
    assert {"run-certificate", "audit-trail", "audit-review"} <= shipped
    t = builtin("audit-trail")
    assert unpack(t.packed()).digest == t.digest
    folder = tmp_path / "t"
    src = Path(__file__).parent.parent / "src/nextstat_pro/compliance/templates/audit-trail"
    shutil.copytree(src, folder)
    page = folder / "report.html.j2"
    page.write_text(page.read_text().replace('<meta name="dcterms.created" content="{{ report.created }}">', ""))
    with pytest.raises(InputError, match="dcterms.created"):
        load_folder(folder)
    shutil.rmtree(folder)
    shutil.copytree(src, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "inputs": ["events", "secrets"]}))
    with pytest.raises(InputError, match="no input secrets"):
        load_folder(folder)
    (folder / "manifest.json").write_text(json.dumps({**manifest, "version": "one"}))
    with pytest.raises(InputError, match="semantic version"):
        load_folder(folder)
    html = render(t, {"title": "<T>", "kind": "audit-trail", "created": "2026-01-01T00:00:00Z",
                      "template": t.ref(), "attachments": [], "report_id": "r"},
                  {"filters": {"project": "<img src=x onerror=alert(1)>", "target": None},
                   "checkpoint": {"size": 1, "root": "00", "statement": "s"},
                   "range": {"from_": None, "to": None, "count": 0, "first_seq": None, "last_seq": None,
                             "printed": 0, "events_file": "f", "events_digest": "d"}, "events": [], "by_action": []})
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html and "<title>&lt;T&gt;</title>" in html


def test_reports_through_the_cli(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = ["--home", str(home)]
    run_id = json.loads(cli(*h, "run", "fit", "-w", str(shared("workspaces", "simple_workspace.json")),
                            "--json").out)["run_id"]
    r = cli(*h, "report", "run-certificate", run_id, "--out", str(tmp_path / "c"), "--no-plots")
    assert r.code == 0, r.err
    pdf = tmp_path / "c" / "run-certificate.pdf"
    assert pdf.is_file() and (tmp_path / "c" / "run-certificate.html").is_file()
    r = cli("verify", str(pdf))
    assert r.code == 0 and "verified report" in r.out and "pages are exactly" in r.out, r.out + r.err
    r = cli(*h, "report", "templates", "--json")
    assert r.code == 0 and {t["name"] for t in json.loads(r.out)} >= {"run-certificate", "audit-trail"}
    r = cli(*h, "report", "templates", "push", str(_custom_template(tmp_path, "2.0.0", "SOP-7")))
    assert r.code == 0 and "pushed template run-certificate@2.0.0" in r.out, r.err
    r = cli(*h, "report", "templates", "push", str(tmp_path / "nowhere"))
    assert r.code != 0 and "not a template folder" in one_line_error(r)
    r = cli(*h, "report", "audit-trail", "--out", str(tmp_path / "a"), "--from", "2000-01-01")
    assert r.code == 0, r.err
    r = cli(*h, "report", "list", "--json")
    assert [x["kind"] for x in json.loads(r.out)] == ["audit-trail", "run-certificate"]
    raw = bytearray(pdf.read_bytes())
    with pikepdf.open(io.BytesIO(bytes(raw))) as doc:
        doc.attachments["report.json"] = pikepdf.AttachedFileSpec(doc, b"{}", filename="report.json")
        doc.save(tmp_path / "bad.pdf")
    r = cli("verify", str(tmp_path / "bad.pdf"))
    assert r.code == 7 and "verification FAILED" in r.err
    inst = Instance.open(home)
    try:
        with inst.db.transaction() as s:
            assert len(s.scalars(select(Report)).all()) == 2
    finally:
        inst.close()
