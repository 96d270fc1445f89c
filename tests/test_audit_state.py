"""`audit verify` re-derives the state tables from the sealed log and names the first row that
differs (issue 14, attack 3: state outside the log). Each attack is an insider's raw SQL with the
guards off, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from nextstat_pro.audit import service as audit_service
from nextstat_pro.audit.events import append_event
from nextstat_pro.audit.state import check_state
from nextstat_pro.db.models import HubVersion, Project, RunArtifact, User
from nextstat_pro.db.types import utcnow
from nextstat_pro.engine import InputFile
from nextstat_pro.examples import histfactory_workspace
from nextstat_pro.hub import service as hub
from nextstat_pro.identity.users import disable_user, grant_role, set_auditor
from nextstat_pro.instance import Instance
from nextstat_pro.runs import RunRequest, run_task
from nextstat_pro.runs.esignatures import sign_run
from nextstat_pro.runs.manifest import FileEntry
from nextstat_pro.runs.records import create_run, finish

from .conftest import shared
from .identity_helpers import add_user, session_for
from .test_audit_witnessing import guards_off
from .test_hub import ws_file
from .test_run_export_events import fit

RITA, EVE, OLD = "rita-password-1", "eve-password-12", "old-password-12"


def session_of_work(inst: Instance) -> dict[str, str]:
    """Users, roles (granted, changed, revoked), an auditor, a disabled user, runs by two people,
    two hub versions with an alias moved between them, and a signature."""
    admin = inst.context()
    add_user(inst, "rita", "editor", RITA)
    add_user(inst, "eve", "viewer", EVE)
    add_user(inst, "old", "viewer", OLD)
    grant_role(inst, admin, "eve", "default", "editor", "needs to run fits")
    set_auditor(inst, admin, "old", True, "reviews the trail")
    disable_user(inst, admin, "old", "left the team")
    run_id = fit(inst)
    rita = session_for(inst, "rita", RITA)
    hub.push(inst, rita, "default", "model", "example", ws_file(), "1.0.0")
    hub.push(inst, admin, "default", "model", "example", ws_file(_other_workspace()), "1.1.0")
    hub.set_alias(inst, admin, "default", "model", "example@1.0.0", "candidate", "first look")
    hub.set_alias(inst, admin, "default", "model", "example@1.1.0", "candidate", "newer")
    sign_run(inst, rita, run_id, "review", "inputs checked", RITA, "rita")
    eve = session_for(inst, "eve", EVE)  # a second author
    eve_run = run_task(inst, eve, RunRequest("fit", "default", {}, None, [
        InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))])).run_id
    return {"run": run_id, "eve_run": eve_run}


def _other_workspace() -> dict:  # type: ignore[type-arg]
    doc = histfactory_workspace()
    doc["channels"][0]["samples"][0]["data"] = [x + 1 for x in doc["channels"][0]["samples"][0]["data"]]
    return doc


def tamper(inst: Instance, edit: Callable[[Session], object]) -> None:
    with inst.db.transaction() as s:
        guards_off(s)
        edit(s)


def user_id(s: Session, name: str) -> str:
    found = s.scalar(select(User.id).where(User.username == name))
    assert found is not None
    return found


def test_a_clean_instance_after_a_session_of_work_verifies(instance: Instance) -> None:
    session_of_work(instance)
    report = audit_service.verify(instance, instance.context())
    assert report.ok and report.state_checked and report.state_difference is None, report
    assert report.state_rows["users"] == 4 and report.state_rows["signatures"] == 1
    assert report.state_rows["runs"] == 2 and report.state_rows["hub_versions"] == 2
    assert report.state_rows["hub_aliases"] == 1 and report.state_rows["role_bindings"] == 3
    assert report.state_rows["run_artifacts"] > 0 and report.state_rows["user_keys"] == 4
    skipped = audit_service.verify(instance, instance.context(), state=False)
    assert skipped.ok and not skipped.state_checked and skipped.state_rows == {}


def _hub_digest(s: Session, ids: dict[str, str]) -> None:
    version = s.scalars(select(HubVersion).order_by(HubVersion.semver)).first()
    assert version is not None
    s.execute(text("UPDATE hub_versions SET digest = :d WHERE id = :id"), {"d": "sha256:" + "e" * 64, "id": version.id})


def _created_by(s: Session, ids: dict[str, str]) -> None:
    s.execute(text("UPDATE runs SET created_by = :u WHERE id = :id"), {"u": user_id(s, "rita"), "id": ids["eve_run"]})


def _admin_flag(s: Session, ids: dict[str, str]) -> None:
    s.execute(text("UPDATE users SET is_instance_admin = :t WHERE username = 'eve'"), {"t": True})


def _binding_inserted(s: Session, ids: dict[str, str]) -> None:
    project = s.scalar(select(Project.id).where(Project.name == "default"))
    s.execute(text("INSERT INTO role_bindings (user_id, project_id, role, created_at) VALUES (:u, :p, 'admin', "
                   "'2026-01-01T00:00:00.000000Z')"), {"u": user_id(s, "admin"), "p": project})


def _binding_changed(s: Session, ids: dict[str, str]) -> None:
    s.execute(text("UPDATE role_bindings SET role = 'admin' WHERE user_id = :u"), {"u": user_id(s, "rita")})


def _artifact_digest(s: Session, ids: dict[str, str]) -> None:
    artifact = s.scalars(select(RunArtifact).where(RunArtifact.run_id == ids["run"])).first()
    assert artifact is not None
    s.execute(text("UPDATE run_artifacts SET digest = :d WHERE id = :id"), {"d": "sha256:" + "f" * 64,
                                                                             "id": artifact.id})


def _forged_signature(s: Session, ids: dict[str, str]) -> None:
    """An insider's own Ed25519 key registered for Eve, and an approval by it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    eve, key_id = user_id(s, "eve"), "k" * 64
    s.execute(text("INSERT INTO user_keys (key_id, user_id, public_key, encrypted_private, created_at, "
                   "after_admin_reset) VALUES (:k, :u, :p, 'x', '2026-01-01T00:00:00.000000Z', :f)"),
              {"k": key_id, "u": eve, "p": public, "f": False})
    s.execute(text("INSERT INTO signatures (id, run_id, user_id, meaning, decision, payload, key_id, signature, "
                   "signed_at) VALUES ('forged-signature', :r, :u, 'approval', 'approve', '{}', :k, 'AA==', "
                   "'2026-01-01T00:00:00.000000Z')"), {"r": ids["run"], "u": eve, "k": key_id})


def _printed_name(s: Session, ids: dict[str, str]) -> None:
    s.execute(text("UPDATE users SET printed_name = 'Ada Admin' WHERE username = 'rita'"))


def _key_mark(s: Session, ids: dict[str, str]) -> None:
    s.execute(text("UPDATE user_keys SET after_admin_reset = NOT after_admin_reset WHERE user_id = :u"),
              {"u": user_id(s, "rita")})


def _key_retired(s: Session, ids: dict[str, str]) -> None:
    s.execute(text("UPDATE user_keys SET retired_at = '2026-01-01T00:00:00.000000Z' WHERE user_id = :u"),
              {"u": user_id(s, "eve")})


ATTACKS = {
    "hub version digest": (_hub_digest, "hub_versions", "digest"),
    "runs.created_by": (_created_by, "runs", "created_by"),
    "users.is_instance_admin": (_admin_flag, "users", "is_instance_admin"),
    "role binding inserted": (_binding_inserted, "role_bindings", "(row)"),
    "role binding changed": (_binding_changed, "role_bindings", "role"),
    "run_artifacts.digest": (_artifact_digest, "run_artifacts", "digest"),
    "forged signature": (_forged_signature, "signatures", "(row)"),
    "users.printed_name": (_printed_name, "users", "printed_name"),
    "user_keys.after_admin_reset": (_key_mark, "user_keys", "after_admin_reset"),
    "user_keys.retired_at": (_key_retired, "user_keys", "retired"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_each_insider_edit_of_a_state_table_is_named(instance: Instance, attack: str) -> None:
    ids = session_of_work(instance)
    assert audit_service.verify(instance, instance.context()).ok
    edit, table, column = ATTACKS[attack]
    tamper(instance, lambda s: edit(s, ids))
    report = audit_service.verify(instance, instance.context())
    diff = report.state_difference
    assert not report.ok and report.problem is None and diff is not None
    assert (diff.table, diff.column) == (table, column), diff
    if attack == "runs.created_by":
        assert ids["eve_run"] in diff.key
    # The log itself is intact: only the state part notices.
    assert audit_service.verify(instance, instance.context(), state=False).ok


def test_a_forged_key_alone_is_named(instance: Instance) -> None:
    ids = session_of_work(instance)

    def key_only(s: Session) -> None:
        _forged_signature(s, ids)
        s.execute(text("DELETE FROM signatures WHERE id = 'forged-signature'"))

    tamper(instance, key_only)
    diff = audit_service.verify(instance, instance.context()).state_difference
    assert diff is not None and (diff.table, diff.key, diff.column) == ("user_keys", "key_id=" + '"' + "k" * 64 + '"',
                                                                        "(row)")


def test_events_older_than_a_field_are_tolerated_with_a_warning(instance: Instance) -> None:
    """A sealed run.signed event written before signature_id existed names no row: the check
    skips it and says so, rather than failing every old instance."""
    run_id = fit(instance)
    with instance.db.transaction() as s:
        append_event(s, instance.context(), action="run.signed", target=("run", run_id), project="default",
                     after={"meaning": "review", "decision": "approve"}, reason="signed before signature_id")
    report = audit_service.verify(instance, instance.context())
    assert report.ok, report.state_difference
    assert any("run.signed signature_id" in w for w in report.warnings), report.warnings


def test_a_deleted_row_is_named_as_missing(instance: Instance) -> None:
    session_of_work(instance)
    tamper(instance, lambda s: s.execute(text("DELETE FROM hub_aliases")))
    diff = audit_service.verify(instance, instance.context()).state_difference
    assert diff is not None and (diff.table, diff.column, diff.found) == ("hub_aliases", "(row)", "missing")


def test_cli_exits_7_with_one_line_naming_the_row(home: Path, cli) -> None:  # type: ignore[no-untyped-def]
    inst = Instance.open(home)
    try:
        tamper(inst, lambda s: s.execute(text("UPDATE users SET is_auditor = :t"), {"t": True}))
        with inst.db.transaction() as s:
            admin = user_id(s, "admin")
    finally:
        inst.close()
    r = cli("--home", str(home), "audit", "verify")
    assert r.code == 7
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and f"users row id=\"{admin}\": is_auditor is true" in lines[0], r.err
    assert cli("--home", str(home), "audit", "verify", "--no-state").code == 0


def test_state_check_time_on_2000_runs(instance: Instance) -> None:
    """~2,000 runs recorded as the service records them (events and rows in one transaction),
    then the state check timed; the figure is printed for the report."""
    inst = instance
    ctx = inst.context()
    with inst.db.transaction() as s:
        project = s.scalar(select(Project).where(Project.name == "default"))
        assert project is not None
        for i in range(2000):
            run = create_run(s, ctx, project, "fit", {"i": i}, i, [], start=True)
            finish(s, ctx, run.run_id, "default", "succeeded", at=utcnow(), error=None,
                   outputs=[FileEntry("result.json", "sha256:" + f"{i:064x}", 10, media_type="application/json")],
                   digests={"manifest_digest": "sha256:" + f"{i + 1:064x}",
                            "envelope_digest": "sha256:" + f"{i + 2:064x}"}, fit_ok=True)
    with inst.db.transaction() as s:
        start = time.perf_counter()
        report = check_state(s)
        took = time.perf_counter() - start
        assert report.ok, report.finding
        assert report.rows["runs"] == 2000 and report.rows["run_artifacts"] == 2000
    rows = sum(report.rows.values())
    print(f"\nstate check ({inst.db.dialect}) over {report.events} events, {rows} rows: {took:.3f} s")
    assert took < 10


def test_config_json_is_re_derived_from_init_and_its_audited_changes(instance: Instance) -> None:
    """The approval policy and the other settable keys: a change through `config set` verifies, a
    hand edit of config.json (say, a loosened approval policy) is named."""
    from nextstat_pro.config import load_config, write_config
    from nextstat_pro.config_service import set_config

    ctx = instance.context()
    set_config(instance, ctx, "approval", '{"default": {"approver_role": "editor", "approvers": ["qa"]}}',
               "QA approves in the default project")
    set_config(instance, ctx, "smtp", '{"host": "mail.example.org", "from_address": "nsp@example.org"}',
               "mail for resets")
    set_config(instance, ctx, "smtp.port", "2525", "the relay's port")
    set_config(instance, ctx, "run_lease_s", "45", "slow database")
    assert audit_service.verify(instance, ctx).ok
    edited = load_config(instance.home).model_copy(update={"approval": {}})  # the policy back to "any admin"
    write_config(instance.home, edited)
    reopened = Instance.open(instance.home)
    try:
        report = audit_service.verify(reopened, reopened.context())
    finally:
        reopened.close()
    assert not report.ok and report.state_difference is not None
    assert (report.state_difference.table, report.state_difference.key) == ("config.json", "key='approval'")
    assert "approver_role" in report.state_difference.expected and report.state_difference.found == "{}"
