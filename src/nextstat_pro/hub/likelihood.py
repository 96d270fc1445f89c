"""``hub import-likelihood``: a HEPData likelihood archive as linked registry versions.

HEPData publishes a full likelihood as one archive (``.tar.gz``, ``.tgz``, ``.tar``, or a zip)
holding a background-only workspace and one or more pyhf patchsets, with names that vary from
one analysis to the next and often inside one top-level folder. An import reads the archive in
memory (never extracting it to disk), finds the workspace and the patchsets by what they are (the
JSON that validates as a pyhf workspace, the JSON that validates as a patchset), and pushes the
workspace as model ``NAME@VERSION`` and each patchset as a patchset version linked to it, all in
one transaction: every version is checked, stored and audited as ``push`` does it, or none is.

An archive comes from the internet, so it is refused whole (``InputError``, nothing stored) when
a member's path leaves the archive (``..``, an absolute name), a member is a link, a device or a
FIFO, a path appears twice, or it holds more than ``max_bytes`` once decompressed.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..db.models import Project
from ..engine import InputFile
from ..engine.schemas import Kind, validate
from ..errors import FieldError, InputError, NSPError
from ..projects.service import authorized_project
from .content import Content, model_content, patchset_content
from .push import BatchEntryError, PushRequest, check_request, push_in
from .refs import NAME
from .resolve import Resolved, read_source
from .views import ArchiveVersion, LikelihoodImport

if TYPE_CHECKING:
    from ..instance import Instance

# The bound on an archive's bytes once decompressed (the tar stream; a zip's members): a few
# kilobytes of gzip can hold gigabytes of zeros, and an import holds the archive in memory. The
# largest HEPData likelihoods are some hundred megabytes; ``--max-mb`` raises the bound.
MAX_BYTES = 256 << 20
# Members an archive may have: each costs a header and an entry in tarfile's member list.
MAX_MEMBERS = 10_000
ARCHIVE_TAG = "hepdata_archive"

_DECOMPRESSORS: dict[bytes, Callable[[io.BytesIO], io.BufferedIOBase]] = {
    b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f),
    b"BZh": lambda f: bz2.BZ2File(f),
    b"\xfd7zXZ\x00": lambda f: lzma.LZMAFile(f),
}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# What a damaged or unusual archive raises: RuntimeError for an encrypted zip member,
# NotImplementedError for an unknown zip compression, EOFError for a truncated stream.
_ZIP_ERRORS = (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, OSError, zlib.error, lzma.LZMAError)
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class Member:
    """A regular file of the archive: its path inside it (normalised) and its bytes."""

    path: str
    data: bytes


@dataclass(frozen=True)
class Likelihood:
    """What an archive holds: its one workspace and its patchsets (by path)."""

    archive: str
    sha256: str
    workspace: Member
    patchsets: tuple[Member, ...]


@dataclass(frozen=True)
class Pushed:
    """One version an import pushed (or found: identical content is the existing version)."""

    kind: str
    member: str
    resolved: Resolved
    created: bool

    def view(self) -> ArchiveVersion:
        v = self.resolved.version
        return ArchiveVersion(kind=self.kind, name=self.resolved.item.name, label=self.resolved.label,
                              semver=v.semver, digest=v.digest, created=self.created, file=self.member,
                              patches=v.meta["patches"] if self.kind == "patchset" else None)


def import_likelihood(instance: Instance, ctx: RequestContext, project_name: str, archive: Path, name: str,
                      semver: str, description: str | None = None, tags: tuple[str, ...] = (),
                      max_bytes: int = MAX_BYTES) -> LikelihoodImport:
    """Push the archive's workspace as model ``name@semver`` and its patchsets as patchset
    versions based on it, in one transaction (see the module's documentation)."""
    check_request(name, semver, tags)  # a typo in an option before an archive is read
    likelihood = read_likelihood(archive, max_bytes)
    model, patchsets = _requests(likelihood, name, semver, description, (*tags, f"{ARCHIVE_TAG}={likelihood.sha256}"))
    # Checked before the transaction: the engine loads the workspace, and SQLite holds its
    # write lock from the first statement to the commit. Parsed with json, as pyhf parses it
    # for its digest.
    model_c = model_content(model.inp)
    workspace_doc = json.loads(model.inp.data)
    contents = [patchset_content(p.inp, workspace_doc, model_c.digest) for p in patchsets]
    with instance.db.transaction() as session:  # the model and its patchsets: both or neither
        project = authorized_project(session, ctx, project_name, "hub.push")
        pushed_model, pushed_patchsets = _push_linked(instance, session, ctx, project, (model, model_c),
                                                      list(zip(patchsets, contents, strict=True)))
    return LikelihoodImport(archive_sha256=likelihood.sha256, model=pushed_model.view(),
                            patchsets=[p.view() for p in pushed_patchsets])


def _requests(likelihood: Likelihood, name: str, semver: str, description: str | None, tags: tuple[str, ...]
              ) -> tuple[PushRequest, list[PushRequest]]:
    """The model's push and its patchsets' pushes, names and labels checked."""
    def request(item: str, role: str, member: Member) -> PushRequest:
        text = f"from HEPData likelihood {likelihood.archive}: {member.path}" if description is None else description
        return PushRequest(item, InputFile.from_bytes(role, member.path, member.data), semver, text, tags)

    names = patchset_names(name, likelihood.patchsets)
    patchsets = [request(n, "patchset", m) for n, m in zip(names, likelihood.patchsets, strict=True)]
    for req in patchsets:
        check_request(req.name, req.semver, req.tags)
    return request(name, "workspace", likelihood.workspace), patchsets


def patchset_names(name: str, patchsets: tuple[Member, ...]) -> list[str]:
    """One patchset is item ``name`` (its ref reads like the model's: ``name@V#patch``); several
    are ``name-<file stem>``, since one item cannot hold two versions with one label."""
    if len(patchsets) == 1:
        return [name]
    names = [f"{name}-{_stem(m.path)}"[:100] for m in patchsets]
    for member, candidate in zip(patchsets, names, strict=True):
        if not NAME.match(candidate):
            raise InputError(f"patchset {member.path}: no registry name can be made of its file name")
    if len(set(names)) != len(names):
        raise InputError("two patchsets of the archive would get the same name: "
                         f"{', '.join(m.path for m in patchsets)}")
    return names


def _stem(path: str) -> str:
    stem = path.rsplit("/", 1)[-1].removesuffix(".json")
    return re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-.") or "patchset"


def _push_linked(instance: Instance, session: Session, ctx: RequestContext, project: Project,
                 model: tuple[PushRequest, Content], patchsets: list[tuple[PushRequest, Content]]
                 ) -> tuple[Pushed, list[Pushed]]:
    """The model, then its patchsets against the model version it became, in the caller's transaction."""
    base, created = _push_kind(instance, session, ctx, project, "model", [model])[0]
    if not created:
        patchsets = _against_stored(instance, base, model[0].inp, patchsets)
    requests = [replace(req, content=content) for req, content in patchsets]
    results = _push_kind(instance, session, ctx, project, "patchset", [(r, r.content) for r in requests])
    pushed_model = Pushed("model", model[0].inp.name, base, created)
    return pushed_model, [Pushed("patchset", req.inp.name, r, new)
                          for req, (r, new) in zip(requests, results, strict=True)]


def _push_kind(instance: Instance, session: Session, ctx: RequestContext, project: Project, kind: str,
               pairs: list[tuple[PushRequest, Content | None]]) -> list[tuple[Resolved, bool]]:
    try:
        return push_in(instance, session, ctx, project, kind, [replace(req, content=c) for req, c in pairs])
    except BatchEntryError as exc:  # a label taken by other content: the version's own error
        raise exc.error from None


def _against_stored(instance: Instance, base: Resolved, workspace: InputFile,
                    patchsets: list[tuple[PushRequest, Content]]) -> list[tuple[PushRequest, Content]]:
    """The patchsets checked against the model version that held the archive's workspace
    already: runs read that version's file as pushed, and it can be another file with the same
    content, whose pyhf digest differs (canonical identity reads ``1.0`` and ``1`` alike)."""
    if base.version.meta.get("source_digest") == workspace.digest:
        return patchsets
    stored = json.loads(read_source(instance, base.version))
    try:
        return [(req, patchset_content(req.inp, stored, base.version.digest)) for req, _ in patchsets]
    except InputError as exc:
        raise InputError(f"{exc.message} (model {base.label} holds this workspace already, pushed from a file "
                         "whose pyhf digest differs; nothing was imported)") from None


def read_likelihood(archive: Path, max_bytes: int = MAX_BYTES) -> Likelihood:
    """The workspace and patchsets of ``archive``, every member checked (see the module)."""
    if max_bytes < 1:
        raise FieldError("the archive size bound must be positive", "max_bytes")
    data = _read_bounded(archive, max_bytes)
    try:
        members = list(_members(data, max_bytes))
    except _TooLarge as exc:
        raise ArchiveTooLarge(f"archive {archive.name} refused: {exc}; nothing was imported") from None
    except _Refused as exc:
        raise InputError(f"archive {archive.name} refused: {exc}; nothing was imported") from None
    workspace, patchsets = _identify(archive.name, members)
    return Likelihood(archive.name, hashlib.sha256(data).hexdigest(), workspace, patchsets)


class _Refused(Exception):
    """Why an archive is refused whole (made an ``InputError`` naming the archive)."""


class _TooLarge(_Refused):
    """Refused for its size alone (a larger ``max_bytes`` would admit it)."""


class ArchiveTooLarge(InputError):
    """An archive larger than the import's size bound: ``fields`` names the request's field that
    sets it, for an adapter to name its own option."""

    fields = ("max_bytes",)


def _read_bounded(archive: Path, max_bytes: int) -> bytes:
    try:
        with archive.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"archive not found: {archive}") from None
    except OSError as exc:
        raise InputError(f"cannot read archive {archive}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise ArchiveTooLarge(f"archive {archive.name} refused: larger than {_size(max_bytes)}; nothing was imported")
    return data


def _size(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"


def _members(data: bytes, max_bytes: int) -> Iterator[Member]:
    if data.startswith(_ZIP_MAGIC):
        yield from _zip_members(data, max_bytes)
        return
    try:
        yield from _tar_members(_tar_stream(data, max_bytes), max_bytes)
    except _TAR_ERRORS as exc:
        raise _Refused(f"not a readable tar or zip archive ({exc or type(exc).__name__})") from None


def _tar_stream(data: bytes, max_bytes: int) -> bytes:
    """The uncompressed tar stream, decompressed here with the bound: tarfile would read a pax
    header of any declared size into memory before a member could be checked."""
    opener = next((o for magic, o in _DECOMPRESSORS.items() if data.startswith(magic)), None)
    if opener is None:
        return data
    with opener(io.BytesIO(data)) as f:
        stream = f.read(max_bytes + 1)
    if len(stream) > max_bytes:
        raise _TooLarge(f"more than {_size(max_bytes)} once decompressed")
    return stream


def _tar_members(stream: bytes, max_bytes: int) -> Iterator[Member]:
    budget = _Budget(max_bytes)
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r:") as tar:
        for info in tar:
            path = budget.admit(info.name, _tar_kind(info))
            if path is None:
                continue
            # Checked before reading: a sparse member's declared size can exceed the stream.
            budget.spend(path, info.size)
            f = tar.extractfile(info)
            assert f is not None  # a regular file
            yield Member(path, f.read())


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "a symbolic link"
    if info.islnk():
        return "a hard link"
    if info.ischr() or info.isblk():
        return "a device file"
    if info.isfifo():
        return "a FIFO"
    return f"of an unsupported type ({info.type!r})"


def _zip_members(data: bytes, max_bytes: int) -> Iterator[Member]:
    budget = _Budget(max_bytes)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                path = budget.admit(info.filename, _zip_kind(info))
                if path is None:
                    continue
                # The declared size can lie: read at most what the bound has left, plus one.
                with zf.open(info) as f:
                    body = f.read(budget.left + 1)
                budget.spend(path, len(body))
                yield Member(path, body)
    except _ZIP_ERRORS as exc:
        raise _Refused(f"not a readable zip archive ({exc})") from None


def _zip_kind(info: zipfile.ZipInfo) -> str:
    if info.is_dir():
        return "dir"
    # The Unix file type, when a Unix zip recorded one (many write permission bits only).
    mode = info.external_attr >> 16 if info.create_system == 3 else 0
    if not stat.S_IFMT(mode) or stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "of an unsupported type"


class _Budget:
    """The checks every member passes, whatever the archive format: count, path, kind, bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.left = max_bytes
        self.max_bytes = max_bytes
        self.seen: set[str] = set()

    def admit(self, name: str, kind: str) -> str | None:
        """The member's normalised path if it is a regular file to read, None for a folder."""
        if len(self.seen) >= MAX_MEMBERS:
            raise _Refused(f"more than {MAX_MEMBERS} members")
        path = _checked_path(name)
        if kind == "dir":
            return None
        if kind != "file":
            raise _Refused(f"member {name!r} is {kind}")
        if path in self.seen:
            raise _Refused(f"member {name!r} appears twice")
        self.seen.add(path)
        return path

    def spend(self, path: str, size: int) -> None:
        if size > self.left:
            raise _TooLarge(f"more than {_size(self.max_bytes)} once decompressed, at member {path!r}")
        self.left -= size


def _checked_path(name: str) -> str:
    """``name`` as a relative path inside the archive; a name that would leave it is refused
    (backslashes count as separators: archives made on Windows use them)."""
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise _Refused(f"member {name!r} has an absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Refused(f"member {name!r} leaves the archive's folder (path traversal)")
    return "/".join(parts)


def _identify(archive: str, members: list[Member]) -> tuple[Member, tuple[Member, ...]]:
    """The one workspace and the patchsets among ``members``, by content."""
    found = [(m, _classify(m)) for m in sorted(members, key=lambda m: m.path)]
    workspaces = [m for m, what in found if what == "workspace"]
    patchsets = tuple(m for m, what in found if what == "patchset")
    if len(workspaces) != 1:
        few = "no" if not workspaces else f"{len(workspaces)}"
        raise InputError(f"archive {archive} has {few} pyhf workspace(s) ({_summary(found)}); an import takes "
                         "exactly one background-only workspace; nothing was imported")
    if not patchsets:
        raise InputError(f"archive {archive} has no pyhf patchset ({_summary(found)}); nothing was imported")
    return workspaces[0], patchsets


def _classify(member: Member) -> str:
    """``workspace``, ``patchset``, or why the member is neither."""
    if not member.data.lstrip()[:1] == b"{":
        return "not a JSON object"
    try:
        doc = orjson.loads(member.data)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    kinds: tuple[Kind, ...] = ("workspace", "patchset")
    for kind in kinds:
        try:
            validate(doc, kind, kind)
        except NSPError as exc:
            if kind == "workspace" and "channels" in doc or kind == "patchset" and "patches" in doc:
                return exc.message  # it meant to be one: say why it is not
            continue
        return kind
    return "neither a pyhf workspace nor a patchset"


def _summary(found: list[tuple[Member, str]], shown: int = 4) -> str:
    if not found:
        return "it holds no file"
    parts = [f"{m.path}: {what}" for m, what in found[:shown]]
    return "; ".join(parts) + (f"; {len(found) - shown} more" if len(found) > shown else "")
