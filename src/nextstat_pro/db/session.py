"""Database engines and transactions for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
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

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        session = self._sessions()
        if self.seal_key is not None:
            session.info[SEAL_KEY] = self.seal_key
        try:
            with session.begin():
                yield session
        except OperationalError as exc:
            raise ConfigError(f"database error: {exc.orig}") from None
        except NSPError as exc:
            if exc.security_event is not None and self.security_recorder is not None:
                session.close()
                event, exc.security_event = exc.security_event, None
                self.security_recorder(event)
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
