"""Persistence models (SQLAlchemy 2). The schema itself is owned by the Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .types import UTCDateTime


class Base(DeclarativeBase):
    pass


class InstanceInfo(Base):
    __tablename__ = "instance_info"
    instance_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    printed_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_instance_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_auditor: Mapped[bool] = mapped_column(Boolean, default=False)  # reads and verifies everything
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    task: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    patch: Mapped[str | None] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    fit_ok: Mapped[bool | None] = mapped_column(Boolean)
    manifest_digest: Mapped[str | None] = mapped_column(String(71))
    envelope_digest: Mapped[str | None] = mapped_column(String(71))
    # Renewed while an in-process run executes; expired on a running run: the process died.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    inputs: Mapped[list[RunInput]] = relationship(order_by="RunInput.id")
    artifacts: Mapped[list[RunArtifact]] = relationship(order_by="RunArtifact.id")
    __table_args__ = (
        Index("ix_runs_status_lease", "status", "lease_until"),  # migration 0006
        # The runs list, newest first per project and filter, keyset-paged (migration 0012).
        Index("ix_runs_project_created", "project_id", "created_at", "id"),
        Index("ix_runs_project_status_created", "project_id", "status", "created_at", "id"),
        Index("ix_runs_project_task_created", "project_id", "task", "created_at", "id"),
        Index("ix_runs_project_author_created", "project_id", "created_by", "created_at", "id"),
    )


class RunInput(Base):
    __tablename__ = "run_inputs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(300))
    digest: Mapped[str] = mapped_column(String(71))
    size: Mapped[int] = mapped_column(BigInteger)


class RunArtifact(Base):
    __tablename__ = "run_artifacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    digest: Mapped[str] = mapped_column(String(71))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))


class AuditEvent(Base):
    """One audit event. ``body`` is the canonical JSON that ``hash`` covers; the other
    columns are copies of its fields kept for querying."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    ts: Mapped[str] = mapped_column(String(32), index=True)
    actor_id: Mapped[str] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(60), index=True)
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(200))
    project: Mapped[str | None] = mapped_column(String(100), index=True)
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # HMAC-SHA256 of ``hash`` under the instance's audit seal key (kept outside the database).
    mac: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_target", "target_type", "target_id"),)


class AuditTreeNode(Base):
    """A complete, aligned subtree of the RFC 9162 tree over the events: leaves
    ``[idx * 2**level, (idx + 1) * 2**level)``. Level 0 holds the leaf hashes."""

    __tablename__ = "audit_tree_nodes"
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PurgedObject(Base):
    """Object bytes removed from the store under the retention policy (the record stays)."""

    __tablename__ = "purged_objects"
    digest: Mapped[str] = mapped_column(String(71), primary_key=True)
    purged_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[str] = mapped_column(String(36))


class RoleBinding(Base):
    __tablename__ = "role_bindings"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A bearer credential: a CLI session (``kind="session"``) or an API token scoped to a
    project and role. Only the sha256 of its secret is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"))
    role: Mapped[str | None] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_signing_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UserKey(Base):
    """A user's Ed25519 signing key; the private half is encrypted under their password."""

    __tablename__ = "user_keys"
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    public_key: Mapped[str] = mapped_column(String(64))
    encrypted_private: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Made when the user completed a reset whose token an administrator saw (a second admin's
    # approval, no SMTP), or set a password an administrator chose: every signature by it says so.
    after_admin_reset: Mapped[bool] = mapped_column(Boolean, default=False)


class PasswordReset(Base):
    """A password reset: asked for by an instance admin, completed by the user with a one-time
    token (only its sha256 is stored). ``channel`` says how the token reaches the user: ``email``
    (the instance's SMTP; no administrator sees it) or ``approval`` (a second admin approves and
    hands it over). ``state``: requested (awaiting approval), issued, used, superseded."""

    __tablename__ = "password_resets"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    approved_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    token_hash: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Signature(Base):
    __tablename__ = "signatures"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    meaning: Mapped[str] = mapped_column(String(20))
    decision: Mapped[str] = mapped_column(String(10))
    payload: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HubItem(Base):
    """A named model, dataset or patchset in a project; its content lives in its versions."""

    __tablename__ = "hub_items"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HubVersion(Base):
    """An immutable version: its identity is the digest of its content."""

    __tablename__ = "hub_versions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("hub_items.id"))
    digest: Mapped[str] = mapped_column(String(71), index=True)
    semver: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(60))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class HubTag(Base):
    __tablename__ = "hub_tags"
    __table_args__ = {"sqlite_with_rowid": False}  # clustered by (version_id, key): migration 0005
    version_id: Mapped[str] = mapped_column(ForeignKey("hub_versions.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(300))


class HubAlias(Base):
    __tablename__ = "hub_aliases"
    item_id: Mapped[str] = mapped_column(ForeignKey("hub_items.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("hub_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunVersion(Base):
    """A run's reference to the exact registry version it used."""

    __tablename__ = "run_versions"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("hub_versions.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(300))


class ScaleJob(Base):
    __tablename__ = "scale_jobs"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    spec_digest: Mapped[str] = mapped_column(String(71))
    backend: Mapped[str] = mapped_column(String(20))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    workers: Mapped[int] = mapped_column(Integer)
    handles: Mapped[list[str]] = mapped_column(JSON)
    result_digest: Mapped[str | None] = mapped_column(String(71))


class ScaleShard(Base):
    __tablename__ = "scale_shards"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(10))  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer)
    result_digest: Mapped[str | None] = mapped_column(String(71))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
