"""Database engines and transactions for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError, NSPError

SEAL_KEY = "nsp_audit_seal_key"
# Set in a transaction's ``session.info`` by whatever appends an audit event to it; after the
# commit, ``Database.after_audited_commit`` runs (the instance witnesses the new tail).
APPENDED = "nsp_audit_appended"
# In a read session: the Database's cache of committed projects by name (see get_project).
PROJECT_CACHE = "nsp_project_cache"


def normalize_url(url: str) -> str:
    """Accept the URLs users write (``postgresql://``) and pick our drivers."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:") or url.startswith("postgresql+psycopg://"):
        return url
    raise ConfigError(f"unsupported database URL {url!r} (use sqlite:///PATH or postgresql://...)")


def _on_sqlite_connect(engine: Engine, *pragmas: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite: a writer's only BEGIN is the BEGIN
        # IMMEDIATE below, and a reader's statements run on their own.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in (*pragmas, "busy_timeout=60000"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()


def _configure_sqlite(engine: Engine) -> None:
    _on_sqlite_connect(engine, "journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON")

    # Every writer holds the write lock from its first statement, which keeps the audit hash
    # chain linear across processes.
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: this runs for every transaction.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE")


def _json_loads(text: str | bytes) -> Any:
    """JSON columns (a version's meta, a run's parameters) read with orjson: 3x faster than
    ``json`` on a version's meta, and a search returns hundreds. What orjson refuses
    (integers beyond 64 bits, which only ``json`` can have written) falls back to ``json``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


# Each thread keeps its connection between transactions (``Database._thread_kept``): a server's
# request threads (``server.threads``) and its background threads each hold one of each engine's,
# so the pools are sized for them, not for SQLAlchemy's default of 5 + 10.
POOL = {"pool_size": 20, "max_overflow": 20}


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite:"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60},
                               json_deserializer=_json_loads, **POOL)
        _configure_sqlite(engine)
        return engine
    # No pre-ping (a round trip per transaction); connections are recycled instead.
    return create_engine(url, pool_recycle=1800, json_deserializer=_json_loads, **POOL)


def make_read_engine(url: str) -> Engine:
    """An engine whose connections run every statement on its own (no BEGIN, no COMMIT) and
    refuse to write: SQLite ``query_only``, PostgreSQL ``default_transaction_read_only``. Its
    own pool, so a read-only connection is never handed to a writer."""
    url = normalize_url(url)
    if url.startswith("sqlite:"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60},
                               isolation_level="AUTOCOMMIT", json_deserializer=_json_loads, **POOL)
        _on_sqlite_connect(engine, "query_only=1")
        return engine
    # Set at connection start-up (libpq options): no statement of its own, and in force before
    # the first query whatever order the connect hooks run in.
    return create_engine(url, pool_recycle=1800, isolation_level="AUTOCOMMIT", json_deserializer=_json_loads,
                         connect_args={"options": "-c default_transaction_read_only=on"}, **POOL)


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
        # Called after a transaction that appended audit events has committed, outside it (set
        # by Instance: the new tail is witnessed, batched; see audit/witnessing.py).
        self.after_audited_commit: Callable[[], None] | None = None
        # One connection per thread, kept between transactions: checking a connection out
        # of the pool and back for every transaction cost 55 us, as much as appending an
        # audit event itself (benchmarks/bench_audit.py).
        self._local = threading.local()
        self._kept: weakref.WeakSet[_Kept] = weakref.WeakSet()
        self._read_engine: Engine | None = None
        self._read_engine_lock = threading.Lock()
        self.project_cache: dict[str, Any] = {}
        self._in_memory = self.url.startswith("sqlite:") and self.engine.url.database in (None, "", ":memory:")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _thread_kept(self, slot: str, engine: Engine) -> _Kept:
        """This thread's kept connection (and session) of ``engine``, kept in ``slot``: one
        for transactions, one for reads."""
        kept: _Kept | None = getattr(self._local, slot, None)
        if kept is not None and (kept.conn.closed or kept.conn.invalidated):
            self._drop(slot)
            kept = None
        if kept is None:
            kept = _Kept(engine.connect())
            setattr(self._local, slot, kept)
            self._kept.add(kept)
        return kept

    def _drop(self, slot: str, conn: Connection | None = None) -> None:
        """Forget this thread's kept connection in ``slot`` (if it is still ``conn``) after an
        error: the next unit of work opens a fresh one."""
        kept: _Kept | None = getattr(self._local, slot, None)
        if kept is not None and (conn is None or kept.conn is conn):
            setattr(self._local, slot, None)
            kept.close(invalidate=True)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        kept = self._thread_kept("kept", self.engine)
        if kept.busy or kept.conn.in_transaction():  # inside another: a pooled connection
            with self._pooled_transaction() as session:
                yield session
            return
        # The transaction begins at its first statement (as a pooled session's would), so a
        # transaction opened meanwhile on this thread is not blocked by this one's write lock.
        # Either the session begins it (ORM work first) or ``core_connection`` does (statements
        # below the ORM first, as an audit append's are; the session then joins it), so the
        # block may end with the session's transaction, the connection's, or both, to commit.
        # The session object is reused: a closed Session is empty, and making one per
        # transaction cost a tenth of an audited change.
        session, conn = kept.session, kept.conn
        info = session.info
        info.clear()
        if self.seal_key is not None:
            info[SEAL_KEY] = self.seal_key
        kept.busy = True
        committing = appended = False
        with self._translated_errors(lambda: self._drop("kept", conn)):
            try:
                yield session
                committing = True
                if session.in_transaction():
                    session.commit()
                if conn.in_transaction():
                    conn.commit()
                # Events appended by a transaction nested in this one (a pooled session) are
                # witnessed once this one has committed too: witnessing inside it would wait on
                # its write lock.
                appended = APPENDED in info or self._local.__dict__.pop("nested_appended", False)
            except BaseException:
                if committing:
                    # After a failed commit the driver's transaction state is unknown
                    # (SQLAlchemy does not roll back a transaction whose commit raised): the
                    # connection is discarded, which ends whatever is open uncommitted.
                    session.close()
                    self._drop("kept", conn)
                else:
                    if session.in_transaction():
                        session.rollback()
                    if conn.in_transaction():
                        conn.rollback()
                raise
            finally:
                session.close()
                info.clear()
                kept.busy = False
        if appended and self.after_audited_commit is not None:
            self.after_audited_commit()

    @contextmanager
    def _translated_errors(self, discard: Callable[[], None]) -> Iterator[None]:
        """A database error as a user reads it, after ``discard`` forgot the connection that
        raised it; a refused operation audited once its transaction is over."""
        try:
            yield
        except DBAPIError as exc:
            discard()
            if isinstance(exc, OperationalError):
                raise ConfigError(f"database error: {exc.orig}") from None
            raise
        except NSPError as exc:
            self._record_refusal(exc)
            raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work for the service calls that only read (resolve, list, show).
        No transaction is begun, so each statement sees the database as it is when it runs:
        on PostgreSQL that saves the BEGIN and COMMIT round trips (two of a resolve's four),
        on SQLite a read never waits for a writer (readers of a WAL database run beside it,
        where ``transaction`` takes the write lock). The connection refuses writes, and no
        audit seal key is set, so nothing can be changed or appended through it."""
        if self._in_memory:  # a second connection would be another, empty database
            with self.transaction() as session:
                yield session
            return
        if self._read_engine is None:
            with self._read_engine_lock:
                if self._read_engine is None:
                    self._read_engine = make_read_engine(self.url)
        kept = self._thread_kept("reader", self._read_engine)
        if kept.busy:  # a read inside a read: a session of its own
            with Session(self._read_engine, expire_on_commit=False) as session:
                session.info[PROJECT_CACHE] = self.project_cache
                yield session
            return
        kept.busy = True
        session = kept.session
        session.info[PROJECT_CACHE] = self.project_cache
        with self._translated_errors(lambda: self._drop("reader", kept.conn)):
            try:
                yield session
            finally:
                session.close()
                kept.busy = False

    @contextmanager
    def _pooled_transaction(self) -> Iterator[Session]:
        session = self._sessions()
        if self.seal_key is not None:
            session.info[SEAL_KEY] = self.seal_key
        appended = False
        try:
            with session.begin():
                yield session
                appended = APPENDED in session.info
        except OperationalError as exc:
            raise ConfigError(f"database error: {exc.orig}") from None
        except NSPError as exc:
            session.close()
            self._record_refusal(exc)
            raise
        finally:
            session.close()
        if appended:  # committed: the enclosing transaction of this thread witnesses it
            self._local.nested_appended = True

    def _record_refusal(self, exc: NSPError) -> None:
        """Audit a security-relevant refusal in a transaction of its own, after the refused
        one rolled back."""
        if exc.security_event is not None and self.security_recorder is not None:
            event, exc.security_event = exc.security_event, None
            self.security_recorder(event)

    def dispose(self) -> None:
        for kept in list(self._kept):
            kept.close()
        self._local = threading.local()
        self.engine.dispose()
        if self._read_engine is not None:
            self._read_engine.dispose()
            self._read_engine = None


def core_connection(session: Session) -> Connection:
    """The connection under ``session``'s transaction, for statements below the ORM. When the
    session has not begun yet, the transaction is begun on the connection itself: a Session
    transaction costs ~25 us to begin and commit, a connection's ~5 us, and an audit append
    is on the path of every change."""
    bind = session.bind
    if isinstance(bind, Connection) and not session.in_transaction():
        if not bind.in_transaction():
            bind.begin()
        return bind
    return session.connection()


class _Kept:
    """A thread's kept connection and the session reused on it. They live in the thread's local
    storage, so when the thread ends and that storage goes, the connection is closed (given back
    to the pool): a server's short-lived threads leave no connection checked out."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # A session that finds the connection's transaction begun joins it and leaves its
        # commit to Database.transaction (see core_connection).
        self.session = Session(bind=conn, expire_on_commit=False, join_transaction_mode="rollback_only")
        self.busy = False
        self._finalizer = weakref.finalize(self, _close, conn, False)

    def close(self, invalidate: bool = False) -> None:
        if self._finalizer.detach() is not None:
            _close(self.conn, invalidate)


def _close(conn: Connection, invalidate: bool) -> None:
    try:
        if invalidate:
            conn.invalidate()
        conn.close()
    except Exception:  # noqa: BLE001 - a broken connection has nothing left to save
        pass
