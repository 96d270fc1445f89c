"""``hub KIND import MANIFEST``: many versions from a manifest, in batches.

A registry is often filled from what exists already (an archive of workspaces, another
registry's export). Pushing those one by one pays a transaction, a writeback of the objects and
a commit per version; an import pays them once per batch. Nothing else changes: every version is
validated, content-addressed, stored and audited with its own ``hub.KIND.pushed`` event, exactly
as ``push`` does it (the same code, ``service.push_many``).

The manifest is JSON Lines, one version per line; paths are relative to the manifest:

    {"name": "ttbar", "file": "ttbar/v1.json", "version": "1.0.0", "tags": {"analysis": "a1"},
     "description": "...", "base": "ttbar-bkg@1.0.0"}

``name`` and ``file`` are required; ``base`` only for patchsets. The whole manifest is checked
(shape, names, labels, tags, files present) before anything is written. Each batch then commits
whole or not at all; when an entry is refused, the batches before it stay committed and the error
says so: fix the line and run the same import again, since versions that exist already are found
by their content, not created twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..access.context import RequestContext
from ..engine import InputFile
from ..errors import FieldError, InputError, NSPError, PartError, UsageError
from .documents import refresh_statistics
from .push import BatchEntryError, PushRequest, check_request, push_many
from .resolve import KINDS, ROLES
from .views import ImportReport

if TYPE_CHECKING:
    from ..instance import Instance

_FIELDS = {"name", "file", "version", "description", "tags", "base"}


@dataclass(frozen=True)
class ManifestEntry:
    line: int
    name: str
    path: Path
    size: int
    semver: str | None
    description: str
    tags: tuple[str, ...]
    base_ref: str | None

    def request(self, kind: str) -> PushRequest:
        inp = InputFile.read(ROLES[kind], self.path)
        return PushRequest(self.name, inp, self.semver, self.description, self.tags, self.base_ref)


class ImportFailed(PartError):
    """An entry was refused; the message says which and what was committed before it."""

    def __init__(self, message: str, error: NSPError, report: ImportReport) -> None:
        super().__init__(message, error)
        self.report = report


def parse_manifest(manifest: Path, kind: str, confine: bool = False) -> list[ManifestEntry]:
    """Every entry of ``manifest``, checked for shape, names, labels, tags and files present;
    with ``confine``, each file must be a regular file inside the manifest's folder."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r} ({', '.join(KINDS)})")
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"manifest not found: {manifest}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read manifest {manifest}: {exc}") from None
    entries = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            entry = _entry(number, text, manifest.parent, kind, confine)
            check_request(entry.name, entry.semver, entry.tags)
        except (InputError, UsageError) as exc:
            raise type(exc)(f"{manifest} line {number}: {exc.message}") from None
        entries.append(entry)
    if not entries:
        raise InputError(f"manifest {manifest} has no entries")
    return entries


def _entry(number: int, text: str, root: Path, kind: str, confine: bool = False) -> ManifestEntry:
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise InputError("an entry is a JSON object")
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(_FIELDS))})")
    for field_ in ("name", "file"):
        if not isinstance(doc.get(field_), str) or not doc[field_]:
            raise InputError(f"{field_!r} is required (a string)")
    for field_ in ("version", "description", "base"):
        if doc.get(field_) is not None and not isinstance(doc[field_], str):
            raise InputError(f"{field_!r} must be a string")
    tags = doc.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise InputError("'tags' must be an object of strings")
    if any("=" in k for k in tags):
        raise InputError("tag keys cannot contain '='")
    if kind == "patchset" and not doc.get("base"):
        raise UsageError("a patchset entry needs 'base' (its background-only model version)")
    if kind != "patchset" and doc.get("base"):
        raise UsageError(f"'base' is for patchsets, not {kind}s")
    path = root / doc["file"]
    # A manifest from elsewhere (an upload to the server) names files in its own folder only: an
    # absolute path, a '..' or a link would read the server's files into the registry.
    if confine and (path.is_symlink() or not path.resolve().is_relative_to(root.resolve())):
        raise InputError(f"file {doc['file']!r} is outside the manifest's folder")
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    return ManifestEntry(number, doc["name"], path, path.stat().st_size, doc.get("version"),
                         doc.get("description") or "", tuple(f"{k}={v}" for k, v in tags.items()), doc.get("base"))


def _batches(entries: list[ManifestEntry], size: int, max_bytes: int) -> Iterator[list[ManifestEntry]]:
    """Runs of at most ``size`` entries and about ``max_bytes`` of files (a batch's objects are
    held in memory until its writeback)."""
    batch: list[ManifestEntry] = []
    total = 0
    for entry in entries:
        if batch and (len(batch) >= size or total + entry.size > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(entry)
        total += entry.size
    if batch:
        yield batch


def import_manifest(instance: Instance, ctx: RequestContext, project_name: str, kind: str, manifest: Path,
                    batch_size: int = 500, max_batch_bytes: int = 256 << 20,
                    progress: Callable[[ImportReport], None] | None = None, confine: bool = False
                    ) -> ImportReport:
    """Push every entry of ``manifest`` as a version of ``kind`` in ``project_name``, a batch
    per transaction; see the module's documentation for what a refusal leaves behind. ``confine``:
    the manifest came from elsewhere, its files must be inside its folder (``parse_manifest``)."""
    if batch_size < 1:
        raise FieldError("a batch holds at least 1 version", "batch_size")
    entries = parse_manifest(manifest, kind, confine)
    report = ImportReport()
    for batch in _batches(entries, batch_size, max_batch_bytes):
        requests = []
        for entry in batch:
            try:
                requests.append(entry.request(kind))
            except NSPError as exc:
                raise _failed(manifest, entry, exc, report) from None
        try:
            results = push_many(instance, ctx, project_name, kind, requests)
        except BatchEntryError as exc:
            raise _failed(manifest, batch[exc.index], exc.error, report) from None
        except NSPError as exc:  # not an entry's fault (a role revoked meanwhile, ...)
            if not report.batches:
                raise
            raise ImportFailed(f"{exc.message}; committed before it: {report.summary()}", exc, report) from None
        created = sum(new for _, new in results)
        report = ImportReport(entries=report.entries + len(batch), created=report.created + created,
                              existing=report.existing + len(batch) - created, batches=report.batches + 1)
        if progress is not None:
            progress(report)
    if report.created:
        refresh_statistics(instance)
    return report


def _failed(manifest: Path, entry: ManifestEntry, error: NSPError, report: ImportReport) -> ImportFailed:
    if report.batches:
        after = (f"; committed before it: {report.summary()}. Fix the entry and run the same import again "
                 "(versions that exist are found by their content, not created twice)")
    else:
        after = "; nothing was imported"
    return ImportFailed(f"{manifest} line {entry.line}: {error.message}{after}", error, report)
