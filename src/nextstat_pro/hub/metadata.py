"""Changing what a version is called and described: aliases, tags, descriptions, each change
audited with its before and after."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from .. import text
from ..access.context import RequestContext
from ..access.rbac import authorize
from ..audit.events import append_event
from ..db.models import HubAlias, HubTag
from ..db.types import utcnow
from ..errors import ConflictError, NotFoundError, UsageError
from ..projects.service import authorized_project, get_project
from .documents import version_doc
from .push import _parse_tags
from .refs import ALIAS
from .resolve import resolve_in
from .views import VersionDoc

if TYPE_CHECKING:
    from ..instance import Instance


def set_alias(instance: Instance, ctx: RequestContext, project_name: str, kind: str, ref: str, alias: str,
              reason: str) -> VersionDoc:
    """Point ``alias`` at the version ``ref`` names (a move is audited with old and new target);
    return that version's document."""
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
        session.flush()  # the document's alias query sees the new alias
        return version_doc(session, target.item, target.version)


def edit(instance: Instance, ctx: RequestContext, project_name: str, kind: str, ref: str, reason: str,
         tags: list[str] | None = None, remove_tags: list[str] | None = None,
         description: str | None = None) -> VersionDoc:
    """Edit a version's metadata (tags, description); before and after are audited. Returns the
    version's document as edited."""
    with instance.db.transaction() as session:
        project = authorized_project(session, ctx, project_name, "hub.edit")
        target = resolve_in(session, project, kind, ref)
        v = target.version
        old_tags = {t.key: t.value for t in session.scalars(select(HubTag).where(HubTag.version_id == v.id))}
        new_tags = {**old_tags, **_parse_tags(tags or [])}
        for key in (text.clean("tag key", k) for k in remove_tags or []):  # as stored: NFC, trimmed
            if key not in new_tags:
                raise NotFoundError(f"{target.label} has no tag {key!r}")
            del new_tags[key]
        new_description = v.description if description is None else text.clean("description", description)
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
        session.flush()  # the document's tag query sees the new tags
        return version_doc(session, target.item, v)
