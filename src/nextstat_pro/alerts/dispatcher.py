"""The dispatcher: audit events in, alerts out, none lost, one sender per instance.

- **Source.** The audit log, which commits with every change: the dispatcher reads the events after
  its stored cursor (``alert_state.cursor``, a ``seq``), evaluates the enabled rules (alerts/rules.py)
  and writes the alerts, their deliveries and the cursor's advance in one transaction. A crash before
  that commit re-reads the same events; after it, nothing is evaluated twice.
- **Wake-up.** Every ``poll_s`` (100 ms) one read-only statement looks at the log's newest ``seq``, the
  lease and the next due delivery; only a change opens a transaction (measured in benchmarks/bench_alerts.py).
- **One sender.** A lease row in the database (``alert_state.holder``/``lease_until``): a dispatcher
  sends only while it holds it, and every transaction it writes in first renews it under the condition
  that it still holds it (a fence), so N server processes or replicas never evaluate or claim twice. A
  dispatcher that dies stops renewing; another takes over once the lease has expired.
- **Delivery.** alerts/delivery.py: claim, send (several at once), record each attempt, retry with
  exponential backoff and jitter, dead-letter after ``alerts_max_attempts``.
- **Periodic checks.** ``stuck`` (no shard progress, expired run leases) every second while such rules
  exist; ``integrity`` (a full ``audit verify``) every ``alerts_integrity_interval_s``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..config import config_path, load_config
from ..db.models import AuditEvent
from ..db.types import utcnow
from ..ids import new_id
from . import checks
from .delivery import CLAIM_BATCH, Sender, claim, project_names, record
from .facts import DbFacts
from .models import Alert, AlertDelivery, AlertRule, AlertState
from .rules import INSTANCE_WIDE, Finding, LogEvent, evaluate, wants

if TYPE_CHECKING:
    from ..instance import Instance

log = logging.getLogger(__name__)
STATE = "dispatcher"
BATCH = 1000  # events evaluated per transaction
STUCK_EVERY_S = 1.0
PERSIST_EVERY_S = 2.0  # the cursor of finding-less events is stored at most this often


class LostLease(Exception):
    """Another dispatcher holds the lease now: this one stops writing until it gets it back."""


@dataclass(frozen=True)
class Look:
    newest: int
    cursor: int
    holder: str | None
    lease_until: datetime | None
    next_due: datetime | None


def _look(session: Session) -> Look:
    newest = select(func.max(AuditEvent.seq)).scalar_subquery()
    due = select(func.min(AlertDelivery.next_attempt_at)).where(AlertDelivery.status == "pending").scalar_subquery()
    row = session.execute(select(newest, AlertState.cursor, AlertState.holder, AlertState.lease_until, due)
                          .where(AlertState.name == STATE)).one()
    return Look(int(row[0] or 0), int(row[1]), row[2], row[3], row[4])


class Dispatcher:
    """One dispatcher's state between cycles; ``run_dispatcher`` drives it."""

    def __init__(self, instance: Instance, holder: str | None = None) -> None:
        self.instance = instance
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{new_id()[-12:]}"
        self.leader = False
        self.sender = Sender(instance)
        self._next_stuck = 0.0
        # The cursor read so far while holding the lease (ahead of the stored one by the events that
        # made no finding), and when it was last stored.
        self._cursor: int | None = None
        self._persisted = 0.0
        self._config_mtime: int | None = None

    @property
    def cursor(self) -> int | None:
        """The last event evaluated, while this dispatcher holds the lease."""
        return self._cursor

    # -- the lease ---------------------------------------------------------------------------------

    def _fence(self, session: Session, now: datetime) -> None:
        """Renew the lease in this transaction, or raise LostLease if another holds it."""
        until = now + timedelta(seconds=self.instance.config.alerts_lease_s)
        done = session.execute(update(AlertState).where(AlertState.name == STATE, AlertState.holder == self.holder,
                                                        AlertState.lease_until > now).values(lease_until=until))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.leader = False
            raise LostLease(f"dispatcher {self.holder} lost the lease")

    def acquire(self) -> bool:
        now = utcnow()
        until = now + timedelta(seconds=self.instance.config.alerts_lease_s)
        with self.instance.db.transaction() as session:
            done = session.execute(
                update(AlertState).where(AlertState.name == STATE,
                                         (AlertState.holder == self.holder) | AlertState.lease_until.is_(None)
                                         | (AlertState.lease_until < now))
                .values(holder=self.holder, lease_until=until))
            self.leader = done.rowcount == 1  # type: ignore[attr-defined]
        if self.leader:
            log.info("dispatcher %s holds the lease", self.holder)
        return self.leader

    def release(self) -> None:
        """Give the lease up at a clean stop (storing the cursor read so far), so another dispatcher
        need not wait for it to expire."""
        if not self.leader:
            return
        with self.instance.db.transaction() as session:
            if self._cursor is not None:
                session.execute(update(AlertState).where(AlertState.name == STATE, AlertState.holder == self.holder,
                                                         AlertState.cursor < self._cursor).values(cursor=self._cursor))
            session.execute(update(AlertState).where(AlertState.name == STATE, AlertState.holder == self.holder)
                            .values(holder=None, lease_until=None))
        self.leader, self._cursor = False, None

    def _persist(self, now: datetime) -> None:
        """Renew the lease and store the cursor read so far (events that made no finding)."""
        with self.instance.db.transaction() as session:
            self._fence(session, now)
            if self._cursor is not None:
                session.execute(update(AlertState).where(AlertState.name == STATE, AlertState.cursor < self._cursor)
                                .values(cursor=self._cursor))
        self._persisted = time.monotonic()

    # -- one cycle ---------------------------------------------------------------------------------

    def _reload_config(self) -> None:
        """Pick up ``config set`` done by another process (``alerts run`` lives for months): the alerts_*
        settings take effect, and the integrity check compares the log with the configuration as it is."""
        try:
            mtime = config_path(self.instance.home).stat().st_mtime_ns
        except OSError:
            return
        if mtime != self._config_mtime:
            self.instance.config = load_config(self.instance.home)
            self._config_mtime = mtime

    def cycle(self) -> None:
        self._reload_config()
        with self.instance.db.read() as session:
            look = _look(session)
        now = utcnow()
        lease_s = self.instance.config.alerts_lease_s
        if not self.leader or look.holder != self.holder:
            self.leader, self._cursor = False, None
            if look.holder not in (None, self.holder) and look.lease_until is not None and look.lease_until > now:
                return  # another dispatcher is active
            if not self.acquire():
                return
        if self._cursor is None or self._cursor < look.cursor:
            self._cursor = look.cursor
        try:
            renew = look.lease_until is None or (look.lease_until - now).total_seconds() < lease_s / 2
            if renew or (self._cursor > look.cursor and time.monotonic() - self._persisted > PERSIST_EVERY_S):
                self._persist(now)
            created = False
            while look.newest > self._cursor:
                created = self.evaluate_batch() or created
            if time.monotonic() >= self._next_stuck:
                self._next_stuck = time.monotonic() + STUCK_EVERY_S
                created = self.periodic() or created
            # A write transaction only when something is due: idle, a cycle is one read.
            if created or (look.next_due is not None and look.next_due <= now):
                self.deliver_due()
        except LostLease as exc:
            self._cursor = None
            log.warning("%s", exc)

    def evaluate_batch(self) -> bool:
        """Evaluate up to BATCH events after the cursor, reading only. Events that make no finding (most)
        advance the cursor in memory, stored at the next lease renewal (a dispatcher that dies before
        re-reads them, and they make nothing again); findings are written with the cursor's advance in
        one transaction. Returns whether an alert was made."""
        assert self._cursor is not None
        cursor = self._cursor
        findings: list[tuple[AlertRule, str, Finding]] = []
        with self.instance.db.read() as session:
            t = AuditEvent.__table__.c
            rows = session.execute(select(t.seq, t.action, t.project, t.target_type, t.target_id, t.body)
                                   .where(t.seq > cursor).order_by(t.seq).limit(BATCH)).all()
            if not rows:
                return False
            rules = self._rules(session)
            if rules:
                facts = DbFacts(session, self.instance.store)
                facts.preload([row[4] for row in rows if row[3] == "run"])
                for row in rows:
                    event = LogEvent(*row)
                    for rule, project in rules:
                        if event.seq <= rule.since_seq or not wants(rule.kind, event):
                            continue
                        if rule.kind not in INSTANCE_WIDE and event.project != project:
                            continue
                        finding = evaluate(rule.kind, rule.options, event, facts)
                        if finding is not None:
                            findings.append((rule, project, finding))
        last = int(rows[-1][0])
        if not findings:
            self._cursor = last
            return False
        now, made = utcnow(), False
        with self.instance.db.transaction() as session:
            self._fence(session, now)
            state = session.get(AlertState, STATE, with_for_update=True)
            assert state is not None
            if state.cursor > cursor:  # only a holder advances it, and we hold the lease: never expected
                raise LostLease(f"the alert cursor moved under dispatcher {self.holder}")
            writer = _Writer(session, self.instance, now)
            for rule, project, finding in findings:
                made = writer.add(rule, project, finding) or made
            state.cursor = last
        self._cursor = last
        self._persisted = time.monotonic()
        return made

    def _rules(self, session: Session) -> list[tuple[AlertRule, str]]:
        names = project_names(session)
        return [(r, names[r.project_id]) for r in session.scalars(select(AlertRule).where(AlertRule.enabled))]

    def periodic(self) -> bool:
        """The stuck check (each second) and the integrity check (each configured interval), for the
        rules of those kinds that exist. Returns whether an alert was made."""
        with self.instance.db.read() as session:
            kinds = {k for (k,) in session.execute(select(AlertRule.kind).where(
                AlertRule.enabled, AlertRule.kind.in_(("stuck", "integrity")))).all()}
            integrity_at = session.scalar(select(AlertState.integrity_at).where(AlertState.name == STATE))
        now, made = utcnow(), False
        if "stuck" in kinds:
            # Looked for on a read connection; a write transaction only for a stall not alerted yet.
            with self.instance.db.read() as session:
                fresh = [(rule, project, finding) for rule, project in self._rules(session) if rule.kind == "stuck"
                         for finding in checks.stuck(session, rule.project_id, float(rule.options["after_s"]), now)
                         if session.scalar(select(Alert.id).where(Alert.rule_id == rule.id,
                                                                  Alert.group_key == finding.group_key[:300])
                                           .limit(1)) is None]
            if fresh:
                with self.instance.db.transaction() as session:
                    self._fence(session, now)
                    writer = _Writer(session, self.instance, now)
                    for rule, project, finding in fresh:
                        made = writer.add(rule, project, finding) or made
        interval = self.instance.config.alerts_integrity_interval_s
        if "integrity" in kinds and (integrity_at is None or (now - integrity_at).total_seconds() >= interval):
            tampered = checks.integrity(self.instance)  # its own transaction (audit verify)
            now = utcnow()
            with self.instance.db.transaction() as session:
                self._fence(session, now)
                state = session.get(AlertState, STATE)
                assert state is not None
                state.integrity_at = now
                if tampered is not None:
                    writer = _Writer(session, self.instance, now)
                    for rule, project in self._rules(session):
                        if rule.kind == "integrity":
                            made = writer.add(rule, project, tampered) or made
        return made

    def deliver_due(self) -> int:
        """Claim the due deliveries, send them, record the outcomes; repeat while a full batch was due."""
        sent = 0
        while True:
            now = utcnow()
            with self.instance.db.transaction() as session:
                self._fence(session, now)
                items = claim(session, self.instance, now)
            if not items:
                return sent
            results = self.sender.send(items)
            with self.instance.db.transaction() as session:
                record(session, self.instance.config, results, utcnow())
            sent += len(items)
            if len(items) < CLAIM_BATCH:
                return sent

    def close(self) -> None:
        self.sender.close()


class _Writer:
    """Turns findings into alerts and deliveries in the evaluating transaction, grouping by root cause."""

    def __init__(self, session: Session, instance: Instance, now: datetime) -> None:
        self.session, self.now = session, now
        self.window = timedelta(seconds=instance.config.alerts_group_window_s)
        self.open: dict[tuple[str, str], Alert | None] = {}

    def _existing(self, rule: AlertRule, finding: Finding) -> Alert | None:
        key = (rule.id, finding.group_key)
        if key not in self.open:
            q = select(Alert).where(Alert.rule_id == rule.id, Alert.group_key == finding.group_key)
            if not finding.once:
                q = q.where(Alert.created_at >= self.now - self.window)
            # The alerts this batch made are in ``open`` already: no flush before each look (it cost
            # more than the rest of the evaluation).
            with self.session.no_autoflush:
                self.open[key] = self.session.scalars(q.order_by(Alert.created_at.desc()).limit(1)).first()
        return self.open[key]

    def add(self, rule: AlertRule, project: str, finding: Finding) -> bool:
        """Record ``finding``; True when it made a new alert (to be sent), False when it was counted
        into an open one (or, ``once``, seen before)."""
        alert = self._existing(rule, finding)
        if alert is not None:
            if not finding.once:  # one more event of the same root cause: counted, not sent again
                alert.count += 1
                alert.last_seq = finding.seq or alert.last_seq
                alert.updated_at = self.now
            return False
        self.open[(rule.id, finding.group_key)] = new_alert(self.session, rule, project, finding, self.now)
        return True


def new_alert(session: Session, rule: AlertRule, project: str, finding: Finding, now: datetime,
              kind: str | None = None) -> Alert:
    """An alert and its pending delivery to the rule's channel, added to ``session``."""
    details: dict[str, Any] = dict(finding.details)
    alert = Alert(id=new_id(), rule_id=rule.id, group_key=finding.group_key[:300], kind=kind or rule.kind,
                  project=finding.details.get("project", project) if rule.kind in INSTANCE_WIDE else project,
                  title=finding.title, details=details, count=1, first_seq=finding.seq, last_seq=finding.seq,
                  created_at=now, updated_at=now)
    session.add(alert)
    session.add(AlertDelivery(id=new_id(), alert_id=alert.id, channel_id=rule.channel_id, status="pending",
                              attempts=0, next_attempt_at=now, created_at=now))
    return alert


def run_dispatcher(instance: Instance, stop: threading.Event, poll_s: float = 0.1) -> None:
    """Run a dispatcher until ``stop`` is set: in ``nextstat-pro serve``'s background thread or as
    ``nextstat-pro alerts run``. Safe in any number of processes at once (only the lease holder acts).
    A failing cycle (a database that went away) is logged and retried after a second."""
    dispatcher = Dispatcher(instance)
    try:
        while not stop.is_set():
            try:
                dispatcher.cycle()
            except Exception:  # noqa: BLE001 - the loop must outlive a database hiccup; the log says what
                log.exception("alert dispatcher cycle failed; retrying")
                dispatcher.leader = False
                stop.wait(1.0)
            stop.wait(poll_s)
    finally:
        try:
            dispatcher.release()
        except Exception:  # noqa: BLE001 - the lease expires by itself
            log.warning("could not release the alert dispatcher lease; it expires by itself")
        dispatcher.close()
