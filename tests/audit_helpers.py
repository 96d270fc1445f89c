"""Helpers for audit tests: counting events, listing new actions."""

from __future__ import annotations

from sqlalchemy import select

from nextstat_pro.db.models import AuditEvent
from nextstat_pro.instance import Instance


def last_seq(inst: Instance) -> int:
    with inst.db.transaction() as s:
        return s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0


def actions_after(inst: Instance, seq: int) -> list[str]:
    with inst.db.transaction() as s:
        return list(s.scalars(select(AuditEvent.action).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)))
