"""The stored Merkle tree over the audit events, its checkpoints and proofs.

Sequencing (``events.append_event``, in the transaction of each change) and integration
(``integrate``: hashing committed events into the tree) are separate steps, as in
Tessera. The tree is kept as complete aligned subtrees (``audit_tree_nodes``): appending a
leaf writes it and the parents it completes (two rows per leaf, amortised), and any proof
reads O(log n) of them, fetched in one query.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.orm import Session

from ..db.models import AuditCheckpoint, AuditEvent, AuditTreeNode
from ..db.session import SEAL_KEY
from ..db.types import utcnow
from ..errors import ConfigError, IntegrityError, NotFoundError, UsageError
from ..signing.notes import sign_checkpoint
from ..verify.merkle import leaf_hash, node_hash
from ..verify.note import Checkpoint, NoteError, Verifier, open_checkpoint
from . import merkle
from .events import GENESIS_HASH, lock_log, seal_with
from .witness import PREFIX, Witness, checkpoint_name

T = TypeVar("T")
BATCH = 20_000


def tree_size(session: Session) -> int:
    last = session.scalar(
        select(AuditTreeNode.idx).where(AuditTreeNode.level == 0).order_by(AuditTreeNode.idx.desc()).limit(1)
    )
    return 0 if last is None else last + 1


def frontier_keys(size: int) -> list[tuple[int, int]]:
    """The complete subtrees on the right edge of a tree of ``size`` leaves: the left
    siblings the next appends will combine with."""
    return [(level, (size >> level) - 1) for level in range(size.bit_length()) if (size >> level) & 1]


def read_nodes(session: Session, keys: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    if not keys:
        return {}
    by_level: dict[int, list[int]] = {}
    for level, idx in sorted(keys):
        by_level.setdefault(level, []).append(idx)
    # One OR term per level (not a row-value IN): both databases then walk the primary key
    # index once per term; SQLite scans the whole table for a row-value IN.
    rows = session.execute(
        select(AuditTreeNode.level, AuditTreeNode.idx, AuditTreeNode.hash).where(
            or_(*(and_(AuditTreeNode.level == level, AuditTreeNode.idx.in_(idxs)) for level, idxs in by_level.items()))
        )
    )
    return {(lv, ix): bytes.fromhex(h) for lv, ix, h in rows}


def integrate(session: Session) -> int:
    """Hash every committed event not yet in the tree into it; return the new tree size."""
    lock_log(session)
    size = tree_size(session)
    known = read_nodes(session, set(frontier_keys(size)))
    while True:
        rows = session.execute(
            select(AuditEvent.seq, AuditEvent.body).where(AuditEvent.seq > size).order_by(AuditEvent.seq).limit(BATCH)
        ).all()
        if not rows:
            return size
        new: list[dict[str, Any]] = []
        for seq, body in rows:
            if seq != size + 1:
                raise UsageError(f"audit log has a gap before seq {seq}: audit verify names the first bad event")
            h = leaf_hash(body.encode())
            level, index = 0, size
            known[(0, index)] = h
            new.append({"level": 0, "idx": index, "hash": h.hex()})
            while index & 1:
                h = node_hash(known[(level, index - 1)], h)
                level, index = level + 1, index >> 1
                known[(level, index)] = h
                new.append({"level": level, "idx": index, "hash": h.hex()})
            size += 1
        session.execute(insert(AuditTreeNode), new)
        # Keep only the frontier: memory stays O(log n) however long the backlog.
        keep = set(frontier_keys(size))
        known = {k: v for k, v in known.items() if k in keep}


def with_nodes(session: Session, compute: Callable[[merkle.NodeFn], T]) -> T:
    """Run a proof computation with nodes fetched from the database in one query: a first
    pass records which nodes it needs, the second pass gets them."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return bytes(32)

    compute(record)
    nodes = read_nodes(session, wanted)
    missing = wanted - nodes.keys()
    if missing:
        raise NotFoundError(f"audit tree nodes missing: {sorted(missing)[:3]} (audit verify names what is wrong)")
    return compute(lambda level, index: nodes[(level, index)])


def root_at(session: Session, size: int) -> bytes:
    return with_nodes(session, lambda node: merkle.root(node, size))


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str


def latest_checkpoint(session: Session) -> StoredCheckpoint | None:
    row = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1)).first()
    return None if row is None else StoredCheckpoint(row.size, bytes.fromhex(row.root), row.note)


def get_checkpoint(session: Session, size: int) -> StoredCheckpoint:
    row = session.get(AuditCheckpoint, size)
    if row is None:
        raise NotFoundError(f"no checkpoint at tree size {size} (the audit checkpoints list holds those signed)")
    return StoredCheckpoint(row.size, bytes.fromhex(row.root), row.note)


def checkpoint(session: Session, origin: str, verifier: Verifier, keys: Any, witness: Witness) -> StoredCheckpoint:
    """Integrate, then sign a checkpoint of the whole tree, store it and witness it.
    Returns the latest checkpoint unchanged when no event arrived since.

    Nothing is signed over a log that does not hold: the events since the last checkpoint
    must chain and carry this instance's seals, and the tree must extend both the latest
    stored checkpoint and the latest one the witness holds (the log may not have fewer events
    than the witness has seen: a deleted tail is refused here, not witnessed for good).
    """
    lock_log(session)  # first: on PostgreSQL what is read after it is what the other signers left
    latest = latest_checkpoint(session)
    _check_increment(session, latest.size if latest is not None else 0)
    size = integrate(session)
    seen = _latest_witnessed(witness, verifier, origin)
    for source, prior in (("stored", latest), ("witnessed", seen)):
        if prior is None or prior.size == 0:
            continue
        if prior.size > size:
            raise IntegrityError(
                f"refusing to sign a checkpoint: the log has {size} events, the {source} checkpoint covers "
                f"{prior.size} (events deleted); audit verify names the first bad event"
            )
        if root_at(session, prior.size) != prior.root:
            raise IntegrityError(
                f"refusing to sign a checkpoint: the log's first {prior.size} events no longer have the {source} "
                "checkpoint's root (history rewritten); audit verify names the first bad event"
            )
    if latest is not None and latest.size == size:
        return latest
    if size == 0:
        raise UsageError("the audit log is empty: nothing to checkpoint")
    root = root_at(session, size)
    note = sign_checkpoint(Checkpoint(origin, size, root), verifier.name, keys)
    # Witness first: a checkpoint in the database is always also outside it.
    witness.write(checkpoint_name(size), note.encode())
    if seen is None or size >= seen.size:
        witness.write_latest(note.encode())
    session.execute(
        insert(AuditCheckpoint), [{"size": size, "root": root.hex(), "note": note, "created_at": utcnow()}]
    )
    return StoredCheckpoint(size, root, note)


def _check_increment(session: Session, after: int) -> None:
    """The events after seq ``after`` link to it and to each other, and carry this instance's
    seal (audit verify checks the whole log the same way)."""
    key = session.info.get(SEAL_KEY)
    if key is None:
        raise ConfigError("the audit seal key is not loaded: refusing to sign a checkpoint")
    t = AuditEvent.__table__.c
    prev = GENESIS_HASH if after == 0 else session.scalar(select(t.hash).where(t.seq == after))
    if prev is None:
        raise IntegrityError(f"refusing to sign a checkpoint: event {after}, the last checkpointed, is missing")
    expected = after + 1
    rows = session.execute(select(t.seq, t.body, t.hash, t.mac, t.prev_hash).where(t.seq > after).order_by(t.seq))
    for seq, body, digest, mac, prev_hash in rows:
        data = body.encode()
        if (seq != expected or prev_hash != prev or hashlib.sha256(data).hexdigest() != digest
                or not hmac.compare_digest(seal_with(key, digest), mac)
                or json.loads(data).get("prev_hash") != prev):
            raise IntegrityError(
                f"refusing to sign a checkpoint: audit event {expected} does not verify; "
                "audit verify names the first bad event"
            )
        prev, expected = digest, expected + 1


def _latest_witnessed(witness: Witness, verifier: Verifier, origin: str) -> StoredCheckpoint | None:
    data = witness.read_latest()
    if data is None:  # an instance from before latest.note: its newest write-once checkpoint
        names = [n for n in witness.names() if n.startswith(PREFIX)]
        if not names:
            return None
        data = witness.read(max(names))
    try:
        cp = open_checkpoint(data.decode(), verifier, origin=origin)
    except (NoteError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"refusing to sign a checkpoint: the witness's latest checkpoint does not verify: {exc}")\
            from None
    return StoredCheckpoint(cp.size, cp.root, data.decode())


def inclusion(session: Session, seq: int, size: int) -> list[bytes]:
    return with_nodes(session, lambda node: merkle.inclusion_proof(node, seq - 1, size))


def consistency(session: Session, size1: int, size2: int) -> list[bytes]:
    return with_nodes(session, lambda node: merkle.consistency_proof(node, size1, size2))
