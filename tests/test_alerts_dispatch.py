"""The dispatcher as it runs in production: a real `nextstat-pro alerts run` process (killed with
SIGKILL mid-delivery, then restarted; two at once) and `run_dispatcher` in a thread (latency)."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, text
from standardwebhooks import Webhook

from nextstat_pro.alerts import service
from nextstat_pro.alerts.dispatcher import run_dispatcher
from nextstat_pro.alerts.models import Alert, AlertDelivery
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.instance import Instance

from .test_alerts import Receiver, configure, failing_task, run, webhook_channel

__all__ = ["failing_task"]  # the fixture, used by name below

CLI = Path(sys.executable).with_name("nextstat-pro")


def start(instance: Instance, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([str(CLI), "--home", str(instance.home), "alerts", "run", "--poll", "0.05"],
                                stdout=out, stderr=subprocess.STDOUT)


def wait(what: str, check: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def holder(instance: Instance) -> str | None:
    with instance.db.transaction() as s:
        return s.scalar(text("SELECT holder FROM alert_state"))  # type: ignore[no-any-return]


def alerts_and_states(instance: Instance) -> tuple[set[str], set[str]]:
    with instance.db.transaction() as s:
        ids = set(s.scalars(select(Alert.id)))
        states = set(s.scalars(select(AlertDelivery.status)))
    return ids, states


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def test_kill_9_mid_delivery_then_restart_loses_nothing(instance: Instance, failing_task: str,
                                                        tmp_path: Path) -> None:
    configure(instance, alerts_lease_s=1, alerts_send_timeout_s=5, alerts_backoff_s=0.05)
    receiver = Receiver(delay_s=3.0)  # each answer held back: the dispatcher is mid-delivery for 3 s
    first: subprocess.Popen[bytes] | None = None
    second: subprocess.Popen[bytes] | None = None
    try:
        secret = webhook_channel(instance, receiver.url)
        service.add_rule(instance, instance.context(), "default", "failures", "failed", "hook")
        first = start(instance, tmp_path / "first.log")
        wait("the first dispatcher's lease", lambda: holder(instance) is not None)
        for _ in range(10):
            run(instance, failing_task)
        receiver.wait_for(1)
        os.kill(first.pid, signal.SIGKILL)  # while the receiver holds its answer back
        first.wait(timeout=10)
        second = start(instance, tmp_path / "second.log")
        wait("every alert delivered", lambda: alerts_and_states(instance)[1] == {"delivered"}
             and len(alerts_and_states(instance)[0]) == 10, 60)
        ids, _ = alerts_and_states(instance)
        assert len(ids) == 10
        received = {hit.id for hit in receiver.hits}
        assert received == ids  # none lost
        for hit in receiver.hits:  # duplicates, if any, carry the same idempotency key and a valid signature
            assert Webhook(secret).verify(hit.body, hit.headers)["data"]["alert_id"] == hit.id
        with instance.db.transaction() as s:  # the killed send was claimed, so it was sent again
            assert max(s.scalars(select(AlertDelivery.attempts))) >= 2
        assert stop(second) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        receiver.close()


def test_two_dispatchers_at_once_send_each_alert_once(instance: Instance, failing_task: str, tmp_path: Path) -> None:
    receiver = Receiver()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        webhook_channel(instance, receiver.url)
        service.add_rule(instance, instance.context(), "default", "failures", "failed", "hook")
        procs = [start(instance, tmp_path / f"d{i}.log") for i in range(2)]
        wait("a dispatcher's lease", lambda: holder(instance) is not None)
        for _ in range(20):
            run(instance, failing_task)
        wait("every alert delivered", lambda: alerts_and_states(instance)[1] == {"delivered"}
             and len(alerts_and_states(instance)[0]) == 20, 60)
        time.sleep(0.5)
        ids = [hit.id for hit in receiver.hits]
        assert len(ids) == 20 and len(set(ids)) == 20
        assert all(p.poll() is None for p in procs)  # both ran throughout; one sent
        assert [stop(p) for p in procs] == [0, 0]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        receiver.close()


def test_failure_to_receipt_within_a_second(instance: Instance, failing_task: str) -> None:
    """The in-suite variant of benchmarks/bench_alerts.py: the dispatcher in a thread, as `serve` runs it."""
    receiver = Receiver()
    stop_event = threading.Event()
    thread = threading.Thread(target=run_dispatcher, args=(instance, stop_event, 0.1), daemon=True)
    try:
        webhook_channel(instance, receiver.url)
        service.add_rule(instance, instance.context(), "default", "failures", "failed", "hook")
        thread.start()
        run_ids = []
        for _ in range(20):
            run_ids.append(run(instance, failing_task))
            time.sleep(0.05)
        hits = receiver.wait_for(20)
        with instance.db.transaction() as s:
            failed_at = {t: datetime.fromisoformat(ts).timestamp() for t, ts in s.execute(
                select(AuditEvent.target_id, AuditEvent.ts).where(AuditEvent.action == "run.failed"))}
        latencies = sorted(h.at - failed_at[h.json()["data"]["details"]["run_id"]] for h in hits)
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        # The target (p95 <= 1 s) is measured by the benchmark on an otherwise quiet machine; the suite
        # shares its cores with other tests, so it allows half a second more at the tail.
        assert statistics.median(latencies) < 0.5 and p95 < 1.5, latencies
    finally:
        stop_event.set()
        thread.join(timeout=20)
        receiver.close()
    assert not thread.is_alive()
