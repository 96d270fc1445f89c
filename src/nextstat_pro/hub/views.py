"""What the registry operations return: the documents of ``hub KIND push|list|versions|show|diff|import``
and ``hub import-likelihood``.

Each model is the ``--json`` output of its command and the body an HTTP server will send; the JSON
Schemas in ``docs/schemas/views/`` are generated from them (``nextstat_pro.view_schemas``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ..viewbase import VIEW_CONFIG

_VIEW = VIEW_CONFIG


class VersionDoc(BaseModel):
    """One registry version: its identity (the content digest), label, metadata, tags and aliases."""

    model_config = _VIEW

    name: str
    kind: str = Field(description="model, dataset, patchset or template.")
    version_id: str
    semver: str | None
    digest: str = Field(description="The sha256 of the version's canonical content: its identity.")
    size: int
    media_type: str
    description: str
    tags: dict[str, str]
    aliases: list[str]
    meta: dict[str, Any] = Field(description="What the content check found (channels, patches, columns, ...).")
    created_at: datetime
    archived: bool
    purged: bool


class VersionRun(BaseModel):
    """A run that used a version, and the reference it named the version by."""

    model_config = _VIEW

    run_id: str
    task: str
    status: str
    ref: str
    created_at: datetime


class VersionDetail(VersionDoc):
    """One version as ``hub KIND show`` shows it; ``runs`` when asked for (``--runs``)."""

    runs: list[VersionRun] | None = None


class Pushed(BaseModel):
    """A version a push stored, or found: identical content is the existing version."""

    model_config = _VIEW

    kind: str
    name: str
    label: str = Field(description="name@semver, or name@sha256:… without a label.")
    version_id: str
    semver: str | None
    digest: str
    created: bool = Field(description="False when identical content was there already.")


class ModelChange(BaseModel):
    """One difference between two workspaces."""

    model_config = _VIEW

    path: str
    change: str
    a: Any
    b: Any


class ModelDiff(BaseModel):
    """What differs from workspace version ``a`` to ``b``: channels, samples, modifiers, bins, data."""

    model_config = _VIEW

    a: str
    b: str
    identical: bool
    changes: list[ModelChange]


class ImportReport(BaseModel):
    """Where a manifest import stands: entries done, versions created and found, batches committed."""

    model_config = _VIEW

    entries: int = 0
    created: int = 0
    existing: int = 0
    batches: int = 0

    def summary(self) -> str:
        return (f"{self.entries} entries in {self.batches} committed batch(es): {self.created} version(s) created, "
                f"{self.existing} existing")


class ArchiveVersion(BaseModel):
    """A version a likelihood import pushed (or found), and the archive member it came from."""

    model_config = _VIEW

    kind: str
    name: str
    label: str = Field(description="name@semver.")
    semver: str | None
    digest: str
    created: bool
    file: str = Field(description="The member of the archive, by its path inside it.")
    patches: list[str] | None = Field(None, description="A patchset's patch names.")


class LikelihoodImport(BaseModel):
    """A HEPData likelihood archive imported: its model and the patchsets linked to it."""

    model_config = _VIEW

    archive_sha256: str
    model: ArchiveVersion
    patchsets: list[ArchiveVersion]


VIEWS: tuple[type[BaseModel], ...] = (VersionDoc, VersionDetail, Pushed, ModelDiff, ImportReport, LikelihoodImport)
