"""Continuous witnessing: the tail is checkpointed and witnessed within the interval of a commit,
nothing is signed over a log that does not hold, and a deleted tail is refused, not witnessed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from nextstat_pro.access.context import RequestContext
from nextstat_pro.audit.witness import LATEST
from nextstat_pro.config_service import set_config
from nextstat_pro.db.models import AuditCheckpoint, AuditEvent
from nextstat_pro.errors import ConfigError, IntegrityError
from nextstat_pro.instance import Instance
from nextstat_pro.verify.note import Verifier, open_checkpoint

from .conftest import PASSWORD


def change(inst: Instance, ctx: RequestContext, value: str) -> None:
    """One audited change (its own transaction and event)."""
    set_config(inst, ctx, "hub_min_years", str(10 + len(value) + ord(value[-1]) % 7 / 10), f"change {value}")


def newest_seq(inst: Instance) -> int:
    with inst.db.transaction() as s:
        return s.scalar(select(func.max(AuditEvent.seq))) or 0


def checkpoints(inst: Instance) -> list[int]:
    with inst.db.transaction() as s:
        return list(s.scalars(select(AuditCheckpoint.size).order_by(AuditCheckpoint.size)))


def witnessed_size(inst: Instance) -> int:
    note = (Path(inst.config.witness_url) / LATEST).read_text()
    return open_checkpoint(note, inst.log_verifier()).size


def guards_off(s: Session) -> None:
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SET LOCAL session_replication_role = replica"))
    else:  # dropped for good: the insider's deletion is committed
        for name in s.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all():
            s.execute(text(f"DROP TRIGGER {name}"))


def test_commits_within_the_interval_are_batched_and_signed_once_it_has_passed(instance: Instance) -> None:
    ctx = instance.context()
    instance.witnessing._interval = 0.3  # as `config set checkpoint_interval_s 0.3` would make it
    instance.witnessing._signed_at = time.monotonic()
    before = checkpoints(instance)
    for name in ("a1", "a2", "a3"):
        change(instance, ctx, name)
    assert checkpoints(instance) == before and instance.witnessing.pending  # batched: nothing signed yet
    time.sleep(0.35)
    change(instance, ctx, "a4")  # the first commit after the interval signs, covering all four
    assert checkpoints(instance)[-1] == newest_seq(instance) == witnessed_size(instance)
    assert not instance.witnessing.pending
    change(instance, ctx, "a5")
    assert instance.witnessing.pending
    instance.witnessing.due()  # too soon: still batched
    assert instance.witnessing.pending
    time.sleep(0.35)
    instance.witnessing.due()  # a waiting loop's call signs it
    assert checkpoints(instance)[-1] == newest_seq(instance) == witnessed_size(instance)


def test_every_cli_command_ends_with_its_events_witnessed(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("--home", str(home), "login", "-u", "admin", env={"NSP_PASSWORD": PASSWORD}).code == 0
    for name in ("p1", "p2"):
        r = cli("--home", str(home), "project", "create", name)
        assert r.code == 0, r.err
        inst = Instance.open(home)
        try:
            assert witnessed_size(inst) == newest_seq(inst) == checkpoints(inst)[-1]
        finally:
            inst.close()


def test_events_a_killed_process_left_unwitnessed_are_signed_by_the_next_command(
        cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    inst = Instance.open(home)
    try:
        change(inst, inst.context(), "orphan")  # pending in this process, which then "dies"
        assert witnessed_size(inst) < newest_seq(inst)
    finally:
        inst.db.dispose()  # no close(): nothing flushed
    assert cli("--home", str(home), "login", "-u", "admin", env={"NSP_PASSWORD": PASSWORD}).code == 0
    inst = Instance.open(home)
    try:
        assert witnessed_size(inst) == newest_seq(inst)
    finally:
        inst.close()


def test_a_deleted_tail_is_refused_not_witnessed(instance: Instance) -> None:
    ctx = instance.context()
    for name in ("b1", "b2", "b3"):
        change(instance, ctx, name)
    instance.witnessing.flush()
    seen = witnessed_size(instance)
    # An insider deletes the last two events, the tree nodes and checkpoint rows that cover them,
    # then makes new changes: the next checkpoint would witness the shortened history for good.
    with instance.db.transaction() as s:
        guards_off(s)
        s.execute(text("DELETE FROM audit_events WHERE seq > :n"), {"n": seen - 2})
        s.execute(text("DELETE FROM audit_tree_nodes"))
        s.execute(text("DELETE FROM audit_checkpoints"))
    change(instance, ctx, "b4")
    with pytest.raises(IntegrityError, match=rf"the witnessed checkpoint covers {seen} \(events deleted\)"):
        instance.witnessing.flush()
    assert witnessed_size(instance) == seen  # the witness still holds the longer history


def test_a_rewritten_witnessed_history_is_refused(instance: Instance) -> None:
    ctx = instance.context()
    for name in ("c1", "c2"):
        change(instance, ctx, name)
    instance.witnessing.flush()
    seen = witnessed_size(instance)
    # Delete the tail, the tree and the checkpoints, and append as many new events: same size,
    # another history.
    with instance.db.transaction() as s:
        guards_off(s)
        s.execute(text("DELETE FROM audit_events WHERE seq > :n"), {"n": seen - 1})
        s.execute(text("DELETE FROM audit_tree_nodes"))
        s.execute(text("DELETE FROM audit_checkpoints"))
    change(instance, ctx, "c3")
    assert newest_seq(instance) == seen
    change(instance, ctx, "c4")
    with pytest.raises(IntegrityError, match="no longer have the witnessed checkpoint's root"):
        instance.witnessing.flush()


def test_nothing_is_signed_over_an_event_that_does_not_verify(instance: Instance) -> None:
    ctx = instance.context()
    change(instance, ctx, "d1")
    instance.witnessing.flush()
    size = checkpoints(instance)[-1]
    change(instance, ctx, "d2")  # unwitnessed yet
    with instance.db.transaction() as s:
        guards_off(s)
        s.execute(text("UPDATE audit_events SET body = replace(body, 'change d2', 'change dX') WHERE seq = :n"),
                  {"n": size + 1})
    with pytest.raises(IntegrityError, match=f"audit event {size + 1} does not verify"):
        instance.witnessing.flush()
    assert checkpoints(instance)[-1] == size and witnessed_size(instance) == size


def test_a_failed_witness_write_does_not_fail_the_committed_change(instance: Instance,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = instance.context()
    instance.witnessing._interval = 0.0  # sign at every commit

    def unreachable(data: bytes) -> None:
        raise ConfigError("cannot write to witness: unreachable")

    monkeypatch.setattr(instance.witness(), "write_latest", unreachable)
    before = newest_seq(instance)
    change(instance, ctx, "e1")  # committed; its checkpoint failed
    assert newest_seq(instance) == before + 1
    with pytest.raises(ConfigError, match="unreachable"):
        instance.witnessing.flush()  # the kept failure reaches whoever ends the process
    monkeypatch.undo()
    instance.witnessing.flush()
    assert witnessed_size(instance) == newest_seq(instance)


def test_the_witness_key_verifies_the_latest_note(instance: Instance) -> None:
    change(instance, instance.context(), "f1")
    instance.witnessing.flush()
    note = (Path(instance.config.witness_url) / LATEST).read_text()
    other = Verifier.for_key(instance.config.log_origin, instance.log_keys())
    assert open_checkpoint(note, other).size == newest_seq(instance)


def test_audit_verify_reports_the_unwitnessed_tail_and_fails_beyond_its_bound(instance: Instance) -> None:
    from nextstat_pro.audit.service import verify

    ctx = instance.context()
    instance.witnessing.flush()
    report = verify(instance, ctx)
    assert report.ok and report.unwitnessed == 0 and report.oldest_unwitnessed_s is None
    change(instance, ctx, "g1")  # batched, not yet witnessed (a process that then dies)
    time.sleep(0.05)
    report = verify(instance, ctx)
    assert report.ok and report.unwitnessed == 1 and report.oldest_unwitnessed_s is not None
    assert report.oldest_unwitnessed_s >= 0.05
    instance.config.max_unwitnessed_s = 0.01  # as `config set max_unwitnessed_s 0.01` would
    report = verify(instance, ctx)
    assert not report.ok and report.first_bad_seq == newest_seq(instance)
    assert "beyond the bound of 0.01 s" in (report.problem or "")
    instance.witnessing.flush()
    # state=False: the bound was set in memory, not through `config set` (which the state check
    # would then find missing from the log).
    assert verify(instance, ctx, state=False).ok


def test_a_witness_on_a_full_disk_does_not_fail_the_committed_change(instance: Instance,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError from the witness folder (ENOSPC, an unmounted share) is kept like any failure."""
    ctx = instance.context()
    instance.witnessing._interval = 0.0

    def full(path: Path, data: bytes, mode: int = 0o444) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("nextstat_pro.audit.witness.atomic_write", full)
    before = newest_seq(instance)
    change(instance, ctx, "h1")  # committed; its checkpoint could not be written
    assert newest_seq(instance) == before + 1
    with pytest.raises(ConfigError, match="No space left on device"):
        instance.witnessing.flush()


def test_closing_an_instance_witnesses_what_it_left_pending(tmp_path: Path, db_url: str) -> None:
    """A background job's coordinator ends with Instance.close: its last events are witnessed."""
    from nextstat_pro.instance import init_instance

    inst = init_instance(tmp_path / "home", admin="admin", password=PASSWORD, db_url=db_url)
    change(inst, inst.context(), "i1")
    assert inst.witnessing.pending
    inst.close()
    inst = Instance.open(tmp_path / "home")
    try:
        assert witnessed_size(inst) == newest_seq(inst)
    finally:
        inst.close()
