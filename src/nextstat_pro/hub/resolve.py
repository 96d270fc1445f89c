"""References to registry versions: resolving one to exactly one version (or failing with the
reason), reading a version's bytes, and the input files a run needs for a reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import BindParameter, String, and_, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..db.models import HubAlias, HubItem, HubVersion, Project
from ..engine import InputFile
from ..errors import NotFoundError, UsageError
from ..projects.service import authorized_project
from .refs import parse_ref
from .views import Pushed

if TYPE_CHECKING:
    from ..instance import Instance

Kind = Literal["model", "dataset", "patchset", "template"]
# ``template``: report templates (NS-Compliance), packed folders whose content the compliance
# package checks and hands to ``push_in`` ready-made (``PushRequest.content``).
KINDS = ("model", "dataset", "patchset", "template")
# The InputFile role of each kind.
ROLES = {"model": "workspace", "dataset": "dataset", "patchset": "patchset", "template": "template"}


@dataclass(frozen=True)
class Resolved:
    item: HubItem
    version: HubVersion
    patch: str | None

    @property
    def label(self) -> str:
        return f"{self.item.name}@{self.version.semver or self.version.digest[:19]}"

    def pushed(self, created: bool) -> Pushed:
        """The view of a push that stored (``created``) or found this version."""
        v = self.version
        return Pushed(kind=self.item.kind, name=self.item.name, label=self.label, version_id=v.id, semver=v.semver,
                      digest=v.digest, created=created)


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


def materialize(instance: Instance, session: Session, project: Project, kind: str, ref: str
                ) -> tuple[Resolved, list[tuple[Resolved, InputFile]]]:
    """The input files a run needs for ``ref``: a model; a patchset reference with ``#PATCH``
    brings its base model too."""
    r = resolve_in(session, project, kind, ref)
    role = ROLES[kind]
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


def _among(column: Any, postgres: bool, name: str = "among") -> Any:
    """``column IN (:name)``, the list given at execution; on PostgreSQL as ``= ANY(:name)``,
    one statement text whatever the count (an IN list of 250 parameters was parsed and
    planned anew each time: 5 ms)."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i:i + size] for i in range(0, len(values), size)]
