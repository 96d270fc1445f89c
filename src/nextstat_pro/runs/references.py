"""A run's inputs as a caller names them (files, registry references, a patch), resolved by the service:
files read, references resolved once to exact versions recorded by digest, the patch chosen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..access.context import RequestContext
from ..access.rbac import authorize
from ..engine import InputFile
from ..errors import FieldError
from ..hub.resolve import materialize
from ..projects.service import get_project

if TYPE_CHECKING:
    from ..instance import Instance


@dataclass(frozen=True)
class VersionUse:
    """A registry version a run uses (resolved once, recorded by digest)."""

    version_id: str
    role: str
    ref: str
    kind: str
    name: str
    semver: str | None
    digest: str

    def as_json(self) -> dict[str, Any]:
        return {"role": self.role, "ref": self.ref, "kind": self.kind, "name": self.name, "semver": self.semver,
                "digest": self.digest}

    @property
    def link(self) -> tuple[str, str, str]:
        """(version_id, role, ref), as records.add_versions stores it."""
        return self.version_id, self.role, self.ref


class RunInputs(BaseModel):
    """What a run reads, as given: paths on the service's file system and registry references.
    Either a workspace file (with an optional patchset file) or a registry model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workspace: Path | None = Field(None, description="A pyhf JSON workspace file.")
    model: str | None = Field(None, description="A registry model REF, or a patchset REF#PATCH (with its base).")
    patchset: Path | None = Field(None, description="A pyhf patchset file (with a patch name).")
    patch: str | None = Field(None, description="The name of the patch to apply.")
    dataset: str | None = Field(None, description="A CSV dataset: a file if one exists at this path, else a REF.")


@dataclass(frozen=True)
class Gathered:
    """Inputs read and resolved: the files, the registry versions they came from, the patch."""

    files: list[InputFile]
    versions: list[VersionUse]
    patch: str | None


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


def gather_inputs(instance: Instance, ctx: RequestContext, project_name: str, files: Sequence[tuple[str, Path]],
            refs: Sequence[tuple[str, str]]) -> Gathered:
    """Read ``files`` (role, path) and resolve ``refs`` (kind, ref). Private: the registry read is
    authorized by ``resolve_inputs``, and reading files needs no permission of its own (the
    operation that records them authorizes)."""
    inputs = [InputFile.read(role, path) for role, path in files]
    if not refs:
        return Gathered(inputs, [], None)
    resolved, versions, patch = resolve_inputs(instance, ctx, project_name, list(refs))
    return Gathered(inputs + resolved, versions, patch)


def _gather_run(instance: Instance, ctx: RequestContext, project_name: str, given: RunInputs) -> Gathered:
    """A run's ``RunInputs`` read and resolved, the patch chosen (a ``REF#PATCH``'s, or the one given)."""
    if given.model is not None and (given.workspace is not None or given.patchset is not None):
        raise FieldError("a registry model and a workspace or patchset file cannot be combined: give one",
                         "model", "workspace")
    dataset_file = Path(given.dataset) if given.dataset is not None and Path(given.dataset).exists() else None
    files = [(role, path) for role, path in (("workspace", given.workspace), ("patchset", given.patchset),
                                             ("dataset", dataset_file)) if path is not None]
    refs: list[tuple[str, str]] = []
    if given.model is not None:
        refs.append(("patchset" if "#" in given.model else "model", given.model))
    if given.dataset is not None and dataset_file is None:
        refs.append(("dataset", given.dataset))
    gathered = gather_inputs(instance, ctx, project_name, files, refs)
    if gathered.patch is not None and given.patch is not None and gathered.patch != given.patch:
        raise FieldError(f"two patches named: {gathered.patch!r} by the reference and {given.patch!r}; give one",
                         "model", "patch")
    return Gathered(gathered.files, gathered.versions, gathered.patch or given.patch)
