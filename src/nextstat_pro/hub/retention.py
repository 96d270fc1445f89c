"""Registry retention: archive (bytes to the archive store, still verifiable and readable) and
purge (bytes removed, record and tombstone event kept) when the policy allows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..audit.events import append_event
from ..db.models import HubAlias, HubVersion, Project, RunInput, RunVersion
from ..db.types import utcnow
from ..errors import ConflictError
from ..projects.service import authorized_project
from .documents import version_doc
from .resolve import resolve_in
from .views import VersionDoc

if TYPE_CHECKING:
    from ..instance import Instance

YEAR_S = 365.25 * 24 * 3600


def archive(instance: Instance, ctx: RequestContext, project_name: str, kind: str, ref: str,
            reason: str) -> VersionDoc:
    """Move a version's bytes to the archive store; return its document (``archived``)."""
    with instance.db.transaction() as session:
        project = authorized_project(session, ctx, project_name, "hub.retention")
        r = resolve_in(session, project, kind, ref)
        v = r.version
        if v.archived_at is not None or v.purged_at is not None:
            raise ConflictError(f"{r.label} is {'purged' if v.purged_at else 'archived'} already")
        digests = _digests(v)
        for digest in digests:
            data = instance.store.get(digest)
            instance.archive().put(data)
            instance.archive().get(digest)  # read back: the archive copy verifies
        v.archived_at = utcnow()
        append_event(session, ctx, action=f"hub.{kind}.archived", target=(f"hub_{kind}", v.id), project=project.name,
                     before={"archived": False}, after={"archived": True, "digest": v.digest}, reason=reason)
        doc = version_doc(session, r.item, v)
    # Only once the record says "archived" do the bytes leave the main store.
    for digest in digests:
        if not _needed_in_store(instance, digest, v.id):
            instance.store.delete(digest)
    return doc


def _digests(v: HubVersion) -> list[str]:
    return sorted({v.digest, v.meta.get("source_digest") or v.digest})


def _needed_in_store(instance: Instance, digest: str, version_id: str) -> bool:
    """Another live version, or a run's inputs, still read these bytes from the main store."""
    with instance.db.transaction() as session:
        other = session.scalar(select(HubVersion.id).where(HubVersion.digest == digest, HubVersion.id != version_id,
                                                           HubVersion.archived_at.is_(None)))
        run_input = session.scalar(select(RunInput.id).where(RunInput.digest == digest).limit(1))
        return other is not None or run_input is not None


def purge_blockers(session: Session, instance: Instance, project: Project, v: HubVersion) -> list[str]:
    rules = []
    age = (datetime.now(UTC) - v.created_at).total_seconds() / YEAR_S
    if age < instance.config.hub_min_years:
        rules.append(f"registry versions are kept {instance.config.hub_min_years:g} years (this one: {age:.2f})")
    runs = session.scalar(select(RunVersion.run_id).where(RunVersion.version_id == v.id).limit(1))
    if runs is not None:
        rules.append(f"run {runs} uses it (runs and their signatures keep their inputs)")
    alias = session.scalar(select(HubAlias.alias).where(HubAlias.version_id == v.id).limit(1))
    if alias is not None:
        rules.append(f"alias {alias!r} points at it")
    if project.name in instance.config.retention.legal_hold_projects:
        rules.append(f"legal hold on project {project.name}")
    return rules


def purge(instance: Instance, ctx: RequestContext, project_name: str, kind: str, ref: str,
          reason: str) -> VersionDoc:
    """Remove a version's bytes when the policy allows; return its document (``purged``: the record stays)."""
    with instance.db.transaction() as session:
        project = authorized_project(session, ctx, project_name, "hub.retention")
        r = resolve_in(session, project, kind, ref)
        v = r.version
        if v.purged_at is not None:
            raise ConflictError(f"{r.label} is purged already")
        blockers = purge_blockers(session, instance, project, v)
        if blockers:
            raise ConflictError(f"{r.label} cannot be purged: {'; '.join(blockers)}")
        v.purged_at = utcnow()
        append_event(session, ctx, action=f"hub.{kind}.purged", target=(f"hub_{kind}", v.id), project=project.name,
                     before={"digest": v.digest, "size": v.size}, after=None, reason=reason)
        digests, archived = _digests(v), v.archived_at is not None
        doc = version_doc(session, r.item, v)
    for digest in digests:
        (instance.archive() if archived else instance.store).delete(digest)
    return doc
