"""Object store in a local (or shared network) folder."""

from __future__ import annotations

from pathlib import Path

from ..canonical import digest_of
from ..files import atomic_write
from .base import StoredObject, missing, object_key, verified


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.resolve().as_uri()

    def _path(self, digest: str) -> Path:
        return self.root / object_key(digest)

    def put(self, data: bytes) -> StoredObject:
        digest = digest_of(data)
        path = self._path(digest)
        if path.exists():
            return StoredObject(digest, len(data), created=False)
        # Temp file, fsync, rename: readers see the whole object or none, even after a crash.
        atomic_write(path, data)
        return StoredObject(digest, len(data), created=True)

    def get(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise missing(digest, str(path)) from None
        return verified(digest, data, str(path))

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)
