"""Object store in a local (or shared network) folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..canonical import digest_of
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
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temp file in the same folder, fsync, then rename: readers see the
        # whole object or none of it, even after a crash.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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
