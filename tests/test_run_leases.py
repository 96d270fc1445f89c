"""Abandoned runs: a run whose process died is marked failed (reason ``abandoned``) once its
lease has expired; SIGINT/SIGTERM end an in-process run as cancelled within a second."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from nextstat_pro.db.models import AuditEvent, Run
from nextstat_pro.db.types import utcnow
from nextstat_pro.instance import Instance
from nextstat_pro.projects.service import get_project
from nextstat_pro.runs import lease
from nextstat_pro.runs.records import create_run

from .conftest import PASSWORD, shared

TTTT = str(shared("workspaces", "tttt-prod_workspace.json"))


def _running_run(instance: Instance, until_offset_s: float) -> str:
    ctx = instance.context()
    with instance.db.transaction() as session:
        project = get_project(session, "default")
        return create_run(session, ctx, project, "fit", {}, None, [], start=True,
                          lease_until=utcnow() + timedelta(seconds=until_offset_s)).run_id


def _run(instance: Instance, run_id: str) -> Run:
    with instance.db.transaction() as session:
        run = session.get(Run, run_id)
        assert run is not None
        session.expunge(run)
        return run


def test_expired_leases_are_recovered_once_with_their_event(instance: Instance) -> None:
    expired = _running_run(instance, -5)
    alive = _running_run(instance, 300)
    unleased = _running_run(instance, 0)
    with instance.db.transaction() as session:  # a run recorded before leases existed: left alone
        row = session.get(Run, unleased)
        assert row is not None
        row.lease_until = None
    assert lease.has_expired_leases(instance)
    assert lease.recover_abandoned(instance, instance.context()).root == [expired]
    assert lease.recover_abandoned(instance, instance.context()).root == []
    assert not lease.has_expired_leases(instance)
    run = _run(instance, expired)
    assert run.status == "failed" and run.error is not None and run.error.startswith("abandoned:")
    assert _run(instance, alive).status == "running" and _run(instance, unleased).status == "running"
    with instance.db.transaction() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.target_id == expired)
                                .order_by(AuditEvent.seq.desc())).first()
        assert event is not None and event.action == "run.failed"
        body = json.loads(event.body)
        assert body["reason"] == "abandoned" and body["after"]["error"].startswith("abandoned:")


def test_the_lease_is_renewed_while_the_task_runs(instance: Instance) -> None:
    instance.config.run_lease_s = 0.6
    run_id = _running_run(instance, 0.6)
    first = _run(instance, run_id).lease_until
    assert lease.run_leased(instance, run_id, lambda: (time.sleep(1.5), 42)[1]) == 42
    renewed = _run(instance, run_id).lease_until
    assert first is not None and renewed is not None and renewed - first >= timedelta(seconds=1.0)
    # While it was renewed nothing counted as expired; once it stops, it expires.
    time.sleep(0.8)
    assert lease.recover_abandoned(instance, instance.context()).root == [run_id]


def test_an_error_in_the_task_reaches_the_caller(instance: Instance) -> None:
    run_id = _running_run(instance, 30)

    def fails() -> None:
        raise ValueError("engine said no")

    with pytest.raises(ValueError, match="engine said no"):
        lease.run_leased(instance, run_id, fails)


# ---- real processes: kill -9, SIGTERM, SIGINT ----

def _cli(home: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nextstat_pro.cli", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "NSP_PASSWORD": PASSWORD},
                          **kwargs)


@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert _cli(home, "init", "--admin", "admin").returncode == 0
    r = _cli(home, "config", "set", "run_lease_s", "6", "--reason", "short leases for the test")
    assert r.returncode == 0, r.stderr
    return home


def _start_long_run(home: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "nextstat_pro.cli", "--home", str(home), "run", "toys", "-w", TTTT,
                             "--seed", "1", "--param", "n_toys=100000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NSP_PASSWORD": PASSWORD},
                            # A shell's background job starts with SIGINT ignored, and Python then
                            # installs no KeyboardInterrupt handler: give the run a terminal's default.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = json.loads(_cli(home, "runs", "list", "--status", "running", "--json").stdout or "[]")
        if rows:
            return proc, rows[0]["run_id"]
        time.sleep(0.2)
    proc.kill()
    proc.communicate()
    raise AssertionError("the run never started")


def _show(home: Path, run_id: str) -> dict[str, Any]:
    r = _cli(home, "runs", "show", run_id, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_a_run_killed_with_sigkill_is_recovered_at_the_next_command(cli_home: Path) -> None:
    proc, run_id = _start_long_run(cli_home)
    time.sleep(1.5)  # renewed at least once
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    killed = time.monotonic()
    assert _show(cli_home, run_id)["status"] == "running"  # its lease has not expired yet
    time.sleep(max(0.0, 6.5 - (time.monotonic() - killed)))
    shown = _show(cli_home, run_id)  # the next command recovers it
    assert shown["status"] == "failed" and shown["error"].startswith("abandoned:")
    assert "audit trail verified" in _cli(cli_home, "audit", "verify").stdout
    events = json.loads(_cli(cli_home, "audit", "history", f"run:{run_id}", "--json").stdout)
    assert events[-1]["action"] == "run.failed" and events[-1]["reason"] == "abandoned"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_run_as_cancelled_within_a_second(cli_home: Path, sig: signal.Signals, code: int) -> None:
    proc, run_id = _start_long_run(cli_home)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(sig)
    # The run's record says cancelled within a second (read straight from the embedded
    # database: a CLI process would take longer than that to start here).
    db = sqlite3.connect(f"file:{cli_home / 'nextstat-pro.db'}?mode=ro", uri=True)
    try:
        status = "running"
        while status == "running" and time.monotonic() - sent < 5:
            status = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            time.sleep(0.02)
    finally:
        db.close()
    assert status == "cancelled" and time.monotonic() - sent < 1.0, (status, time.monotonic() - sent)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == code, err
    shown = _show(cli_home, run_id)
    assert shown["status"] == "cancelled"
    assert shown["error"] == f"cancelled: {sig.name} received"
    assert shown["manifest"]["status"] == "cancelled"
