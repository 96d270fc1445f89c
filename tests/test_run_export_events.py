"""A run's export holds every audit event of the run and of its artifacts, each with its
inclusion proof, and `verify` notices one left out (issue 13, part 3)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, or_, select

from nextstat_pro.audit import tree
from nextstat_pro.audit.events import append_event
from nextstat_pro.audit.service import EventFilter, make_checkpoint, query_events
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import IntegrityError
from nextstat_pro.instance import Instance
from nextstat_pro.runs import RunRequest, export_run, get_run, read_manifest, run_task
from nextstat_pro.runs.esignatures import sign_run
from nextstat_pro.scale import SubmitRequest, coordinate, submit
from nextstat_pro.verify import VerificationError, verify_run_folder
from nextstat_pro.verify.merkle import verify_inclusion
from nextstat_pro.verify.note import Verifier, open_checkpoint
from nextstat_pro.verify.proofs import event_leaf

from .conftest import shared
from .identity_helpers import add_user, session_for

RITA = "rita-password-1"


def fit(inst: Instance) -> str:
    req = RunRequest("fit", "default", {}, None,
                     [InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))])
    return run_task(inst, inst.context(), req).run_id


def lines(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


def write_lines(folder: Path, name: str, rows: list[dict[str, Any]]) -> None:
    (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def resum(folder: Path) -> None:
    """Rewrite SHA256SUMS after an edit, as someone hiding the edit would."""
    names = [line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines()]
    (folder / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names))


def drop_event(folder: Path, keep: Any) -> None:
    write_lines(folder, "audit/events.jsonl", [e for e in lines(folder, "audit/events.jsonl") if keep(e)])
    resum(folder)


def expected_seqs(inst: Instance, run_id: str, manifest: dict[str, Any], folder: Path) -> list[int]:
    """The seqs an export must hold, found by a query independent of the exporter's: all up to
    its checkpoint (the export's own run.exported event comes after)."""
    size = open_checkpoint((folder / "audit/checkpoint.note").read_text(),
                           Verifier.parse((folder / "audit/log.pub").read_text())).size
    digests = [e["digest"] for e in [*manifest["outputs"], *manifest["inputs"]]]
    with inst.db.transaction() as s:
        rows = s.scalars(select(AuditEvent).where(or_(
            AuditEvent.target_id == run_id,
            (AuditEvent.target_type == "artifact") & AuditEvent.target_id.in_(digests)), AuditEvent.seq <= size)
            .order_by(AuditEvent.seq))
        out = []
        for row in rows:
            body = json.loads(row.body)
            owners = {side["run_id"] for side in (body["before"], body["after"])
                      if isinstance(side, dict) and "run_id" in side}
            if row.target_type == "run" or not owners or run_id in owners:
                out.append(row.seq)
        return out


def check_every_proof(folder: Path) -> int:
    """Each exported event is in the exported checkpoint, checked here without verify_run_folder."""
    cp = open_checkpoint((folder / "audit/checkpoint.note").read_text(),
                         Verifier.parse((folder / "audit/log.pub").read_text()))
    proofs = {p["seq"]: [base64.b64decode(h) for h in p["proof"]] for p in lines(folder, "audit/proofs.jsonl")}
    events = lines(folder, "audit/events.jsonl")
    for e in events:
        verify_inclusion(e["seq"] - 1, cp.size, event_leaf(e), proofs[e["seq"]], cp.root)
    assert sorted(proofs) == [e["seq"] for e in events]
    return len(events)


@pytest.fixture
def signed_export(instance: Instance, tmp_path: Path) -> tuple[Instance, str, Path]:
    """A fit reviewed by Rita, exported (the admin ran it; Rita may review it)."""
    add_user(instance, "rita", "editor", RITA)
    run_id = fit(instance)
    sign_run(instance, session_for(instance, "rita", RITA), run_id, "review", "inputs checked", RITA, "rita")
    return instance, run_id, export_run(instance, instance.context(), run_id, tmp_path / "export")


def test_export_holds_artifacts_signatures_and_every_proof(signed_export: tuple[Instance, str, Path],
                                                           tmp_path: Path) -> None:
    inst, run_id, dest = signed_export
    manifest = json.loads((dest / "manifest.json").read_bytes())
    events = lines(dest, "audit/events.jsonl")
    stored = {e["target"]["id"]: e for e in events if e["action"] == "artifact.stored"}
    assert sorted(stored) == sorted(o["digest"] for o in manifest["outputs"])
    assert all(e["after"]["run_id"] == run_id for e in stored.values())
    created = next(e for e in events if e["action"] == "run.created")
    assert [i["digest"] for i in created["after"]["inputs"]] == [i["digest"] for i in manifest["inputs"]]
    signatures = json.loads((dest / "signatures.json").read_text())
    assert [e["after"]["signature_id"] for e in events if e["action"] == "run.signed"] == [signatures[0]["id"]]
    assert [e["action"] for e in events if e["target"]["type"] == "run"] == [
        "run.created", "run.started", "run.succeeded", "run.signed"]
    assert [e["seq"] for e in events] == expected_seqs(inst, run_id, manifest, dest)
    assert check_every_proof(dest) == len(events)
    assert verify_run_folder(dest).events == len(events)

    # A later export holds the earlier one's run.exported event too, proven like the rest.
    again = export_run(inst, inst.context(), run_id, tmp_path / "again")
    actions = [e["action"] for e in lines(again, "audit/events.jsonl")]
    assert actions.count("run.exported") == 1 and len(actions) == len(events) + 1
    assert check_every_proof(again) == len(actions)
    verify_run_folder(again)


def test_jobs_sharing_an_output_export_only_their_own_events(instance: Instance, tmp_path: Path) -> None:
    """Two jobs with the same seed merge byte-identical results: the same digest, so the same
    artifact target, stored by each run. Each export holds only its own artifact.stored."""
    ctx = instance.context()
    req = SubmitRequest("toys", "default", [InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))],
                        params={"n_toys": "2"}, seed=7, shards=1, workers=1)
    runs = [submit(instance, ctx, req), submit(instance, ctx, req)]
    assert [coordinate(instance, ctx, r) for r in runs] == ["succeeded", "succeeded"]
    folders = [export_run(instance, ctx, r, tmp_path / r) for r in runs]
    manifests = [json.loads((f / "manifest.json").read_bytes()) for f in folders]
    results = [next(o["digest"] for o in m["outputs"] if o["name"] == "result.json") for m in manifests]
    assert results[0] == results[1]
    with instance.db.transaction() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.action == "artifact.stored",
                                                   AuditEvent.target_id == results[0])) == 2
    for run_id, folder, manifest in zip(runs, folders, manifests, strict=True):
        events = lines(folder, "audit/events.jsonl")
        shared_stored = [e for e in events if e["target"]["id"] == results[0]]
        assert [e["after"]["run_id"] for e in shared_stored] == [run_id]
        assert {"job.submitted", "job.shard_done", "job.collected"} <= {e["action"] for e in events}
        assert [e["seq"] for e in events] == expected_seqs(instance, run_id, manifest, folder)
        check_every_proof(folder)
        verify_run_folder(folder)

    # The other run's artifact.stored slipped into the first export (sums fixed) is refused.
    other = next(json.loads(line) for line in (folders[1] / "audit/events.jsonl").read_text().splitlines()
                 if json.loads(line)["target"]["id"] == results[0])
    write_lines(folders[0], "audit/events.jsonl", [*lines(folders[0], "audit/events.jsonl"), other])
    resum(folders[0])
    with pytest.raises(VerificationError, match=f"audit event {other['seq']} is about another record"):
        verify_run_folder(folders[0])


def test_runs_sharing_an_input_take_only_their_own_input_events(instance: Instance, tmp_path: Path) -> None:
    """The instance records an input in run.created, not as artifact.stored; an artifact event
    on a shared input digest belongs to the run it names, or to every run holding those bytes
    when it names none (docs/identity.md)."""
    a, b = fit(instance), fit(instance)
    ctx = instance.context()
    with instance.db.transaction() as s:
        manifest_digest = get_run(s, a).manifest_digest
    assert manifest_digest is not None
    digest = read_manifest(instance, manifest_digest)["inputs"][0]["digest"]
    with instance.db.transaction() as s:
        mine = append_event(s, ctx, action="artifact.stored", target=("artifact", digest), project="default",
                            after={"run_id": a, "name": "simple_workspace.json", "digest": digest, "role": "workspace"})
        anyones = append_event(s, ctx, action="artifact.stored", target=("artifact", digest), project="default",
                               after={"name": "simple_workspace.json", "digest": digest})
    got = {}
    for run_id in (a, b):
        folder = export_run(instance, ctx, run_id, tmp_path / run_id)
        got[run_id] = [e["seq"] for e in lines(folder, "audit/events.jsonl") if e["target"]["type"] == "artifact"
                       and e["target"]["id"] == digest]
        verify_run_folder(folder)
    assert got == {a: [mine.seq, anyones.seq], b: [anyones.seq]}


@pytest.mark.parametrize(("leave_out", "message"), [
    (lambda e: e["action"] == "artifact.stored" and e["after"]["name"] == "result.json",
     r"outputs/result\.json \(sha256:[0-9a-f]{64}\): its artifact\.stored audit event is missing"),
    (lambda e: e["action"] == "artifact.stored" and e["after"]["name"] == "run.log",
     r"outputs/run\.log \(sha256:[0-9a-f]{64}\): its artifact\.stored audit event is missing"),
    (lambda e: e["action"] == "run.created", "run.created audit event is missing"),
    (lambda e: e["action"] == "run.started", "run.started audit event is missing"),
    (lambda e: e["action"] == "run.succeeded", "run.succeeded audit event .* is missing"),
    (lambda e: e["action"] == "run.signed", "signature .*: its run.signed audit event is missing"),
])
def test_a_deleted_event_line_is_named(signed_export: tuple[Instance, str, Path], tmp_path: Path,
                                       leave_out: Any, message: str) -> None:
    _, _, dest = signed_export
    copy = Path(shutil.copytree(dest, tmp_path / "copy"))
    drop_event(copy, lambda e: not leave_out(e))
    with pytest.raises(VerificationError, match=message):
        verify_run_folder(copy)


def test_a_missing_or_wrong_proof_is_named(signed_export: tuple[Instance, str, Path], tmp_path: Path) -> None:
    _, _, dest = signed_export
    seq = next(e["seq"] for e in lines(dest, "audit/events.jsonl") if e["action"] == "artifact.stored")
    missing = Path(shutil.copytree(dest, tmp_path / "missing"))
    write_lines(missing, "audit/proofs.jsonl", [p for p in lines(missing, "audit/proofs.jsonl") if p["seq"] != seq])
    resum(missing)
    with pytest.raises(VerificationError, match=f"audit event {seq} \\(artifact.stored\\) has no inclusion proof"):
        verify_run_folder(missing)

    wrong = Path(shutil.copytree(dest, tmp_path / "wrong"))
    proofs = lines(wrong, "audit/proofs.jsonl")
    target = next(p for p in proofs if p["seq"] == seq)
    target["proof"][0] = base64.b64encode(bytes(32)).decode()
    write_lines(wrong, "audit/proofs.jsonl", proofs)
    resum(wrong)
    with pytest.raises(VerificationError, match=f"audit event {seq}: "):
        verify_run_folder(wrong)

    twice = Path(shutil.copytree(dest, tmp_path / "twice"))
    events = lines(twice, "audit/events.jsonl")
    write_lines(twice, "audit/events.jsonl", [*events, events[0]])
    resum(twice)
    with pytest.raises(VerificationError, match=f"audit event {events[0]['seq']} appears twice"):
        verify_run_folder(twice)


def test_an_event_past_the_checkpoint_fails_the_export_loudly(instance: Instance, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the checkpoint to predate some of the run's events, the export must refuse, not
    leave them out (the old export filtered them away silently)."""
    stale = make_checkpoint(instance, instance.context())
    run_id = fit(instance)
    import nextstat_pro.runs.export as export_module

    monkeypatch.setattr(export_module, "checkpoint_in",
                        lambda _inst, session: tree.get_checkpoint(session, stale.size))
    with pytest.raises(IntegrityError, match=f"of run {run_id} is not covered by the checkpoint at tree size "
                                             f"{stale.size}"):
        export_run(instance, instance.context(), run_id, tmp_path / "export")
    assert not (tmp_path / "export").exists()
    with instance.db.transaction() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.action == "run.exported")) == 0


def test_targets_filter_is_one_query_over_several_targets(instance: Instance) -> None:
    a, b = fit(instance), fit(instance)
    with instance.db.transaction() as s:
        both = query_events(s, EventFilter(targets=(("run", a), ("run", b))), limit=1000)
        assert {e["target"]["id"] for e in both} == {a, b}
        assert [e["seq"] for e in both] == sorted(e["seq"] for e in both)
        only_a = query_events(s, EventFilter(targets=(("run", a), ("artifact", a))), limit=1000)
        assert {e["target"]["id"] for e in only_a} == {a}
        assert query_events(s, EventFilter(targets=()), limit=1000) == []
        assert query_events(s, EventFilter(targets=(("run", a),), action="run.succeeded"))[0]["target"]["id"] == a
