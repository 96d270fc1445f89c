"""Listing runs: the filters of a runs list (``RunFilter``: status, task, dates, author, fit
quality, registry version, approval state, free text, duration, order) as SQL, the keyset page
query, and the registry versions each listed run used. ``reads.list_runs_page`` authorizes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar, Protocol, cast

from sqlalchemy import BigInteger, Boolean, ColumnElement, bindparam, literal, or_, select, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ..config import ApprovalPolicy
from ..db.models import HubItem, HubVersion, Project, Run, RunVersion, User
from ..errors import FieldError, UsageError
from ..hub.refs import DIGEST_PREFIX, NAME, SEMVER
from ..signing.approval import approval_condition
from .records import STATUSES

SORTS = ("created", "oldest")  # newest first (the default), oldest first
_VERSION_FORMS = "NAME, NAME@SEMVER, NAME@sha256:PREFIX or sha256:PREFIX (at least 12 hex digits)"


def time_bound(value: str, *, end: bool = False) -> datetime:
    """A date (YYYY-MM-DD) or ISO 8601 time as a filter bound, UTC unless it says otherwise. With
    ``end`` (an exclusive ``until``) a date takes in its whole day: the bound is the next midnight.
    ValueError when it is neither; each adapter words that in its own terms."""
    parsed = datetime.fromisoformat(value)
    if end and len(value) == 10:
        parsed = datetime.combine(parsed.date() + timedelta(days=1), time.min)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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

    @property
    def bounded(self) -> bool:
        """True when the listing walks one of the runs indexes (project with status, task or
        author, then created_at and id) and tests nothing else row by row but the creation time:
        a page then costs about the same however large the project. Free text, a duration bound,
        a registry version, an approval state and fit quality test runs one by one and may read a
        whole project when few match (docs/dashboard.md: 25-50 ms at 10^5 runs). The API answers
        a bounded listing on its event loop, any other in a request thread (server/answers.py)."""
        return all(value is None for value in (self.text, self.min_duration_s, self.max_duration_s, self.version,
                                               self.approval, self.fit_ok))


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


def _query_runs(session: Session, project: Project, f: RunFilter, limit: int, *, policy: ApprovalPolicy,
                after: tuple[datetime, str] | None = None) -> list[ListedRun]:
    """A project's runs in ``f.sort`` order, filtered (``reads`` authorizes); ``after`` is the
    (created_at, id) of the last run of the previous page (keyset: no OFFSET scan). Each order
    walks the same (project, …, created_at, id) indexes, one way or the other."""
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
