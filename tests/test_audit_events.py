"""Every service operation appends exactly its events, in the transaction of the change."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from nextstat_pro.audit.events import append_event, batched_appends
from nextstat_pro.audit.export import export_bundle
from nextstat_pro.audit.records import query_events
from nextstat_pro.audit.service import EventFilter, history, make_checkpoint, verify
from nextstat_pro.config_service import set_config
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import ConfigError, NSPError, UsageError
from nextstat_pro.hub.service import PushRequest, push_many
from nextstat_pro.identity.users import create_user
from nextstat_pro.instance import Instance
from nextstat_pro.projects import create_project
from nextstat_pro.runs import RunRequest, export_run, retention, run_task

from .audit_helpers import actions_after, last_seq
from .conftest import INIT_ACTIONS, PASSWORD, shared

INIT = len(INIT_ACTIONS)

ROOT = Path(__file__).resolve().parents[1]


def simple_request(task: str = "fit", name: str = "simple_workspace.json") -> RunRequest:
    return RunRequest(task, "default", {}, None, [InputFile.read("workspace", shared("workspaces", name))])


def test_every_operation_has_exactly_its_events(instance: Instance, tmp_path: Path) -> None:
    ctx = instance.context()

    def expect(actions: list[str], op) -> object:  # type: ignore[no-untyped-def]
        before = last_seq(instance)
        out = op()
        assert actions_after(instance, before) == actions
        return out

    def in_tx(fn):  # type: ignore[no-untyped-def]
        def run():  # type: ignore[no-untyped-def]
            with instance.db.transaction() as s:
                return fn(s)
        return run

    expect(["project.created"], in_tx(lambda s: create_project(s, ctx, "p2")))
    expect(["user.created", "user.key_created"], lambda: create_user(instance, ctx, username="bob",
                                                                     printed_name="Bob B", password=PASSWORD))
    ok = expect(["run.created", "run.started", "artifact.stored", "artifact.stored", "run.succeeded"],
                lambda: run_task(instance, ctx, simple_request()))
    expect(["run.created", "run.started", "artifact.stored", "run.failed"],
           lambda: run_task(instance, ctx, simple_request("upper-limit", "tHu_workspace.json")))
    expect(["run.exported"], lambda: export_run(instance, ctx, ok.run_id, tmp_path / "run"))  # type: ignore[attr-defined]
    expect(["hub.model.pushed", "hub.model.pushed"], lambda: push_many(instance, ctx, "default", "model", [
        PushRequest("m", InputFile.read("workspace", shared("workspaces", name)))
        for name in ("simple_workspace.json", "tHu_workspace.json")]))
    expect([], lambda: make_checkpoint(instance, instance.context()))  # log metadata, not a record change
    expect(["audit.exported"], lambda: export_bundle(instance, ctx, tmp_path / "bundle", "csv"))
    expect(["config.changed"], lambda: set_config(instance, ctx, "retention.min_years", '{"run_artifacts": 0}',
                                                  "study closed"))
    expect(["artifact.purged", "artifact.purged"],
           lambda: retention.purge(instance, ctx, [ok.run_id], "end of retention"))  # type: ignore[attr-defined]
    # Refusals change nothing and write nothing.
    for bad in (lambda: retention.purge(instance, ctx, [ok.run_id], "again"),  # type: ignore[attr-defined]
                lambda: set_config(instance, ctx, "admin", "eve", "x"),
                in_tx(lambda s: create_project(s, ctx, "p2"))):
        before = last_seq(instance)
        with pytest.raises(NSPError):
            bad()
        assert last_seq(instance) == before
    assert verify(instance, instance.context()).ok


def test_events_match_the_published_schema(instance: Instance) -> None:
    run_task(instance, instance.context(), simple_request())
    schema = json.loads((ROOT / "docs/schemas/audit-event.v1.json").read_text())
    with instance.db.transaction() as s:
        events = query_events(s, EventFilter(), limit=1000)
    for event in events:
        jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(event)


def test_a_rolled_back_change_leaves_no_event(instance: Instance) -> None:
    ctx = instance.context()
    with pytest.raises(RuntimeError), instance.db.transaction() as s:
        create_project(s, ctx, "doomed")
        raise RuntimeError("crash before commit")
    with instance.db.transaction() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.project == "doomed")) is None
    assert verify(instance, instance.context()).ok


def test_batched_appends_chain_like_single_ones_and_vanish_with_their_block(instance: Instance) -> None:
    ctx = instance.context()
    before = last_seq(instance)
    with pytest.raises(RuntimeError), instance.db.transaction() as s, batched_appends(s):
        append_event(s, ctx, action="project.created", target=("project", "doomed"))
        raise RuntimeError("crash inside the batch")
    assert last_seq(instance) == before
    with instance.db.transaction() as s:
        append_event(s, ctx, action="project.created", target=("project", "one"))
        with batched_appends(s):
            appended = [append_event(s, ctx, action="project.created", target=("project", f"b{i}")) for i in range(3)]
            with batched_appends(s):  # nested: the outer block inserts
                appended.append(append_event(s, ctx, action="project.created", target=("project", "b3")))
            assert last_seq_in(s) == before + 1  # nothing of the batch inserted yet
        append_event(s, ctx, action="project.created", target=("project", "after"))
    assert [e.seq for e in appended] == list(range(before + 2, before + 6))
    with instance.db.transaction() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.seq > before).order_by(AuditEvent.seq)).all()
    assert [r.target_id for r in rows] == ["one", "b0", "b1", "b2", "b3", "after"]
    assert [r.hash for r in rows[1:5]] == [e.hash for e in appended]
    assert verify(instance, instance.context(), state=False).ok  # synthetic events: no rows behind them
    # A failed block caught inside its transaction: the chain goes on from the last inserted event.
    before = last_seq(instance)
    with instance.db.transaction() as s:
        append_event(s, ctx, action="project.created", target=("project", "kept-1"))
        with pytest.raises(RuntimeError), batched_appends(s):
            append_event(s, ctx, action="project.created", target=("project", "dropped"))
            raise RuntimeError("refused entry")
        append_event(s, ctx, action="project.created", target=("project", "kept-2"))
    with instance.db.transaction() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.seq > before).order_by(AuditEvent.seq)).all()
    assert [(r.seq, r.target_id) for r in rows] == [(before + 1, "kept-1"), (before + 2, "kept-2")]
    assert verify(instance, instance.context(), state=False).ok


def last_seq_in(s) -> int:  # type: ignore[no-untyped-def]
    return s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0


def test_changes_need_a_reason(instance: Instance) -> None:
    with pytest.raises(UsageError, match="reason is required"), instance.db.transaction() as s:
        append_event(s, instance.context(), action="user.disabled", target=("user", "x"))


def test_no_event_without_the_seal_key(instance: Instance) -> None:
    instance.db.seal_key = None
    with pytest.raises(ConfigError, match="unsealed"), instance.db.transaction() as s:
        create_project(s, instance.context(), "unsealed")


@pytest.mark.parametrize("table", ["audit_events", "audit_tree_nodes", "audit_checkpoints"])
@pytest.mark.parametrize("verb", ["UPDATE {t} SET {c} = {c}", "DELETE FROM {t}"])
def test_database_refuses_update_and_delete(instance: Instance, table: str, verb: str) -> None:
    make_checkpoint(instance, instance.context())
    column = {"audit_events": "action", "audit_tree_nodes": "hash", "audit_checkpoints": "note"}[table]
    with pytest.raises(DBAPIError, match="append-only"), instance.db.transaction() as s:
        s.execute(text(verb.format(t=table, c=column)))
    assert verify(instance, instance.context()).ok


def test_history_shows_every_before_and_after(instance: Instance) -> None:
    ctx = instance.context()
    for seconds in ("2", "3", "4"):
        set_config(instance, ctx, "checkpoint_interval_s", seconds, f"set to {seconds}")
    events = history(instance, ctx, "config", "checkpoint_interval_s")
    assert [(e.before, e.after, e.reason) for e in events] == [
        ({"checkpoint_interval_s": 1}, {"checkpoint_interval_s": 2}, "set to 2"),
        ({"checkpoint_interval_s": 2}, {"checkpoint_interval_s": 3}, "set to 3"),
        ({"checkpoint_interval_s": 3}, {"checkpoint_interval_s": 4}, "set to 4"),
    ]


def test_log_filters_and_stable_pagination(instance: Instance) -> None:
    ctx = instance.context()
    for i in range(7):
        with instance.db.transaction() as s:
            create_project(s, ctx, f"q{i}", "needle" if i % 2 else "")
    with instance.db.transaction() as s:
        pages, cursor = [], 0
        while page := query_events(s, EventFilter(action="project."), after_seq=cursor, limit=3):
            pages.append([e["project"] for e in page])
            cursor = page[-1]["seq"]
        assert pages == [["default", "q0", "q1"], ["q2", "q3", "q4"], ["q5", "q6"]]
        assert [e["project"] for e in query_events(s, EventFilter(text="needle"))] == ["q1", "q3", "q5"]
        assert len(query_events(s, EventFilter(actor="Ada Admin", action="project.created"))) == 8
        assert query_events(s, EventFilter(since="2999-01-01")) == []
        assert len(query_events(s, EventFilter(since="2000-01-01", project="q3"))) == 1
    with pytest.raises(UsageError), instance.db.transaction() as s:
        query_events(s, EventFilter(since="last week"))


def test_eight_concurrent_threads_keep_the_chain_linear(instance: Instance) -> None:
    ctx = instance.context()
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(10):
                with instance.db.transaction() as s:
                    create_project(s, ctx, f"t{i}-{j}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = verify(instance, instance.context())
    assert report.ok and report.events == INIT + 80


def _process_writer(home: str, i: int) -> None:
    inst = Instance.open(Path(home))
    ctx = inst.context()
    for j in range(8):
        with inst.db.transaction() as s:
            create_project(s, ctx, f"proc{i}-{j}")
    inst.close()


def test_eight_concurrent_processes_keep_the_chain_linear(instance: Instance) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(str(instance.home), i)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 8
    make_checkpoint(instance, instance.context())
    report = verify(instance, instance.context())
    assert report.ok and report.events == INIT + 64 and report.tree_size == INIT + 64


def test_config_change_and_its_event_commit_together(sqlite_instance: Instance,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    inst = sqlite_instance
    ctx = inst.context()  # before the patch: its own transaction must commit
    before_file = (inst.home / "config.json").read_bytes()
    before_seq = last_seq(inst)
    monkeypatch.setattr("sqlalchemy.engine.default.DefaultDialect.do_commit",
                        lambda self, *a, **k: (_ for _ in ()).throw(RuntimeError("disk full at commit")))
    with pytest.raises(RuntimeError, match="disk full"):
        set_config(inst, ctx, "checkpoint_interval_s", "60", "faster checkpoints")
    monkeypatch.undo()
    assert (inst.home / "config.json").read_bytes() == before_file  # the file was put back
    assert last_seq(inst) == before_seq  # and no event
    assert inst.config.checkpoint_interval_s == 1.0


def test_export_folder_and_its_event_commit_together(sqlite_instance: Instance, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    inst = sqlite_instance
    ctx = inst.context()  # before the patch: its own transaction must commit
    out = run_task(inst, ctx, simple_request())
    before_seq = last_seq(inst)
    monkeypatch.setattr("sqlalchemy.engine.default.DefaultDialect.do_commit",
                        lambda self, *a, **k: (_ for _ in ()).throw(RuntimeError("lost the database")))
    with pytest.raises(RuntimeError, match="lost the database"):
        export_run(inst, ctx, out.run_id, tmp_path / "export")
    monkeypatch.undo()
    assert not (tmp_path / "export").exists()  # placed, then removed: no export without its event
    assert list(tmp_path.glob(".export*")) == []
    assert last_seq(inst) == before_seq
