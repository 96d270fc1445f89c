"""What the alerts operations return: the documents of ``alerts channel|rule|deliveries|test``.

Each model is the ``--json`` output of its command and the body an HTTP server will send; the JSON
Schemas in ``docs/schemas/views/`` are generated from them (``nextstat_pro.view_schemas``). No view
carries a stored secret: a webhook's signing secret appears once, in ``ChannelCreated`` or
``SecretRotated``, and a webhook URL only as its scheme and host (a Slack URL is a credential).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from ..viewbase import VIEW_CONFIG

_VIEW = VIEW_CONFIG


class ChannelRow(BaseModel):
    """An alert channel: where a rule's alerts go."""

    model_config = _VIEW

    project: str
    name: str
    kind: str  # webhook | slack | email
    target: str  # e-mail addresses, or a webhook URL's scheme and host only
    previous_secret_valid_until: datetime | None
    created_at: datetime


class ChannelCreated(BaseModel):
    """A channel just added; ``secret`` (a webhook's signing secret, ``whsec_...``) is shown this once."""

    model_config = _VIEW

    channel: ChannelRow
    secret: str | None


class SecretRotated(BaseModel):
    """A webhook channel's new signing secret, shown this once; the previous one stays valid (alerts are
    signed with both) until ``previous_valid_until``."""

    model_config = _VIEW

    channel: ChannelRow
    secret: str
    previous_valid_until: datetime


class RuleRow(BaseModel):
    """An alert rule: when (``kind`` and its options) and where (``channel``)."""

    model_config = _VIEW

    project: str
    name: str
    kind: str
    channel: str
    options: dict[str, Any]
    enabled: bool
    instance_wide: bool
    created_at: datetime


class AttemptRow(BaseModel):
    """One try of a delivery."""

    model_config = _VIEW

    attempt: int
    started_at: datetime
    latency_ms: float
    status_code: int | None
    ok: bool
    error: str | None


class DeliveryRow(BaseModel):
    """An alert on its way to one channel, with every attempt."""

    model_config = _VIEW

    id: str
    alert_id: str  # the receivers' idempotency key (webhook-id)
    rule: str
    kind: str
    project: str | None
    title: str
    count: int
    channel: str
    status: str  # pending | delivered | dead
    attempts: list[AttemptRow]
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


VIEWS: tuple[type[BaseModel], ...] = (ChannelRow, ChannelCreated, SecretRotated, RuleRow, AttemptRow, DeliveryRow)
