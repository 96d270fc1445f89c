"""Deliveries: claiming the due ones, sending them, recording every attempt, retrying with backoff.

A claim and its result are two short transactions around the send (a send can take seconds and must
not hold the database): the claim moves the delivery's ``next_attempt_at`` past the send timeout plus
the lease, so if the dispatcher dies mid-send the delivery falls due again and the next dispatcher
sends it with the same ``webhook-id``: at-least-once, duplicates only with the same idempotency key.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Project
from ..db.types import rfc3339, utcnow
from . import secrets
from .channels import Message, Outcome, email, webhook
from .channels import shown_url as _shown_url
from .models import Alert, AlertAttempt, AlertChannel, AlertDelivery, AlertRule

if TYPE_CHECKING:
    from ..config import InstanceConfig
    from ..instance import Instance

CLAIM_BATCH = 64
SENDERS = 8  # deliveries sent at once: a slow or unreachable receiver does not hold up the others
_THREADS = "nsp-alert-send"


class _RedactUrls(logging.Filter):
    """httpx logs every request's full URL at INFO; a webhook URL can be a credential (Slack's is), so
    the requests of our sender threads are logged with the URL's scheme and host only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.threadName and record.threadName.startswith(_THREADS) and isinstance(record.args, tuple):
            record.args = tuple(_shown_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactUrls())


@dataclass(frozen=True)
class Claimed:
    delivery_id: str
    attempt: int
    channel_kind: str
    target: str  # the URL (decrypted) or the addresses
    secrets: list[str]
    message: Message


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: after attempt n, between half and all of base·2^(n-1), capped."""
    delay = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(delay / 2, delay)


def message_of(instance: Instance, alert: Alert, rule: AlertRule) -> Message:
    return Message(alert_id=alert.id, rule=rule.name, kind=alert.kind, project=alert.project, title=alert.title,
                   count=alert.count, details=alert.details, created_at=rfc3339(alert.created_at),
                   updated_at=rfc3339(alert.updated_at), instance=instance.config.log_origin)


def _secrets(instance: Instance, channel: AlertChannel, now: datetime) -> list[str]:
    out = [secrets.decrypt(instance.home, channel.id, channel.secret)] if channel.secret else []
    if channel.previous_secret and channel.previous_until and channel.previous_until > now:
        out.append(secrets.decrypt(instance.home, channel.id, channel.previous_secret))
    return out


def claim(session: Session, instance: Instance, now: datetime, only: str | None = None) -> list[Claimed]:
    """Take the due deliveries (or just ``only``) for one send each, in the caller's transaction."""
    cfg = instance.config
    q = (select(AlertDelivery, Alert, AlertRule, AlertChannel)
         .join(Alert, Alert.id == AlertDelivery.alert_id).join(AlertRule, AlertRule.id == Alert.rule_id)
         .join(AlertChannel, AlertChannel.id == AlertDelivery.channel_id)
         .where(AlertDelivery.status == "pending"))
    if only is not None:
        q = q.where(AlertDelivery.id == only)
    else:
        q = q.where(AlertDelivery.next_attempt_at <= now).order_by(AlertDelivery.next_attempt_at).limit(CLAIM_BATCH)
    out = []
    hold = timedelta(seconds=cfg.alerts_send_timeout_s + cfg.alerts_lease_s)
    for delivery, alert, rule, channel in session.execute(q).all():
        delivery.attempts += 1
        delivery.next_attempt_at = now + hold
        target = channel.target if channel.kind == "email" else secrets.decrypt(instance.home, channel.id,
                                                                                channel.target)
        out.append(Claimed(delivery.id, delivery.attempts, channel.kind, target, _secrets(instance, channel, now),
                           message_of(instance, alert, rule)))
    return out


class Sender:
    """Sends claimed deliveries, several at once; one HTTP client kept (connections reused)."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.client = httpx.Client(follow_redirects=False)
        self.pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix=_THREADS)

    def send_one(self, item: Claimed) -> tuple[Claimed, datetime, float, Outcome]:
        started, t0 = utcnow(), time.perf_counter()
        try:
            if item.channel_kind == "email":
                outcome = email.send(self.instance.config.smtp, item.target.split(","), item.message)
            else:
                outcome = webhook.send(self.client, item.target, item.message, item.secrets,
                                       item.channel_kind == "slack", self.instance.config.alerts_send_timeout_s)
        except Exception as exc:  # noqa: BLE001 - one channel's bug must not stop the others; it is recorded
            outcome = Outcome(False, None, f"{type(exc).__name__}: {exc}")
        return item, started, (time.perf_counter() - t0) * 1000, outcome

    def send(self, items: list[Claimed]) -> list[tuple[Claimed, datetime, float, Outcome]]:
        return list(self.pool.map(self.send_one, items))  # in the pool's threads, even one (their logs are redacted)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()


def record(session: Session, config: InstanceConfig,
           results: list[tuple[Claimed, datetime, float, Outcome]], now: datetime) -> None:
    """Each attempt logged; a success delivered, a failure retried later or, out of attempts, dead."""
    for item, started, latency_ms, outcome in results:
        session.add(AlertAttempt(delivery_id=item.delivery_id, attempt=item.attempt, started_at=started,
                                 latency_ms=round(latency_ms, 3), status_code=outcome.status_code, ok=outcome.ok,
                                 error=outcome.error))
        delivery = session.get(AlertDelivery, item.delivery_id)
        if delivery is None or delivery.status != "pending":
            continue
        if outcome.ok:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
            delivery.last_error = None
        elif delivery.attempts >= config.alerts_max_attempts:
            delivery.status, delivery.next_attempt_at, delivery.last_error = "dead", None, outcome.error
        else:
            delay = backoff_s(delivery.attempts, config.alerts_backoff_s, config.alerts_backoff_max_s)
            delivery.next_attempt_at, delivery.last_error = now + timedelta(seconds=delay), outcome.error


def project_names(session: Session) -> dict[str, str]:
    return {pid: name for pid, name in session.execute(select(Project.id, Project.name))}
