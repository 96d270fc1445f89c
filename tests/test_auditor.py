"""The auditor: an instance-level role that reads and verifies everything and changes nothing.

Every read operation is tried with an auditor who has no role binding anywhere (each must pass),
and every write (each must be refused, and the refusal audited). The matrix-level check of every
operation is tests/test_rbac.py; these call the services themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from nextstat_pro.audit import service as audit
from nextstat_pro.audit.export import export_bundle
from nextstat_pro.config_service import set_config, show_config
from nextstat_pro.db.models import ApiToken, User
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import ConflictError, PermissionDeniedError
from nextstat_pro.hub import service as hub
from nextstat_pro.identity import auth
from nextstat_pro.identity.resets import approve_reset, reset_password
from nextstat_pro.identity.users import (
    create_user,
    disable_user,
    grant_role,
    list_role_bindings,
    list_users,
    revoke_role,
    set_auditor,
    whoami,
)
from nextstat_pro.instance import Instance
from nextstat_pro.projects import create_project, list_rows
from nextstat_pro.runs import RunRequest, export_run, list_run_rows, read_run, retention, run_task
from nextstat_pro.runs.esignatures import sign_run
from nextstat_pro.scale import coordinator
from nextstat_pro.scale import service as scale

from .audit_helpers import actions_after, last_seq
from .conftest import PASSWORD, shared
from .identity_helpers import add_user, session_for

AUDITOR_PASSWORD = "quality-assurance-42"
WORKSPACE = shared("workspaces", "simple_workspace.json")


def _fit(inst: Instance, project: str = "default") -> str:
    request = RunRequest("fit", project, {}, None, [InputFile.read("workspace", WORKSPACE)])
    return run_task(inst, inst.context(), request).run_id


@pytest.fixture
def setup(sqlite_instance: Instance) -> tuple[Instance, Any, str]:
    inst = sqlite_instance
    admin = inst.context()
    with inst.db.transaction() as s:
        create_project(s, admin, "secret", "no binding for the auditor here")
    create_user(inst, admin, username="quinn", printed_name="Quinn QA", password=AUDITOR_PASSWORD, auditor=True)
    add_user(inst, "eddie", "editor", PASSWORD)
    run_id = _fit(inst, "secret")
    hub.push(inst, admin, "secret", "model", "simple", InputFile.read("workspace", WORKSPACE))
    return inst, session_for(inst, "quinn", AUDITOR_PASSWORD), run_id


def test_the_auditor_reads_and_verifies_everything(setup: tuple[Instance, Any, str], tmp_path: Path) -> None:
    inst, quinn, run_id = setup
    assert {e.project for e in audit.read_events(inst, quinn, audit.EventFilter(), limit=1000)} >= {None, "secret"}
    assert audit.history(inst, quinn, "run", run_id)
    users = {u.username: u for u in list_users(inst, quinn)}
    assert users["quinn"].auditor and not users["eddie"].auditor
    me = whoami(inst, quinn)
    assert me.auditor and not me.instance_admin and me.roles == {"default": None, "secret": None}
    assert [b.username for b in list_role_bindings(inst, quinn, "default")] == ["eddie"]
    with inst.db.transaction() as s:
        assert {p.name for p in list_rows(inst, quinn)} == {"default", "secret"}
        assert [r.run_id for r in list_run_rows(inst, quinn, "secret")] == [run_id]
        assert read_run(s, quinn, run_id).id == run_id
    retention.status(inst, quinn)
    assert audit.verify(inst, quinn).ok
    cp = audit.make_checkpoint(inst, quinn)
    assert [c.size for c in audit.list_checkpoints(inst, quinn)][-1] == cp.size
    assert audit.prove(inst, quinn, "1").event.seq == 1
    assert audit.consistency(inst, quinn, 1 if cp.size == 1 else cp.size, cp.size).checkpoint2 == cp.note
    assert export_bundle(inst, quinn, tmp_path / "bundle").events > 0
    export_run(inst, quinn, run_id, tmp_path / "run")
    assert [d.name for d in hub.list_items(inst, quinn, "secret", "model")] == ["simple"]
    assert show_config(inst, quinn).instance_id == inst.config.instance_id


def _writes(inst: Instance, run_id: str, tmp_path: Path) -> dict[str, Callable[[Any], object]]:
    """Every kind of change, as the auditor would attempt it."""

    def tx(fn: Callable[[Any], object]) -> Callable[[Any], object]:
        def run(ctx: Any) -> object:
            with inst.db.transaction() as s:
                return fn((s, ctx))
        return run

    eddie_token = auth.create_token(inst, session_for(inst, "eddie", PASSWORD), "default", "viewer", "ci",
                                    30).token_id
    reset_password(inst, inst.context(), "eddie", "forgotten")  # awaiting a second admin's approval
    request = RunRequest("fit", "secret", {}, None, [InputFile.read("workspace", WORKSPACE)])
    submit = scale.SubmitRequest("toys", "secret", [InputFile.read("workspace", WORKSPACE)],
                                 params={"n_toys": "2"}, seed=1, shards=1, workers=1)
    job = scale.submit(inst, inst.context(), submit)
    return {
        "config set": lambda c: set_config(inst, c, "checkpoint_interval_s", "5", "try"),
        "user create": lambda c: create_user(inst, c, username="zed", printed_name="Zed", password=PASSWORD),
        "user disable": lambda c: disable_user(inst, c, "eddie", "try"),
        "user reset-password": lambda c: reset_password(inst, c, "eddie", "try"),
        "user approve-reset": lambda c: approve_reset(inst, c, "eddie", "try"),
        "user set-auditor": lambda c: set_auditor(inst, c, "eddie", True, "try"),
        "role grant": lambda c: grant_role(inst, c, "quinn", "secret", "admin", "try"),
        "role revoke": lambda c: revoke_role(inst, c, "eddie", "default", "try"),
        "project create": tx(lambda sc: create_project(sc[0], sc[1], "mine")),
        "token revoke (another's)": lambda c: auth.revoke_token(inst, c, eddie_token, "try"),
        "token create (editor)": lambda c: auth.create_token(inst, c, "secret", "editor", "t", 3),
        "run": lambda c: run_task(inst, c, request),
        "submit": lambda c: scale.submit(inst, c, submit),
        "runs cancel": lambda c: scale.cancel(inst, c, job, "try"),
        "runs resume": lambda c: coordinator.coordinate(inst, c, job),
        "sign": lambda c: sign_run(inst, c, run_id, "review", "looks fine", AUDITOR_PASSWORD),
        "hub push": lambda c: hub.push(inst, c, "secret", "model", "other", InputFile.read("workspace", WORKSPACE)),
        "hub alias": lambda c: hub.set_alias(inst, c, "secret", "model", "simple@1", "production", "try"),
        "retention purge": lambda c: retention.purge(inst, c, [run_id], "try"),
    }


def test_the_auditor_changes_nothing(setup: tuple[Instance, Any, str], tmp_path: Path) -> None:
    inst, quinn, run_id = setup
    writes = _writes(inst, run_id, tmp_path)
    passed = []
    for name, attempt in writes.items():
        before = last_seq(inst)
        try:
            attempt(quinn)
        except PermissionDeniedError:
            assert actions_after(inst, before) == ["access.denied"], name
        else:
            passed.append(name)
    assert passed == []


def test_granting_and_revoking_the_auditor_role_is_audited(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    add_user(inst, "vera", "viewer", PASSWORD)
    vera = session_for(inst, "vera", PASSWORD)
    with pytest.raises(PermissionDeniedError):
        audit.read_events(inst, vera, audit.EventFilter())
    admin = inst.context()
    before = last_seq(inst)
    assert set_auditor(inst, admin, "vera", True, "QA lead").auditor
    with pytest.raises(ConflictError):
        set_auditor(inst, admin, "vera", True, "again")
    assert actions_after(inst, before) == ["auditor.granted"]
    vera = session_for(inst, "vera", PASSWORD)  # a new session sees the role
    assert audit.read_events(inst, vera, audit.EventFilter())
    set_auditor(inst, admin, "vera", False, "left QA")
    vera = session_for(inst, "vera", PASSWORD)
    with pytest.raises(PermissionDeniedError):
        audit.read_events(inst, vera, audit.EventFilter())
    with inst.db.transaction() as s:
        user = s.scalar(select(User).where(User.username == "vera"))
        assert user is not None and not user.is_auditor
        assert s.scalar(select(ApiToken.id).where(ApiToken.user_id == user.id)) is not None


def test_auditor_through_the_cli(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    h = ["--home", str(home)]
    assert cli(*h, "user", "create", "quinn", "--printed-name", "Quinn QA", "--auditor",
               env={"NSP_NEW_PASSWORD": AUDITOR_PASSWORD}).code == 0
    rows = json.loads(cli(*h, "user", "list", "--json").out)
    assert [r["auditor"] for r in rows if r["username"] == "quinn"] == [True]
    assert cli(*h, "login", "-u", "quinn", env={"NSP_PASSWORD": AUDITOR_PASSWORD}).code == 0
    me = json.loads(cli(*h, "whoami", "--json").out)
    assert me["auditor"] is True and me["credential"] == "session" and me["token_role"] is None
    assert cli(*h, "audit", "log", "--json").code == 0
    assert cli(*h, "config", "show").code == 0
    r = cli(*h, "config", "set", "checkpoint_interval_s", "5", "--reason", "try")
    assert r.code == 6 and "may not instance.configure" in r.err
    r = cli(*h, "user", "set-auditor", "quinn", "--revoke", "--reason", "try")
    assert r.code == 6 and "may not user.set_auditor" in r.err
