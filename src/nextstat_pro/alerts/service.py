"""The alerts operations: channels, rules, deliveries, a test notification.

Channels and rules belong to a project; admins manage them (``alerts.manage``), editors read them
(``alerts.read``). Rules of the instance-wide kinds (``security``, ``integrity``) see every project's
and the instance's events, so adding one needs an instance admin too (``alerts.manage_instance``).
Every change commits with its audit event; a webhook secret is returned once and stored encrypted
(alerts/secrets.py), never logged or put in an event.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import text
from ..access.context import RequestContext
from ..access.rbac import authorize
from ..audit.events import append_event
from ..db.models import AuditEvent, Project
from ..db.types import utcnow
from ..errors import ConflictError, NotFoundError, UsageError
from ..ids import new_id
from ..projects.service import get_project
from . import secrets
from .channels import shown_url
from .delivery import Sender, claim, record
from .dispatcher import new_alert
from .models import Alert, AlertAttempt, AlertChannel, AlertDelivery, AlertRule
from .rules import INSTANCE_WIDE, Finding, check_options
from .views import AttemptRow, ChannelCreated, ChannelRow, DeliveryRow, RuleRow, SecretRotated

if TYPE_CHECKING:
    from ..instance import Instance

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
DEFAULT_GRACE_S = 24 * 3600.0


def _name(what: str, name: str) -> str:
    if not NAME.match(name):
        raise UsageError(f"invalid {what} name {name!r}: letters, digits, '.', '_' or '-' (at most 64)")
    return name


def _webhook_url(url: str) -> str:
    if len(url) > 2000 or any(c.isspace() or not c.isprintable() for c in url):
        raise UsageError("a webhook URL is one line of at most 2000 characters, without spaces")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("a webhook URL must be http:// or https:// with a host")
    return url


def _addresses(raw: str) -> str:
    found = [a.strip() for a in raw.split(",") if a.strip()]
    if not found:
        raise UsageError("an e-mail channel needs at least one address")
    return ",".join(text.email(a) or "" for a in found)


def _channel_row(channel: AlertChannel, project: str, instance: Instance) -> ChannelRow:
    target = channel.target if channel.kind == "email" else \
        shown_url(secrets.decrypt(instance.home, channel.id, channel.target))
    previous = channel.previous_until if channel.previous_secret and channel.previous_until and \
        channel.previous_until > utcnow() else None
    return ChannelRow(project=project, name=channel.name, kind=channel.kind, target=target,
                      previous_secret_valid_until=previous, created_at=channel.created_at)


def _rule_row(rule: AlertRule, project: str, channel: str) -> RuleRow:
    return RuleRow(project=project, name=rule.name, kind=rule.kind, channel=channel, options=rule.options,
                   enabled=rule.enabled, instance_wide=rule.kind in INSTANCE_WIDE, created_at=rule.created_at)


def _get_channel(session: Session, project: Project, name: str) -> AlertChannel:
    channel = session.scalar(select(AlertChannel).where(AlertChannel.project_id == project.id,
                                                        AlertChannel.name == name))
    if channel is None:
        raise NotFoundError(f"no alert channel {name!r} in project {project.name}")
    return channel


def _get_rule(session: Session, project: Project, name: str) -> AlertRule:
    rule = session.scalar(select(AlertRule).where(AlertRule.project_id == project.id, AlertRule.name == name))
    if rule is None:
        raise NotFoundError(f"no alert rule {name!r} in project {project.name}")
    return rule


def add_channel(instance: Instance, ctx: RequestContext, project: str, name: str, *, webhook: str | None = None,
                email: str | None = None, slack: bool = False) -> ChannelCreated:
    """Add a webhook channel (Standard Webhooks, or a Slack-compatible body with ``slack``) or an
    e-mail channel. A webhook's signing secret is made here and returned this once."""
    if (webhook is None) == (email is None):
        raise UsageError("a channel is either a webhook URL or e-mail addresses")
    if slack and webhook is None:
        raise UsageError("a Slack-compatible body is for webhook channels")
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, "alerts.manage", found)
        _name("channel", name)
        if session.scalar(select(AlertChannel.id).where(AlertChannel.project_id == found.id,
                                                        AlertChannel.name == name)) is not None:
            raise ConflictError(f"alert channel {name!r} exists already in project {found.name}")
        channel_id, secret = new_id(), None
        if webhook is not None:
            url = _webhook_url(webhook)
            secret = secrets.new_secret()
            kind, target = ("slack" if slack else "webhook"), secrets.encrypt(instance.home, channel_id, url)
            shown, stored = shown_url(url), secrets.encrypt(instance.home, channel_id, secret)
        else:
            kind, target = "email", _addresses(email or "")
            shown, stored = target, None
        channel = AlertChannel(id=channel_id, project_id=found.id, name=name, kind=kind, target=target, secret=stored,
                               created_at=utcnow(), created_by=ctx.actor.id)
        session.add(channel)
        append_event(session, ctx, action="alert.channel_added", target=("alert_channel", channel_id),
                     project=found.name, after={"name": name, "kind": kind, "target": shown})
        return ChannelCreated(channel=_channel_row(channel, found.name, instance), secret=secret)


def list_channels(instance: Instance, ctx: RequestContext, project: str) -> list[ChannelRow]:
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, "alerts.read", found)
        rows = session.scalars(select(AlertChannel).where(AlertChannel.project_id == found.id)
                               .order_by(AlertChannel.name))
        return [_channel_row(c, found.name, instance) for c in rows]


def rotate_secret(instance: Instance, ctx: RequestContext, project: str, name: str, reason: str,
                  grace_s: float = DEFAULT_GRACE_S) -> SecretRotated:
    """A new signing secret for a webhook channel, returned this once; alerts are signed with the old
    one too until ``grace_s`` has passed, so receivers can switch without losing any."""
    if not 0 <= grace_s <= 30 * 86_400:
        raise UsageError("the grace period must be between 0 and 30 days")
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, "alerts.manage", found)
        channel = _get_channel(session, found, name)
        if channel.kind == "email" or channel.secret is None:
            raise UsageError(f"alert channel {name!r} sends e-mail: it has no signing secret")
        secret, until = secrets.new_secret(), utcnow() + timedelta(seconds=grace_s)
        channel.previous_secret, channel.previous_until = channel.secret, until
        channel.secret = secrets.encrypt(instance.home, channel.id, secret)
        append_event(session, ctx, action="alert.secret_rotated", target=("alert_channel", channel.id),
                     project=found.name, after={"name": name, "previous_valid_until": until.isoformat()},
                     reason=reason)
        return SecretRotated(channel=_channel_row(channel, found.name, instance), secret=secret,
                             previous_valid_until=until)


def add_rule(instance: Instance, ctx: RequestContext, project: str, name: str, kind: str, channel: str,
             options: dict[str, Any] | None = None) -> RuleRow:
    """Add a rule: alerts of ``kind`` (rules.KINDS) to ``channel``. It fires for events after it was added."""
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, "alerts.manage", found)
        checked = check_options(kind, options or {})
        if kind in INSTANCE_WIDE:
            authorize(session, ctx, "alerts.manage_instance")
        _name("rule", name)
        target = _get_channel(session, found, channel)
        if session.scalar(select(AlertRule.id).where(AlertRule.project_id == found.id,
                                                     AlertRule.name == name)) is not None:
            raise ConflictError(f"alert rule {name!r} exists already in project {found.name}")
        rule = AlertRule(id=new_id(), project_id=found.id, name=name, kind=kind, channel_id=target.id,
                         options=checked, enabled=True, created_at=utcnow(), created_by=ctx.actor.id, since_seq=0)
        session.add(rule)
        appended = append_event(session, ctx, action="alert.rule_added", target=("alert_rule", rule.id),
                                project=found.name, after={"name": name, "kind": kind, "channel": channel,
                                                           "options": checked})
        rule.since_seq = appended.seq  # events up to its own addition never fire it
        return _rule_row(rule, found.name, channel)


def list_rules(instance: Instance, ctx: RequestContext, project: str) -> list[RuleRow]:
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, "alerts.read", found)
        rows = session.execute(select(AlertRule, AlertChannel.name).join(AlertChannel,
                                                                         AlertChannel.id == AlertRule.channel_id)
                               .where(AlertRule.project_id == found.id).order_by(AlertRule.name)).all()
        return [_rule_row(rule, found.name, channel) for rule, channel in rows]


def disable_rule(instance: Instance, ctx: RequestContext, project: str, name: str, reason: str) -> RuleRow:
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, "alerts.manage", found)
        rule = _get_rule(session, found, name)
        if rule.kind in INSTANCE_WIDE:
            authorize(session, ctx, "alerts.manage_instance")
        if not rule.enabled:
            raise ConflictError(f"alert rule {name!r} is disabled already")
        rule.enabled = False
        append_event(session, ctx, action="alert.rule_disabled", target=("alert_rule", rule.id), project=found.name,
                     before={"enabled": True}, after={"enabled": False}, reason=reason)
        channel = session.get(AlertChannel, rule.channel_id)
        assert channel is not None
        return _rule_row(rule, found.name, channel.name)


def _delivery_rows(session: Session, query: Any) -> list[DeliveryRow]:
    rows = session.execute(query).all()
    attempts: dict[str, list[AttemptRow]] = {}
    ids = [d.id for d, *_ in rows]
    if ids:
        for a in session.scalars(select(AlertAttempt).where(AlertAttempt.delivery_id.in_(ids))
                                 .order_by(AlertAttempt.delivery_id, AlertAttempt.attempt, AlertAttempt.id)):
            attempts.setdefault(a.delivery_id, []).append(AttemptRow(
                attempt=a.attempt, started_at=a.started_at, latency_ms=a.latency_ms, status_code=a.status_code,
                ok=a.ok, error=a.error))
    return [DeliveryRow(id=d.id, alert_id=alert.id, rule=rule, kind=alert.kind, project=alert.project,
                        title=alert.title, count=alert.count, channel=channel, status=d.status,
                        attempts=attempts.get(d.id, []), last_error=d.last_error, next_attempt_at=d.next_attempt_at,
                        created_at=d.created_at, delivered_at=d.delivered_at)
            for d, alert, rule, channel in rows]


def _deliveries_query(project_id: str) -> Any:
    return (select(AlertDelivery, Alert, AlertRule.name, AlertChannel.name)
            .join(Alert, Alert.id == AlertDelivery.alert_id).join(AlertRule, AlertRule.id == Alert.rule_id)
            .join(AlertChannel, AlertChannel.id == AlertDelivery.channel_id)
            .where(AlertRule.project_id == project_id))


def list_deliveries(instance: Instance, ctx: RequestContext, project: str, *, failed: bool = False,
                    limit: int = 100) -> list[DeliveryRow]:
    """The project's deliveries, newest first, each with every attempt; ``failed``: those not delivered
    that have failed at least once (retrying or dead)."""
    if not 1 <= limit <= 10_000:
        raise UsageError("limit must be between 1 and 10000")
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, "alerts.read", found)
        q = _deliveries_query(found.id)
        if failed:
            q = q.where(AlertDelivery.status != "delivered", AlertDelivery.last_error.is_not(None))
        return _delivery_rows(session, q.order_by(AlertDelivery.created_at.desc(), AlertDelivery.id.desc())
                              .limit(limit))


def test_rule(instance: Instance, ctx: RequestContext, project: str, name: str) -> DeliveryRow:
    """Send a test notification through a rule's channel now, and return its delivery. It is an alert
    like any other (recorded, retried by the dispatcher if this send fails)."""
    now = utcnow()
    with instance.db.transaction() as session:
        found = get_project(session, project)
        authorize(session, ctx, "alerts.manage", found)
        rule = _get_rule(session, found, name)
        seq = session.scalar(select(func.max(AuditEvent.seq))) or 0
        finding = Finding(f"test:{new_id()}", f"test notification of rule {name} ({rule.kind}), asked by "
                          f"{ctx.actor.name}", {"test": True, "asked_by": ctx.actor.name}, None)
        alert = new_alert(session, rule, found.name, finding, now, kind=rule.kind)
        append_event(session, ctx, action="alert.test_sent", target=("alert_rule", rule.id), project=found.name,
                     after={"alert_id": alert.id, "log_size": seq})
        session.flush()
        delivery_id = session.scalar(select(AlertDelivery.id).where(AlertDelivery.alert_id == alert.id))
        assert delivery_id is not None
        items = claim(session, instance, now, only=delivery_id)
    sender = Sender(instance)
    try:
        results = sender.send(items)
    finally:
        sender.close()
    with instance.db.transaction() as session:
        record(session, instance.config, results, utcnow())
        found = get_project(session, project)
        return _delivery_rows(session, _deliveries_query(found.id).where(AlertDelivery.id == delivery_id))[0]
