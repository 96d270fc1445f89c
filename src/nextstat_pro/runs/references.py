"""Resolving registry references for a run: once, to exact versions recorded by digest."""

from __future__ import annotations

from ..engine import InputFile
from ..hub.service import materialize
from ..identity.actors import RequestContext
from ..identity.rbac import authorize
from ..instance import Instance
from ..projects.service import get_project
from .service import VersionUse


def resolve_inputs(instance: Instance, ctx: RequestContext, project_name: str, refs: list[tuple[str, str]]
                   ) -> tuple[list[InputFile], list[VersionUse], str | None]:
    """``[(kind, ref), ...]`` → input files, the versions used, and the patch (``REF#PATCH``)."""
    files: list[InputFile] = []
    uses: list[VersionUse] = []
    patch: str | None = None
    with instance.db.transaction() as session:
        project = get_project(session, project_name)
        authorize(session, ctx, "hub.read", project)
        for kind, ref in refs:
            resolved, pairs = materialize(instance, session, project, kind, ref)
            if resolved.patch:
                patch = resolved.patch
            for r, inp in pairs:
                files.append(inp)
                uses.append(VersionUse(r.version.id, inp.role, ref if r is resolved else f"base of {ref}",
                                       r.item.kind, r.item.name, r.version.semver, r.version.digest))
    return files, uses, patch
