"""The audit-trail report and the audit-trail review (FDA data-integrity guidance, 2018: critical
audit trails reviewed before approval, the rest on a schedule).

A review lists a period's events grouped by risk (security events, refused signatures, retention
purges, role and account changes first), records the reviewer's findings, and is signed with meaning
``review`` (``report sign``). The next review starts where the last signed one ended; a period
between the two that nobody reviewed is reported as a gap, with its event count.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from .. import text
from ..access.context import RequestContext
from ..access.rbac import authorize
from ..audit.records import EventFilter, _ts
from ..db.models import AuditEvent, Project
from ..errors import UsageError
from ..ids import new_id
from ..projects.service import authorized_project, get_project
from .audit_trail import Trail, read_trail
from .models import Report, ReportSignature
from .registry import template_for
from .render import build, record_report
from .views import ReportWritten

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..instance import Instance

# Risk groups, highest first: an event belongs to the first group whose test it passes.
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("security", "Security events", ("access.denied", "auth.failed", "auth.refused", "user.locked",
                                     "audit.tamper", "alert.")),
    ("signatures", "Refused and rejected signatures", ("signature.refused",)),
    ("retention", "Retention purges and archives", ("artifact.purged", "hub.model.purged", "hub.dataset.purged",
                                                     "hub.patchset.purged", "hub.template.purged", "retention.")),
    ("roles", "Role, account and key changes", ("role.", "auditor.", "user.", "token.", "config.changed")),
    ("records", "Signatures, approvals and reports", ("run.signed", "report.")),
    ("other", "All other events", ("",)),
)


def risk_group(event: dict[str, Any]) -> str:
    action = str(event["action"])
    if action in ("run.signed", "report.signed") and (event.get("after") or {}).get("decision") == "reject":
        return "signatures"
    for key, _, prefixes in GROUPS:
        if any(action == p or (p.endswith(".") or p == "") and action.startswith(p) for p in prefixes):
            return key
    return "other"


def _scope(session: Session, ctx: RequestContext, project: str | None, default: str) -> tuple[Project, str | None]:
    """Where the report is recorded and what it covers: one project's events (its admins), or the
    whole log (auditors), recorded in the default project."""
    if project is not None:
        return authorized_project(session, ctx, project, "report.audit"), project
    authorize(session, ctx, "audit.read")
    return get_project(session, default), None


def _created(t: Trail, until: str | None, session: Session) -> str:
    """The data's time: the end of the period when given, else the newest event covered."""
    if until is not None:
        return _ts(until)
    if t.last is not None:
        return str(t.last["ts"])
    newest = session.scalar(select(AuditEvent.ts).order_by(AuditEvent.seq.desc()).limit(1))
    return str(newest)


def audit_trail(instance: Instance, ctx: RequestContext, project: str | None = None, since: str | None = None,
                until: str | None = None, target: str | None = None, out: Path | None = None,
                template_ref: str | None = None) -> ReportWritten:
    """The audit-trail report of a period (any length), optionally of one project or one target
    (``TYPE:ID``): every event in the attached file, the first ``reports_print_limit`` printed."""
    from .service import written

    target_type = target_id = None
    if target is not None:
        target_type, sep, target_id = target.partition(":")
        if not sep or not target_type or not target_id:
            raise UsageError(f"malformed target {target!r}: expected TYPE:ID (e.g. run:0192...)")
    f = EventFilter(project=project, since=since, until=until, target_type=target_type, target_id=target_id)
    with tempfile.TemporaryDirectory(prefix="nsp-report-") as spool, instance.db.transaction() as session:
        home, scope = _scope(session, ctx, project, instance.config.default_project)
        template, version = template_for(instance, session, ctx, home, "audit-trail", template_ref)
        t = read_trail(instance, session, f, instance.config.reports_print_limit, Path(spool),
                       chain=scope is None and target is None)
        data = {
            "filters": {"project": scope, "target": target, "since": since, "until": until}, "report_signatures": [],
            "range": {"from_": _ts(since) if since else None, "to": _ts(until) if until else None, "count": t.count,
                      "first_seq": t.first["seq"] if t.first else None, "last_seq": t.last["seq"] if t.last else None,
                      "printed": len(t.printed), "events_file": "audit/events.jsonl.gz",
                      "events_digest": t.checkpoint["events_sha256"]},
            "checkpoint": t.checkpoint,
            "events": t.printed,
            "by_action": [{"action": a, "count": n} for a, n in sorted(t.by_action.items())],
        }
        inputs = [{"kind": "audit-log", "checkpoint_size": t.checkpoint["size"], "root": t.checkpoint["root"]},
                  {"kind": "template", "ref": f"{template.name}@{template.version}", "digest": template.digest}]
        built = build(report_id=new_id(), kind="audit-trail", project=home.name,
                      title=f"Audit trail {scope or 'all projects'} {since or 'start'} to {until or 'now'}",
                      template=template, data=data, inputs=inputs, evidence=t.files, streamed=t.streamed,
                      spool=Path(spool), created=_created(t, until, session), keys=instance.run_keys())
        row = record_report(instance, session, ctx, home, built, version,
                            {"project": scope, "since": since, "until": until, "target": target})
        return written(row, home.name, "draft", built, out, "audit-trail")


def _last_signed_review(session: Session, home: Project, scope: str | None) -> dict[str, Any] | None:
    """The newest review of this scope with an approving ``review`` signature: its period."""
    signed = (select(Report).join(ReportSignature, ReportSignature.report_id == Report.id)
              .where(Report.project_id == home.id, Report.kind == "audit-review", Report.parent_id.is_(None),
                     ReportSignature.meaning == "review", ReportSignature.decision == "approve"))
    best: dict[str, Any] | None = None
    for r in session.scalars(signed):
        if r.params.get("project") != scope:
            continue
        if best is None or r.params["until"] > best["to"]:
            best = {"report_id": r.id, "from_": r.params["since"], "to": r.params["until"]}
    return best


def _count_between(session: Session, scope: str | None, start: str, end: str) -> int:
    q = select(func.count()).select_from(AuditEvent).where(AuditEvent.ts >= start, AuditEvent.ts < end)
    if scope is not None:
        q = q.where(AuditEvent.project == scope)
    return int(session.scalar(q) or 0)


def parse_findings(path: Path | None) -> list[dict[str, Any]]:
    """A reviewer's findings: a JSON list of ``{"severity": "minor|major|critical|note", "text": ...,
    "seq": N (optional)}`` (every text cleaned as any text people read)."""
    if path is None:
        return []
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read findings {path}: {exc}") from None
    if not isinstance(doc, list):
        raise UsageError("findings must be a JSON list of {severity, text, seq}")
    out = []
    for i, f in enumerate(doc):
        if not isinstance(f, dict) or f.get("severity") not in ("note", "minor", "major", "critical") \
                or not isinstance(f.get("text"), str):
            raise UsageError(f"finding {i + 1}: needs severity (note, minor, major, critical) and text")
        seq = f.get("seq")
        if seq is not None and not isinstance(seq, int):
            raise UsageError(f"finding {i + 1}: seq must be an event number")
        out.append({"severity": f["severity"], "text": text.clean("finding", f["text"]), "seq": seq})
    return out


def audit_review(instance: Instance, ctx: RequestContext, since: str | None, until: str,
                 project: str | None = None, findings: list[dict[str, Any]] | None = None,
                 out: Path | None = None, template_ref: str | None = None) -> ReportWritten:
    """A review of ``[since, until)``: ``since`` defaults to where the last signed review ended;
    a period between that end and ``since`` is reported as a gap."""
    from .service import written

    with tempfile.TemporaryDirectory(prefix="nsp-report-") as spool, instance.db.transaction() as session:
        home, scope = _scope(session, ctx, project, instance.config.default_project)
        previous = _last_signed_review(session, home, scope)
        start = _ts(since) if since else (previous["to"] if previous else None)
        if start is None:
            first = session.scalar(select(AuditEvent.ts).order_by(AuditEvent.seq).limit(1))
            start = str(first) if first else _ts("1970-01-01")
        end = _ts(until)
        if end <= start:
            raise UsageError(f"the review period is empty: it ends ({end}) before it starts ({start})")
        gaps = []
        if previous is not None and previous["to"] < start:
            gaps.append({"from_": previous["to"], "to": start,
                         "events": _count_between(session, scope, previous["to"], start)})
        template, version = template_for(instance, session, ctx, home, "audit-review", template_ref)
        f = EventFilter(project=scope, since=start, until=end)
        t = read_trail(instance, session, f, instance.config.reports_print_limit, Path(spool), group=risk_group)
        groups = [{"key": key, "title": title, "count": t.by_action.get("group:" + key, 0),
                   "events": t.kept.get(key, [])} for key, title, _ in GROUPS]
        data = {
            "range": {"project": scope, "from_": start, "to": end, "count": t.count},
            "previous": previous, "gaps": gaps, "groups": groups, "findings": findings or [],
            "checkpoint": t.checkpoint, "report_signatures": [],
        }
        inputs = [{"kind": "audit-log", "checkpoint_size": t.checkpoint["size"], "root": t.checkpoint["root"]},
                  {"kind": "template", "ref": f"{template.name}@{template.version}", "digest": template.digest}]
        if previous is not None:
            inputs.append({"kind": "previous-review", "report_id": previous["report_id"]})
        built = build(report_id=new_id(), kind="audit-review", project=home.name,
                      title=f"Audit-trail review {scope or 'all projects'} {start[:10]} to {end[:10]}",
                      template=template, data=data, inputs=inputs, evidence=t.files, streamed=t.streamed,
                      spool=Path(spool), created=end, keys=instance.run_keys())
        row = record_report(instance, session, ctx, home, built, version,
                            {"project": scope, "since": start, "until": end, "findings": len(findings or [])})
        return written(row, home.name, "draft", built, out, "audit-review")

