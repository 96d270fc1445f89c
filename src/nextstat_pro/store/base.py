"""The object store contract: sha256-addressed, write-once, verified on read."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..canonical import digest_of, parse_digest
from ..errors import DigestMismatchError, NotFoundError


@dataclass(frozen=True)
class StoredObject:
    digest: str
    size: int
    created: bool  # False when identical bytes were already stored


@runtime_checkable
class ObjectStore(Protocol):
    """A store of immutable objects named by the sha256 of their bytes.

    Implementations write atomically (a crash never leaves a partial object under a
    digest) and check the digest on every read.
    """

    url: str

    def put(self, data: bytes, digest: str | None = None) -> StoredObject:
        """Store ``data``. A caller that already hashed it passes ``digest``: an object already
        stored under it is not hashed again (it was verified when written)."""
        ...

    def put_many(self, blobs: list[bytes]) -> list[StoredObject]:
        """Store several objects, all durable when it returns (one durability barrier for the
        batch where the backend has one)."""
        ...

    def get(self, digest: str) -> bytes: ...

    def put_file(self, path: Path, digest: str | None = None) -> StoredObject:
        """Store a file's bytes without holding them in memory (an upload spooled to disk). A
        given ``digest`` is checked against the bytes: a mismatch stores nothing."""
        ...

    def size(self, digest: str) -> int:
        """The stored object's length in bytes (NotFoundError when absent)."""
        ...

    def read_range(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` in chunks, never the whole object at once. Read whole
        (``start`` 0, no ``end``), the chunks are hashed as they pass and the last step raises
        DigestMismatchError if they do not hash to ``digest``."""
        ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None: ...

    def put_ref(self, name: str, digest: str) -> bool: ...

    def get_ref(self, name: str) -> str | None: ...

    def list_refs(self, prefix: str) -> list[str]: ...


def object_key(digest: str) -> str:
    """Relative path of an object: ``sha256/ab/abcdef...`` (fan-out keeps folders small)."""
    hexpart = parse_digest(digest)
    return f"sha256/{hexpart[:2]}/{hexpart}"


def verified(digest: str, data: bytes, where: str) -> bytes:
    actual = digest_of(data)
    if actual != digest:
        raise DigestMismatchError(digest, actual, where)
    return data


def checked_digest(data: bytes, claimed: str | None) -> str:
    """The digest of ``data``; a caller's claimed digest must be it."""
    digest = digest_of(data)
    if claimed is not None and claimed != digest:
        raise DigestMismatchError(claimed, digest, "bytes handed to the store")
    return digest


def missing(digest: str, where: str) -> NotFoundError:
    return NotFoundError(f"object {digest} is not in the store ({where})")


def check_ref_name(name: str) -> str:
    """Refs are small named pointers to objects (``jobs/<spec>/shard-00003``): write-once."""
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts) or not all(
            c.isalnum() or c in "-_./:" for c in name):
        raise ValueError(f"invalid ref name {name!r}")
    return name


CHUNK = 1 << 20  # streamed reads and writes move 1 MiB at a time


def file_digest(path: Path) -> tuple[str, int]:
    """The ``sha256:`` digest and size of a file, read in chunks."""
    h, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def checked_stream(digest: str, chunks: Iterator[bytes], where: str) -> Iterator[bytes]:
    """Pass ``chunks`` through, then fail if they did not hash to ``digest`` (a reader that
    got every byte learns the object was corrupt; a streamed response is cut short)."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
        yield chunk
    actual = "sha256:" + h.hexdigest()
    if actual != digest:
        raise DigestMismatchError(digest, actual, where)
