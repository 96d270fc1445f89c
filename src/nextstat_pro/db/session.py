"""Database engines and transactions for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError, NSPError

SEAL_KEY = "nsp_audit_seal_key"


def normalize_url(url: str) -> str:
    """Accept the URLs users write (``postgresql://``) and pick our drivers."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:") or url.startswith("postgresql+psycopg://"):
        return url
    raise ConfigError(f"unsupported database URL {url!r} (use sqlite:///PATH or postgresql://...)")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that BEGIN IMMEDIATE below is
        # the only BEGIN: every writer then holds the write lock from its first
        # statement, which keeps the audit hash chain linear across processes.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: this runs for every transaction.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite:"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
        _configure_sqlite(engine)
        return engine
    # No pre-ping (a round trip per transaction); connections are recycled instead.
    return create_engine(url, pool_recycle=1800)


class Database:
    """An engine plus the one way to get a transaction: ``with db.transaction() as s``."""

    def __init__(self, url: str, seal_key: bytes | None = None) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # The audit seal key travels with each session so that audit.append_event can
        # seal events without a handle on the instance.
        self.seal_key = seal_key
        # Records the audit event of a security-relevant refusal after its transaction
        # rolled back (set by Instance; see errors.NSPError.security_event).
        self.security_recorder: Callable[[dict[str, Any]], None] | None = None
        # One connection per thread, kept between transactions: checking a connection out
        # of the pool and back for every transaction cost 55 us, as much as appending an
        # audit event itself (benchmarks/bench_audit.py).
        self._local = threading.local()
        self._held: list[Connection] = []
        self._held_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _connection(self) -> Connection | None:
        """This thread's kept connection, or None when it is inside a transaction already
        (a nested transaction then takes a connection of its own from the pool)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or conn.invalidated):
            self._drop(conn)
            conn = None
        if conn is None:
            conn = self.engine.connect()
            self._local.conn = conn
            with self._held_lock:
                self._held.append(conn)
        return None if conn.in_transaction() else conn

    def _drop(self, conn: Connection) -> None:
        """Forget a kept connection after an error: the next transaction opens a fresh one."""
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._held_lock:
            if conn in self._held:
                self._held.remove(conn)
        try:
            conn.invalidate()
            conn.close()
        except Exception:  # noqa: BLE001 - the connection is broken already; nothing to save
            pass

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        conn = self._connection()
        if conn is None:
            with self._pooled_transaction() as session:
                yield session
            return
        # The session begins the connection's transaction at its first statement (as a pooled
        # session would), so a transaction opened meanwhile on this thread is not blocked by
        # this one's write lock.
        session = Session(bind=conn, expire_on_commit=False)
        if self.seal_key is not None:
            session.info[SEAL_KEY] = self.seal_key
        try:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        except DBAPIError as exc:
            self._drop(conn)
            if isinstance(exc, OperationalError):
                raise ConfigError(f"database error: {exc.orig}") from None
            raise
        except NSPError as exc:
            self._record_refusal(exc)
            raise

    @contextmanager
    def _pooled_transaction(self) -> Iterator[Session]:
        session = self._sessions()
        if self.seal_key is not None:
            session.info[SEAL_KEY] = self.seal_key
        try:
            with session.begin():
                yield session
        except OperationalError as exc:
            raise ConfigError(f"database error: {exc.orig}") from None
        except NSPError as exc:
            session.close()
            self._record_refusal(exc)
            raise
        finally:
            session.close()

    def _record_refusal(self, exc: NSPError) -> None:
        """Audit a security-relevant refusal in a transaction of its own, after the refused
        one rolled back."""
        if exc.security_event is not None and self.security_recorder is not None:
            event, exc.security_event = exc.security_event, None
            self.security_recorder(event)

    def dispose(self) -> None:
        with self._held_lock:
            held, self._held = self._held, []
        for conn in held:
            conn.close()
        self._local = threading.local()
        self.engine.dispose()
