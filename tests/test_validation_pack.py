"""The validation pack's content: IQ, OQ and PQ checks and the data the template renders.

The whole pack is built once (SQLite, the suite's variant: the product's own distributions hashed,
the small workspace cross-checked against pyhf, a PQ of three runs); the IQ, which is what differs
between databases, runs on PostgreSQL too. Each kind of check is also shown to fail when what it
checks is wrong: a file that differs from its RECORD, a version that differs from its pin, a golden
value outside its tolerance, a PQ expectation that does not hold. The benchmark runs the full pack
(benchmarks/bench_validation_pack.py)."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from nextstat_pro.canonical import json_digest
from nextstat_pro.compliance.validation import PackOptions, ValidationPackData, build_validation_pack
from nextstat_pro.compliance.validation.clock import kernel_clock_synchronised
from nextstat_pro.compliance.validation.iq import (
    _record_problems,
    check_files,
    check_pins,
    installation_qualification,
    installed,
)
from nextstat_pro.compliance.validation.models import make_check, section
from nextstat_pro.compliance.validation.pins import Pins, parse_constraints, shipped_pins
from nextstat_pro.compliance.validation.pins import main as pins_main
from nextstat_pro.compliance.validation.pq import load_workload, performance_qualification
from nextstat_pro.compliance.validation.reference import check_case, golden, shipped_inputs
from nextstat_pro.compliance.validation.traceability import ALWAYS, matrix
from nextstat_pro.db.models import AuditEvent, Run
from nextstat_pro.errors import InputError, NotFoundError, PermissionDeniedError
from nextstat_pro.instance import Instance
from nextstat_pro.runs import show_run

from .conftest import PASSWORD, ROOT
from .identity_helpers import add_user, session_for

SMALL = "oq_small_workspace.json"


def write_workload(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ws.json").write_bytes(shipped_inputs()["small-workspace"].data)
    path = folder / "pq.yaml"
    path.write_text(body)
    return path


WORKLOAD = """\
format: nextstat-pro.pq/1
project: default
description: two fits and a limit of the small workspace
tasks:
  - name: small-fit
    task: fit
    inputs: {workspace: ws.json}
    repeat: 2
    expect:
      fit_ok: true
      max_seconds: 60
      values:
        - {path: poi.value, value: 0.5145, abs: 0.001}
  - name: small-limit
    task: upper-limit
    inputs: {workspace: ws.json}
    expect:
      values:
        - {path: observed, value: 1.6367, rel: 0.001}
"""


def runs_count(inst: Instance) -> int:
    with inst.db.read() as s:
        return s.scalar(select(func.count()).select_from(Run)) or 0


def test_pack_has_iq_oq_pq_and_a_complete_matrix(sqlite_instance: Instance, tmp_path: Path) -> None:
    inst = sqlite_instance
    workload = write_workload(tmp_path / "pq", WORKLOAD)
    pack = build_validation_pack(inst, inst.context(), workload,
                                 PackOptions(file_hashes="product", crosscheck="small", scratch_dir=tmp_path))
    assert isinstance(pack, ValidationPackData)
    iq = {c.id: c for c in pack.iq.checks}
    oq = {c.id: c for c in pack.oq.checks}
    pq = {c.id: c for c in pack.pq.checks}
    assert list(iq) == ["IQ-PYTHON", "IQ-DIST-PINS", "IQ-DIST-FILES", "IQ-ENGINE", "IQ-DB-SCHEMA", "IQ-STORE",
                        "IQ-WITNESS", "IQ-CLOCK"]
    # Everything passes here except, possibly, the clock: this machine's kernel clock is not NTP-disciplined,
    # and the IQ says so rather than pass it.
    assert [i for i, c in iq.items() if not c.passed] == ([] if kernel_clock_synchronised() else ["IQ-CLOCK"])
    assert iq["IQ-CLOCK"].evidence["kernel_synchronised"] == kernel_clock_synchronised()
    assert abs(iq["IQ-CLOCK"].evidence["database_skew_s"]) < 2
    assert iq["IQ-DB-SCHEMA"].evidence["current"] == iq["IQ-DB-SCHEMA"].evidence["head"]
    assert iq["IQ-DIST-FILES"].evidence["files_checked"] > 100
    assert set(oq) == ALWAYS - set(iq), "every OQ check the matrix relies on is in every pack"
    assert pack.oq.passed, [(c.id, c.observed) for c in pack.oq.checks if not c.passed]
    assert set(pq) == {"PQ-small-fit", "PQ-small-limit"} and pack.pq.passed
    assert pack.pq.workload is not None and pack.pq.workload.runs == 3 and pack.pq.workload.file == "pq.yaml"
    # The PQ's runs are ordinary recorded runs of the instance.
    for run in pq["PQ-small-fit"].evidence["runs"]:
        assert show_run(inst, inst.context(), run["run_id"]).manifest_digest == run["manifest_digest"]
    # Evidence digests are the sha256 of the evidence's canonical JSON: a reader re-derives them.
    for c in [*pack.iq.checks, *pack.oq.checks, *pack.pq.checks]:
        assert c.evidence_digest == json_digest(c.evidence)
    summary = pack.summary
    assert summary.checks == len(iq) + len(oq) + len(pq) and summary.pq_passed is True
    assert summary.failed == pack.iq.failed and summary.qualified_by == "Ada Admin (admin)"
    rows = {r.requirement: r for r in pack.traceability.rows}
    assert rows["P11-10i"].status == "customer procedure" and rows["P11-200b"].status == "not applicable"
    assert rows["P11-300b"].status == "software gap" and summary.requirements_gaps == ["P11-300b"]
    assert rows["P11-70"].status == "met" and rows["P11-70"].evidence == ["OQ-ESIG-TAMPER", "OQ-ESIG-VERIFY"]
    clock_rows = {r.requirement for r in pack.traceability.rows if "IQ-CLOCK" in r.evidence}
    assert set(pack.traceability.not_met) == (set() if iq["IQ-CLOCK"].passed else clock_rows)
    assert summary.passed is (not summary.failed and not pack.traceability.not_met)
    # The data round-trips through JSON (what the report embeds) and the scratch instance is gone.
    assert ValidationPackData.model_validate_json(pack.model_dump_json()) == pack
    assert not list(tmp_path.glob("nsp-oq-*"))


def test_iq_on_each_database(instance: Instance) -> None:
    checks = {c.id: c for c in installation_qualification(instance, shipped_pins(), b"probe\n", "iq-probe-test.txt",
                                                            "product")}
    assert checks["IQ-DB-SCHEMA"].passed and checks["IQ-DB-SCHEMA"].evidence["dialect"] == instance.db.dialect
    assert checks["IQ-STORE"].passed and instance.store.get(checks["IQ-STORE"].evidence["probe_digest"]) == b"probe\n"
    assert checks["IQ-WITNESS"].passed and instance.witness().read("iq-probe-test.txt") == b"probe\n"
    assert checks["IQ-WITNESS"].evidence["log_key_matches"] is True
    assert abs(checks["IQ-CLOCK"].evidence["database_skew_s"]) < 2, checks["IQ-CLOCK"].observed
    server = checks["IQ-DB-SCHEMA"].evidence["server_version"]
    assert server.startswith("SQLite") if instance.db.dialect == "sqlite" else server[0].isdigit()


def fake_distribution(root: Path) -> metadata.Distribution:
    """A real installed-layout distribution: a module and a dist-info whose RECORD hashes it."""
    import base64
    import hashlib

    (root / "fakepkg").mkdir(parents=True)
    module = root / "fakepkg" / "__init__.py"
    module.write_text("VALUE = 1\n")
    info = root / "fakepkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(module.read_bytes()).digest()).rstrip(b"=").decode()
    (info / "RECORD").write_text(f"fakepkg/__init__.py,sha256={digest},10\nfakepkg-1.0.dist-info/RECORD,,\n")
    return metadata.PathDistribution(info)


def test_iq_finds_a_file_that_differs_from_its_record(tmp_path: Path) -> None:
    dist = fake_distribution(tmp_path)
    assert _record_problems(dist) == (1, [])
    (tmp_path / "fakepkg" / "__init__.py").write_text("VALUE = 2\n")
    assert _record_problems(dist) == (1, ["fakepkg/__init__.py: sha256 differs from RECORD"])
    check = check_files({"fakepkg": dist}, ["fakepkg"], 0.0)
    assert not check.passed and check.evidence["problem_count"] == 1 and "1 differ" in check.observed
    (tmp_path / "fakepkg" / "__init__.py").unlink()
    assert _record_problems(dist)[1] == ["fakepkg/__init__.py: missing or unreadable"]


def test_iq_finds_a_version_that_differs_from_its_pin() -> None:
    dists = installed()
    pins = shipped_pins()
    assert check_pins(pins, dists, 0.0).passed
    wrong = Pins(pins.source, pins.digest, {**pins.versions, "numpy": "0.0.1"})
    check = check_pins(wrong, dists, 0.0)
    assert not check.passed and check.evidence["differ"] == {"numpy": {"pinned": "0.0.1",
                                                                       "installed": dists["numpy"].version}}


def test_shipped_pins_are_the_projects_constraints() -> None:
    """The installed package carries the pins; this fails when constraints.txt changes without them."""
    assert pins_main(["--check", str(ROOT / "constraints.txt")]) == 0
    assert shipped_pins().versions == parse_constraints((ROOT / "constraints.txt").read_bytes()).versions
    with pytest.raises(InputError, match="line 2: not an exact pin"):
        parse_constraints(b"numpy==1.0\nscipy>=1\n")


def test_a_golden_value_outside_its_tolerance_fails() -> None:
    case = next(c for c in golden()["cases"] if c["id"] == "OQ-REF-FIT-SMALL")
    assert check_case(case).passed
    q = case["quantities"][0]
    off = {**case, "quantities": [{**q, "expected": q["expected"] * (1 + 3 * q["rel"]) + 2 * q["abs"]}]}
    check = check_case(off)
    assert not check.passed and "outside: poi.value" in check.observed
    assert check.evidence["quantities"][0]["passed"] is False


def test_the_golden_inputs_ship_with_the_package() -> None:
    inputs = shipped_inputs()
    names = {n for c in golden()["cases"] for n in c["inputs"]}
    assert names <= set(inputs)
    src = ROOT / "src" / "nextstat_pro" / "compliance" / "validation" / "data"
    assert inputs["small-workspace"].data == (src / SMALL).read_bytes()
    assert golden()["engine"] == f"nextstat {metadata.version('nextstat')}"


@pytest.mark.parametrize("body, message", [
    ("format: nextstat-pro.pq/1\nproject: default\ntasks: []\n", "tasks: List should have at least 1 item"),
    ("format: other\nproject: default\ntasks: [{name: a, task: fit, inputs: {workspace: ws.json}}]\n", "format"),
    ("format: nextstat-pro.pq/1\nproject: default\ntasks: [{name: a, task: fit, inputs: {workspace: nope.json}}]\n",
     "tasks.a.inputs.workspace: no file"),
    ("format: nextstat-pro.pq/1\nproject: default\ntasks: [{name: a, task: fit, inputs: {workspace: ws.json}, "
     "retries: 3}]\n", "tasks.0.retries: Extra inputs are not permitted"),
    ("format: nextstat-pro.pq/1\nproject: default\ntasks:\n - {name: a, task: fit, inputs: {workspace: ws.json}}\n"
     " - {name: a, task: fit, inputs: {workspace: ws.json}}\n", "task names must be unique: a"),
    ("format: [unclosed\n", "not YAML"),
    ("format: nextstat-pro.pq/1\nproject: nowhere\ntasks: [{name: a, task: fit, inputs: {workspace: ws.json}}]\n",
     "no project named 'nowhere'"),
])
def test_a_bad_workload_is_refused_before_anything_runs(sqlite_instance: Instance, tmp_path: Path, body: str,
                                                         message: str) -> None:
    inst = sqlite_instance
    path = write_workload(tmp_path, body)
    before = runs_count(inst)
    with pytest.raises((InputError, NotFoundError), match=message.replace("[", r"\[")):
        build_validation_pack(inst, inst.context(), path)
    assert runs_count(inst) == before


def test_a_pq_expectation_that_does_not_hold_fails_its_task(sqlite_instance: Instance, tmp_path: Path) -> None:
    inst = sqlite_instance
    path = write_workload(tmp_path, WORKLOAD.replace("value: 0.5145", "value: 0.7").replace("repeat: 2", "repeat: 1")
                          + "  - name: bad-input\n    task: pk-nlme\n    inputs: {workspace: ws.json}\n")
    workload, _ = load_workload(path)
    checks, info = performance_qualification(inst, inst.context(), path)
    by_id = {c.id: c for c in checks}
    assert not by_id["PQ-small-fit"].passed and "poi.value: 0.514" in by_id["PQ-small-fit"].observed
    assert by_id["PQ-small-limit"].passed
    refused = by_id["PQ-bad-input"]
    assert not refused.passed and refused.evidence["runs"][0]["status"] == "refused"
    assert info.tasks == len(workload.tasks) == 3 and info.runs == 3
    assert section("PQ", "Performance qualification", checks, info).failed == ["PQ-small-fit", "PQ-bad-input"]


def test_only_an_instance_admin_builds_a_pack(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    add_user(inst, "eddie", "admin", PASSWORD)  # a project admin is not an instance admin
    with pytest.raises(PermissionDeniedError, match="may not report.validation_pack: needs instance-admin"):
        build_validation_pack(inst, session_for(inst, "eddie", PASSWORD), None)
    with inst.db.read() as s:
        denied = s.scalars(select(AuditEvent.target_id).where(AuditEvent.action == "access.denied")).all()
    assert denied == ["report.validation_pack"]


def synthetic_pack(nasty: str) -> dict[str, Any]:
    """Pack data without running anything: checks made directly, one failing, with HTML-unsafe text."""
    from nextstat_pro.compliance.validation.models import SCHEMA, PackSummary

    iq = [make_check("IQ-PYTHON", "IQ", "Python.", "3.11", "3.11", True, {"python": "3.11"}, 0.0)]
    oq = [make_check(c, "OQ", "What.", "ok", nasty if c == "OQ-INPUT-REFUSED" else "ok", c != "OQ-TAMPER-EDIT",
                     {"id": c}, 0.0) for c in sorted(ALWAYS - {"IQ-PYTHON"})]
    trace = matrix(iq + oq)
    summary = PackSummary(instance_id="i", product="nextstat-pro 0.1.0", engine="nextstat 0.10.1",
                          started_at="2026-12-02T07:00:00.000000Z", finished_at="2026-12-02T07:03:00.000000Z",
                          qualified_by=nasty, iq_passed=True, oq_passed=False, pq_passed=None, passed=False,
                          checks=len(iq) + len(oq), failed=["OQ-TAMPER-EDIT"], requirements_met=0,
                          requirements_procedure=0, requirements_not_met=trace.not_met,
                          requirements_gaps=trace.gaps)
    pack = ValidationPackData(format=SCHEMA, summary=summary, iq=section("IQ", "Installation qualification", iq),
                              oq=section("OQ", "Operational qualification", oq),
                              pq=section("PQ", "Performance qualification", []), traceability=trace)
    return pack.model_dump(mode="json")


def test_the_template_renders_every_section_and_escapes_text(tmp_path: Path) -> None:
    from nextstat_pro.compliance.render import build
    from nextstat_pro.compliance.templates import builtin, render
    from nextstat_pro.signing.keys import load_or_create_keypair

    nasty = 'x <script>alert("pack")</script> & <b>bold</b>'
    data = {**synthetic_pack(nasty), "report_signatures": []}
    template = builtin("validation-pack")
    assert template.manifest["version"] == "1.0.0" and template.kind == "validation-pack"
    header = {"title": "Validation pack", "kind": "validation-pack", "created": data["summary"]["finished_at"],
              "template": template.ref(), "attachments": ["data.json"], "report_id": "r"}
    html = render(template, header, data)
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;pack&#34;)&lt;/script&gt;" in html
    for needle in ("OQ-TAMPER-EDIT", "FAIL", "P11-10e", "AX11-14", "Traceability matrix", "No PQ workload",
                   "software gap", "No password expiry",
                   "Not signed yet", data["oq"]["checks"][0]["evidence_digest"]):
        assert needle in html, needle
    assert render(template, header, data) == html  # deterministic
    keys = load_or_create_keypair(tmp_path / "k.pem", create=True)
    built = build(report_id="r", kind="validation-pack", project="default", title="Validation pack",
                  template=template, data=data, inputs=[], evidence={}, created=data["summary"]["finished_at"],
                  keys=keys)
    pdf = tmp_path / "pack.pdf"
    pdf.write_bytes(built.pdf)
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert "Validation pack" in text and "OQ-TAMPER-EDIT" in text and "not met" in text
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                    str(tmp_path / "page1")], check=True)  # page 1 beside the test's files, to look at
    assert json.loads(built.files["data.json"]) == data
