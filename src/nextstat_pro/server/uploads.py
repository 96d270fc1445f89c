"""Uploaded files, spooled to a private temp folder under names the client cannot steer.

A service reads caller-named files by path (``runs.references``); an upload becomes such a file
in a folder made for the request and removed after it. A file name is kept only as its last
component and only if it is a plain name (no separators, no ``..``, no control characters): a
name like ``../../etc/passwd`` is refused, never followed. A client may send the sha256 of each
file (``sha256:<hex>``); a mismatch is refused before anything is stored.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import Request, UploadFile

from ..access.context import RequestContext
from ..errors import FieldError, InputError
from ..identity.auth import record_refusal
from ..instance import Instance
from .archives import UnsafeArchiveError, unzip_safely
from .auth import client_of

CHUNK = 1 << 20


class UploadDigestError(InputError):
    """An upload's bytes do not hash to the digest its sender declared (damaged in transit, or
    not the file the sender meant): refused before anything is stored."""

    def __init__(self, field: str, expected: str, actual: str) -> None:
        super().__init__(f"upload {field!r} hashes to {actual}, not the declared {expected}")
        self.fields = (field,)
        self.expected = expected
        self.actual = actual


def safe_name(name: str | None, fallback: str) -> str:
    """A plain file name from a client, or FieldError (path traversal, control characters)."""
    if not name:
        return fallback
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("..") or any(
            unicodedata.category(c).startswith("C") for c in name) or len(name) > 255:
        raise FieldError(f"file name {name!r} is not a plain file name", "filename")
    return name


@contextmanager
def spool_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="nsp-upload-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save(upload: UploadFile, folder: Path, field: str, expected: str | None = None) -> Path:
    """Write ``upload`` into ``folder`` (in chunks) and check ``expected`` (``sha256:<hex>``)."""
    sub = folder / field  # one sub-folder per field: two fields may carry the same file name
    sub.mkdir()
    path = sub / safe_name(upload.filename, field)
    h = hashlib.sha256()
    with path.open("wb") as out:
        while chunk := upload.file.read(CHUNK):
            h.update(chunk)
            out.write(chunk)
    actual = "sha256:" + h.hexdigest()
    if expected is not None and expected != actual:
        raise UploadDigestError(field, expected, actual)
    return path


def save_checked(inst: Instance, ctx: RequestContext, request: Request, upload: UploadFile, folder: Path,
                 field: str, expected: str | None, target: tuple[str, str]) -> Path:
    """``save``, and a digest mismatch audited as an ``auth.refused`` event (``digest_mismatch``)."""
    try:
        return save(upload, folder, field, expected)
    except UploadDigestError as exc:
        record_refusal(inst, "digest_mismatch", client=client_of(request), who=ctx.actor.username or ctx.actor.id,
                       target=target, detail={"expected": exc.expected, "actual": exc.actual})
        raise


def unpack_upload(inst: Instance, ctx: RequestContext, request: Request, upload: UploadFile, folder: Path,
                  field: str, expected: str | None, target: tuple[str, str]) -> Path:
    """Spool the uploaded zip ``field`` (digest-checked) and unpack it safely (``archives``) into a
    folder of ``folder``; a digest mismatch or an unsafe archive is refused and audited. Returns
    the folder."""
    archive = save_checked(inst, ctx, request, upload, folder, field, expected, target)
    dest = folder / f"{field}.unpacked"
    dest.mkdir()
    try:
        unzip_safely(archive, dest, inst.config.server.max_body_bytes)
    except UnsafeArchiveError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        record_refusal(inst, "unsafe_archive", client=client_of(request), who=ctx.actor.username or ctx.actor.id,
                       target=target, detail={"problem": exc.message})
        raise
    return dest
