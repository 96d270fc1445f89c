"""Report templates in the registry (kind ``template``): the built-ins registered at ``init`` (the
default project) and ``db upgrade`` (every project: a new package version may ship a new built-in
version), and in a project created since on its first report; an organisation's own pushed as new
versions; the one a report uses.

A report records the digest of the template version that rendered it; versions are immutable, so a
new version never changes an old report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..access.rbac import allowed, authorize
from ..db.models import HubItem, HubVersion, Project
from ..engine import InputFile
from ..errors import ConflictError, NotFoundError, UsageError
from ..hub.content import Content
from ..hub.push import BatchEntryError, PushRequest, push_in
from ..hub.resolve import read_bytes, resolve_in
from ..hub.views import Pushed
from ..projects.service import authorized_project, check_allowed
from .templates import MEDIA_TYPE, REPORT_KINDS, Template, builtin_templates, load_folder, unpack
from .views import TemplateRow

if TYPE_CHECKING:
    from ..instance import Instance


def template_content(template: Template) -> Content:
    data = template.packed()
    meta = {"kind": template.kind, "version": template.version, "inputs": template.manifest["inputs"],
            "files": sorted(template.files)}
    return Content(data, template.digest, MEDIA_TYPE, meta)


def _request(template: Template) -> PushRequest:
    data = template.packed()
    return PushRequest(template.name, InputFile("template", f"{template.name}.json", data, template.digest),
                       template.version, template.manifest["description"], content=template_content(template))


def ensure_builtins_in(instance: Instance, session: Session, ctx: RequestContext, project: Project) -> int:
    """Register the shipped templates in ``project`` unless their version label is there already
    (an organisation's own content under the same label wins; nothing is ever replaced), one
    ``hub.template.pushed`` event per version; return how many. The caller's transaction has
    authorized a report operation in the project."""
    wanted = []
    for template in builtin_templates():
        label = session.scalar(select(HubVersion.id).join(HubItem, HubItem.id == HubVersion.item_id).where(
            HubItem.project_id == project.id, HubItem.kind == "template", HubItem.name == template.name,
            (HubVersion.semver == template.version) | (HubVersion.digest == template.digest)))
        if label is None:
            wanted.append(_request(template))
    if wanted:
        push_in(instance, session, ctx, project, "template", wanted)
    return len(wanted)


def register_builtin_templates(instance: Instance, ctx: RequestContext, project_name: str | None = None) -> int:
    """``init``'s and ``db upgrade``'s hook: the shipped templates as registry versions of
    ``project_name`` (default: every project), in one transaction; idempotent. Returns how many
    versions it registered."""
    with instance.db.transaction() as session:
        if project_name is not None:
            projects = [authorized_project(session, ctx, project_name, "hub.push")]
        else:  # every project: an instance-level change (the upgrade's); an instance admin may push anywhere
            authorize(session, ctx, "instance.configure")
            projects = list(session.scalars(select(Project).order_by(Project.name)))
        return sum(ensure_builtins_in(instance, session, ctx, project) for project in projects)


def template_for(instance: Instance, session: Session, ctx: RequestContext, project: Project, kind: str,
                 ref: str | None) -> tuple[Template, HubVersion]:
    """The template a report of ``kind`` uses: ``ref`` (``NAME@VERSION``, an alias, a digest), or the
    newest version of the item named after the kind; the built-ins are registered first."""
    ensure_builtins_in(instance, session, ctx, project)
    resolved = resolve_in(session, project, "template", ref or f"{kind}@latest")
    template = unpack(read_bytes(instance, resolved.version), resolved.label)
    if template.kind != kind:
        raise UsageError(f"template {resolved.label} renders {template.kind} reports, not {kind}")
    if template.digest != resolved.version.digest:
        raise ConflictError(f"template {resolved.label}: its stored bytes do not pack to its digest")
    return template, resolved.version


def push_template(instance: Instance, ctx: RequestContext, project_name: str, folder: Path) -> Pushed:
    """Push a template folder as a new version (``report templates push``): its manifest's name and
    version are the registry's; identical content is the existing version."""
    check_allowed(instance, ctx, project_name, "hub.push")  # before reading the folder it names
    template = load_folder(folder)
    with instance.db.transaction() as session:
        project = authorized_project(session, ctx, project_name, "hub.push")
        ensure_builtins_in(instance, session, ctx, project)
        try:
            resolved, created = push_in(instance, session, ctx, project, "template", [_request(template)])[0]
        except BatchEntryError as exc:  # one entry: its own error, as ``hub.push`` raises it
            raise exc.error from None
        return resolved.pushed(created)


def list_templates(instance: Instance, ctx: RequestContext, project_name: str) -> list[TemplateRow]:
    """Every template version of the project, by name then time (the built-ins are registered first
    when the caller may push to the registry)."""
    shipped = {t.digest for t in builtin_templates()}
    with instance.db.transaction() as session:
        project = authorized_project(session, ctx, project_name, "report.read")
        if allowed(session, ctx, "hub.push", project):  # a reader lists; only who may push registers
            ensure_builtins_in(instance, session, ctx, project)
        rows = session.execute(select(HubItem, HubVersion).join(HubVersion, HubVersion.item_id == HubItem.id)
                               .where(HubItem.project_id == project.id, HubItem.kind == "template")
                               .order_by(HubItem.name, HubVersion.created_at, HubVersion.id)).all()
        return [TemplateRow(name=item.name, version=v.semver, kind=str(v.meta.get("kind")),
                            description=v.description, digest=v.digest, builtin=v.digest in shipped,
                            created_at=v.created_at) for item, v in rows]


def check_kind(kind: str) -> None:
    if kind not in REPORT_KINDS:
        raise NotFoundError(f"no report kind {kind!r} ({', '.join(REPORT_KINDS)})")
