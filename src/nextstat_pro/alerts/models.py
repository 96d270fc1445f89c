"""Persistence models of alerts (migration 0009): channels, rules, alerts, their deliveries and
every delivery attempt, and the dispatcher's state row (its lease and its cursor in the log)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db.models import Base
from ..db.types import UTCDateTime


class AlertChannel(Base):
    """Where alerts go: a webhook (Standard Webhooks or a Slack-compatible body) or e-mail
    addresses. A webhook's signing secret is stored encrypted (alerts/secrets.py); after a
    rotation the previous one stays valid until ``previous_until``."""

    __tablename__ = "alert_channels"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))  # webhook | slack | email
    target: Mapped[str] = mapped_column(Text)  # the URL, or addresses separated by commas
    secret: Mapped[str | None] = mapped_column(Text)  # encrypted whsec_ secret
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_alert_channels_name"),)


class AlertRule(Base):
    """When to alert: a kind (alerts/rules.py), its options, the channel. ``since_seq``: the log's
    size when the rule was added; events before it never fire it."""

    __tablename__ = "alert_rules"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    channel_id: Mapped[str] = mapped_column(ForeignKey("alert_channels.id"))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    since_seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_alert_rules_name"),)


class Alert(Base):
    """One notification: a rule fired for a root cause (``group_key``). Later events of the same
    root cause within the rule's window add to ``count`` instead of sending again. Its id is the
    receivers' idempotency key (``webhook-id``)."""

    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("alert_rules.id"))
    group_key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    project: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    count: Mapped[int] = mapped_column(Integer)
    first_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    __table_args__ = (Index("ix_alerts_rule_group", "rule_id", "group_key", "created_at"),)


class AlertDelivery(Base):
    """An alert on its way to one channel: ``pending`` (due at ``next_attempt_at``), ``delivered``
    or ``dead`` (the attempts ran out). A dispatcher claims a delivery by moving
    ``next_attempt_at`` past its send timeout, so a dispatcher killed mid-send leaves it due again."""

    __tablename__ = "alert_deliveries"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    channel_id: Mapped[str] = mapped_column(ForeignKey("alert_channels.id"))
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    __table_args__ = (Index("ix_alert_deliveries_due", "status", "next_attempt_at"),)


class AlertAttempt(Base):
    """One try of a delivery: when, how long, the receiver's answer or why it failed."""

    __tablename__ = "alert_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("alert_deliveries.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    latency_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)


class AlertState(Base):
    """The dispatcher's one row: who holds the lease and until when, how far into the audit log
    it has read (``cursor``: the last seq evaluated), and when it last ran its periodic checks."""

    __tablename__ = "alert_state"
    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cursor: Mapped[int] = mapped_column(BigInteger)
    integrity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
