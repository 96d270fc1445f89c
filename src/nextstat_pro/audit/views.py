"""What the audit operations return: event rows, proofs, checkpoints, the verification report.

Built by ``audit.service`` from the log's rows; the CLI renders them (a table, or ``--json``: the
model's own JSON, the HTTP body to come). An event row is the published event exactly (the
hashed body plus its hash, docs/schemas/audit-event.v1.json), so a proof built from it verifies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..viewbase import VIEW_CONFIG

_CONFIG = VIEW_CONFIG


class EventActor(BaseModel):
    """Who acted: a user (by id and printed name) or a service."""

    model_config = _CONFIG
    kind: Literal["user", "service"]
    id: str
    name: str = Field(description="Printed name of the user, or the service's name.")


class EventTarget(BaseModel):
    """The record an event is about."""

    model_config = _CONFIG
    type: str
    id: str


class EventContext(BaseModel):
    """Through which interface the actor acted."""

    model_config = _CONFIG
    interface: Literal["cli", "api", "worker", "system"]
    client: str | None


class AuditEventRow(BaseModel):
    """One event of the audit trail, as hashed (``hash`` is the sha256 of the RFC 8785 canonical
    JSON of the other fields; ``prev_hash`` links to the previous event)."""

    # ``schema`` is a field of the event; the Python attribute is ``schema_`` (BaseModel has a
    # ``schema`` method), the JSON keeps the event's own key.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)
    schema_: str = Field(alias="schema", description="The event schema's id.")
    seq: int = Field(description="Gapless position in the log, from 1.")
    event_id: str = Field(description="UUIDv7.")
    ts: str = Field(description="Server UTC time, RFC 3339 with microseconds.")
    actor: EventActor
    action: str
    target: EventTarget
    project: str | None
    before: Any = Field(description="Values before the change (null for a creation).")
    after: Any = Field(description="Values after the change (null for a deletion).")
    reason: str | None = Field(description="Required for changes and deletions.")
    context: EventContext
    prev_hash: str
    hash: str


class InclusionProof(BaseModel):
    """An event and the Merkle path from it to a signed checkpoint (verify offline with
    ``audit verify-proof``)."""

    model_config = _CONFIG
    type: Literal["nextstat-pro/audit-inclusion-proof/v1"]
    log_key: str = Field(description="The log's verifier key (note format).")
    checkpoint: str = Field(description="The signed checkpoint note the proof leads to.")
    leaf_index: int = Field(description="The event's leaf in the tree (seq - 1).")
    event: AuditEventRow
    proof: list[str] = Field(description="Sibling hashes, base64, leaf to root.")


class ConsistencyProof(BaseModel):
    """The proof that the log at checkpoint 2 extends the log at checkpoint 1 (sizes and roots
    only, no event content)."""

    model_config = _CONFIG
    type: Literal["nextstat-pro/audit-consistency-proof/v1"]
    log_key: str = Field(description="The log's verifier key (note format).")
    checkpoint1: str
    checkpoint2: str
    proof: list[str] = Field(description="Hashes, base64 (RFC 9162 consistency proof).")


class CheckpointRow(BaseModel):
    """A signed checkpoint of the log: its tree size and root."""

    model_config = _CONFIG
    size: int = Field(description="Number of events the checkpoint covers.")
    root: str = Field(description="Merkle root, hex.")
    created_at: datetime = Field(description="When it was signed (UTC).")
    note: str = Field(description="The signed note (C2SP checkpoint).")


class StateDifference(BaseModel):
    """The first table row that differs from the state the sealed events describe."""

    model_config = _CONFIG
    table: str
    key: str = Field(description="The row's primary key, as column=value.")
    column: str = Field(description="The differing column, or (row) for a row that should not exist or is missing.")
    expected: str = Field(description="What the sealed events say.")
    found: str = Field(description="What the table holds.")


class AuditVerifyReport(BaseModel):
    """``audit verify``: what was re-derived from the rows and the witness, and the first problem."""

    model_config = _CONFIG
    ok: bool
    events: int
    tree_size: int
    checkpoints: int = Field(description="Stored checkpoints checked.")
    witnessed: int = Field(description="Witnessed checkpoints checked.")
    latest_witnessed: int = Field(description="Tree size of the newest witnessed checkpoint.")
    first_bad_seq: int | None
    problem: str | None
    warnings: list[str]
    unwitnessed: int = Field(description="Events after the newest witnessed checkpoint.")
    oldest_unwitnessed_s: float | None = Field(
        default=None, description="Seconds the oldest unwitnessed event has waited (bound: max_unwitnessed_s).")
    file_permissions: list[str] = Field(description="Instance files more open than configured.")
    state_checked: bool = Field(default=False, description="Whether the state tables were re-derived from the "
                                                           "log (after the log checks passed; not with --no-state).")
    state_rows: dict[str, int] = Field(default_factory=dict, description="Rows checked per table.")
    state_difference: StateDifference | None = Field(
        default=None, description="The first row that differs from the log (then ok is false).")


class AuditExportSummary(BaseModel):
    """``audit export``: what the bundle holds (its ``bundle.json``); verify it offline with
    ``audit verify --bundle``."""

    model_config = _CONFIG
    type: Literal["nextstat-pro/audit-bundle/v1"]
    format: Literal["csv", "json", "jsonl"] = Field(description="The extra rendering beside events.jsonl.")
    events: int
    tree_size: int = Field(description="The size of the checkpoint every proof leads to.")
    first_seq: int | None
    last_seq: int | None
    since: str | None
    until: str | None


VIEWS: tuple[type[BaseModel], ...] = (AuditEventRow, InclusionProof, ConsistencyProof, CheckpointRow,
                                      AuditVerifyReport, AuditExportSummary)
