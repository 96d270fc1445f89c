"""Audit operations on an instance: checkpoints, proofs, verification, queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session

from ..db.models import AuditCheckpoint, AuditEvent, Project
from ..errors import NotFoundError, UsageError
from ..identity.actors import RequestContext
from ..identity.rbac import allowed, authorize
from ..instance import Instance
from . import tree
from .events import event_document
from .proofs import consistency_document, inclusion_document
from .verify import VerifyReport, verify_log


def make_checkpoint(instance: Instance, ctx: RequestContext) -> tree.StoredCheckpoint:
    with instance.db.transaction() as session:
        authorize(session, ctx, "audit.checkpoint")
        return checkpoint_in(instance, session)


def checkpoint_in(instance: Instance, session: Session) -> tree.StoredCheckpoint:
    """Sign a checkpoint of the whole log within ``session``'s transaction (callers authorize)."""
    return tree.checkpoint(
        session, instance.config.log_origin, instance.log_verifier(), instance.log_keys(), instance.witness()
    )


def maybe_checkpoint(instance: Instance) -> tree.StoredCheckpoint | None:
    """Sign a checkpoint when the newest is older than the configured interval and events
    arrived since (called at the end of commands: the interval needs no daemon)."""
    with instance.db.transaction() as session:
        last = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1)).first()
        newest = session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0
        due = last is None or last.created_at < datetime.now(UTC) - timedelta(
            seconds=instance.config.checkpoint_interval_s
        )
        if newest == 0 or not due or (last is not None and last.size >= newest):
            return None
        return checkpoint_in(instance, session)


def find_event(session: Session, ref: str) -> AuditEvent:
    row = session.scalar(select(AuditEvent).where(AuditEvent.event_id == ref))
    if row is None and ref.isdigit():
        row = session.get(AuditEvent, int(ref))
    if row is None:
        raise NotFoundError(f"no audit event {ref!r} (give an event id or a seq)")
    return row


def prove(instance: Instance, ctx: RequestContext, ref: str) -> dict[str, Any]:
    """Inclusion proof of one event against the latest checkpoint (signed now if needed). The
    proof document holds the whole event, so only a caller who may read that event gets it:
    a viewer of its project, or for an instance event its subject or an instance admin. Any
    other caller is told exactly what a caller asking for a missing event is told."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "audit.prove")
        row = find_event(session, ref)
        if not _may_read(session, ctx, row):
            raise NotFoundError(f"no audit event {ref!r} (give an event id or a seq)")
        latest = tree.latest_checkpoint(session)
        if latest is None or latest.size < row.seq:
            latest = checkpoint_in(instance, session)
        proof = tree.inclusion(session, row.seq, latest.size)
        return inclusion_document(event_document(row), proof, latest.note, instance.log_verifier())


def _may_read(session: Session, ctx: RequestContext, row: AuditEvent) -> bool:
    if row.project is not None:
        project = session.scalar(select(Project).where(Project.name == row.project))
        return project is not None and allowed(session, ctx, "audit.read_project", project)
    about_caller = row.actor_id == ctx.actor.id or (row.target_type == "user" and row.target_id == ctx.actor.id)
    return about_caller or allowed(session, ctx, "audit.read", None)


def consistency(instance: Instance, ctx: RequestContext, size1: int, size2: int) -> dict[str, Any]:
    """A consistency proof between two checkpoints: tree sizes and roots, no event content."""
    if not 0 < size1 <= size2:
        raise UsageError(f"need 0 < SIZE1 <= SIZE2 (got {size1}, {size2})")
    with instance.db.transaction() as session:
        authorize(session, ctx, "audit.consistency")
        cp1, cp2 = tree.get_checkpoint(session, size1), tree.get_checkpoint(session, size2)
        proof = tree.consistency(session, size1, size2)
        return consistency_document(cp1.note, cp2.note, proof, instance.log_verifier())


def verify(instance: Instance, ctx: RequestContext) -> VerifyReport:
    with instance.db.transaction() as session:
        authorize(session, ctx, "audit.verify")
        return verify_log(
            session, instance.log_verifier(), instance.config.log_origin, instance.db.seal_key or b"",
            instance.witness(),
        )


def list_checkpoints(session: Session) -> list[AuditCheckpoint]:
    return list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)))


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


def read_events(session: Session, ctx: RequestContext, f: EventFilter, after_seq: int = 0,
                limit: int = 100) -> list[dict[str, Any]]:
    authorize(session, ctx, "audit.read")
    return query_events(session, f, after_seq, limit)


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


def history(session: Session, ctx: RequestContext, target_type: str, target_id: str) -> list[dict[str, Any]]:
    """Every event of one record, oldest first: each before/after value in order."""
    authorize(session, ctx, "audit.read")
    rows = session.scalars(
        select(AuditEvent)
        .where(and_(AuditEvent.target_type == target_type, AuditEvent.target_id == target_id))
        .order_by(AuditEvent.seq)
    )
    events = [event_document(r) for r in rows]
    if not events:
        raise NotFoundError(f"no audit events for {target_type} {target_id}")
    return events
