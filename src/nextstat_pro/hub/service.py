"""The registry: push, resolve, list, alias, tag, describe. Every change is audited.

Identity is content: pushing identical content returns the existing version. Semver labels
are unique and immutable per item; the database refuses any UPDATE of a version's content
columns. A reference resolves to exactly one version or fails with the reason.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import JSON, BindParameter, String, and_, any_, bindparam, func, insert, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from ..audit.events import append_event, batched_appends
from ..db.models import HubAlias, HubItem, HubTag, HubVersion, Project, Run, RunVersion
from ..db.session import core_connection
from ..db.types import utcnow
from ..engine import InputFile
from ..errors import ConflictError, NotFoundError, NSPError, PartError, UsageError
from ..identity.actors import RequestContext
from ..identity.rbac import authorize
from ..ids import new_id
from ..instance import Instance
from ..projects.service import authorized_project, get_project
from .content import Content, dataset_content, model_content, patchset_content
from .diff import workspace_diff
from .refs import ALIAS, NAME, SEMVER, parse_ref

Kind = Literal["model", "dataset", "patchset"]
KINDS = ("model", "dataset", "patchset")


@dataclass(frozen=True)
class Resolved:
    item: HubItem
    version: HubVersion
    patch: str | None

    @property
    def label(self) -> str:
        return f"{self.item.name}@{self.version.semver or self.version.digest[:19]}"


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


_VERSION_COLUMNS = ("id", "item_id", "digest", "semver", "size", "media_type", "meta", "description", "created_at",
                    "created_by")
_ROW_COLUMNS = (HubItem.id, HubItem.name, HubItem.kind, HubVersion.id, HubVersion.semver, HubVersion.digest,
                HubVersion.size, HubVersion.media_type, HubVersion.description, HubVersion.meta,
                HubVersion.created_at, HubVersion.archived_at, HubVersion.purged_at)


def _resolve_statements() -> dict[str, Any]:
    """One prepared statement per selector, built once: building and caching a statement per
    call cost as much as running it (0.6 ms instead of 0.3 ms per resolve on PostgreSQL)."""
    base = (select(HubItem, HubVersion).join(HubVersion, HubVersion.item_id == HubItem.id)
            .where(HubItem.project_id == bindparam("project_id"), HubItem.kind == bindparam("kind"),
                   HubItem.name == bindparam("name")))
    value: BindParameter[str] = bindparam("value")
    return {
        "semver": base.where(HubVersion.semver == value).limit(2),
        # Prefixes are hex digits only (refs.DIGEST_PREFIX): nothing in them for LIKE to escape.
        "digest": base.where(HubVersion.digest.startswith(value)).limit(2),
        "alias": base.join(HubAlias, and_(HubAlias.version_id == HubVersion.id, HubAlias.item_id == HubItem.id,
                                          HubAlias.alias == value)).limit(2),
        "latest": base.order_by(HubVersion.created_at.desc(), HubVersion.id.desc()).limit(2),
    }


_RESOLVE = _resolve_statements()
def _item(session: Session, project: Project, kind: str, name: str) -> HubItem | None:
    return session.scalar(select(HubItem).where(HubItem.project_id == project.id, HubItem.kind == kind,
                                                HubItem.name == name))


def _parse_tags(tags: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"malformed tag {tag!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class PushRequest:
    """One version to push: what ``hub KIND push`` takes, as a value (``push_many`` takes many).
    ``content``: the version's content as a service has already built it (a job's canonical
    points); otherwise it is checked from ``inp``."""

    name: str
    inp: InputFile
    semver: str | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    base_ref: str | None = None
    content: Content | None = None


class BatchEntryError(PartError):
    """An entry of a batch was refused (the batch stored nothing)."""

    def __init__(self, index: int, error: NSPError) -> None:
        super().__init__(f"entry {index + 1}: {error.message}", error)
        self.index = index


def push(instance: Instance, ctx: RequestContext, project_name: str, kind: str, name: str, inp: InputFile,
         semver: str | None = None, description: str = "", tags: list[str] | None = None,
         base_ref: str | None = None, content: Content | None = None) -> tuple[Resolved, bool]:
    """Validate and store a version; return it and whether it is new."""
    request = PushRequest(name, inp, semver, description, tuple(tags or ()), base_ref, content)
    try:
        return push_many(instance, ctx, project_name, kind, [request])[0]
    except BatchEntryError as exc:
        raise exc.error from None


def push_many(instance: Instance, ctx: RequestContext, project_name: str, kind: str,
              requests: list[PushRequest]) -> list[tuple[Resolved, bool]]:
    """Push several versions in one transaction: every one is validated, stored and audited
    (its own event), or, when any is refused, none is (``BatchEntryError`` names the entry).
    Each version's result is what ``push`` would return for it, in order; an entry whose
    content an earlier entry or version holds already is that version, not a new one."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r} ({', '.join(KINDS)})")
    for i, req in enumerate(requests):  # well-formed before any query
        try:
            check_request(req.name, req.semver, req.tags)
        except NSPError as exc:
            raise BatchEntryError(i, exc) from None
    with instance.db.transaction() as session:
        project = authorized_project(session, ctx, project_name, "hub.push")
        return push_in(instance, session, ctx, project, kind, requests)


def push_in(instance: Instance, session: Session, ctx: RequestContext, project: Project, kind: str,
            requests: list[PushRequest]) -> list[tuple[Resolved, bool]]:
    """The database function of ``push_many``: validate, plan and write the versions with their
    events, and store their objects, in the caller's transaction (which has authorized
    ``hub.push`` in ``project``). Operations that push several kinds together (a HEPData
    likelihood's model and patchsets) call it once per kind inside one transaction."""
    tag_maps = []
    for i, req in enumerate(requests):
        try:
            tag_maps.append(check_request(req.name, req.semver, req.tags))
        except NSPError as exc:
            raise BatchEntryError(i, exc) from None
    contents = []
    for i, req in enumerate(requests):
        try:
            contents.append(req.content or _check(instance, session, project, kind, req.inp, req.base_ref))
        except NSPError as exc:
            raise BatchEntryError(i, exc) from None
    plan = _plan(session, ctx, project, kind, requests, contents)
    conn = core_connection(session)
    # Core statements, one per table for the whole batch, not an ORM flush: a push is the
    # registry's hot path.
    if plan.items:
        conn.execute(insert(HubItem), [{"id": i.id, "project_id": i.project_id, "kind": kind, "name": i.name,
                                        "created_at": i.created_at} for i in plan.items])
    if plan.versions:
        conn.execute(insert(HubVersion), [{c: getattr(v, c) for c in _VERSION_COLUMNS} for v, _ in plan.versions])
    tag_rows = [{"version_id": v.id, "key": k, "value": val}
                for v, i in plan.versions for k, val in tag_maps[i].items()]
    if tag_rows:
        conn.execute(insert(HubTag), tag_rows)
    with batched_appends(session):
        for version, i in plan.versions:
            req = requests[i]
            append_event(session, ctx, action=f"hub.{kind}.pushed", target=(f"hub_{kind}", version.id),
                         project=project.name,
                         after={"name": req.name, "digest": version.digest, "semver": req.semver,
                                "description": req.description, "tags": tag_maps[i], "meta": version.meta})
    # Every object durable before the rows that name them commit: one writeback for the
    # whole batch (see files.atomic_write_many).
    instance.store.put_many(plan.objects)
    return plan.results


def check_request(name: str, semver: str | None, tags: tuple[str, ...] | list[str]) -> dict[str, str]:
    """A push's tags, once its name, label and tags are well-formed (before any query)."""
    if not NAME.match(name):
        raise UsageError(f"invalid name {name!r}: lowercase letters, digits, '.', '_' or '-'")
    if semver is not None and not SEMVER.match(semver):
        raise UsageError(f"invalid version {semver!r}: expected semantic versioning like 1.2.0")
    return _parse_tags(list(tags))


@dataclass
class _Plan:
    """What a batch writes: new items, new versions (with their request's index), the objects
    to store, and each request's result."""

    items: list[HubItem]
    versions: list[tuple[HubVersion, int]]
    objects: list[bytes]
    results: list[tuple[Resolved, bool]]


def _plan(session: Session, ctx: RequestContext, project: Project, kind: str, requests: list[PushRequest],
          contents: list[Content]) -> _Plan:
    """Decide every request against the versions that exist and those made earlier in the
    batch: the same content is that version (a different label for it is refused), a label
    taken by other content is refused (versions are immutable)."""
    items: dict[str, HubItem] = {}
    by_digest: dict[tuple[str, str], HubVersion] = {}
    by_label: dict[tuple[str, str], HubVersion] = {}
    for item, version in _clashes(session, project, kind, requests, contents):
        items[item.name] = item
        if version is not None:
            by_digest[item.id, version.digest] = version
            if version.semver is not None:
                by_label[item.id, version.semver] = version
    plan = _Plan([], [], [], [])
    for i, (req, content) in enumerate(zip(requests, contents, strict=True)):
        name, semver = req.name, req.semver
        item = items.get(name)
        if item is None:
            item = items[name] = HubItem(id=new_id(), project_id=project.id, kind=kind, name=name, created_at=utcnow())
            plan.items.append(item)
        same = by_digest.get((item.id, content.digest))
        if same is not None:
            if semver is not None and same.semver != semver:
                raise BatchEntryError(i, ConflictError(
                    f"this content is {name}@{same.semver or same.digest[:19]} already; "
                    f"labels are immutable, so it cannot also be {semver}"))
            plan.results.append((Resolved(item, same, None), False))
            continue
        if semver is not None and (item.id, semver) in by_label:
            raise BatchEntryError(i, ConflictError(f"{name}@{semver} exists with other content; "
                                                   "versions are immutable"))
        version = HubVersion(id=new_id(), item_id=item.id, digest=content.digest, semver=semver,
                             size=len(content.data), media_type=content.media_type, meta=content.meta,
                             description=req.description, created_at=utcnow(), created_by=ctx.actor.id)
        by_digest[item.id, content.digest] = version
        if semver is not None:
            by_label[item.id, semver] = version
        plan.versions.append((version, i))
        plan.objects.append(content.data)
        if content.source is not None:
            plan.objects.append(content.source)
        plan.results.append((Resolved(item, version, None), True))
    return plan


def _clashes(session: Session, project: Project, kind: str, requests: list[PushRequest],
             contents: list[Content]) -> list[Any]:
    """The requests' items, each with its versions holding one of the requests' contents or
    labels (a superset: ``_plan`` matches them per request), 500 requests per query."""
    statement = _clash_statement(session.get_bind().dialect.name == "postgresql")
    rows: list[Any] = []
    for start in range(0, len(requests), 500):
        chunk = range(start, min(start + 500, len(requests)))
        rows.extend(session.execute(statement, {
            "project_id": project.id, "kind": kind,
            "names": sorted({requests[i].name for i in chunk}),
            "digests": sorted({contents[i].digest for i in chunk}),
            # A label no version has when none is given (versions without one match nothing).
            "labels": sorted({s for i in chunk if (s := requests[i].semver) is not None}) or [""],
        }))
    return rows


@functools.lru_cache(maxsize=2)
def _clash_statement(postgres: bool) -> Any:
    """Items by name with their versions holding any of the given digests or labels, built once
    (a push's hot path)."""
    return (select(HubItem, HubVersion)
            .outerjoin(HubVersion, and_(HubVersion.item_id == HubItem.id,
                                        or_(_among(HubVersion.digest, postgres, "digests"),
                                            _among(HubVersion.semver, postgres, "labels"))))
            .where(HubItem.project_id == bindparam("project_id"), HubItem.kind == bindparam("kind"),
                   _among(HubItem.name, postgres, "names")))


def _check(instance: Instance, session: Session, project: Project, kind: str, inp: InputFile,
           base_ref: str | None) -> Content:
    if kind == "model":
        return model_content(inp)
    if kind == "dataset":
        return dataset_content(inp)
    if base_ref is None:
        raise UsageError("a patchset needs --base MODEL_REF (its background-only model version)")
    base = resolve_in(session, project, "model", base_ref)
    base_doc = json.loads(read_source(instance, base.version))
    return patchset_content(inp, base_doc, base.version.digest)


def resolve_in(session: Session, project: Project, kind: str, text: str) -> Resolved:
    ref = parse_ref(text)
    # Item and version in one query (one round trip to a server); which of the two is missing
    # is asked only when nothing matched.
    params = {"project_id": project.id, "kind": kind, "name": ref.name, "value": ref.value}
    if ref.selector == "digest":
        params["value"] = "sha256:" + ref.value
    found = session.execute(_RESOLVE[ref.selector], params).all()
    if not found:
        item = _item(session, project, kind, ref.name)
        if item is None:
            raise NotFoundError(f"no {kind} named {ref.name!r} in project {project.name}")
        raise NotFoundError(f"no version {ref} of {item.kind} {item.name}")
    if len(found) > 1 and ref.selector == "digest":
        raise UsageError(f"{ref}: the digest prefix is ambiguous; give more hex digits")
    item, version = found[0]
    if ref.patch is not None:
        if kind != "patchset":
            raise UsageError(f"{text!r}: only patchsets have patches ('#PATCH')")
        if ref.patch not in version.meta.get("patches", []):
            raise NotFoundError(f"no patch {ref.patch!r} in {ref.name}@{version.semver or version.digest[:19]}")
    return Resolved(item, version, ref.patch)


def resolve(instance: Instance, ctx: RequestContext, project_name: str, kind: str, text: str) -> Resolved:
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "hub.read")
        return resolve_in(session, project, kind, text)


def read_bytes(instance: Instance, version: HubVersion) -> bytes:
    """The version's bytes, digest-checked; from the archive when archived."""
    if version.purged_at is not None:
        raise NotFoundError(f"version {version.digest} was purged on {version.purged_at:%Y-%m-%d}")
    if version.archived_at is not None:
        return instance.archive().get(version.digest)
    return instance.store.get(version.digest)


def read_source(instance: Instance, version: HubVersion) -> bytes:
    """The file as it was pushed (same content as ``read_bytes``, original formatting)."""
    source = version.meta.get("source_digest")
    if source is None or source == version.digest:
        return read_bytes(instance, version)
    if version.purged_at is not None:
        raise NotFoundError(f"version {version.digest} was purged on {version.purged_at:%Y-%m-%d}")
    return (instance.archive() if version.archived_at is not None else instance.store).get(source)


def set_alias(instance: Instance, ctx: RequestContext, project_name: str, kind: str, ref: str, alias: str,
              reason: str) -> None:
    """Point ``alias`` at the version ``ref`` names (a move is audited with old and new target)."""
    if not ALIAS.match(alias) or alias == "latest":
        raise UsageError(f"invalid alias {alias!r}")
    with instance.db.transaction() as session:
        project = get_project(session, project_name)
        protected = alias in instance.config.protected_aliases
        authorize(session, ctx, "hub.alias_protected" if protected else "hub.alias", project)
        target = resolve_in(session, project, kind, ref)
        row = session.get(HubAlias, (target.item.id, alias))
        before = row.version_id if row else None
        if before == target.version.id:
            raise ConflictError(f"{alias} already points at {target.label}")
        if row is None:
            session.add(HubAlias(item_id=target.item.id, alias=alias, version_id=target.version.id,
                                 updated_at=utcnow()))
        else:
            row.version_id, row.updated_at = target.version.id, utcnow()
        append_event(session, ctx, action="hub.alias.moved",
                     target=(f"hub_{kind}_alias", f"{target.item.name}@{alias}"),
                     project=project.name, before={"version_id": before},
                     after={"version_id": target.version.id, "digest": target.version.digest,
                            "semver": target.version.semver, "protected": protected}, reason=reason)


def edit(instance: Instance, ctx: RequestContext, project_name: str, kind: str, ref: str, reason: str,
         tags: list[str] | None = None, remove_tags: list[str] | None = None,
         description: str | None = None) -> None:
    """Edit a version's metadata (tags, description); before and after are audited."""
    with instance.db.transaction() as session:
        project = authorized_project(session, ctx, project_name, "hub.edit")
        target = resolve_in(session, project, kind, ref)
        v = target.version
        old_tags = {t.key: t.value for t in session.scalars(select(HubTag).where(HubTag.version_id == v.id))}
        new_tags = {**old_tags, **_parse_tags(tags or [])}
        for key in remove_tags or []:
            if key not in new_tags:
                raise NotFoundError(f"{target.label} has no tag {key!r}")
            del new_tags[key]
        new_description = v.description if description is None else description
        before = {"tags": old_tags, "description": v.description}
        after = {"tags": new_tags, "description": new_description}
        if before == after:
            raise ConflictError("nothing to change")
        for tag in list(session.scalars(select(HubTag).where(HubTag.version_id == v.id))):
            session.delete(tag)
        session.flush()
        for key, value in new_tags.items():
            session.add(HubTag(version_id=v.id, key=key, value=value))
        v.description = new_description
        append_event(session, ctx, action=f"hub.{kind}.edited", target=(f"hub_{kind}", v.id),
                     project=project.name, before=before, after=after, reason=reason)


def list_items(instance: Instance, ctx: RequestContext, project_name: str, kind: str,
               tags: list[str] | None = None) -> list[dict[str, Any]]:
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


def versions(instance: Instance, ctx: RequestContext, project_name: str, kind: str, name: str) -> list[dict[str, Any]]:
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "hub.read")
        item = _item(session, project, kind, name)
        if item is None:
            raise NotFoundError(f"no {kind} named {name!r} in project {project.name}")
        rows = session.scalars(select(HubVersion).where(HubVersion.item_id == item.id)
                               .order_by(HubVersion.created_at, HubVersion.id))
        return version_docs(session, [VersionRow.of(item, v) for v in rows])


def show(instance: Instance, ctx: RequestContext, project_name: str, kind: str, ref: str,
         with_runs: bool = False) -> dict[str, Any]:
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "hub.read")
        r = resolve_in(session, project, kind, ref)
        doc = version_doc(session, r.item, r.version)
        if with_runs:
            rows = session.execute(select(Run, RunVersion.ref).join(RunVersion, RunVersion.run_id == Run.id)
                                   .where(RunVersion.version_id == r.version.id).order_by(Run.created_at))
            doc["runs"] = [{"run_id": run.id, "task": run.task, "status": run.status, "ref": used,
                            "created_at": run.created_at.isoformat()} for run, used in rows]
        return doc


def version_doc(session: Session, item: HubItem, v: HubVersion) -> dict[str, Any]:
    return version_docs(session, [VersionRow.of(item, v)])[0]


def version_docs(session: Session, rows: list[VersionRow]) -> list[dict[str, Any]]:
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
    return [{"name": r.name, "kind": r.kind, "version_id": r.id, "semver": r.semver, "digest": r.digest,
             "size": r.size, "media_type": r.media_type, "description": r.description,
             "tags": dict(sorted(tags.get(r.id, {}).items())), "aliases": sorted(aliases.get(r.id, [])),
             "meta": r.meta, "created_at": r.created_at.isoformat(), "archived": r.archived_at is not None,
             "purged": r.purged_at is not None} for r in rows]


@functools.lru_cache(maxsize=2)
def _doc_statements(postgres: bool) -> tuple[Any, Any]:
    """The tags of given versions and the aliases of given items, built once."""
    return (select(HubTag.version_id, HubTag.key, HubTag.value).where(_among(HubTag.version_id, postgres)),
            select(HubAlias.version_id, HubAlias.alias).where(_among(HubAlias.item_id, postgres)))


def _among(column: Any, postgres: bool, name: str = "among") -> Any:
    """``column IN (:name)``, the list given at execution; on PostgreSQL as ``= ANY(:name)``,
    one statement text whatever the count (an IN list of 250 parameters was parsed and
    planned anew each time: 5 ms)."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def materialize(instance: Instance, session: Session, project: Project, kind: str, ref: str
                ) -> tuple[Resolved, list[tuple[Resolved, InputFile]]]:
    """The input files a run needs for ``ref``: a model; a patchset reference with ``#PATCH``
    brings its base model too."""
    r = resolve_in(session, project, kind, ref)
    role = {"model": "workspace", "dataset": "dataset", "patchset": "patchset"}[kind]
    ext = ".csv" if r.version.media_type == "text/csv" else \
        ".parquet" if r.version.media_type == "application/vnd.apache.parquet" else ".json"
    files = [(r, InputFile.from_bytes(role, f"{r.label}{ext}", read_source(instance, r.version)))]
    if kind == "patchset":
        base = session.scalar(select(HubVersion).join(HubItem, HubItem.id == HubVersion.item_id).where(
            HubItem.project_id == project.id, HubItem.kind == "model",
            HubVersion.digest == r.version.meta["base_digest"]))
        if base is None:
            raise NotFoundError(f"the base model of {r.label} is not in project {project.name}")
        base_item = session.get(HubItem, base.item_id)
        assert base_item is not None
        b = Resolved(base_item, base, None)
        files.insert(0, (b, InputFile.from_bytes("workspace", f"{b.label}.json", read_source(instance, base))))
    return r, files


def diff_models(instance: Instance, ctx: RequestContext, project_name: str, ref_a: str, ref_b: str) -> dict[str, Any]:
    with instance.db.read() as session:
        project = authorized_project(session, ctx, project_name, "hub.read")
        a, b = resolve_in(session, project, "model", ref_a), resolve_in(session, project, "model", ref_b)
        doc_a, doc_b = json.loads(read_bytes(instance, a.version)), json.loads(read_bytes(instance, b.version))
        return {"a": a.label, "b": b.label, "identical": a.version.digest == b.version.digest,
                "changes": workspace_diff(doc_a, doc_b)}
