"""Re-deriving the hash chain from the stored events."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import AuditEvent
from .events import GENESIS_HASH, event_hash


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_rows(rows: Iterable[AuditEvent]) -> ChainReport:
    expected_seq, prev = 1, GENESIS_HASH
    count = 0
    for row in rows:
        count += 1
        if row.seq != expected_seq:
            return ChainReport(False, count, expected_seq, f"gap: expected seq {expected_seq}, found {row.seq}")
        try:
            body = json.loads(row.body)
        except ValueError:
            return ChainReport(False, count, row.seq, "event body is not JSON")
        if body.get("seq") != row.seq:
            return ChainReport(False, count, row.seq, "seq column differs from the hashed event")
        if body.get("prev_hash") != prev or row.prev_hash != prev:
            return ChainReport(False, count, row.seq, "prev_hash does not link to the previous event (fork)")
        if event_hash(body) != row.hash:
            return ChainReport(False, count, row.seq, "hash mismatch: the event was changed after it was written")
        prev = row.hash
        expected_seq += 1
    return ChainReport(True, count)


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch))
    return verify_rows(r[0] for r in rows)
