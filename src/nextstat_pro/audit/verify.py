"""``audit verify``: re-derive everything the log claims, from the rows and the witness.

Checks, in order, naming the first bad ``seq`` and what is wrong:
1. events: gapless ``seq``; the hashed body agrees with the query columns; ``prev_hash``
   links (else a fork); ``hash`` is the sha256 of the body; the seal (HMAC under a key
   outside the database) matches, so a rewrite that recomputes every later hash still fails;
2. the stored Merkle tree nodes equal the ones re-derived from the events;
3. every stored and every witnessed checkpoint: a valid signature by the log key, for this
   log, no larger than the log, and with the root re-derived from the events;
4. the unwitnessed tail: how many events no witnessed checkpoint covers and how long the
   oldest of them has waited, which may not exceed the configured bound (continuous witnessing
   signs within about a second of a commit, audit/witnessing.py).
Once they hold, ``audit.service.verify`` re-derives the state tables from the same events in the
same transaction (audit/state.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import AuditCheckpoint, AuditEvent, AuditTreeNode
from ..verify.merkle import leaf_hash
from ..verify.note import NoteError, Verifier, open_checkpoint
from .events import GENESIS_HASH
from .merkle import MemoryTree
from .witness import PREFIX, Witness


@dataclass
class VerifyReport:
    ok: bool = True
    events: int = 0
    tree_size: int = 0
    checkpoints: int = 0
    witnessed: int = 0
    latest_witnessed: int = 0
    first_bad_seq: int | None = None
    problem: str | None = None
    warnings: list[str] = field(default_factory=list)
    oldest_unwitnessed_s: float | None = None  # seconds the oldest unwitnessed event has waited

    def fail(self, seq: int | None, problem: str) -> VerifyReport:
        self.ok, self.first_bad_seq, self.problem = False, seq, problem
        return self


    @property
    def unwitnessed(self) -> int:
        return self.events - self.latest_witnessed


def _columns_agree(columns: tuple[Any, ...], body: dict[str, Any]) -> bool:
    """The query columns (event_id, ts, action, actor_id, target type and id, project) are
    copies of the hashed body."""
    target = body.get("target") or {}
    actor = body.get("actor") or {}
    return columns == (body.get("event_id"), body.get("ts"), body.get("action"), actor.get("id"),
                       target.get("type"), target.get("id"), body.get("project"))


def verify_log(
    session: Session, verifier: Verifier, origin: str, seal_key: bytes, witness: Witness | None, batch: int = 10_000,
    max_unwitnessed_s: float | None = None,
) -> VerifyReport:
    report = VerifyReport()
    tree = MemoryTree()
    t = AuditEvent.__table__.c
    # Plain column tuples, not ORM objects: loading a million entities would double the time.
    rows = session.execute(
        select(t.seq, t.body, t.hash, t.mac, t.prev_hash, t.event_id, t.ts, t.action, t.actor_id, t.target_type,
               t.target_id, t.project).order_by(t.seq).execution_options(yield_per=batch)
    )
    try:
        failed = _check_events(rows, tree, seal_key, report)
    finally:
        rows.close()  # an early failure must not leave a server-side cursor open
    if failed is not None:
        return failed
    report.events = tree.size

    nodes = session.execute(
        select(AuditTreeNode.level, AuditTreeNode.idx, AuditTreeNode.hash)
        .order_by(AuditTreeNode.level, AuditTreeNode.idx)
        .execution_options(yield_per=batch)
    )
    try:
        failed = _check_nodes(nodes, tree, report)
    finally:
        nodes.close()
    if failed is not None:
        return failed
    report = _check_checkpoints(session, tree, verifier, origin, witness, report)
    if not report.ok or witness is None:
        return report
    return _check_unwitnessed(session, report, max_unwitnessed_s)


def _check_unwitnessed(session: Session, report: VerifyReport, bound_s: float | None) -> VerifyReport:
    if report.unwitnessed <= 0:
        return report
    first = report.latest_witnessed + 1
    ts = session.scalar(select(AuditEvent.ts).where(AuditEvent.seq == first))
    if ts is None:
        return report
    waited = (datetime.now(UTC) - datetime.fromisoformat(ts)).total_seconds()
    report.oldest_unwitnessed_s = round(waited, 3)
    if bound_s is not None and waited > bound_s:
        return report.fail(first, f"{report.unwitnessed} event(s) unwitnessed, the oldest (seq {first}) for "
                                  f"{waited:.0f} s, beyond the bound of {bound_s:g} s (max_unwitnessed_s): a "
                                  "process died before witnessing, or the witnessed history was cut")
    return report


def _check_events(rows: Any, tree: MemoryTree, seal_key: bytes, report: VerifyReport) -> VerifyReport | None:
    """Return the failed report at the first problem, None when every event holds."""
    prev, expected = GENESIS_HASH, 1
    for seq, body_text, row_hash, row_mac, row_prev, *columns in rows:
        if seq != expected:
            return report.fail(expected, f"gap: event {expected} is missing (next is {seq})")
        data = body_text.encode()
        try:
            body = json.loads(data)
        except ValueError:
            return report.fail(seq, "event body is not JSON")
        if not isinstance(body, dict) or body.get("seq") != seq:
            return report.fail(seq, "seq column differs from the hashed event (moved or swapped)")
        if not _columns_agree(tuple(columns), body):
            return report.fail(seq, "query columns differ from the hashed event (edited)")
        if body.get("prev_hash") != prev or row_prev != prev:
            return report.fail(seq, "prev_hash does not link to the previous event (fork)")
        digest = hashlib.sha256(data).hexdigest()
        if digest != row_hash:
            return report.fail(seq, "hash mismatch: the event was changed after it was written")
        mac = hmac.new(seal_key, bytes.fromhex(digest), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, row_mac):
            return report.fail(seq, "seal mismatch: the event was not written by this instance (forged or rehashed)")
        tree.append(leaf_hash(data))
        prev, expected = digest, expected + 1
    return None


def _check_nodes(nodes: Any, tree: MemoryTree, report: VerifyReport) -> VerifyReport | None:
    for level, idx, value in nodes:
        if level >= len(tree.levels) or idx >= len(tree.levels[level]):
            return report.fail(None, f"tree node ({level}, {idx}) covers events that do not exist (truncated log)")
        if tree.levels[level][idx].hex() != value:
            first = idx * (1 << level) + 1
            return report.fail(first, f"tree node ({level}, {idx}) differs from the events it covers (seq {first}..)")
        if level == 0:
            report.tree_size = idx + 1
    return None


def _check_checkpoints(
    session: Session, tree: MemoryTree, verifier: Verifier, origin: str, witness: Witness | None,
    report: VerifyReport,
) -> VerifyReport:
    stored = {c.size: c for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size))}
    witnessed: dict[int, str] = {}
    if witness is not None:
        for name in witness.names():
            if name.startswith(PREFIX):
                note = witness.read(name).decode()
                try:
                    witnessed[open_checkpoint(note, verifier).size] = note
                except NoteError as exc:
                    return report.fail(None, f"witnessed {name} does not verify: {exc}")
    last_good = 0
    for source, notes in (("stored", {s: c.note for s, c in stored.items()}), ("witnessed", witnessed)):
        for size in sorted(notes):
            try:
                cp = open_checkpoint(notes[size], verifier, origin=origin)
            except NoteError as exc:
                return report.fail(None, f"{source} checkpoint at size {size} does not verify: {exc}")
            if cp.size != size or (source == "stored" and stored[size].root != cp.root.hex()):
                return report.fail(None, f"{source} checkpoint at size {size} disagrees with its own row")
            if cp.size > tree.size:
                return report.fail(
                    tree.size + 1,
                    f"checkpoint mismatch: a {source} checkpoint covers {cp.size} events, the log has {tree.size} "
                    "(events deleted or the tail truncated)",
                )
            if tree.root(cp.size) != cp.root:
                return report.fail(
                    last_good + 1,
                    f"checkpoint mismatch: the {source} checkpoint at size {cp.size} has another root; history "
                    f"between seq {last_good + 1} and {cp.size} was rewritten",
                )
            if source == "witnessed":
                last_good = cp.size
    for size, row in stored.items():
        if witness is not None and size not in witnessed:
            report.warnings.append(f"checkpoint at size {size} is in the database but not at the witness")
        elif size in witnessed and witnessed[size] != row.note:
            return report.fail(None, f"stored and witnessed checkpoints at size {size} differ")
    report.checkpoints = len(stored)
    report.witnessed = len(witnessed)
    report.latest_witnessed = max(witnessed, default=0)
    return report
