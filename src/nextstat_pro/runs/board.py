"""Reads the dashboard needs beside ``runs.reads``: a runs page with author, approval state and
duration; a run's signatures; and the run lifecycle events of a project after a sequence number
(what the live runs list streams), or of one run with its job's shard events (what its page
streams). Each authorizes ``run.read`` in the run's project."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import Row, func, or_, select
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..db.models import AuditEvent, Project, Run, Signature, User
from ..projects.service import authorized_project
from ..signing.approval import SignatureFact, approval_state
from ..viewbase import VIEW_CONFIG
from .listing import RunFilter
from .reads import list_runs_page
from .records import read_run
from .views import RunRow

if TYPE_CHECKING:
    from ..instance import Instance


class BoardRow(BaseModel):
    """A run as the dashboard's list shows it: the ``runs list`` row plus who made it, where its
    signatures leave it, and how long it ran."""

    model_config = VIEW_CONFIG
    run: RunRow
    author: str = Field(description="The author's username.")
    approval_state: str = Field(description="draft, in review, approved or rejected.")
    duration_s: float | None = Field(description="finished_at - started_at, once finished.")


class BoardPage(BaseModel):
    """One page of the dashboard's runs list (keyset: ``next_cursor`` continues it)."""

    model_config = VIEW_CONFIG
    items: list[BoardRow]
    next_cursor: str | None


class SignatureView(BaseModel):
    """One electronic signature of a run, as its manifestation shows it (21 CFR 11.50)."""

    model_config = VIEW_CONFIG
    signature_id: str
    printed_name: str
    username: str
    meaning: str
    decision: str
    reason: str
    signed_at: str
    key_id: str


class RunChange(BaseModel):
    """A lifecycle event of a run: its new status (or approval state, for a signature)."""

    model_config = VIEW_CONFIG
    seq: int
    run_id: str
    action: str
    status: str | None
    approval_state: str | None


class RunChanges(BaseModel):
    """Run events of a project after ``after`` (oldest first); ``last_seq`` is where to continue."""

    model_config = VIEW_CONFIG
    items: list[RunChange]
    last_seq: int


def _duration(row: RunRow) -> float | None:
    if row.started_at is None or row.finished_at is None:
        return None
    return (row.finished_at - row.started_at).total_seconds()


def board_page(instance: Instance, ctx: RequestContext, project_name: str, f: RunFilter, limit: int = 50,
               cursor: str | None = None) -> BoardPage:
    """A page of ``list_runs_page`` (which authorizes ``run.read``), each row with its author's
    username and its approval state: two queries for the whole page, not two per run."""
    page = list_runs_page(instance, ctx, project_name, f, limit, cursor)
    ids = [r.run_id for r in page.items]
    with instance.db.read() as session:
        authorized_project(session, ctx, project_name, "run.read")
        authors = dict(session.execute(select(Run.id, User.username).join(User, User.id == Run.created_by)
                                       .where(Run.id.in_(ids))).all()) if ids else {}
        facts: dict[str, list[SignatureFact]] = {}
        if ids:
            sigs = session.execute(select(Signature.run_id, Signature.user_id, Signature.meaning, Signature.decision)
                                   .where(Signature.run_id.in_(ids)).order_by(Signature.signed_at))
            for run_id, user_id, meaning, decision in sigs:
                facts.setdefault(run_id, []).append(SignatureFact(user_id, meaning, decision))
    policy = instance.config.approval_policy(project_name)
    items = [BoardRow(run=r, author=authors.get(r.run_id, "?"), approval_state=approval_state(facts.get(r.run_id, []),
                                                                                                policy),
                      duration_s=_duration(r)) for r in page.items]
    return BoardPage(items=items, next_cursor=page.next_cursor)


def run_signatures(instance: Instance, ctx: RequestContext, run_ref: str) -> tuple[list[SignatureView], str]:
    """A run's signatures, oldest first, and its approval state under the project's policy."""
    with instance.db.read() as session:
        run = read_run(session, ctx, run_ref)
        project = session.get(Project, run.project_id)
        assert project is not None  # a foreign key
        rows = session.scalars(select(Signature).where(Signature.run_id == run.id).order_by(Signature.signed_at))
        out, facts = [], []
        for sig in rows:
            payload: dict[str, Any] = json.loads(sig.payload)
            signer = payload.get("signer", {})
            out.append(SignatureView(signature_id=sig.id, printed_name=str(signer.get("printed_name", "")),
                                     username=str(signer.get("username", "")), meaning=sig.meaning,
                                     decision=sig.decision, reason=str(payload.get("reason", "")),
                                     signed_at=str(payload.get("signed_at", "")), key_id=sig.key_id))
            facts.append(SignatureFact(sig.user_id, sig.meaning, sig.decision))
        return out, approval_state(facts, instance.config.approval_policy(project.name))


MAX_CHANGES = 500


def run_changes(instance: Instance, ctx: RequestContext, project_name: str, after: int | None) -> RunChanges:
    """The ``run.*`` events of a project with ``seq > after``, oldest first (at most
    ``MAX_CHANGES``). ``after=None`` starts at the log's end: nothing yet, and the sequence number
    to continue from. Reads the audit log by its primary key from ``after``: cheap at the tail."""
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "run.read")
        if after is None:
            return RunChanges(items=[], last_seq=_log_end(session))
        rows = session.execute(
            select(AuditEvent.seq, AuditEvent.target_id, AuditEvent.action, AuditEvent.body)
            .where(AuditEvent.seq > after, AuditEvent.project == project.name,
                   AuditEvent.action.startswith("run."), AuditEvent.target_type == "run")
            .order_by(AuditEvent.seq).limit(MAX_CHANGES)).all()
    return _changes(rows, after)


def run_events(instance: Instance, ctx: RequestContext, run_ref: str, after: int | None) -> RunChanges:
    """What one run's page follows live: the ``run.*`` and ``job.*`` events of that run (status
    changes, signatures, a job's shards done or failed) with ``seq > after``, oldest first, at
    most ``MAX_CHANGES``; ``after=None`` starts at the log's end. Authorized as ``runs show``."""
    with instance.db.read() as session:
        run = read_run(session, ctx, run_ref)
        if after is None:
            return RunChanges(items=[], last_seq=_log_end(session))
        rows = session.execute(
            select(AuditEvent.seq, AuditEvent.target_id, AuditEvent.action, AuditEvent.body)
            .where(AuditEvent.seq > after, AuditEvent.target_type == "run", AuditEvent.target_id == run.id,
                   or_(AuditEvent.action.startswith("run."), AuditEvent.action.startswith("job.")))
            .order_by(AuditEvent.seq).limit(MAX_CHANGES)).all()
    return _changes(rows, after)


def _log_end(session: Session) -> int:
    return int(session.scalar(select(func.max(AuditEvent.seq))) or 0)


def _changes(rows: Sequence[Row[int, str, str, str]], after: int) -> RunChanges:
    """Audit rows (seq, run id, action, body) as changes; ``last_seq`` stays ``after`` when none."""
    items = []
    for seq, run_id, action, body in rows:
        new = json.loads(body).get("after") or {}
        items.append(RunChange(seq=seq, run_id=run_id, action=action,
                               status=new.get("status") if isinstance(new.get("status"), str) else None,
                               approval_state=new.get("approval_state")
                               if isinstance(new.get("approval_state"), str) else None))
    return RunChanges(items=items, last_seq=items[-1].seq if items else after)
