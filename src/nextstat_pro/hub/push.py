"""Pushing versions: one path for one version or many (``push`` is ``push_many`` of one request).

Identity is content: pushing identical content returns the existing version. Semver labels are
unique and immutable per item; the database refuses any UPDATE of a version's content columns.
Every version pushed is audited with its own event.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, insert, or_, select
from sqlalchemy.orm import Session

from .. import text
from ..access.context import RequestContext
from ..audit.events import append_event, batched_appends
from ..db.models import HubItem, HubTag, HubVersion, Project
from ..db.session import core_connection
from ..db.types import utcnow
from ..engine import InputFile
from ..errors import ConflictError, FieldError, NSPError, PartError, UsageError
from ..ids import new_id
from ..projects.service import authorized_project, check_allowed
from .content import Content, dataset_content, model_content, patchset_content
from .refs import NAME, SEMVER
from .resolve import KINDS, ROLES, Resolved, _among, read_source, resolve_in
from .views import Pushed

if TYPE_CHECKING:
    from ..instance import Instance

_VERSION_COLUMNS = ("id", "item_id", "digest", "semver", "size", "media_type", "meta", "description", "created_at",
                    "created_by")


def _parse_tags(tags: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"malformed tag {tag!r}: expected key=value")
        out[text.clean("tag key", key)] = text.clean("tag value", value)
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


def push_file(instance: Instance, ctx: RequestContext, project_name: str, kind: str, name: str, path: Path,
              semver: str | None = None, description: str = "", tags: list[str] | None = None,
              base_ref: str | None = None) -> Pushed:
    """Read the file at ``path`` and push it as a version of ``name`` (``hub KIND push``):
    identical content is the existing version."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r} ({', '.join(KINDS)})")
    check_request(name, semver, tags or ())
    check_allowed(instance, ctx, project_name, "hub.push")  # before reading the file it names
    resolved, created = push(instance, ctx, project_name, kind, name, InputFile.read(ROLES[kind], path), semver,
                             description, tags, base_ref)
    return resolved.pushed(created)


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
    cleaned = []
    for i, req in enumerate(requests):
        try:
            tag_maps.append(check_request(req.name, req.semver, req.tags))
            # Stored as `hub edit` and projects store descriptions: NFC, trimmed.
            cleaned.append(dataclasses.replace(req, description=text.clean("description", req.description)))
        except NSPError as exc:
            raise BatchEntryError(i, exc) from None
    requests = cleaned
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
    if kind == "template":
        # A template is a folder: the compliance package packs and checks it, and pushes the
        # content it built (hub does not import compliance, which builds on hub).
        raise UsageError("a report template is a folder with its manifest: push it as a report template, not a file")
    if base_ref is None:
        raise FieldError("a patchset needs a base: the model version it patches (its background-only workspace)",
                         "base_ref")
    base = resolve_in(session, project, "model", base_ref)
    base_doc = json.loads(read_source(instance, base.version))
    return patchset_content(inp, base_doc, base.version.digest)
