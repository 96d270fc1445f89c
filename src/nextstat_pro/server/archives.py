"""Uploaded zip archives, unpacked only when safe: every member a plain relative path (no
absolute name, no ``..``, no backslash, no control character), none a link, a device or
encrypted, no path twice, and at most a byte limit once decompressed, counted as the bytes are
written (a member's declared size can lie). Otherwise the archive is refused whole
(``UnsafeArchiveError``) and nothing of it is kept."""

from __future__ import annotations

import stat
import unicodedata
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import InputError
from ..store.base import CHUNK

MAX_MEMBERS = 100_000  # each member costs a directory entry in memory and an inode on disk


class UnsafeArchiveError(InputError):
    """An uploaded archive that would write outside its folder, or more than allowed."""


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The member's relative path, None for a folder entry; UnsafeArchiveError otherwise."""
    name = info.filename
    mode = info.external_attr >> 16
    if any(unicodedata.category(c).startswith("C") for c in name) or "\\" in name:
        raise UnsafeArchiveError(f"archive member {name!r} has a name that is not a plain path")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", "") for part in name.rstrip("/").split("/")) or not name.strip("/"):
        raise UnsafeArchiveError(f"archive member {name!r} leaves the archive's folder")
    if info.flag_bits & 0x1:
        raise UnsafeArchiveError(f"archive member {name!r} is encrypted")
    if info.is_dir():
        return None
    if mode and not (stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0):
        raise UnsafeArchiveError(f"archive member {name!r} is not a regular file (a link or a device)")
    return path


def unzip_safely(archive: Path, dest: Path, max_bytes: int) -> None:
    """Unpack the zip ``archive`` into the empty folder ``dest`` (see the module's documentation)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise UnsafeArchiveError(f"the archive has more than {MAX_MEMBERS} members")
            members: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
            seen: set[str] = set()
            declared = 0
            for info in infos:
                path = _member_path(info)
                if path is None:
                    continue
                key = unicodedata.normalize("NFC", path.as_posix())
                if key in seen:
                    raise UnsafeArchiveError(f"archive member {info.filename!r} appears twice")
                seen.add(key)
                declared += info.file_size
                members.append((info, path))
            if declared > max_bytes:
                raise UnsafeArchiveError(f"the archive holds more than {max_bytes} bytes once decompressed")
            written = 0
            root = dest.resolve()
            for info, path in members:
                target = root.joinpath(*path.parts)
                if not target.resolve().is_relative_to(root):  # a folder member that is a file, etc.
                    raise UnsafeArchiveError(f"archive member {info.filename!r} leaves the archive's folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("xb") as out:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise UnsafeArchiveError(
                                f"the archive holds more than {max_bytes} bytes once decompressed")
                        out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, RuntimeError) as exc:
        raise InputError(f"not a readable zip archive: {exc}") from None
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise UnsafeArchiveError("archive members overlap (a file and a folder of one name)") from None
