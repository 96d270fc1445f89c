"""The object store contract: sha256-addressed, write-once, verified on read."""

from __future__ import annotations

from dataclasses import dataclass
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
