"""Operational qualification of tamper evidence, on the scratch instance: the audit trail verifies
whole, and then each insider rewrite (with the database's append-only guards switched off) is found.

Three rewrites run in a transaction that is rolled back afterwards, checked by the log verification
``audit verify`` runs (``audit.verify.verify_log``, same arguments, same snapshot): an edit with every
later hash recomputed (the seal, keyed outside the database, no longer matches), a truncated tail (the
witnessed checkpoint covers more events), and an edited query column (it no longer agrees with the
hashed body). The last rewrite is committed, as an insider with the database file would, and found
by the ``audit verify`` operation itself, which names the first bad event.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from ...audit.service import make_checkpoint
from ...audit.service import verify as audit_verify
from ...audit.verify import verify_log
from ...canonical import canonical_json, sha256_hex
from .models import Check, make_check
from .scratch import Scratch

GUARDS = ("audit_events_no_update", "audit_events_no_delete")


def _rows(s: Session) -> list[tuple[int, str, str]]:
    return [(int(r[0]), str(r[1]), str(r[2]))
            for r in s.execute(text("SELECT seq, body, hash FROM audit_events ORDER BY seq"))]


def _rehash_from(s: Session, index: int) -> int:
    """Edit event ``index`` (0-based) and recompute its hash and every later one: a consistent chain
    that only the seal key (outside the database) can tell from the original."""
    events = _rows(s)
    prev = events[index - 1][2] if index else "0" * 64
    for j in range(index, len(events)):
        doc = json.loads(events[j][1])
        if j == index:
            doc["after"] = {"rewritten": "by an insider"}
        doc["prev_hash"] = prev
        body = canonical_json(doc).decode()
        prev = sha256_hex(body.encode())
        s.execute(text("UPDATE audit_events SET body = :b, hash = :h, prev_hash = :p WHERE seq = :s"),
                  {"b": body, "h": prev, "p": doc["prev_hash"], "s": events[j][0]})
    return events[index][0]


def _truncate(s: Session, index: int) -> int:
    seq = _rows(s)[-1][0]
    s.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": seq})
    return seq


def _edit_column(s: Session, index: int) -> int:
    seq = _rows(s)[index][0]
    s.execute(text("UPDATE audit_events SET action = 'run.cancelled' WHERE seq = :s"), {"s": seq})
    return seq


def _rolled_back(scratch: Scratch, mutate: Callable[[Session, int], int], index: int) -> dict[str, Any]:
    inst = scratch.instance
    with inst.db.engine.connect() as conn:
        trans = conn.begin()
        s = Session(bind=conn)
        try:
            for name in GUARDS:  # SQLite DDL is transactional: the rollback restores them
                s.execute(text(f"DROP TRIGGER {name}"))
            seq = mutate(s, index)
            s.flush()
            report = verify_log(s, inst.log_verifier(), inst.config.log_origin, inst.db.seal_key or b"",
                                inst.witness())
        finally:
            s.close()
            trans.rollback()
    return {"mutated_seq": seq, "detected": not report.ok, "first_bad_seq": report.first_bad_seq,
            "problem": report.problem}


def _committed_edit(scratch: Scratch, index: int) -> int:
    """Change one value of an event's stored body and commit, through the database file itself."""
    inst = scratch.instance
    path = inst.db.engine.url.database
    assert path is not None
    conn = sqlite3.connect(path)
    try:
        seq, body = conn.execute("SELECT seq, body FROM audit_events ORDER BY seq LIMIT 1 OFFSET ?",
                                 (index,)).fetchone()
        for name in GUARDS:
            conn.execute(f"DROP TRIGGER {name}")
        doc = json.loads(body)
        doc["reason"] = "edited afterwards"
        conn.execute("UPDATE audit_events SET body = ? WHERE seq = ?", (canonical_json(doc).decode(), seq))
        conn.commit()
    finally:
        conn.close()
    return int(seq)


def tamper_checks(scratch: Scratch) -> list[Check]:
    """Baseline, three rolled-back rewrites, one committed rewrite (last: it leaves the log broken)."""
    inst, admin = scratch.instance, scratch.admin
    started = time.perf_counter()
    make_checkpoint(inst, admin)  # everything so far witnessed, so a cut tail shows
    baseline = audit_verify(inst, admin)
    checks = [make_check(
        "OQ-AUDIT-VERIFY", "OQ", "The audit trail verifies whole: gapless hash chain, seals, Merkle tree, signed "
        "and witnessed checkpoints, and the state tables re-derived from the events.",
        "ok, with every event covered by a witnessed checkpoint",
        f"ok={baseline.ok}; {baseline.events} events, {baseline.witnessed} witnessed checkpoint(s), latest at "
        f"{baseline.latest_witnessed}", baseline.ok and baseline.latest_witnessed == baseline.events,
        baseline.model_dump(mode="json"), time.perf_counter() - started)]
    with inst.db.read() as s:
        n = len(_rows(s))
    middle = n // 2
    for check_id, what, mutate in (
        ("OQ-TAMPER-REHASH", "An event edited and every later hash recomputed (a consistent chain) is detected: the "
         "seal, keyed outside the database, no longer matches.", _rehash_from),
        ("OQ-TAMPER-TRUNCATE", "The newest event deleted (a cut tail) is detected against the witnessed checkpoint.",
         _truncate),
        ("OQ-TAMPER-COLUMN", "A query column edited (an action renamed) is detected: it no longer agrees with the "
         "hashed event.", _edit_column),
    ):
        t = time.perf_counter()
        found = _rolled_back(scratch, mutate, middle)
        checks.append(make_check(check_id, "OQ", what, f"verification fails, naming the event (seq "
                                 f"{found['mutated_seq']}) or the checkpoint it breaks",
                                 f"detected={found['detected']}: {found['problem']}", found["detected"], found,
                                 time.perf_counter() - t))
    t = time.perf_counter()
    seq = _committed_edit(scratch, middle)
    report = audit_verify(inst, admin, state=False)
    detected = not report.ok and report.first_bad_seq == seq
    checks.append(make_check(
        "OQ-TAMPER-EDIT", "OQ", "One character of a stored event changed and committed directly in the database file "
        "(guards dropped) is found by the audit verify operation, which names the event.",
        f"audit verify fails at seq {seq}", f"ok={report.ok}, first bad seq {report.first_bad_seq}: {report.problem}",
        detected, {"mutated_seq": seq, **report.model_dump(mode="json")}, time.perf_counter() - t))
    return checks
