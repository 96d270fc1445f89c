"""Webhooks: a JSON body signed per the Standard Webhooks specification, or a Slack-compatible body.

Headers: ``webhook-id`` (the alert id: the same on every retry, so a receiver that saw it already
drops the copy), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: ``v1,<base64
HMAC-SHA256 of "id.timestamp.body">`` under the channel's secret, and under the previous secret too
(space-separated) while a rotation's grace period lasts, so receivers can switch at their pace.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from . import Message, Outcome, shown_url

_BODY_SHOWN = 200  # characters of a refusing receiver's answer kept in the attempt's error


def signature_headers(message_id: str, body: str, secrets: list[str], now: datetime | None = None) -> dict[str, str]:
    now = now or datetime.now(UTC)
    signatures = [Webhook(secret).sign(message_id, now, body) for secret in secrets]
    return {"webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": " ".join(signatures)}


def body_of(message: Message, slack: bool) -> str:
    if slack:
        return json.dumps({"text": message.text()}, ensure_ascii=False)
    return json.dumps(message.document(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def send(client: httpx.Client, url: str, message: Message, secrets: list[str], slack: bool,
         timeout_s: float) -> Outcome:
    body = body_of(message, slack)
    headers = {"content-type": "application/json", "user-agent": "nextstat-pro-alerts",
               **signature_headers(message.alert_id, body, secrets)}
    try:
        response = client.post(url, content=body.encode(), headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        # httpx may name the URL in its message: only its scheme and host are shown.
        why = str(exc).replace(url, shown_url(url)) or type(exc).__name__
        return Outcome(False, None, f"{type(exc).__name__} sending to {shown_url(url)}: {why}")
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code)
    answer = " ".join(response.text.split())[:_BODY_SHOWN]
    return Outcome(False, response.status_code, f"HTTP {response.status_code} from {shown_url(url)}"
                   + (f": {answer}" if answer else ""))
