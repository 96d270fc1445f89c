"""The audit chain core: one event per change, append-only tables, linear chain under concurrency."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from nextstat_pro.audit import verify_chain
from nextstat_pro.audit.events import append_event
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.errors import UsageError
from nextstat_pro.instance import Instance
from nextstat_pro.projects import create_project


def test_project_creation_is_one_event(instance: Instance) -> None:
    ctx = instance.context()
    with instance.db.transaction() as s:
        before = s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
        create_project(s, ctx, "atlas-4top", "four tops")
    with instance.db.transaction() as s:
        new = list(s.scalars(select(AuditEvent).where(AuditEvent.seq > before)))
        assert [e.action for e in new] == ["project.created"]
        assert new[0].project == "atlas-4top"


def test_a_rolled_back_change_leaves_no_event(instance: Instance) -> None:
    ctx = instance.context()
    with pytest.raises(RuntimeError), instance.db.transaction() as s:
        create_project(s, ctx, "doomed")
        raise RuntimeError("crash before commit")
    with instance.db.transaction() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.project == "doomed")) is None
        assert verify_chain(s).ok


def test_changes_need_a_reason(instance: Instance) -> None:
    with pytest.raises(UsageError, match="reason is required"), instance.db.transaction() as s:
        append_event(s, instance.context(), action="user.disabled", target=("user", "x"))


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"])
def test_database_refuses_update_and_delete(instance: Instance, statement: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"), instance.db.transaction() as s:
        s.execute(text(statement))
    with instance.db.transaction() as s:
        assert verify_chain(s).events == 3


def test_verify_detects_an_edited_event(sqlite_instance: Instance) -> None:
    with sqlite_instance.db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
        conn.exec_driver_sql("UPDATE audit_events SET body = replace(body, 'default', 'defau1t') WHERE seq = 3")
    with sqlite_instance.db.transaction() as s:
        report = verify_chain(s)
    assert not report.ok and report.first_bad_seq == 3 and "hash mismatch" in (report.problem or "")


def test_eight_concurrent_writers_keep_the_chain_linear(instance: Instance) -> None:
    ctx = instance.context()
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(10):
                with instance.db.transaction() as s:
                    create_project(s, ctx, f"p{i}-{j}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with instance.db.transaction() as s:
        report = verify_chain(s)
    assert report.ok and report.events == 3 + 80
