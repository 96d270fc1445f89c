"""Run leases: a run executing in-process renews a lease; one whose lease expired was abandoned.

A run's process can die without a word (kill -9, the OOM killer, a power cut) and would then
stay ``running`` forever. So the process that executes a run renews ``runs.lease_until``
every third of the instance's ``run_lease_s`` while the engine works (the engine releases
the GIL, so the renewing thread is not starved), and any later command, or
``nextstat-pro runs recover``, marks a running run whose lease has expired ``failed`` with
reason ``abandoned`` and its audit event. The renewal is housekeeping, not a change of
record: it is not audited; the failure it may lead to is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select, update

from ..access.context import RequestContext
from ..access.rbac import authorize
from ..db.models import Run
from ..db.session import core_connection
from ..db.types import utcnow
from .records import abandon_expired
from .views import RecoveredRuns

if TYPE_CHECKING:
    from ..instance import Instance

T = TypeVar("T")


def lease_until(instance: Instance, now: datetime | None = None) -> datetime:
    return (now or utcnow()) + timedelta(seconds=instance.config.run_lease_s)


def renew(instance: Instance, run_id: str) -> None:
    """Extend a running run's lease (one short transaction; a finished run is left alone)."""
    with instance.db.transaction() as session:
        core_connection(session).execute(
            update(Run).where(Run.id == run_id, Run.status == "running").values(lease_until=lease_until(instance)))


def run_leased(instance: Instance, run_id: str, work: Callable[[], T]) -> T:
    """``work()`` in a worker thread while this thread renews the run's lease. A signal
    (SIGINT, or SIGTERM turned into an exception by the adapter) interrupts the wait here at
    once, whatever the engine is doing; the worker thread is a daemon and ends with the process."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller's thread as it is
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"run-{run_id}", daemon=True)
    worker.start()
    every = instance.config.run_lease_s / 3
    # The run's own events (created, started) are witnessed while it executes, not after it.
    witness_every = min(every, instance.config.checkpoint_interval_s)
    next_renewal = time.monotonic() + every
    while True:
        worker.join(max(0.0, min(next_renewal - time.monotonic(), witness_every)))
        if not worker.is_alive():
            break
        # The lease first: witnessing (a checkpoint, a witness write) must never delay a renewal.
        if time.monotonic() >= next_renewal - witness_every:
            renew(instance, run_id)
            next_renewal = time.monotonic() + every
        instance.witnessing.due()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def recover_abandoned(instance: Instance, ctx: RequestContext) -> RecoveredRuns:
    """Mark every running run whose lease has expired ``failed`` (reason ``abandoned``), each
    with its audit event; return their ids. Any signed-in user's command may do this: it only
    records what already happened, and each run's event names the lease that expired."""
    now = utcnow()
    with instance.db.transaction() as session:
        authorize(session, ctx, "run.recover")
        return RecoveredRuns(abandon_expired(session, ctx, now))


def has_expired_leases(instance: Instance) -> bool:
    """A read without a transaction: is there anything for ``recover_abandoned`` to do?"""
    with instance.db.read() as session:
        return session.scalar(select(Run.id).where(Run.status == "running", Run.lease_until < utcnow()).limit(1)) \
            is not None
