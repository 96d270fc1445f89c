"""Checkpoints, inclusion and consistency proofs, bundles: verified offline, tampering rejected."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from nextstat_pro.audit.export import export_bundle
from nextstat_pro.audit.service import consistency, make_checkpoint, prove, verify
from nextstat_pro.audit.witness import checkpoint_name
from nextstat_pro.db.models import AuditEvent, User
from nextstat_pro.errors import NotFoundError
from nextstat_pro.instance import Instance
from nextstat_pro.projects import create_project
from nextstat_pro.verify.bundle import verify_bundle
from nextstat_pro.verify.proofs import ProofVerificationError, trusted_key, verify_document

from .conftest import INIT_ACTIONS

INIT = len(INIT_ACTIONS)


def grow(inst: Instance, n: int, prefix: str = "g") -> None:
    ctx = inst.context()
    for i in range(n):
        with inst.db.transaction() as s:
            create_project(s, ctx, f"{prefix}{i}")


def key_of(inst: Instance) -> str:
    return (inst.home / "witness" / "log.pub").read_text()


def test_checkpoints_are_stored_and_witnessed(instance: Instance) -> None:
    cp = make_checkpoint(instance, instance.context())
    assert cp.size == INIT
    assert (instance.home / "witness" / checkpoint_name(INIT)).read_text() == cp.note
    assert make_checkpoint(instance, instance.context()).size == INIT  # nothing new: the same checkpoint
    grow(instance, 5)
    assert make_checkpoint(instance, instance.context()).size == INIT + 5


def test_inclusion_proof_verifies_offline_and_tampering_fails(instance: Instance) -> None:
    grow(instance, 9)
    doc = json.loads(prove(instance, instance.context(), str(INIT + 1)).model_dump_json())
    key = trusted_key(doc["log_key"], key_of(instance))
    assert f"event {INIT + 1}" in verify_document(doc, key)
    for mutate in (
        lambda d: d["event"].__setitem__("action", "project.deleted"),
        lambda d: d.__setitem__("leaf_index", 5),
        lambda d: d["proof"].__setitem__(0, d["proof"][1]),
        lambda d: d.__setitem__("checkpoint", d["checkpoint"].replace(f"\n{INIT + 9}\n", f"\n{INIT + 10}\n")),
        lambda d: d["proof"].pop(),
    ):
        bad = copy.deepcopy(doc)
        mutate(bad)
        with pytest.raises(ProofVerificationError):
            verify_document(bad, key)


def test_proof_with_another_key_is_refused(instance: Instance, tmp_path: Path) -> None:
    doc = prove(instance, instance.context(), "1").model_dump(mode="json")
    from nextstat_pro.instance import init_instance

    other = init_instance(tmp_path / "other", admin="admin", password="another-password-1")
    with pytest.raises(ProofVerificationError):
        verify_document(doc, trusted_key(None, key_of(other)))
    with pytest.raises(ProofVerificationError, match="another log key"):
        trusted_key(doc["log_key"], key_of(other))
    other.close()


def test_consistency_between_checkpoints(instance: Instance) -> None:
    first = make_checkpoint(instance, instance.context()).size
    grow(instance, 11)
    second = make_checkpoint(instance, instance.context()).size
    doc = consistency(instance, instance.context(), first, second).model_dump(mode="json")
    assert "extends" in verify_document(doc, trusted_key(None, key_of(instance)))
    doc["checkpoint1"], doc["checkpoint2"] = doc["checkpoint2"], doc["checkpoint1"]
    with pytest.raises(ProofVerificationError):
        verify_document(doc, trusted_key(None, key_of(instance)))
    with pytest.raises(NotFoundError, match="no checkpoint at tree size 5"):
        consistency(instance, instance.context(), 5, second)


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_bundle_round_trip_and_tampering(sqlite_instance: Instance, tmp_path: Path, fmt: str) -> None:
    grow(sqlite_instance, 6)
    ctx = sqlite_instance.context()
    summary = export_bundle(sqlite_instance, ctx, tmp_path / "b", fmt)  # type: ignore[arg-type]
    assert summary.events == INIT + 6
    assert f"{INIT + 6} events verified" in verify_bundle(tmp_path / "b", key_of(sqlite_instance))
    events = (tmp_path / "b" / "events.jsonl").read_text().replace('"g3"', '"g9"')
    (tmp_path / "b" / "events.jsonl").write_text(events)
    with pytest.raises(ProofVerificationError):
        verify_bundle(tmp_path / "b", key_of(sqlite_instance))
    assert verify(sqlite_instance, sqlite_instance.context()).ok


def test_csv_bundle_opens_as_one_row_per_event(sqlite_instance: Instance, tmp_path: Path) -> None:
    import csv

    export_bundle(sqlite_instance, sqlite_instance.context(), tmp_path / "b", "csv")
    with (tmp_path / "b" / "events.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["action"] for r in rows] == INIT_ACTIONS
    assert json.loads(rows[3]["after"]) == {"name": "default", "description": "Default project created by init"}


def test_proofs_are_scoped_to_what_the_caller_may_read(instance: Instance) -> None:
    """A signed-in user with no role proved every project's events (the whole event document:
    actor, target, reason, before/after). Now: a project's events to its viewers, instance events
    to their subject and instance admins; everything else answers as a missing event does."""
    from .identity_helpers import add_user, session_for

    password = "nobody-has-this-role-7"
    add_user(instance, "nora", None, password)  # no role anywhere
    add_user(instance, "vic", "viewer", password)  # viewer of "default"
    with instance.db.transaction() as s:
        create_project(s, instance.context(), "secret-project", "only admins")
    with instance.db.transaction() as s:
        rows = {r.project: r.seq for r in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))
                if r.project in ("default", "secret-project")}
        nora_id = s.scalar(select(User.id).where(User.username == "nora"))
        about_nora = s.scalar(select(AuditEvent.seq).where(AuditEvent.target_id == nora_id))
        admin_only = s.scalar(select(AuditEvent.seq).where(AuditEvent.project.is_(None),
                                                            AuditEvent.target_id != nora_id).limit(1))
    nora, vic = session_for(instance, "nora", password), session_for(instance, "vic", password)
    missing = str(10**9)

    def refusal(ctx: Any, ref: str) -> str:
        with pytest.raises(NotFoundError) as info:
            prove(instance, ctx, ref)
        return str(info.value).replace(ref, "REF")

    expected = refusal(nora, missing)
    # nora: no project events, no other instance events; the refusal is the missing event's, word for word.
    for seq in (rows["default"], rows["secret-project"], admin_only):
        assert refusal(nora, str(seq)) == expected
    assert prove(instance, nora, str(about_nora)).event.seq == about_nora  # her own account's event
    # vic: his project's events, not another project's.
    assert prove(instance, vic, str(rows["default"])).event.seq == rows["default"]
    assert refusal(vic, str(rows["secret-project"])) == expected
    # The instance admin proves anything.
    assert prove(instance, instance.context(), str(rows["secret-project"])).event.seq == rows["secret-project"]
