"""Database functions for runs: they write in the caller's transaction and never commit it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, cast

from sqlalchemy import BigInteger, Boolean, ColumnElement, bindparam, insert, literal, or_, select, tuple_, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ..access.context import RequestContext
from ..access.rbac import allowed, authorize
from ..audit.events import append_event
from ..config import ApprovalPolicy
from ..db.models import HubItem, HubVersion, Project, Run, RunArtifact, RunInput, RunVersion, User
from ..db.session import core_connection
from ..db.types import rfc3339, utcnow
from ..errors import ConflictError, FieldError, NotFoundError, UsageError
from ..hub.refs import DIGEST_PREFIX, NAME, SEMVER
from ..ids import new_id
from ..signing.approval import approval_condition
from .manifest import FileEntry

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIONS = {"running": "run.started"}
RESUMED = "run.resumed"
ABANDONED = "abandoned"  # the reason of a run failed because its lease expired
_TRANSITIONS = {
    "queued": {"running", "cancelled", "failed"},
    "running": {"succeeded", "failed", "cancelled"},
    "failed": {"running"},  # only a job resume re-opens a failed run (with a reason)
}


def _status_event(session: Session, ctx: RequestContext, run_id: str, project: str, before: str, status: str, *,
                  error: str | None = None, reason: str | None = None, extra: dict[str, Any] | None = None) -> None:
    """The audit event of one lifecycle step (every path that moves a run writes it here)."""
    after: dict[str, Any] = {"status": status, **(extra or {})}
    if error is not None:
        after["error"] = error
    append_event(session, ctx, action=RESUMED if before == "failed" else ACTIONS.get(status, f"run.{status}"),
                 target=("run", run_id), project=project, before={"status": before}, after=after, reason=reason)


@dataclass(frozen=True)
class NewRun:
    run_id: str
    created_at: datetime
    started_at: datetime | None


def create_run(
    session: Session,
    ctx: RequestContext,
    project: Project,
    task: str,
    params: dict[str, Any],
    seed: int | None,
    inputs: list[FileEntry],
    patch: str | None = None,
    *,
    start: bool = False,
    lease_until: datetime | None = None,
) -> NewRun:
    """Record a queued run with its inputs (and, with ``start``, move it to running at once:
    both events, one row). Written as Core statements, not an ORM unit of work: a run is
    recorded per fit, and the flush machinery cost more than the rows
    (benchmarks/bench_run_overhead.py)."""
    run_id, created_at = new_id(), utcnow()
    started_at = created_at if start else None
    conn = core_connection(session)
    conn.execute(insert(Run), {
        "id": run_id, "project_id": project.id, "task": task, "status": "running" if start else "queued",
        "params": params, "seed": seed, "patch": patch, "created_by": ctx.actor.id, "created_at": created_at,
        "started_at": started_at, "lease_until": lease_until,
    })
    if inputs:
        conn.execute(insert(RunInput), [
            {"run_id": run_id, "role": e.role or "", "name": e.name, "digest": e.digest, "size": e.size}
            for e in inputs
        ])
    append_event(
        session,
        ctx,
        action="run.created",
        target=("run", run_id),
        project=project.name,
        after={
            "status": "queued",
            "task": task,
            "params": params,
            "seed": seed,
            "patch": patch,
            "inputs": [e.as_json() for e in inputs],
        },
    )
    if start:
        _status_event(session, ctx, run_id, project.name, "queued", "running")
    return NewRun(run_id, created_at, started_at)


def finish(
    session: Session,
    ctx: RequestContext,
    run_id: str,
    project: str,
    status: str,
    *,
    at: datetime,
    error: str | None,
    outputs: list[FileEntry],
    digests: dict[str, str],
    fit_ok: bool | None,
    reason: str | None = None,
) -> None:
    """End a running run: its outputs, ``digests`` (manifest_digest, envelope_digest), fit
    quality and final status with their events. The status check is the UPDATE's own
    condition, so two finishers (or a finish racing a cancel) cannot both pass it on PostgreSQL
    either; Core statements for the reason given in create_run."""
    if status not in _TRANSITIONS["running"]:
        raise ConflictError(f"a run cannot finish as {status}")
    conn = core_connection(session)
    values: dict[str, Any] = {"status": status, "finished_at": at, "fit_ok": fit_ok, **digests}
    if error is not None:
        values["error"] = error
    done = conn.execute(update(Run).where(Run.id == run_id, Run.status == "running").values(values))
    if done.rowcount != 1:
        current = conn.execute(select(Run.status).where(Run.id == run_id)).scalar()
        if current is None:
            raise NotFoundError(f"no run {run_id!r}")
        raise ConflictError(f"run {run_id} is {current}; it cannot become {status}")
    if outputs:
        conn.execute(insert(RunArtifact), [
            {"run_id": run_id, "name": e.name, "digest": e.digest, "size": e.size,
             "media_type": e.media_type or "application/octet-stream"} for e in outputs
        ])
    for entry in outputs:
        append_event(session, ctx, action="artifact.stored", target=("artifact", entry.digest), project=project,
                     after={"run_id": run_id, **entry.as_json()})
    _status_event(session, ctx, run_id, project, "running", status, error=error, reason=reason,
                  extra={**digests, "fit_quality_ok": fit_ok})


def abandon_expired(session: Session, ctx: RequestContext, now: datetime) -> list[str]:
    """Mark running runs whose lease expired before ``now`` failed, reason ``abandoned``, each
    with its event (runs/lease.py); the UPDATE's own condition keeps a late finisher or a second
    recoverer from both passing. Returns the runs' ids."""
    conn = core_connection(session)
    expired = conn.execute(select(Run.id, Run.lease_until, Project.name).join(Project, Project.id == Run.project_id)
                           .where(Run.status == "running", Run.lease_until < now)).all()
    recovered = []
    for run_id, until, project in expired:
        assert until is not None  # selected by lease_until < now
        error = f"abandoned: its process stopped renewing the run's lease, which expired at {rfc3339(until)}"
        done = conn.execute(update(Run).where(Run.id == run_id, Run.status == "running", Run.lease_until < now)
                            .values(status="failed", finished_at=now, error=error))
        if done.rowcount == 1:
            _status_event(session, ctx, run_id, project, "running", "failed", error=error, reason=ABANDONED,
                          extra={"lease_until": rfc3339(until)})
            recovered.append(run_id)
    return recovered


def add_versions(session: Session, run_id: str, uses: list[tuple[str, str, str]]) -> None:
    """Link a run to registry versions, given as (version_id, role, ref): the ones it used,
    or for a job the ones it produced."""
    if uses:
        core_connection(session).execute(insert(RunVersion), [
            {"run_id": run_id, "version_id": version_id, "role": role, "ref": ref} for version_id, role, ref in uses
        ])


def transition(
    session: Session,
    ctx: RequestContext,
    run: Run,
    project: str,
    status: str,
    *,
    at: datetime | None = None,
    error: str | None = None,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Move a run to ``status`` with its audit event; refuse transitions the lifecycle forbids."""
    if status not in _TRANSITIONS.get(run.status, set()):
        raise ConflictError(f"run {run.id} is {run.status}; it cannot become {status}")
    before = run.status
    at = at or utcnow()
    run.status = status
    if status == "running":
        run.started_at = at
    else:
        run.finished_at = at
    if error is not None:
        run.error = error
    _status_event(session, ctx, run.id, project, before, status, error=error, reason=reason, extra=extra)


def get_run(session: Session, run_ref: str) -> Run:
    """A run by id, or by a unique id prefix of at least 8 characters."""
    run = session.get(Run, run_ref)
    if run is not None:
        return run
    if len(run_ref) < 8:
        raise UsageError(f"run reference {run_ref!r} is too short (give at least 8 characters of the id)")
    matches = list(session.scalars(select(Run).where(Run.id.startswith(run_ref, autoescape=True)).limit(2)))
    if not matches:
        raise NotFoundError(f"no run {run_ref!r}")
    if len(matches) > 1:
        raise UsageError(f"run reference {run_ref!r} is ambiguous; give more characters")
    return matches[0]


def read_run(session: Session, ctx: RequestContext, run_ref: str, operation: str = "run.read") -> Run:
    """A run the caller may read (or export, sign, cancel: ``operation``). To a caller who may not
    read the run's project the answer is exactly the one for a missing run: the reference tells
    nothing of what exists where (as ``audit prove`` for events)."""
    run = get_run(session, run_ref)
    project = session.get(Project, run.project_id)
    if not allowed(session, ctx, "run.read", project):
        hidden = NotFoundError(f"no run {run_ref!r}")
        # The refusal is still audited (and alerted on) as the denial it is.
        hidden.security_event = {"ctx": ctx, "action": "access.denied", "target": ("operation", operation),
                                 "project": project.name if project is not None else None,
                                 "after": {"operation": operation, "needs": "viewer", "had": None, "alert": True}}
        raise hidden
    authorize(session, ctx, operation, project)
    return run


SORTS = ("created", "oldest")  # newest first (the default), oldest first
_VERSION_FORMS = "NAME, NAME@SEMVER, NAME@sha256:PREFIX or sha256:PREFIX (at least 12 hex digits)"


@dataclass(frozen=True)
class RunFilter:
    """What a runs listing keeps, and its order: each filter None keeps every run. ``until`` is
    exclusive; ``created_by`` is a user id (the listing resolves a username); ``version`` a
    registry reference the run used (``_version_match``); ``approval`` an approval state;
    ``text`` free text (``_text_condition``); ``min_duration_s``/``max_duration_s`` inclusive
    bounds in seconds on finished_at - started_at (a run without both never matches one;
    ``_duration_conditions``); ``sort`` one of ``SORTS``."""

    status: str | None = None
    task: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    created_by: str | None = None
    fit_ok: bool | None = None
    version: str | None = None
    approval: str | None = None
    text: str | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    sort: str = "created"


class _DurationBound(FunctionElement[bool]):
    """``finished - started`` of two UTCDateTime columns, in whole microseconds, compared with a
    bound (``OP``): (started, finished, bound_us), compiled per dialect below; NULL, so false, when
    either time is NULL. Exact integers on both databases, so a bound at a run's very duration
    holds on either (a float of seconds, as julianday gives, misses it by up to milliseconds)."""

    type = Boolean()
    inherit_cache = True
    # A condition in itself: SQLite gets no "(…) = 1" around it, which would keep it from
    # splitting the AND below into WHERE terms and skipping the exact test after the coarse one.
    _is_implicitly_boolean = True
    OP: ClassVar[str]
    SLACK: ClassVar[str]  # the side a coarse prefilter's margin goes


class duration_at_least(_DurationBound):  # noqa: N801 (SQL functions are lower case)
    name = "duration_at_least"
    inherit_cache = True
    OP, SLACK = ">=", "-"


class duration_at_most(_DurationBound):  # noqa: N801
    name = "duration_at_most"
    inherit_cache = True
    OP, SLACK = "<=", "+"


@compiles(_DurationBound)
def _bound_postgresql(element: _DurationBound, compiler: SQLCompiler, **kw: Any) -> str:
    """PostgreSQL (and the SQL standard): an interval's epoch is an exact numeric (PostgreSQL 14+)."""
    started, finished, bound = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({finished} - {started})) * 1000000 {element.OP} {bound})"


@compiles(_DurationBound, "sqlite")
def _bound_sqlite(element: _DurationBound, compiler: SQLCompiler, **kw: Any) -> str:
    """SQLite keeps a DateTime as text, ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy writes all six
    digits). Exact: whole seconds by ``strftime('%s')`` of the first 19 characters (given the
    fraction it rounds to the millisecond, so ``.999999`` became the next second), microseconds
    from characters 21-26 (a value without them counts 0); ``unixepoch(…, 'subsec')`` needs 3.42
    and stops at milliseconds. Parsing dates is most of the cost, so julianday's difference
    (off by at most ~2 ms) first discards with a 10 ms margin the runs far from the bound: a
    first page for a bound no run meets, 10^5 runs, took 48 ms against 145 ms with the exact
    test alone (docs/dashboard.md)."""
    started, finished, bound = (compiler.process(c, **kw) for c in element.clauses)

    def seconds(ts: str) -> str:
        return f"CAST(strftime('%s', substr({ts}, 1, 19)) AS INTEGER)"

    def micros(ts: str) -> str:
        return f"CAST(substr({ts}, 21, 6) AS INTEGER)"

    coarse = (f"(julianday({finished}) - julianday({started})) * 86400000000.0 "
              f"{element.OP} {bound} {element.SLACK} 10000")
    exact = f"({seconds(finished)} - {seconds(started)}) * 1000000 + {micros(finished)} - {micros(started)}"
    return f"({coarse} AND {exact} {element.OP} {bound})"


# A bound in microseconds must fit a BIGINT; a century is past any run.
MAX_DURATION_S = 100 * 366 * 86400


def _micros(value: float, which: str, field: str) -> int:
    """A duration bound in seconds as whole microseconds (rounded: the columns keep no finer)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value <= MAX_DURATION_S:
        shown = f"{value:g}" if isinstance(value, int | float) else repr(value)
        raise FieldError(f"{which} duration {shown} is not a number of seconds from 0 to {MAX_DURATION_S}", field)
    return round(value * 1_000_000)


def _duration_conditions(f: RunFilter) -> list[ColumnElement[bool]]:
    """Inclusive bounds on a run's duration (one construct on both databases: ``_DurationBound``).
    Not indexed: the listing walks its (project, created_at, id) index newest first and tests
    each run, which stops early for a bound most runs meet (docs/dashboard.md has the figures)."""
    low = None if f.min_duration_s is None else _micros(f.min_duration_s, "minimum", "min_duration_s")
    high = None if f.max_duration_s is None else _micros(f.max_duration_s, "maximum", "max_duration_s")
    if low is not None and high is not None and low > high:
        raise FieldError(f"minimum duration {f.min_duration_s:g} s is above the maximum {f.max_duration_s:g} s",
                         "min_duration_s", "max_duration_s")
    conds: list[ColumnElement[bool]] = []
    for bound, condition in ((low, duration_at_least), (high, duration_at_most)):
        if bound is not None:
            conds.append(condition(Run.started_at, Run.finished_at, literal(bound, BigInteger())))
    return conds


def _version_match(ref: str) -> list[ColumnElement[bool]]:
    """Conditions on hub_versions and hub_items that select the registry versions ``ref`` names:
    ``NAME`` (every version of the item), ``NAME@SEMVER``, ``NAME@sha256:PREFIX`` (the label the
    list shows) or ``sha256:PREFIX``. Aliases and ``latest`` move, so a listing does not take them."""
    bad = UsageError(f"version {ref!r} is not a registry reference: give {_VERSION_FORMS}")
    conds: list[ColumnElement[bool]] = []
    bare = ref.startswith("sha256:")
    name, at, selector = ("", "", ref) if bare else ref.partition("@")
    if not bare:
        if not NAME.match(name) or (at and not selector):
            raise bad
        conds.append(HubItem.name == name)
    if digest := DIGEST_PREFIX.match(selector):
        conds.append(HubVersion.digest.startswith(f"sha256:{digest.group(1)}"))
    elif selector and SEMVER.match(selector) and not bare:
        conds.append(HubVersion.semver == selector)
    elif selector:
        raise bad
    return conds


_MAX_LISTED_VERSIONS = 500


def _version_condition(session: Session, project: Project, ref: str) -> ColumnElement[bool] | None:
    """Runs linked to a version ``ref`` names in the project (any role), or None when it names
    none. The versions are looked up first and the runs filtered by their ids: with the ids as
    values the planner sees how many runs use them (run_versions' statistics) and starts from
    ix_run_versions_version for a rarely used version instead of walking every run newest first
    (a first page at 10^5 runs, a version 20 runs used: PostgreSQL 2.8 ms against 78 ms as one
    EXISTS over the three tables, SQLite 1.6 ms against 34 ms; docs/dashboard.md). An item with
    very many versions is matched by a subquery instead."""
    versions = (select(HubVersion.id).join(HubItem, HubItem.id == HubVersion.item_id)
                .where(HubItem.project_id == project.id, *_version_match(ref)))
    ids = list(session.scalars(versions.limit(_MAX_LISTED_VERSIONS + 1)))
    if not ids:
        return None
    among = RunVersion.version_id.in_(versions) if len(ids) > _MAX_LISTED_VERSIONS else \
        RunVersion.version_id.in_(ids)
    # Uncorrelated: SQLite reads these runs once (a correlated EXISTS it would run per run).
    return Run.id.in_(select(RunVersion.run_id).where(among))


def _text_condition(text: str) -> ColumnElement[bool]:
    """Free text, case-insensitive: a run id prefix, or part of the task, the error message, the
    author's username or the name of a registry item the run used. LIKE's ``%`` and ``_`` in the
    text match themselves (autoescape)."""
    needle = text.strip().lower()
    if not needle:
        raise UsageError("free text is empty: give some characters to look for, or leave the filter out")
    # Uncorrelated subqueries, read once: SQLite would run a correlated EXISTS for every run
    # (PostgreSQL hashes either form). SQLite, 10^5 runs, no match: 70 ms against 147 ms.
    by_author = Run.created_by.in_(select(User.id).where(User.username.icontains(needle, autoescape=True)))
    by_item = Run.id.in_(select(RunVersion.run_id).join(HubVersion, HubVersion.id == RunVersion.version_id)
                         .join(HubItem, HubItem.id == HubVersion.item_id)
                         .where(HubItem.name.icontains(needle, autoescape=True)))
    return or_(Run.id.startswith(needle, autoescape=True), Run.task.icontains(needle, autoescape=True),
               Run.error.icontains(needle, autoescape=True), by_author, by_item)


def _conditions(f: RunFilter, policy: ApprovalPolicy) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a filter (beyond the project) but its version (``_query_runs``
    looks that up first); ``policy`` is the project's approval policy, for an approval state."""
    if f.status is not None and f.status not in STATUSES:
        raise UsageError(f"unknown status {f.status!r} (statuses: {', '.join(STATUSES)})")
    if f.sort not in SORTS:
        raise UsageError(f"unknown sort {f.sort!r} (sorts: {', '.join(SORTS)})")
    conds: list[ColumnElement[bool]] = []
    for column, value in ((Run.status, f.status), (Run.task, f.task), (Run.created_by, f.created_by),
                          (Run.fit_ok, f.fit_ok)):
        if value is not None:
            conds.append(column == value)
    if f.since is not None:
        conds.append(Run.created_at >= f.since)
    if f.until is not None:
        conds.append(Run.created_at < f.until)
    if f.approval is not None:
        conds.append(approval_condition(f.approval, policy, Run.id))
    if f.text is not None:
        conds.append(_text_condition(f.text))
    return conds + _duration_conditions(f)


def _query_runs(session: Session, project: Project, status: str | None, task: str | None, since: datetime | None,
                limit: int, *, policy: ApprovalPolicy, f: RunFilter | None = None,
                after: tuple[datetime, str] | None = None) -> list[ListedRun]:
    """A project's runs in ``f.sort`` order, filtered (``reads.list_run_rows`` authorizes);
    ``after`` is the (created_at, id) of the last run of the previous page (keyset: no OFFSET
    scan). Each order walks the same (project, …, created_at, id) indexes, one way or the other."""
    f = f or RunFilter(status=status, task=task, since=since)
    oldest = f.sort == "oldest"
    conds = _conditions(f, policy)
    if f.version is not None:
        used = _version_condition(session, project, f.version)
        if used is None:
            return []  # no such version: no run used it
        conds.append(used)
    query = select(*LISTED).where(Run.project_id == project.id, *conds).limit(limit)
    query = query.order_by(Run.created_at, Run.id) if oldest else query.order_by(Run.created_at.desc(),
                                                                                  Run.id.desc())
    if after is not None:
        # A row-value comparison: one index range on (…, created_at, id); the OR form is not.
        key, at = tuple_(Run.created_at, Run.id), tuple_(*after)
        query = query.where(key > at if oldest else key < at)
    # Plain rows of the listed columns, not ORM objects: a page is read per request, and
    # building 50 tracked Run instances cost more than the query (benchmarks/bench_server.py).
    return cast("list[ListedRun]", list(session.connection().execute(query)))


class ListedRun(Protocol):
    """The columns of a run a listing reads (``LISTED``): a row of them, or a Run."""

    @property
    def id(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def fit_ok(self) -> bool | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def patch(self) -> str | None: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def error(self) -> str | None: ...
    @property
    def manifest_digest(self) -> str | None: ...


LISTED = (Run.id, Run.task, Run.status, Run.fit_ok, Run.created_at, Run.started_at, Run.finished_at, Run.seed,
          Run.patch, Run.params, Run.error, Run.manifest_digest)


# Built once (a page's listing runs it per request); Core rows, as _query_runs.
_VERSIONS_OF = (
    select(RunVersion.run_id, HubItem.name, HubVersion.semver, HubVersion.digest)
    .join(HubVersion, HubVersion.id == RunVersion.version_id)
    .join(HubItem, HubItem.id == HubVersion.item_id)
    .where(RunVersion.run_id.in_(bindparam("run_ids", expanding=True)))
)


def versions_of(session: Session, run_ids: list[str]) -> dict[str, list[str]]:
    """Registry versions each run used, as ``name@semver`` (or ``name@sha256:…``) labels."""
    if not run_ids:
        return {}
    rows = session.connection().execute(_VERSIONS_OF, {"run_ids": run_ids})
    out: dict[str, list[str]] = {}
    for run_id, name, semver, digest in rows:
        out.setdefault(run_id, []).append(f"{name}@{semver or digest[:19]}")
    return out
