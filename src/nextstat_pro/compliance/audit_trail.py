"""Reading a period of the audit log for a report, streamed: any period length (no 31-day cap), in
pages of ``PAGE`` events, the sealed events written to a gzip'd JSON Lines file in a spool folder as
they come (the report appends it to its PDF in chunks: ``verify/pdf_update.py``), only the first
``print_limit`` of them (and per-action counts) kept for the printed pages: memory does not grow
with the period.

Completeness: the transaction first signs a checkpoint of the whole log (which holds the log's
writer lock to its end, as ``runs export`` does), then reads every matching event up to it; the
attachment ``audit/proofs.json`` holds the checkpoint note, the log key and inclusion proofs of the
first and last event, and, when no filter but time is set, the events form an unbroken hash chain
between those two (each ``prev_hash`` is the previous event's ``hash``): nothing can be missing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ..audit import merkle, tree
from ..audit.proofs import b64
from ..audit.records import EventFilter, _ts, checkpoint_in
from ..db.models import AuditEvent
from ..verify.pdf_update import Spooled

if TYPE_CHECKING:
    from ..instance import Instance

PAGE = 5000
EVENTS_NAME = "audit/events.jsonl.gz"
PROOFS_NAME = "audit/proofs.json"


@dataclass
class Trail:
    """What a streamed read of the log gives a report: counts, the printed rows, the evidence files."""

    count: int = 0
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    printed: list[dict[str, Any]] = field(default_factory=list)
    by_action: Counter[str] = field(default_factory=Counter)
    chain_ok: bool = True
    files: dict[str, bytes] = field(default_factory=dict)
    streamed: list[Spooled] = field(default_factory=list)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    kept: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by group, for reviews


def printed_row(e: dict[str, Any]) -> dict[str, Any]:
    """An event as a report prints it: who, when (UTC), what, on what, why, before → after."""
    target = e.get("target") or {}
    change = ""
    if e.get("before") is not None or e.get("after") is not None:
        change = f"{_brief(e.get('before'))} → {_brief(e.get('after'))}"
    return {"seq": e["seq"], "ts": e["ts"], "actor": (e.get("actor") or {}).get("name"), "action": e["action"],
            "target": f"{target.get('type')}:{target.get('id')}", "reason": e.get("reason"), "change": change,
            "target_key": [target.get("type"), target.get("id")], "modified_later": False}


def _brief(value: Any, limit: int = 300) -> str:
    if value is None:
        return "–"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _page(session: Session, f: EventFilter, after: int, size: int) -> list[Any]:
    """The next ``PAGE`` matching rows as stored (seq, action, hashes, sealed body): the body is
    parsed only where a page prints it, not once per event of a million."""
    q = (select(AuditEvent.seq, AuditEvent.action, AuditEvent.prev_hash, AuditEvent.hash, AuditEvent.body)
         .where(AuditEvent.seq > after, AuditEvent.seq <= size).order_by(AuditEvent.seq).limit(PAGE))
    if f.project:
        q = q.where(AuditEvent.project == f.project)
    if f.target_type:
        q = q.where(AuditEvent.target_type == f.target_type)
    if f.target_id:
        q = q.where(AuditEvent.target_id == f.target_id)
    if f.since:
        q = q.where(AuditEvent.ts >= _ts(f.since))
    if f.until:
        q = q.where(AuditEvent.ts < _ts(f.until))
    return list(session.execute(q))


def _document(body: str, hash_: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(body)
    doc["hash"] = hash_
    return doc


# Actions whose risk group depends on the body (a rejecting signature is a refused approval).
_GROUP_NEEDS_BODY = frozenset({"run.signed", "report.signed"})


class _Counted:
    """A binary file that hashes and counts what is written to it (the gzip'd events, as stored)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.sha256, self.size = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def read_trail(instance: Instance, session: Session, f: EventFilter, print_limit: int, spool: Path,
               group: Any = None, chain: bool = False) -> Trail:
    """Stream the events matching ``f`` up to a fresh checkpoint, the events file into the folder
    ``spool``. ``group(event) -> str | None``: a review's risk group of each event (the first
    ``print_limit`` of each group are kept)."""
    if f.actor or f.action or f.text or f.targets is not None:
        raise ValueError("a report's trail filters by project, target and time only")
    cp = checkpoint_in(instance, session)
    t = Trail()
    events_path = spool / "events.jsonl.gz"
    digest = hashlib.sha256()
    last: tuple[str, str] | None = None
    # mtime=0 and no file name: the same events give the same bytes. Level 6: a third of level 9's
    # time for a few per cent more bytes.
    with events_path.open("wb") as fh, \
            gzip.GzipFile(fileobj=(raw := _Counted(fh)), mode="wb", mtime=0, filename="", compresslevel=6) as gz:
        cursor = 0
        prev_hash: str | None = None
        while rows := _page(session, f, cursor, cp.size):
            lines = []
            for _seq, action, prev, hash_, body in rows:
                # The sealed body with its hash: the event as ``audit log --json`` publishes it.
                lines.append(f'{body[:-1]},"hash":"{hash_}"}}\n')
                if prev_hash is not None and prev != prev_hash:
                    t.chain_ok = False
                prev_hash = hash_
                t.count += 1
                if t.first is None:
                    t.first = _document(body, hash_)
                t.by_action[action] += 1
                if group is not None:
                    g = group(_document(body, hash_) if action in _GROUP_NEEDS_BODY else {"action": action})
                    if g is not None:
                        kept = t.kept.setdefault(g, [])
                        if len(kept) < print_limit:
                            kept.append(printed_row(_document(body, hash_)))
                        t.by_action["group:" + g] += 1
                elif len(t.printed) < print_limit:
                    t.printed.append(printed_row(_document(body, hash_)))
            last = (rows[-1][4], rows[-1][3])
            data = "".join(lines).encode("utf-8")
            gz.write(data)
            digest.update(data)
            cursor = rows[-1][0]
    if last is not None:
        t.last = _document(*last)
    t.streamed.append(Spooled(EVENTS_NAME, events_path, raw.size, raw.sha256.hexdigest()))
    rows = t.printed + [r for rows in t.kept.values() for r in rows]
    _mark_modified(session, rows, cp.size)
    ends = [e for e in (t.first, t.last) if e is not None]
    proofs = tree.with_nodes(session, partial(_proofs, [e["seq"] for e in ends], cp.size)) if ends else []
    statement = _statement(t, chain)
    t.checkpoint = {"size": cp.size, "root": cp.root.hex(), "statement": statement,
                    "events_sha256": "sha256:" + digest.hexdigest()}
    t.files[PROOFS_NAME] = (json.dumps({
        "checkpoint": cp.note, "log_key": str(instance.log_verifier()), "events_file": EVENTS_NAME,
        "events_sha256_uncompressed": "sha256:" + digest.hexdigest(), "count": t.count,
        "ends": [{"seq": e["seq"], "event": e, "proof": [b64(p) for p in proof]}
                 for e, proof in zip(ends, proofs, strict=True)],
        "chain_unbroken": t.chain_ok if chain else None, "statement": statement,
    }, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    return t


def _statement(t: Trail, chain: bool) -> str:
    if t.count == 0:
        return "no event matches; the checkpoint fixes the log the search covered"
    ends = f"events {t.first['seq'] if t.first else '?'} and {t.last['seq'] if t.last else '?'} proven included"
    if chain:
        return ends + ("; the events between form an unbroken hash chain (nothing missing)" if t.chain_ok
                       else "; the hash chain between them is BROKEN")
    return ends + "; a filtered selection: every matching event up to the checkpoint is attached"


def _proofs(seqs: list[int], size: int, node: merkle.NodeFn) -> list[list[bytes]]:
    return [merkle.inclusion_proof(node, seq - 1, size) for seq in seqs]


def _mark_modified(session: Session, rows: list[dict[str, Any]], size: int) -> None:
    """Annex 11 §8.2: mark each printed event whose target a later event (up to the checkpoint)
    changed; one grouped query per 200 targets."""
    targets = sorted({tuple(r["target_key"]) for r in rows if r["target_key"][1] is not None})
    last: dict[tuple[Any, ...], int] = {}
    for start in range(0, len(targets), 200):
        chunk = targets[start:start + 200]
        q = (select(AuditEvent.target_type, AuditEvent.target_id, func.max(AuditEvent.seq))
             .where(AuditEvent.seq <= size,
                    or_(*(and_(AuditEvent.target_type == tt, AuditEvent.target_id == ti) for tt, ti in chunk)))
             .group_by(AuditEvent.target_type, AuditEvent.target_id))
        for tt, ti, seq in session.execute(q):
            last[(tt, ti)] = int(seq)
    for r in rows:
        r["modified_later"] = last.get(tuple(r["target_key"]), 0) > r["seq"]
        del r["target_key"]
