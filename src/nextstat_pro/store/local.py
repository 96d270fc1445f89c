"""Object store in a local (or shared network) folder.

Objects and refs are read-only files as open as their folder lets them be (``files.reach``):
0400 in an owner-only instance, 0440 in a group-shared one, whatever the umask."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..canonical import digest_of
from ..errors import DigestMismatchError
from ..files import atomic_write, atomic_write_many, ensure_folder, reach
from .base import (
    CHUNK,
    StoredObject,
    check_ref_name,
    checked_digest,
    checked_stream,
    file_digest,
    missing,
    object_key,
    verified,
)


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.resolve().as_uri()

    def _path(self, digest: str) -> Path:
        return self.root / object_key(digest)

    def put(self, data: bytes, digest: str | None = None) -> StoredObject:
        if digest is not None and self._path(digest).exists():
            return StoredObject(digest, len(data), created=False)
        digest = checked_digest(data, digest)
        path = self._path(digest)
        if path.exists():
            return StoredObject(digest, len(data), created=False)
        # Temp file, fsync, rename: readers see the whole object or none, even after a crash.
        atomic_write(path, data)
        return StoredObject(digest, len(data), created=True)

    def put_many(self, blobs: list[bytes]) -> list[StoredObject]:
        out: list[StoredObject] = []
        todo: dict[str, tuple[Path, bytes]] = {}
        for data in blobs:
            digest = digest_of(data)
            path = self._path(digest)
            created = digest not in todo and not path.exists()
            if created:
                todo[digest] = (path, data)
            out.append(StoredObject(digest, len(data), created))
        atomic_write_many(list(todo.values()))
        return out

    def get(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise missing(digest, str(path)) from None
        return verified(digest, data, str(path))

    def put_file(self, path: Path, digest: str | None = None) -> StoredObject:
        actual, size = file_digest(path)
        if digest is not None and digest != actual:
            raise DigestMismatchError(digest, actual, str(path))
        target = self._path(actual)
        if target.exists():
            return StoredObject(actual, size, created=False)
        folder = ensure_folder(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444 & reach(folder))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredObject(actual, size, created=True)

    def size(self, digest: str) -> int:
        path = self._path(digest)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise missing(digest, str(path)) from None

    def read_range(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._path(digest)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise missing(digest, str(path)) from None
        whole = start == 0 and end is None
        chunks = self._chunks(fh, start, end)
        return checked_stream(digest, chunks, str(path)) if whole else chunks

    @staticmethod
    def _chunks(fh: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
        with fh:
            fh.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = fh.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)

    # Refs: write-once named pointers (O_EXCL create): a second writer of the same name gets
    # False back and must compare, so a shard result can never be replaced.
    def _ref_path(self, name: str) -> Path:
        return self.root / "refs" / check_ref_name(name)

    def put_ref(self, name: str, digest: str) -> bool:
        path = self._ref_path(name)
        folder = ensure_folder(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.unlink(missing_ok=True)  # left read-only by a crashed writer of the same pid
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, digest.encode())
            os.fchmod(fd, 0o444 & reach(folder))
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def get_ref(self, name: str) -> str | None:
        path = self._ref_path(name)
        return path.read_text().strip() if path.exists() else None

    def list_refs(self, prefix: str) -> list[str]:
        folder = self._ref_path(prefix)
        if not folder.is_dir():
            return []
        return sorted(f"{prefix}/{p.name}" for p in folder.iterdir() if not p.name.startswith("."))
