"""The registry (``hub model|dataset|patchset ...`` and ``hub import-likelihood``) over HTTP: push
an uploaded file, import a manifest with its files (a zip), import a HEPData likelihood archive,
list and search by tags, a name's versions, resolve a reference (with the runs that used it),
diff two models, aliases, tags and description, archive and purge.

A reference (``name``, ``name@1.2.0``, ``name@alias``, ``name@sha256:ab12…``, ``name@…#PATCH``)
travels in the query (``ref=``) or, for a change to one version, in the path (percent-encoded).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from ...errors import FieldError
from ...hub import imports, likelihood, retention, service
from ...hub.views import ImportReport, LikelihoodImport, ModelDiff, Pushed, VersionDetail, VersionDoc
from ..answers import answer, answer_bounded
from ..auth import Caller, Inst
from ..uploads import save_checked, spool_folder, unpack_upload
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["hub"])

Kind = Literal["model", "dataset", "patchset"]
RefText = Annotated[str, Query(min_length=1, max_length=500, description="A registry reference (name@selector).")]
TagText = Annotated[str, Field(min_length=1, max_length=500)]


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class AliasMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: str = Field(min_length=1, max_length=500, description="The version the alias is to point at.")
    reason: str = Field(min_length=1, max_length=2000)


class VersionEdit(BaseModel):
    """Tags to add or change (``key=value``), tag keys to remove, a new description."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
    tags: list[TagText] = Field(default_factory=list, max_length=200)
    remove_tags: list[TagText] = Field(default_factory=list, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)


@router.post("/projects/{project}/hub/{kind}/versions", response_model=Pushed, status_code=201,
             responses={200: {"model": Pushed, "description": "Identical content: the existing version"}},
             summary="Push an uploaded file as a new version (identical content: the existing version)")
def push(
    request: Request, response: Response, inst: Inst, ctx: Caller, project: str, kind: Kind,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    file: Annotated[UploadFile, File(description="The workspace, dataset or patchset.")],
    version: Annotated[str | None, Form(max_length=100, description="A semver label, e.g. 1.2.0.")] = None,
    description: Annotated[str, Form(max_length=10_000)] = "",
    tag: Annotated[list[str] | None, Form(description="key=value (repeat the field).")] = None,
    base: Annotated[str | None, Form(max_length=500, description="Patchsets: the base model version (REF).")] = None,
    digest: Annotated[str | None, Form(max_length=80, description="sha256:<hex> of the upload.")] = None,
) -> Pushed:
    with spool_folder() as folder:
        path = save_checked(inst, ctx, request, file, folder, "file", digest, ("project", project))
        pushed = service.push_file(inst, ctx, project, kind, name, path, version, description, tag or [], base)
    if not pushed.created:
        response.status_code = 200
    return pushed


@router.post("/projects/{project}/hub/{kind}/imports", response_model=ImportReport,
             summary="Push many versions: a zip of a JSON Lines manifest and the files it names")
def import_manifest(
    request: Request, inst: Inst, ctx: Caller, project: str, kind: Kind,
    bundle: Annotated[UploadFile, File(description="A zip holding the manifest and, beside it, its files.")],
    manifest: Annotated[str, Form(min_length=1, max_length=500, description="The manifest's path in the zip.")]
    = "manifest.jsonl",
    batch: Annotated[int, Form(ge=1, le=100_000, description="Versions per transaction.")] = 500,
    digest: Annotated[str | None, Form(max_length=80, description="sha256:<hex> of the upload.")] = None,
) -> ImportReport:
    with spool_folder() as folder:
        root = unpack_upload(inst, ctx, request, bundle, folder, "bundle", digest, ("project", project))
        return imports.import_manifest(inst, ctx, project, kind, _inside(root, manifest), batch, confine=True)


def _inside(root: Path, member: str) -> Path:
    """The manifest named by its path in the zip (a client's text: never outside ``root``)."""
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts or "\\" in member or not path.parts:
        raise FieldError(f"manifest {member!r} is not a path inside the zip", "manifest")
    return root.joinpath(*path.parts)


@router.post("/projects/{project}/hub/likelihoods", response_model=LikelihoodImport, status_code=201,
             summary="Import a HEPData likelihood archive: its model and linked patchsets, in one transaction")
def import_likelihood(
    request: Request, inst: Inst, ctx: Caller, project: str,
    archive: Annotated[UploadFile, File(description="A .tar.gz, .tgz, .tar or .zip likelihood archive.")],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    version: Annotated[str, Form(min_length=1, max_length=100)],
    description: Annotated[str | None, Form(max_length=10_000)] = None,
    tag: Annotated[list[str] | None, Form(description="key=value on every version (repeat the field).")] = None,
    max_mb: Annotated[int, Form(ge=1, le=1 << 20, description="Refuse archives larger once decompressed.")]
    = likelihood.MAX_BYTES >> 20,
    digest: Annotated[str | None, Form(max_length=80, description="sha256:<hex> of the upload.")] = None,
) -> LikelihoodImport:
    with spool_folder() as folder:
        path = save_checked(inst, ctx, request, archive, folder, "archive", digest, ("project", project))
        return likelihood.import_likelihood(inst, ctx, project, path, name, version, description, tuple(tag or ()),
                                            max_mb << 20)


@router.get("/projects/{project}/hub/{kind}", response_model=list[VersionDoc],
            summary="Items with their newest version; with tags, every version carrying all of them")
def list_items(
    inst: Inst, ctx: Caller, project: str, kind: Kind,
    tag: Annotated[list[str] | None, Query(max_length=200, description="key=value (repeat: all must match).")]
    = None,
) -> list[VersionDoc]:
    return service.list_items(inst, ctx, project, kind, tag or [])


@router.get("/projects/{project}/hub/{kind}/items/{name}/versions", response_model=list[VersionDoc],
            summary="Every version of one item, oldest first")
def versions(inst: Inst, ctx: Caller, project: str, kind: Kind, name: str) -> list[VersionDoc]:
    return service.versions(inst, ctx, project, kind, name)


@router.get("/projects/{project}/hub/{kind}/resolve", response_model=VersionDetail,
            summary="The one version a reference names (with the runs that used it, if asked)")
async def resolve(inst: Inst, ctx: Caller, response: Response, project: str, kind: Kind, ref: RefText,
                  runs: bool = False) -> Response:
    if runs:  # every run that used the version: as many as there are
        return await answer(response, service.show, inst, ctx, project, kind, ref, runs)
    return answer_bounded(response, service.show, inst, ctx, project, kind, ref, runs)


@router.get("/projects/{project}/hub/model/diff", response_model=ModelDiff,
            summary="What differs between two workspace versions")
def diff(inst: Inst, ctx: Caller, project: str, a: RefText, b: RefText) -> ModelDiff:
    return service.diff_models(inst, ctx, project, a, b)


@router.put("/projects/{project}/hub/{kind}/aliases/{alias}", response_model=VersionDoc,
            summary="Point an alias at a version (protected aliases need a project admin)")
def set_alias(inst: Inst, ctx: Caller, project: str, kind: Kind, alias: str, body: AliasMove) -> VersionDoc:
    return service.set_alias(inst, ctx, project, kind, body.ref, alias, body.reason)


@router.patch("/projects/{project}/hub/{kind}/versions/{ref}", response_model=VersionDoc,
              summary="Change a version's tags or description (audited with before and after)")
def edit(inst: Inst, ctx: Caller, project: str, kind: Kind, ref: str, body: VersionEdit) -> VersionDoc:
    return service.edit(inst, ctx, project, kind, ref, body.reason, body.tags, body.remove_tags, body.description)


@router.post("/projects/{project}/hub/{kind}/versions/{ref}/archive", response_model=VersionDoc,
             summary="Move a version's bytes to the archive (still readable and verifiable)")
def archive(inst: Inst, ctx: Caller, project: str, kind: Kind, ref: str, body: Reason) -> VersionDoc:
    return retention.archive(inst, ctx, project, kind, ref, body.reason)


@router.post("/projects/{project}/hub/{kind}/versions/{ref}/purge", response_model=VersionDoc,
             summary="Remove a version's bytes when the retention policy allows (record and tombstone stay)")
def purge(inst: Inst, ctx: Caller, project: str, kind: Kind, ref: str, body: Reason) -> VersionDoc:
    return retention.purge(inst, ctx, project, kind, ref, body.reason)
