"""An instance: its configuration, database and object store, and how to create one."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select

from .access.context import Interface, RequestContext
from .audit.events import append_event
from .audit.note import Verifier
from .audit.tree import StoredCheckpoint, checkpoint
from .audit.witness import Witness, open_witness
from .audit.witnessing import Witnessing
from .config import InstanceConfig, config_path, load_config, settable_values, write_config
from .db import migrate
from .db.models import AuditCheckpoint, AuditEvent, InstanceInfo, User
from .db.session import Database
from .db.types import utcnow
from .errors import InstanceExistsError, NotFoundError, NSPError, PermissionDeniedError
from .identity.users import actor_for, check_new_user, create_first_admin
from .ids import new_id
from .permissions import (
    SQLITE_SIDECARS,
    FilePolicy,
    apply_umask,
    enforce,
    make_file,
    make_folder,
    modes_for,
    secure,
    sqlite_path,
)
from .projects.service import create_project
from .signing.keys import KeyPair, load_or_create_keypair, load_or_create_secret
from .store import ObjectStore, S3Store, open_store

LOG_KEY = "keys/audit-log-ed25519.pem"
RUN_KEY = "keys/run-signing-ed25519.pem"
SEAL_KEY_FILE = "keys/audit-seal.key"


@dataclass
class Instance:
    home: Path
    config: InstanceConfig
    db: Database
    store: ObjectStore
    _run_keys: KeyPair | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, home: Path, check_permissions: bool = True) -> Instance:
        """Open the instance at ``home``. Refuses (InsecurePermissionsError, one line) when its
        home, config, keys, SQLite file or object folders are wider than its policy or not the
        caller's; ``check_permissions=False`` is for ``audit verify``, which lists them all."""
        config = load_config(home)
        modes = modes_for(config.permissions)
        apply_umask(modes)
        db = Database(config.db_url)  # no connection yet: the check comes first
        if check_permissions:
            try:
                enforce(home, config.db_url, db.engine.url.database, config.store_url, config.archive_url, modes)
            except BaseException:
                db.dispose()
                raise
        db.seal_key = load_or_create_secret(home / SEAL_KEY_FILE)
        return cls(home, config, db, open_store(config.store_url))

    def __post_init__(self) -> None:
        self.db.security_recorder = self._record_security_event
        self._witness: Witness | None = None
        self._log_keys: KeyPair | None = None
        self.witnessing = Witnessing(self.sign_checkpoint, float(self.config.checkpoint_interval_s))
        self.db.after_audited_commit = self.witnessing.committed

    def sign_checkpoint(self) -> StoredCheckpoint:
        """Checkpoint the whole log now, in a transaction of its own: integrated, checked,
        signed and witnessed (``audit.tree.checkpoint``). Housekeeping of the log itself, which
        any process that commits does (audit/witnessing.py); no caller is authorized here."""
        with self.db.transaction() as session:
            return checkpoint(session, self.config.log_origin, self.log_verifier(), self.log_keys(), self.witness())

    def witness_tail(self) -> None:
        """Sign for what this process left pending, or for events that a process which died
        left unwitnessed (one read when there are none)."""
        if self.witnessing.pending:
            self.witnessing.flush()
            return
        with self.db.read() as session:
            newest = session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0
            last = session.scalar(select(AuditCheckpoint.size).order_by(AuditCheckpoint.size.desc()).limit(1)) or 0
        if newest > last:
            self.sign_checkpoint()

    def _record_security_event(self, event: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            append_event(session, event["ctx"], action=event["action"], target=event["target"],
                         project=event.get("project"), after=event.get("after"))

    def log_keys(self) -> KeyPair:
        if self._log_keys is None:
            self._log_keys = load_or_create_keypair(self.home / LOG_KEY)
        return self._log_keys

    def run_keys(self) -> KeyPair:
        """The instance's run-signing key (DSSE envelopes over run attestations), read once:
        parsing the PEM file cost 0.2 ms of every run. Nothing replaces it while an instance
        is open (there is no rotation; a new key needs a new instance)."""
        if self._run_keys is None:
            self._run_keys = load_or_create_keypair(self.home / RUN_KEY)
        return self._run_keys

    def log_verifier(self) -> Verifier:
        return Verifier.for_key(self.config.log_origin, self.log_keys())

    def archive(self) -> ObjectStore:
        """The archive store: archived registry versions, still verifiable and readable."""
        url = self.config.archive_url
        if url is None:
            url = f"{self.config.store_url.rstrip('/')}/archive" if self.config.store_url.startswith("s3://") \
                else str(self.home / "archive")
        return open_store(url)

    def witness(self) -> Witness:
        if self._witness is None:  # an S3 client costs tens of milliseconds to make
            self._witness = open_witness(self.config.witness_url)
        return self._witness

    def context(self, username: str | None = None, interface: Interface = "system") -> RequestContext:
        """A trusted in-process context acting as ``username`` (default: the first admin).

        For Python callers that already hold the instance's keys and database credentials
        (tests, benchmarks, jobs). The CLI and the HTTP server authenticate instead
        (``identity.auth.authenticate``)."""
        name = username or self.config.admin
        with self.db.transaction() as session:
            user = session.scalar(select(User).where(User.username == name))
            if user is None:
                raise NotFoundError(f"no user named {name!r}")
            if user.disabled:
                raise PermissionDeniedError(f"user {name!r} is disabled")
            return RequestContext(actor_for(user), interface=interface)

    def close(self) -> None:
        """Witness what this process left pending (audit/witnessing.py), then close the
        database. A failure to witness is logged, not raised: a caller that must know (the CLI)
        calls ``witness_tail`` first, which raises."""
        try:
            if self.witnessing.pending:
                self.witnessing.flush()
        except Exception as exc:  # noqa: BLE001 -- closing must close; the log says what failed
            logging.getLogger(__name__).warning("audit events left unwitnessed: %s", exc)
        finally:
            self.db.dispose()


def init_instance(
    home: Path,
    *,
    admin: str,
    password: str,
    printed_name: str | None = None,
    db_url: str | None = None,
    store_url: str | None = None,
    witness_url: str | None = None,
    admin_db_url: str | None = None,
    permissions: FilePolicy | None = None,
) -> Instance:
    """Create an instance: schema (Alembic), first admin, ``default`` project, config file.

    Refuses to touch an existing instance: a config file in ``home`` or a database that
    already holds one. The database work is one transaction with its audit events. The home,
    the SQLite file and the object folder get the modes of ``permissions`` (default: owner-only)
    before anything is written into them.
    """
    permissions = permissions or FilePolicy()
    modes = modes_for(permissions)
    check_new_user(admin, password, printed_name=printed_name)
    if config_path(home).exists():
        raise InstanceExistsError(f"an instance exists already at {home}; nothing was changed")
    apply_umask(modes)
    created_home = not home.exists()
    try:
        make_folder(home, modes)
    except BaseException:
        if created_home:
            shutil.rmtree(home, ignore_errors=True)
        raise
    db_url = db_url or f"sqlite:///{home / 'nextstat-pro.db'}"
    store_url = store_url or str(home / "objects")
    witness_url = witness_url or str(home / "witness")
    db = Database(db_url)
    db_file = sqlite_path(db.engine.url.database) if db.dialect == "sqlite" else None
    store_root = None if store_url.startswith("s3://") else \
        Path(store_url[len("file://"):] if store_url.startswith("file://") else store_url)
    created_store = store_root is not None and not store_root.exists()
    try:
        if db_file is not None and not db_file.exists() and db_file.parent.is_dir():
            make_file(db_file, modes)  # before SQLite creates it: its -wal and -shm copy this mode
        if "instance_info" in inspect(db.engine).get_table_names():
            with db.transaction() as session:
                if session.scalar(select(InstanceInfo.instance_id)) is not None:
                    raise InstanceExistsError(
                        f"the database {db_url!r} holds an instance already; nothing was changed"
                    )
        if db_file is not None:  # a database file the caller made, holding no instance: ours now
            for path in (db_file, *(db_file.with_name(db_file.name + s) for s in SQLITE_SIDECARS)):
                if path.exists():
                    secure(path, modes, folder=False)
        store = open_store(store_url)
        if isinstance(store, S3Store):
            store.ensure_bucket()
        elif store_root is not None:
            make_folder(store_root, modes)
        if admin_db_url:
            admin_db = Database(admin_db_url)
            try:
                migrate.upgrade(admin_db.engine, app_role=db.engine.url.username)
            finally:
                admin_db.dispose()
        else:
            migrate.upgrade(db.engine)
        instance_id = new_id()
        origin = f"nextstat-pro.local/audit/{instance_id}"
        keys = load_or_create_keypair(home / LOG_KEY, create=True)
        load_or_create_keypair(home / RUN_KEY, create=True)
        db.seal_key = load_or_create_secret(home / SEAL_KEY_FILE, create=True)
        verifier = Verifier.for_key(origin, keys)
        open_witness(witness_url).write("log.pub", f"{verifier}\n".encode())
        config = InstanceConfig(
            instance_id=instance_id, db_url=db_url, store_url=store_url, admin=admin,
            log_origin=origin, witness_url=witness_url, permissions=permissions,
        )
        with db.transaction() as session:
            user = create_first_admin(session, username=admin, printed_name=printed_name or admin, password=password)
            ctx = RequestContext(actor_for(user), interface="cli")
            session.add(
                InstanceInfo(instance_id=instance_id, created_at=utcnow(), settings={"log_key": str(verifier)})
            )
            # The settable configuration as written: audit verify re-derives config.json from it
            # and the config.changed events after it (audit/state.py).
            append_event(
                session,
                ctx,
                action="instance.initialized",
                target=("instance", instance_id),
                after={"db": db.dialect, "store": store.url, "admin": admin, "log_key": str(verifier),
                       "witness": witness_url, "config": settable_values(config)},
            )
            create_project(session, ctx, "default", "Default project created by init")
        write_config(home, config)
    except BaseException:
        db.dispose()
        if created_home:
            shutil.rmtree(home, ignore_errors=True)
        if created_store and store_root is not None:
            shutil.rmtree(store_root, ignore_errors=True)
        raise
    instance = Instance(home, config, db, store)
    try:
        instance.sign_checkpoint()  # the log is witnessed from its first events on
    except NSPError as exc:
        # The instance exists (its config is written): say so rather than fail its creation;
        # the next command witnesses the first events (Instance.witness_tail).
        logging.getLogger(__name__).warning("the first audit events are not yet witnessed: %s", exc)
    return instance


