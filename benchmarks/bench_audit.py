"""Audit trail figures, in one run, on SQLite and PostgreSQL.

1. Append throughput: N events, each its own transaction through the service layer
   (``append_event`` in ``Database.transaction``: lock, chain, seal, insert), against the
   physical limit: a raw INSERT of rows of the same size through the driver itself
   (stdlib ``sqlite3`` / ``psycopg``), one transaction per row, same durability settings.
2. At --events (default 10^6) events: integration into the Merkle tree, inclusion-proof
   time (median and p95 of 1,000 random events, including the database reads), and the
   full ``audit verify`` time (chain, seals, tree, checkpoints).

    .venv/bin/python benchmarks/bench_audit.py [--appends 2000] [--events 1000000] [--pg URL]

The 10^6 events are loaded in bulk (same bytes as real events: canonical body, hash, seal)
to keep the run short; appends are measured separately above.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert, text

from nextstat_pro.audit import tree
from nextstat_pro.audit.events import GENESIS_HASH, SCHEMA_ID, append_event, seal_with
from nextstat_pro.audit.service import make_checkpoint, verify
from nextstat_pro.canonical import canonical_json, sha256_hex
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.ids import new_id
from nextstat_pro.instance import Instance, init_instance

PAYLOAD = {"status": "succeeded", "manifest_digest": "sha256:" + "ab" * 32, "fit_quality_ok": True}


def service_appends(inst: Instance, n: int, first: int = 0) -> float:
    """Seconds for n appends, each its own transaction through the service layer."""
    ctx = inst.context()
    start = time.perf_counter()
    for i in range(first, first + n):
        with inst.db.transaction() as s:
            append_event(s, ctx, action="run.succeeded", target=("run", f"bench-{i}"), project="default",
                         before={"status": "running"}, after=PAYLOAD)
    return time.perf_counter() - start


def row_like_event(i: int) -> tuple[Any, ...]:
    body = "x" * 620  # the size of a canonical run.succeeded event body
    return (10_000_000 + i, new_id(), "2026-11-27T00:00:00.000000Z", "actor", "run.succeeded", "run",
            f"raw-{i}", "default", body, "0" * 64, sha256_hex(f"{i}".encode()), "0" * 64)


def raw_sqlite(path: str) -> Callable[[int, int], float]:
    """A raw_events table like audit_events (same indexes) and a function timing n inserts
    through stdlib sqlite3, one transaction per row, same durability settings."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for (sql,) in conn.execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'audit_events' AND type IN ('table', 'index') "
        "AND sql IS NOT NULL ORDER BY type DESC"
    ).fetchall():
        conn.execute(sql.replace("audit_events", "raw_events").replace("ix_", "raw_ix_").replace("uq_", "raw_uq_"))

    def block(n: int, first: int) -> float:
        start = time.perf_counter()
        for i in range(first, first + n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO raw_events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row_like_event(i))
            conn.execute("COMMIT")
        return time.perf_counter() - start

    return block


def raw_postgres(url: str) -> Callable[[int, int], float]:
    """The same with psycopg: one transaction per row, fsync on."""
    conn = psycopg.connect(url)
    conn.execute("CREATE TABLE raw_events (LIKE audit_events INCLUDING ALL)")
    conn.commit()

    def block(n: int, first: int) -> float:
        start = time.perf_counter()
        for i in range(first, first + n):
            conn.execute("INSERT INTO raw_events VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", row_like_event(i))
            conn.commit()
        return time.perf_counter() - start

    return block


def append_ratio(inst: Instance, raw: Callable[[int, int], float], total: int, blocks: int = 10) -> tuple[float, float]:
    """Service and raw appends in alternating blocks (machine noise then hits both alike);
    the medians of the blocks' rates."""
    n = max(1, total // blocks)
    service_rates, raw_rates = [], []
    for b in range(blocks):
        service_rates.append(n / service_appends(inst, n, b * n))
        raw_rates.append(n / raw(n, b * n))
    return statistics.median(service_rates), statistics.median(raw_rates)


def bulk_load(inst: Instance, n: int, batch: int = 20_000) -> None:
    """Append n events in large transactions, byte-for-byte as append_event writes them."""
    ctx = inst.context()
    key = inst.db.seal_key
    assert key is not None
    with inst.db.transaction() as s:
        row = s.execute(text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).first()
    seq, prev = (row[0], row[1]) if row else (0, GENESIS_HASH)
    while n > 0:
        rows = []
        for _ in range(min(batch, n)):
            seq += 1
            body = {"schema": SCHEMA_ID, "seq": seq, "event_id": new_id(), "ts": "2026-11-27T00:00:00.000000Z",
                    "actor": ctx.actor.as_json(), "action": "run.succeeded", "target": {"type": "run", "id": f"r{seq}"},
                    "project": "default", "before": {"status": "running"}, "after": PAYLOAD, "reason": None,
                    "context": ctx.as_json(), "prev_hash": prev}
            data = canonical_json(body)
            digest = sha256_hex(data)
            rows.append({"seq": seq, "event_id": body["event_id"], "ts": body["ts"], "actor_id": ctx.actor.id,
                         "action": body["action"], "target_type": "run", "target_id": f"r{seq}",
                         "project": "default", "body": data.decode(), "prev_hash": prev, "hash": digest,
                         "mac": seal_with(key, digest)})
            prev = digest
        with inst.db.transaction() as s:
            s.execute(insert(AuditEvent), rows)
        n -= len(rows)


def measure(label: str, db_url: str | None, raw: Any, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-") as tmp:
        inst = init_instance(Path(tmp) / "home", admin="bench", password="bench-password-1", db_url=db_url)
        service, raw_rate = append_ratio(inst, raw(inst), args.appends)
        print(f"[{label}] append (medians of 10 alternating blocks): service layer {service:,.0f} events/s, "
              f"raw driver INSERT {raw_rate:,.0f} rows/s, ratio {service / raw_rate:.2f}")
        bulk_load(inst, args.events - args.appends - 3)
        t0 = time.perf_counter()
        cp = make_checkpoint(inst, inst.context())
        integrate_s = time.perf_counter() - t0
        rng = random.Random(1)
        times = []
        for _ in range(1000):
            seq = rng.randrange(1, cp.size + 1)
            t0 = time.perf_counter()
            with inst.db.transaction() as s:
                tree.inclusion(s, seq, cp.size)
            times.append(time.perf_counter() - t0)
        times.sort()
        t0 = time.perf_counter()
        report = verify(inst, inst.context(), state=False)  # the log checks (state: tests/test_audit_state.py)
        verify_s = time.perf_counter() - t0
        assert report.ok, report.problem
        print(f"[{label}] {cp.size:,} events: integrate + checkpoint {integrate_s:.1f} s; inclusion proof median "
              f"{statistics.median(times) * 1e3:.2f} ms, p95 {times[949] * 1e3:.2f} ms; full verify {verify_s:.1f} s")
        inst.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".", help="where the benchmark's instance lives (default: here, where an "
                        "instance's default home is; on this VM /tmp fsyncs cost twice as much)")
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL (a fresh database is created on it)")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    args = parser.parse_args()
    if args.only != "postgresql":
        measure("sqlite", None, lambda inst: raw_sqlite(inst.db.engine.url.database), args)
    if args.only != "sqlite":
        if not args.pg:
            raise SystemExit("--pg URL is needed for PostgreSQL (make bench starts a server)")
        name = "bench_" + new_id().replace("-", "")[:12]
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = args.pg.rsplit("/", 1)[0] + "/" + name
        measure("postgresql", url, lambda inst: raw_postgres(url), args)


if __name__ == "__main__":
    main()
