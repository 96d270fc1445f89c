"""Reading the registry as documents: items, versions, tag searches, one version with its runs, and
the semantic diff of two workspace versions. Reads only (``Database.read``)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, and_, bindparam, func, select, type_coerce
from sqlalchemy.orm import Session, aliased

from ..access.context import RequestContext
from ..db.models import HubAlias, HubItem, HubTag, HubVersion, Project, Run, RunVersion
from ..db.session import core_connection
from ..errors import NotFoundError, UsageError
from ..projects.service import authorized_project
from .diff import workspace_diff
from .push import _parse_tags
from .resolve import _among, _chunks, _item, read_bytes, resolve_in
from .views import ModelChange, ModelDiff, VersionDetail, VersionDoc, VersionRun

if TYPE_CHECKING:
    from ..instance import Instance


@dataclass(frozen=True)
class VersionRow:
    """What a version's document shows, read as one row (see search)."""

    item_id: str
    name: str
    kind: str
    id: str
    semver: str | None
    digest: str
    size: int
    media_type: str
    description: str
    meta: dict[str, Any]
    created_at: datetime
    archived_at: datetime | None
    purged_at: datetime | None
    tags: dict[str, str] | None = None  # when the query read them along (a search does)

    @classmethod
    def of(cls, item: HubItem, v: HubVersion) -> VersionRow:
        return cls(item.id, item.name, item.kind, v.id, v.semver, v.digest, v.size, v.media_type, v.description,
                   v.meta, v.created_at, v.archived_at, v.purged_at)
_ROW_COLUMNS = (HubItem.id, HubItem.name, HubItem.kind, HubVersion.id, HubVersion.semver, HubVersion.digest,
                HubVersion.size, HubVersion.media_type, HubVersion.description, HubVersion.meta,
                HubVersion.created_at, HubVersion.archived_at, HubVersion.purged_at)


def list_items(instance: Instance, ctx: RequestContext, project_name: str, kind: str,
               tags: list[str] | None = None) -> list[VersionDoc]:
    """Items with their newest version; with ``tags`` (k=v, all must match), the versions so tagged."""
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "hub.read")
        if tags:
            return version_docs(session, search(session, project, kind, _parse_tags(tags)))
        newest = select(HubVersion.item_id, func.max(HubVersion.created_at).label("at")).group_by(
            HubVersion.item_id).subquery()
        rows = session.execute(
            select(HubItem, HubVersion).join(HubVersion, HubVersion.item_id == HubItem.id)
            .join(newest, and_(newest.c.item_id == HubItem.id, newest.c.at == HubVersion.created_at))
            .where(HubItem.project_id == project.id, HubItem.kind == kind).order_by(HubItem.name))
        return version_docs(session, [VersionRow.of(item, v) for item, v in rows])


def search(session: Session, project: Project, kind: str, tags: dict[str, str], limit: int = 1000
           ) -> list[VersionRow]:
    """Versions carrying every tag, by item name and creation (see ``_search_statement``)."""
    if not tags:
        raise UsageError("a search needs at least one tag")
    params: dict[str, Any] = {"project_id": project.id, "kind": kind, "limit": limit}
    for i, (key, value) in enumerate(tags.items()):
        params[f"k{i}"], params[f"v{i}"] = key, value
    postgres = session.get_bind().dialect.name == "postgresql"
    # Plain rows, not entities: loading 2 x 250 ORM objects took as long as the query.
    return [VersionRow(*row) for row in session.execute(_search_statement(len(tags), postgres), params)]


@functools.lru_cache(maxsize=32)
def _search_statement(n_tags: int, postgres: bool) -> Any:
    """The search for ``n_tags`` tags, built once per count (building it per call cost 2-4 ms,
    more than running it). The versions are found first, from the tags alone (a covering
    range scan of the (key, value, version_id) index for the first tag, joined to the other
    tags by version), and only those are joined to their items: the planners otherwise joined
    every candidate of the first tag to its item before checking the others (15 ms instead of
    6 ms at 10^5 versions, 3 tags). On PostgreSQL the tag joins need statistics (a fresh,
    unanalyzed table is planned as nested loops over the (key, value) index): an import ends
    with ``refresh_statistics``, and autovacuum keeps them afterwards."""
    first = aliased(HubTag)
    ids = select(first.version_id.label("version_id")).where(first.key == bindparam("k0"),
                                                             first.value == bindparam("v0"))
    for i in range(1, n_tags):
        tag = aliased(HubTag)
        ids = ids.join(tag, and_(tag.version_id == first.version_id, tag.key == bindparam(f"k{i}"),
                                 tag.value == bindparam(f"v{i}")))
    found = ids.cte("found").prefix_with("MATERIALIZED")
    # Each version's tags come along as one JSON object (a primary-key prefix scan per found
    # version): the documents a search returns then need no tags query of their own.
    own = aliased(HubTag)
    aggregate = func.jsonb_object_agg if postgres else func.json_group_object
    tags = select(aggregate(own.key, own.value)).where(own.version_id == HubVersion.id).scalar_subquery()
    return (select(*_ROW_COLUMNS, type_coerce(tags, JSON)).select_from(found)
            .join(HubVersion, HubVersion.id == found.c.version_id).join(HubItem, HubItem.id == HubVersion.item_id)
            .where(HubItem.project_id == bindparam("project_id"), HubItem.kind == bindparam("kind"))
            .order_by(HubItem.name, HubVersion.created_at).limit(bindparam("limit")))


def refresh_statistics(instance: Instance) -> None:
    """Bring the planner's statistics of the registry tables up to date after a bulk change (as
    pg_restore's documentation asks after a restore). PostgreSQL only: SQLite plans these
    queries well without statistics. A database role that does not own the tables gets a
    warning from PostgreSQL and the tables are skipped (autovacuum analyzes them later)."""
    if instance.db.dialect != "postgresql":
        return
    with instance.db.transaction() as session:
        core_connection(session).exec_driver_sql("ANALYZE hub_items, hub_versions, hub_tags")


def versions(instance: Instance, ctx: RequestContext, project_name: str, kind: str, name: str) -> list[VersionDoc]:
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "hub.read")
        item = _item(session, project, kind, name)
        if item is None:
            raise NotFoundError(f"no {kind} named {name!r} in project {project.name}")
        rows = session.scalars(select(HubVersion).where(HubVersion.item_id == item.id)
                               .order_by(HubVersion.created_at, HubVersion.id))
        return version_docs(session, [VersionRow.of(item, v) for v in rows])


def show(instance: Instance, ctx: RequestContext, project_name: str, kind: str, ref: str,
         with_runs: bool = False) -> VersionDetail:
    """The version ``ref`` names; with ``with_runs``, the runs that used it."""
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "hub.read")
        r = resolve_in(session, project, kind, ref)
        doc = version_doc(session, r.item, r.version)
        runs = None
        if with_runs:
            rows = session.execute(select(Run, RunVersion.ref).join(RunVersion, RunVersion.run_id == Run.id)
                                   .where(RunVersion.version_id == r.version.id).order_by(Run.created_at))
            runs = [VersionRun(run_id=run.id, task=run.task, status=run.status, ref=used, created_at=run.created_at)
                    for run, used in rows]
        return VersionDetail(**dict(doc), runs=runs)


def version_doc(session: Session, item: HubItem, v: HubVersion) -> VersionDoc:
    return version_docs(session, [VersionRow.of(item, v)])[0]


def version_docs(session: Session, rows: list[VersionRow]) -> list[VersionDoc]:
    """The documents of many versions, with their tags (unless the rows carry them, as a
    search's do) and aliases read in one query each for all of them (one per version cost two
    round trips each: 75 ms for a search's 250 versions)."""
    tags: dict[str, dict[str, str]] = {r.id: r.tags for r in rows if r.tags is not None}
    aliases: dict[str, list[str]] = {}
    postgres = session.get_bind().dialect.name == "postgresql"
    tags_of, aliases_of = _doc_statements(postgres)
    for chunk in _chunks(list({r.id for r in rows if r.tags is None})):
        for version_id, key, value in session.execute(tags_of, {"among": chunk}):
            tags.setdefault(version_id, {})[key] = value
    for chunk in _chunks(list({r.item_id for r in rows})):  # by item: the aliases' key starts with it
        for version_id, alias in session.execute(aliases_of, {"among": chunk}):
            aliases.setdefault(version_id, []).append(alias)
    return [VersionDoc(name=r.name, kind=r.kind, version_id=r.id, semver=r.semver, digest=r.digest, size=r.size,
                       media_type=r.media_type, description=r.description,
                       tags=dict(sorted(tags.get(r.id, {}).items())), aliases=sorted(aliases.get(r.id, [])),
                       meta=r.meta, created_at=r.created_at, archived=r.archived_at is not None,
                       purged=r.purged_at is not None) for r in rows]


@functools.lru_cache(maxsize=2)
def _doc_statements(postgres: bool) -> tuple[Any, Any]:
    """The tags of given versions and the aliases of given items, built once."""
    return (select(HubTag.version_id, HubTag.key, HubTag.value).where(_among(HubTag.version_id, postgres)),
            select(HubAlias.version_id, HubAlias.alias).where(_among(HubAlias.item_id, postgres)))


def diff_models(instance: Instance, ctx: RequestContext, project_name: str, ref_a: str, ref_b: str) -> ModelDiff:
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "hub.read")
        a, b = resolve_in(session, project, "model", ref_a), resolve_in(session, project, "model", ref_b)
        doc_a, doc_b = json.loads(read_bytes(instance, a.version)), json.loads(read_bytes(instance, b.version))
        return ModelDiff(a=a.label, b=b.label, identical=a.version.digest == b.version.digest,
                         changes=[ModelChange(**c) for c in workspace_diff(doc_a, doc_b)])
