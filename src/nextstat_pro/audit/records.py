"""Database functions of the audit operations and of the exports: the log queried, a checkpoint
signed, within the caller's transaction.

They take the caller's ``Session`` and never authorize: ``audit.service``, ``audit.export`` and
``runs.export`` call them after ``authorize``. Not part of the service surface.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session

from ..db.models import AuditEvent
from ..errors import UsageError
from . import tree
from .events import event_document

if TYPE_CHECKING:
    from ..instance import Instance


@dataclass(frozen=True)
class EventFilter:
    actor: str | None = None  # user id, username or printed name
    action: str | None = None  # exact, or a prefix ending in '.' (e.g. "run.")
    target_type: str | None = None
    target_id: str | None = None
    project: str | None = None
    since: str | None = None  # RFC 3339 / ISO date, compared with ts
    until: str | None = None
    text: str | None = None  # free text in the event body
    # Any of these (type, id) targets, in one query: a run export asks for the run and each
    # of its artifacts at once instead of one query per artifact.
    targets: tuple[tuple[str, str], ...] | None = None


def checkpoint_in(instance: Instance, session: Session) -> tree.StoredCheckpoint:
    """Sign a checkpoint of the whole log within ``session``'s transaction (callers authorize first)."""
    return tree.checkpoint(
        session, instance.config.log_origin, instance.log_verifier(), instance.log_keys(), instance.witness()
    )


def query_events(session: Session, f: EventFilter, after_seq: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Events matching ``f`` with ``seq > after_seq``, in seq order: pagination by cursor is
    stable while the log grows (pass the last seq of a page as ``after_seq``)."""
    q = select(AuditEvent).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq).limit(limit)
    if f.actor:
        q = q.where(or_(AuditEvent.actor_id == f.actor, AuditEvent.body.contains(f'"name":{json.dumps(f.actor)}')))
    if f.action:
        q = q.where(AuditEvent.action.startswith(f.action) if f.action.endswith(".") else AuditEvent.action == f.action)
    if f.target_type:
        q = q.where(AuditEvent.target_type == f.target_type)
    if f.target_id:
        q = q.where(AuditEvent.target_id == f.target_id)
    if f.project:
        q = q.where(AuditEvent.project == f.project)
    if f.targets is not None:
        by_type: dict[str, list[str]] = {}
        for target_type, target_id in f.targets:
            by_type.setdefault(target_type, []).append(target_id)
        # One OR term per type (not a row-value IN), so both databases walk ix_audit_target once
        # per term; no targets at all matches nothing rather than everything.
        q = q.where(or_(false(), *(and_(AuditEvent.target_type == t, AuditEvent.target_id.in_(ids))
                                   for t, ids in by_type.items())))
    if f.since:
        q = q.where(AuditEvent.ts >= _ts(f.since))
    if f.until:
        q = q.where(AuditEvent.ts < _ts(f.until))
    if f.text:
        q = q.where(AuditEvent.body.contains(f.text))
    return [event_document(r) for r in session.scalars(q)]


def _ts(value: str) -> str:
    """Normalise a date or time to the stored RFC 3339 form (lexicographic order = time order)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{value!r} is not a date or time (use YYYY-MM-DD or ISO 8601)") from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
