"""Audit operations on an instance: checkpoints, proofs, verification, queries.

Who reads what (docs/rbac.md): the whole log (``audit.read``: queries, history, export, verify,
checkpoints) needs an auditor or an instance admin; a project's viewer reads that project's
events (``audit log --project``) and may prove them, and anyone may prove the instance events
about themselves. Each operation returns a view of ``audit.views``."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..access.rbac import allowed, authorize
from ..config import settable_values
from ..db.models import AuditCheckpoint, AuditEvent, Project
from ..errors import NotFoundError, UsageError
from ..permissions import check_home_permissions
from . import tree
from .events import event_document
from .proofs import consistency_document, inclusion_document
from .records import EventFilter as EventFilter  # the filter of read_events, for its callers
from .records import checkpoint_in, query_events
from .state import check_config, check_state
from .verify import verify_log
from .views import (
    AuditEventRow,
    AuditVerifyReport,
    CheckpointRow,
    ConsistencyProof,
    InclusionProof,
    StateDifference,
)

if TYPE_CHECKING:
    from ..instance import Instance


def make_checkpoint(instance: Instance, ctx: RequestContext) -> CheckpointRow:
    """Integrate new events and sign a checkpoint now (stored and witnessed). It changes no
    record, so an auditor may: a fresh checkpoint before a verification is theirs to ask for."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "audit.checkpoint")
        cp = checkpoint_in(instance, session)
        row = session.get(AuditCheckpoint, cp.size)
        assert row is not None  # checkpoint_in stored it, or it was the latest already
        return _checkpoint_row(row)


def list_checkpoints(instance: Instance, ctx: RequestContext) -> list[CheckpointRow]:
    """The stored checkpoints, smallest first."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "audit.checkpoint")
        return [_checkpoint_row(c) for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size))]


def _checkpoint_row(row: AuditCheckpoint) -> CheckpointRow:
    return CheckpointRow(size=row.size, root=row.root, created_at=row.created_at, note=row.note)


def _find_event(session: Session, ref: str) -> AuditEvent:
    row = session.scalar(select(AuditEvent).where(AuditEvent.event_id == ref))
    if row is None and ref.isdigit():
        row = session.get(AuditEvent, int(ref))
    if row is None:
        raise NotFoundError(f"no audit event {ref!r} (give an event id or a seq)")
    return row


def prove(instance: Instance, ctx: RequestContext, ref: str) -> InclusionProof:
    """Inclusion proof of one event against the latest checkpoint (signed now if needed). The
    proof document holds the whole event, so only a caller who may read that event gets it:
    a viewer of its project, or for an instance event its subject; an auditor or an instance
    admin any. Any other caller is told exactly what a caller asking for a missing event is
    told."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "audit.prove")
        row = _find_event(session, ref)
        if not _may_read(session, ctx, row):
            raise NotFoundError(f"no audit event {ref!r} (give an event id or a seq)")
        latest = tree.latest_checkpoint(session)
        if latest is None or latest.size < row.seq:
            latest = checkpoint_in(instance, session)
        proof = tree.inclusion(session, row.seq, latest.size)
        return InclusionProof.model_validate(
            inclusion_document(event_document(row), proof, latest.note, instance.log_verifier()))


def _may_read(session: Session, ctx: RequestContext, row: AuditEvent) -> bool:
    if row.project is not None:
        project = session.scalar(select(Project).where(Project.name == row.project))
        return project is not None and allowed(session, ctx, "audit.read_project", project)
    about_caller = row.actor_id == ctx.actor.id or (row.target_type == "user" and row.target_id == ctx.actor.id)
    return about_caller or allowed(session, ctx, "audit.read", None)


def consistency(instance: Instance, ctx: RequestContext, size1: int, size2: int) -> ConsistencyProof:
    """A consistency proof between two checkpoints: tree sizes and roots, no event content."""
    if not 0 < size1 <= size2:
        raise UsageError(f"need 0 < SIZE1 <= SIZE2 (got {size1}, {size2})")
    with instance.db.transaction() as session:
        authorize(session, ctx, "audit.consistency")
        cp1, cp2 = tree.get_checkpoint(session, size1), tree.get_checkpoint(session, size2)
        proof = tree.consistency(session, size1, size2)
        return ConsistencyProof.model_validate(consistency_document(cp1.note, cp2.note, proof,
                                                                   instance.log_verifier()))


def verify(instance: Instance, ctx: RequestContext, *, state: bool = True) -> AuditVerifyReport:
    """Re-derive the chain, the tree and every checkpoint (``audit.verify``), then, when they
    hold and ``state``, the tables the log projects (audit/state.py), in the same transaction
    so both see one snapshot; report the instance files that are more open than configured."""
    with instance.db.transaction() as session:
        authorize(session, ctx, "audit.verify")
        report = verify_log(
            session, instance.log_verifier(), instance.config.log_origin, instance.db.seal_key or b"",
            instance.witness(), max_unwitnessed_s=instance.config.max_unwitnessed_s,
        )
        derived = check_state(session) if state and report.ok else None
        if derived is not None and derived.finding is None:
            derived.finding, config_warnings = check_config(session, settable_values(instance.config))
            derived.warnings.extend(config_warnings)
    difference = None
    if derived is not None:
        report.warnings.extend(derived.warnings)
        if derived.finding is not None:
            difference = StateDifference(**dataclasses.asdict(derived.finding))
    return AuditVerifyReport(ok=report.ok and difference is None, events=report.events, tree_size=report.tree_size,
                             oldest_unwitnessed_s=report.oldest_unwitnessed_s,
                             checkpoints=report.checkpoints, witnessed=report.witnessed,
                             latest_witnessed=report.latest_witnessed, first_bad_seq=report.first_bad_seq,
                             problem=report.problem, warnings=list(report.warnings),
                             unwitnessed=report.unwitnessed, file_permissions=check_home_permissions(instance),
                             state_checked=derived is not None, state_rows=derived.rows if derived else {},
                             state_difference=difference)


def read_events(instance: Instance, ctx: RequestContext, f: EventFilter, after_seq: int = 0,
                limit: int = 100) -> list[AuditEventRow]:
    """Events matching ``f`` with ``seq > after_seq``, oldest first (page by passing the last seq).
    The whole log needs ``audit.read``; a filter on one project needs only ``audit.read_project``
    there (a viewer reads their project's trail)."""
    with instance.db.read() as session:
        if f.project is not None and not allowed(session, ctx, "audit.read", None):
            project = session.scalar(select(Project).where(Project.name == f.project))
            if project is None:
                raise NotFoundError(f"no project named {f.project!r}")
            authorize(session, ctx, "audit.read_project", project)
        else:
            authorize(session, ctx, "audit.read")
        return [AuditEventRow.model_validate(e) for e in query_events(session, f, after_seq, limit)]


def history(instance: Instance, ctx: RequestContext, target_type: str, target_id: str) -> list[AuditEventRow]:
    """Every event of one record, oldest first: each before/after value in order."""
    with instance.db.read() as session:
        authorize(session, ctx, "audit.read")
        rows = session.scalars(
            select(AuditEvent)
            .where(and_(AuditEvent.target_type == target_type, AuditEvent.target_id == target_id))
            .order_by(AuditEvent.seq)
        )
        events = [AuditEventRow.model_validate(event_document(r)) for r in rows]
    if not events:
        raise NotFoundError(f"no audit events for {target_type} {target_id}")
    return events
