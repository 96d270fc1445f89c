"""Transactions on the connection each thread keeps: what the pool used to guarantee must
still hold (nesting, a connection the server killed, nothing left open after close)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from nextstat_pro.audit.events import append_event
from nextstat_pro.audit.service import verify
from nextstat_pro.db.models import AuditEvent, Project
from nextstat_pro.errors import ConfigError
from nextstat_pro.instance import Instance, init_instance
from nextstat_pro.projects.service import create_project

from .conftest import PASSWORD, new_pg_database, pg_admin_url


def _projects(inst: Instance) -> list[str]:
    with inst.db.transaction() as s:
        return sorted(s.scalars(select(Project.name)))


def test_a_transaction_opened_inside_another_before_it_begins(instance: Instance) -> None:
    """The outer transaction starts at its first statement, so an inner one opened first (as
    ``Instance.context()`` does) neither waits for its lock nor joins it."""
    ctx = instance.context()
    with instance.db.transaction() as outer:
        with instance.db.transaction() as inner:
            create_project(inner, ctx, "inner")
        create_project(outer, ctx, "outer")
    assert _projects(instance) == ["default", "inner", "outer"]
    assert verify(instance, instance.context()).ok


@pytest.fixture
def pg_instance(tmp_path: Path) -> Iterator[Instance]:
    inst = init_instance(tmp_path / "home", admin="admin", password=PASSWORD, printed_name="Ada Admin",
                         db_url=new_pg_database())
    yield inst
    inst.close()


def _backends(inst: Instance) -> list[int]:
    name = inst.db.engine.url.database
    with psycopg.connect(pg_admin_url(), autocommit=True) as admin:
        return [r[0] for r in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))]


def test_a_connection_the_server_killed_fails_one_transaction_then_is_replaced(pg_instance: Instance) -> None:
    inst, ctx = pg_instance, pg_instance.context()
    with inst.db.transaction() as s:
        kept = s.scalar(text("SELECT pg_backend_pid()"))
    with psycopg.connect(pg_admin_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (kept,))
    with pytest.raises(ConfigError, match="database error"), inst.db.transaction() as s:
        create_project(s, ctx, "lost")
    with inst.db.transaction() as s:
        create_project(s, ctx, "kept")
        assert s.scalar(text("SELECT pg_backend_pid()")) != kept
    assert _projects(inst) == ["default", "kept"]
    assert verify(inst, inst.context()).ok


def test_close_leaves_no_connection_open(pg_instance: Instance) -> None:
    with pg_instance.db.transaction() as s:
        s.scalar(text("SELECT 1"))
    with pg_instance.db.read() as s:  # the read-only pool's connection too
        s.scalar(text("SELECT 1"))
    assert len(_backends(pg_instance)) == 2
    pg_instance.close()
    # A backend leaves pg_stat_activity when its process has exited, a moment after the client
    # closed the socket (seen once under load): wait for that, up to 5 s.
    deadline = time.monotonic() + 5
    while _backends(pg_instance) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _backends(pg_instance) == []


def test_threads_that_end_leave_no_connection_checked_out(instance: Instance) -> None:
    """Each thread keeps a connection between its transactions; when the thread ends, the
    connection goes back to the pool (a server's short-lived threads must not leak them)."""
    import gc
    import threading

    ctx = instance.context()

    def work(i: int) -> None:
        with instance.db.transaction() as s:
            create_project(s, ctx, f"thread-{i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert instance.db.engine.pool.checkedout() <= 1  # this thread's own kept connection
    assert len(_projects(instance)) == 7
    assert verify(instance, instance.context()).ok


def _events_for(inst: Instance, target: str) -> int:
    with inst.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.target_id == target)) or 0


def test_an_append_before_orm_work_commits_with_it(instance: Instance) -> None:
    """The append begins the transaction below the ORM; the session joins it, and both the
    event and the ORM row commit together (or, when the block raises, neither)."""
    ctx = instance.context()
    with instance.db.transaction() as s:
        append_event(s, ctx, action="bench.noted", target=("x", "first"))
        create_project(s, ctx, "joined")
    with pytest.raises(RuntimeError), instance.db.transaction() as s:
        append_event(s, ctx, action="bench.noted", target=("x", "second"))
        create_project(s, ctx, "lost")
        s.flush()
        raise RuntimeError("the caller failed after both writes")
    assert _projects(instance) == ["default", "joined"]
    assert (_events_for(instance, "first"), _events_for(instance, "second")) == (1, 0)
    assert verify(instance, instance.context()).ok


def test_a_failed_commit_commits_nothing_and_the_next_transaction_works(
        instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = instance.context()
    monkeypatch.setattr("sqlalchemy.engine.default.DefaultDialect.do_commit",
                        lambda self, conn: (_ for _ in ()).throw(RuntimeError("disk full at commit")))
    with pytest.raises(RuntimeError, match="disk full"), instance.db.transaction() as s:
        append_event(s, ctx, action="bench.noted", target=("x", "unsaved"))
    monkeypatch.undo()
    assert _events_for(instance, "unsaved") == 0
    with instance.db.transaction() as s:
        create_project(s, ctx, "after")
    assert _projects(instance) == ["after", "default"]
    assert verify(instance, instance.context()).ok


def test_a_read_cannot_write_or_append(instance: Instance) -> None:
    before = _projects(instance)
    with pytest.raises((DBAPIError, ConfigError), match="readonly|read-only"), instance.db.read() as s:
        s.execute(text("INSERT INTO projects (id, name, description, created_at, created_by) "
                       "VALUES ('x', 'sneaky', '', CURRENT_TIMESTAMP, 'nobody')"))
    with pytest.raises(ConfigError, match="seal key"), instance.db.read() as s:
        append_event(s, instance.context(), action="project.created", target=("project", "sneaky"))
    assert _projects(instance) == before
    # The connection that refused is replaced; reads go on.
    with instance.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Project)) == len(before)


def test_a_read_sees_what_is_committed_and_never_waits_for_a_writer(instance: Instance) -> None:
    """On SQLite a transaction takes the write lock at its first statement; a read takes no
    lock, so it runs while a writer holds it (and sees the committed state, not the writer's)."""
    import threading

    ctx = instance.context()
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with instance.db.transaction() as s:
            create_project(s, ctx, "pending")
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(30)
        t0 = time.perf_counter()
        with instance.db.read() as s:
            names = sorted(s.scalars(select(Project.name)))
        assert time.perf_counter() - t0 < 2.0  # busy_timeout is 60 s: it would have waited
        assert names == ["default"]
    finally:
        release.set()
        thread.join()
    with instance.db.read() as s, instance.db.read() as inner:  # a read inside a read
        assert sorted(s.scalars(select(Project.name))) == sorted(inner.scalars(select(Project.name)))
    assert _projects(instance) == ["default", "pending"]


def test_a_read_on_postgresql_begins_no_transaction(pg_instance: Instance) -> None:
    """Each statement of a read is a transaction of its own (no BEGIN/COMMIT round trips),
    where a ``transaction`` block is one."""
    same = "SELECT transaction_timestamp() = statement_timestamp()"
    with pg_instance.db.read() as s:
        s.execute(text("SELECT pg_sleep(0.01)"))
        assert s.scalar(text(same)) is True
        assert s.scalar(text("SHOW transaction_read_only")) == "on"
    with pg_instance.db.transaction() as s:
        s.execute(text("SELECT pg_sleep(0.01)"))
        assert s.scalar(text(same)) is False


def test_json_columns_read_what_json_wrote() -> None:
    """orjson reads JSON columns; what it refuses and ``json`` may have written falls back."""
    import math

    from nextstat_pro.db.session import _json_loads

    assert _json_loads('{"a": [1, 2.5, "x", null]}') == {"a": [1, 2.5, "x", None]}
    assert _json_loads("[18446744073709551616]") == [2**64]
    assert math.isnan(_json_loads('{"v": NaN}')["v"])
    with pytest.raises(ValueError):
        _json_loads("{broken")


def test_reads_keep_committed_projects_only(instance: Instance) -> None:
    from sqlalchemy import event

    from nextstat_pro.errors import NotFoundError
    from nextstat_pro.projects.service import get_project

    ctx = instance.context()
    with pytest.raises(RuntimeError), instance.db.transaction() as s:
        create_project(s, ctx, "doomed")
        assert get_project(s, "doomed").name == "doomed"  # seen by its own transaction...
        raise RuntimeError("rolled back")
    with pytest.raises(NotFoundError), instance.db.read() as s:  # ...and by nothing after it
        get_project(s, "doomed")
    with instance.db.read() as s:
        first = get_project(s, "default")
    queries: list[str] = []
    engine = instance.db._read_engine
    assert engine is not None
    event.listen(engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    with instance.db.read() as s:
        again = get_project(s, "default")
    assert again.id == first.id and not [q for q in queries if "projects" in q]  # no query: kept
    with instance.db.transaction() as s:  # a transaction always asks the database
        assert s.scalar(select(func.count()).select_from(Project)) == 1
        assert get_project(s, "default") is not first
