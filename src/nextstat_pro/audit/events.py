"""Appending audit events inside the caller's transaction.

The event row is written by the same transaction as the change it records, so the two
commit together or not at all. Appenders are serialised (PostgreSQL advisory lock,
SQLite ``BEGIN IMMEDIATE``) so that ``seq`` is gapless and the hash chain is linear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from sqlalchemy.orm import Session

from .. import text
from ..access.context import RequestContext
from ..canonical import canonical_json, plain_json, sanitize_plain, sha256_hex
from ..db.models import AuditEvent
from ..db.session import APPENDED, SEAL_KEY, core_connection
from ..db.types import rfc3339, utcnow
from ..errors import ConfigError, UsageError
from ..ids import new_id
from ..observability import metrics

GENESIS_HASH = "0" * 64
SCHEMA_ID = "https://nextstat.pro/schemas/audit-event/v1"
# Verbs of actions that change or remove something: they need a reason (21 CFR 11.10(e)).
REASON_REQUIRED_VERBS = frozenset(
    {"updated", "deleted", "purged", "disabled", "changed", "moved", "reset", "revoked", "cancelled"}
)
_PG_LOCK_KEY = 0x6E73705F61756474  # "nsp_audt": one advisory lock for all appenders
_PG_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"
_TAIL = "nsp_audit_tail"
_TAIL_SQL = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
_COLUMNS = ("seq", "event_id", "ts", "actor_id", "action", "target_type", "target_id", "project", "body",
            "prev_hash", "hash", "mac")
_INSERT_SQL = {
    style: f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) VALUES ({', '.join(mark.format(c) for c in _COLUMNS)})"
    for style, mark in (("named", ":{}"), ("pyformat", "%({})s"), ("qmark", ":{}"))
}
_LOCKED = "nsp_audit_locked"
_DRIVER = "nsp_audit_driver"
_PENDING = "nsp_audit_pending"


@dataclass(frozen=True)
class AppendedEvent:
    seq: int
    event_id: str
    hash: str


def event_hash(body: dict[str, Any]) -> str:
    """sha256 of the RFC 8785 canonical JSON of the event without its ``hash``."""
    return sha256_hex(canonical_json({k: v for k, v in body.items() if k != "hash"}))


def lock_log(session: Session) -> None:
    """Serialise writers of the log for the rest of this transaction. SQLite transactions
    already begin IMMEDIATE (one writer at a time); PostgreSQL takes an advisory lock."""
    if _LOCKED in session.info:
        return
    driver, dialect = _driver(session)
    if dialect.name == "postgresql":
        driver.execute(_PG_LOCK_SQL, (_PG_LOCK_KEY,))
    session.info[_LOCKED] = True


def _tail(session: Session) -> tuple[int, str]:
    cached: tuple[int, str] | None = session.info.get(_TAIL)
    if cached is not None:
        return cached
    # The lock and the read must be two statements: in PostgreSQL a statement's snapshot is
    # taken before it waits for the lock, so one combined statement would read a stale tail.
    driver, dialect = _driver(session)
    if _LOCKED not in session.info and dialect.name == "postgresql":
        # Two statements in one round trip (psycopg pipeline): the server still runs them in
        # order, so the read's snapshot is taken once the lock is held. With the BEGIN that
        # psycopg queues with them, this saves two of an append's round trips.
        with driver.pipeline():
            driver.execute(_PG_LOCK_SQL, (_PG_LOCK_KEY,))
            cursor = driver.execute(_TAIL_SQL)
        session.info[_LOCKED] = True
        row = cursor.fetchone()
        cursor.close()
    else:
        lock_log(session)
        cursor = driver.cursor()
        try:
            cursor.execute(_TAIL_SQL)
            row = cursor.fetchone()
        finally:
            cursor.close()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def _driver(session: Session) -> tuple[Any, Any]:
    """The DB-API connection under the session's transaction, and its dialect. The two
    statements of an append go straight to the driver: through SQLAlchemy they cost ~5x
    more, and the append is on the path of every change (see benchmarks/bench_audit.py).
    Kept in the session's info, which is cleared after each transaction."""
    found = session.info.get(_DRIVER)
    if found is None:
        conn = core_connection(session)
        found = session.info[_DRIVER] = (conn.connection.dbapi_connection, conn.dialect)
    return found


def append_event(
    session: Session,
    ctx: RequestContext,
    *,
    action: str,
    target: tuple[str, str],
    project: str | None = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> AppendedEvent:
    """Append one event to the chain in ``session``'s transaction (added, not committed)."""
    started = perf_counter()
    verb = action.rsplit(".", 1)[-1]
    reason = text.clean_optional("reason", reason)  # every reason people read: one line, nothing hidden
    if verb in REASON_REQUIRED_VERBS and not (reason and reason.strip()):
        raise UsageError(f"a reason is required for {action}")
    seq, prev_hash = _tail(session)
    seq += 1
    before, plain_before = sanitize_plain(before)
    after, plain_after = sanitize_plain(after)
    body: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "seq": seq,
        "event_id": new_id(),
        "ts": rfc3339(utcnow()),
        "actor": ctx.actor.as_json(),
        "action": action,
        "target": {"type": target[0], "id": target[1]},
        "project": project,
        "before": before,
        "after": after,
        "reason": reason,
        "context": ctx.as_json(),
        "prev_hash": prev_hash,
    }
    # What the hash covers, stored as is. Every field but before/after is a string, a
    # small integer or null under ASCII keys, so only those two decide whether the C
    # encoder's output is already canonical (this runs on every change).
    data = plain_json(body) if plain_before and plain_after else canonical_json(body)
    digest = sha256_hex(data)
    row = {
        "mac": seal(session, digest),
        "seq": seq,
        "event_id": body["event_id"],
        "ts": body["ts"],
        "actor_id": ctx.actor.id,
        "action": action,
        "target_type": target[0],
        "target_id": target[1],
        "project": project,
        "body": data.decode(),
        "prev_hash": prev_hash,
        "hash": digest,
    }
    pending = session.info.get(_PENDING)
    if pending is not None:
        pending.append(row)
    else:
        _insert(session, [row])
    # A session lives for one transaction (Database.transaction), so the cached tail
    # never outlives the lock that made it valid.
    session.info[_TAIL] = (seq, digest)
    session.info[APPENDED] = True
    metrics.audit_appended(perf_counter() - started)
    return AppendedEvent(seq=seq, event_id=body["event_id"], hash=digest)


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    driver, dialect = _driver(session)
    cursor = driver.cursor()
    try:
        if len(rows) == 1:
            cursor.execute(_INSERT_SQL[dialect.paramstyle], rows[0])
        else:
            cursor.executemany(_INSERT_SQL[dialect.paramstyle], rows)
    finally:
        cursor.close()


@contextmanager
def batched_appends(session: Session) -> Iterator[None]:
    """Events appended in the block are inserted together when it ends, in one statement
    (psycopg pipelines it: one round trip instead of one per event). They are chained and
    sealed as they are appended, and still commit with the change or not at all: a block that
    raises inserts nothing (and a caller that goes on in the same transaction appends after the
    last event inserted, not after the ones dropped)."""
    if _PENDING in session.info:  # already batching: the outer block inserts them
        yield
        return
    pending: list[dict[str, Any]] = []
    tail = session.info.get(_TAIL)
    session.info[_PENDING] = pending
    try:
        yield
        if pending:
            _insert(session, pending)
    except BaseException:
        if tail is None:
            session.info.pop(_TAIL, None)
        else:
            session.info[_TAIL] = tail
        raise
    finally:
        session.info.pop(_PENDING, None)


def seal(session: Session, digest: str) -> str:
    """HMAC-SHA256 of an event hash under the instance's seal key. The key lives outside the
    database, so whoever can rewrite tables still cannot forge a sealed event."""
    key = session.info.get(SEAL_KEY)
    if key is None:
        raise ConfigError("the audit seal key is not loaded: refusing to write an unsealed event")
    return seal_with(key, digest)


def seal_with(key: bytes, digest: str) -> str:
    return hmac.new(key, bytes.fromhex(digest), hashlib.sha256).hexdigest()


def event_document(row: AuditEvent) -> dict[str, Any]:
    """The full event as published: the hashed body plus its ``hash``."""
    doc: dict[str, Any] = json.loads(row.body)
    doc["hash"] = row.hash
    return doc
