"""Sending one alert to one channel: a signed webhook (Standard Webhooks), a Slack-compatible webhook,
or e-mail over the instance's SMTP. Each sender returns an ``Outcome`` and never raises for a
receiver's failure: the dispatcher records it and retries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Message:
    """What every channel renders: the alert as the receivers see it."""

    alert_id: str  # the idempotency key: the same on every attempt (webhook-id)
    rule: str
    kind: str
    project: str | None
    title: str
    count: int
    details: dict[str, Any]
    created_at: str
    updated_at: str
    instance: str

    def document(self) -> dict[str, Any]:
        """The webhook body: Standard Webhooks' recommended ``type``/``timestamp``/``data`` envelope."""
        return {"type": f"alert.{self.kind}", "timestamp": self.updated_at,
                "data": {"alert_id": self.alert_id, "rule": self.rule, "kind": self.kind, "project": self.project,
                         "title": self.title, "count": self.count, "details": self.details,
                         "created_at": self.created_at, "instance": self.instance}}

    def text(self) -> str:
        counted = f" ({self.count} events)" if self.count > 1 else ""
        where = f" [{self.project}]" if self.project else ""
        return f"NextStat Pro alert{where} {self.rule}: {self.title}{counted}"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None


def shown_url(url: str) -> str:
    """A webhook URL as it may be shown or logged: scheme and host only (a Slack URL is a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"
