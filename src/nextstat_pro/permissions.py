"""Who may read an instance's files, and the check every opening of an instance makes.

Owner-only by default: folders 0700, files 0600, write-once objects 0400, whatever the umask.
``init --shared-group GROUP`` lets one Unix group *read* them (PostgreSQL's
``initdb --allow-group-access``): folders 2750 (setgid, so what is created inside belongs to
the group), files 0640, objects 0440. Only the owner runs commands on the instance (the check
refuses anyone else, as PostgreSQL and OpenSSH do); the group can back it up or inspect it.

The check stats a handful of paths (the home, its config and keys, the SQLite file and its
``-wal``/``-shm``/``-journal``, the object and archive folders), never the objects themselves:
a folder that only its owner may enter protects whatever is inside it.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .errors import ConfigError

if TYPE_CHECKING:
    from .instance import Instance

# SQLite's companions of a database file: created with the database file's own mode.
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


class FilePolicy(BaseModel):
    """The ``permissions`` section of config.json: owner-only unless a group was chosen at init."""

    shared_group: str | None = None
    # Recorded with the name so that the per-command check needs no group database lookup
    # (NSS can mean LDAP round trips).
    shared_gid: int | None = None


@dataclass(frozen=True)
class FileModes:
    folder: int  # a folder the instance creates
    file: int  # a file it writes (the config, the SQLite database)
    umask: int  # the process umask while an instance is open
    forbidden: int  # bits no checked path may carry
    gid: int | None  # the group that may read, if any


OWNER_ONLY = FileModes(folder=0o700, file=0o600, umask=0o077, forbidden=0o077, gid=None)


def modes_for(policy: FilePolicy) -> FileModes:
    if policy.shared_gid is None:
        return OWNER_ONLY
    return FileModes(folder=0o2750, file=0o640, umask=0o027, forbidden=0o027, gid=policy.shared_gid)


class InsecurePermissionsError(ConfigError):
    """An instance path that others may read or write, or that another user owns (exit 9)."""


def shared_group_policy(name: str) -> FilePolicy:
    """The policy for ``init --shared-group NAME``: the group must exist and include the caller
    (a file cannot be given to a group its owner is not in)."""
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"no Unix group named {name!r} (create it first: groupadd {name})") from None
    if os.geteuid() != 0 and gid not in os.getgroups() and gid != os.getegid():
        raise ConfigError(f"you are not a member of group {name!r}: usermod -aG {name} $USER, then log in again")
    return FilePolicy(shared_group=name, shared_gid=gid)


def apply_umask(modes: FileModes) -> None:
    """Everything this process creates from now on is private to the owner (and the group):
    SQLite's own files, keys, job folders, files of code that sets no mode of its own.
    Process-wide on purpose: an instance's process should create nothing others can read."""
    os.umask(modes.umask)


def secure(path: Path, modes: FileModes, folder: bool) -> None:
    """Give an existing path exactly the instance's mode and group (init claims its folders)."""
    try:
        os.chmod(path, modes.folder if folder else modes.file)
        if modes.gid is not None and os.stat(path).st_gid != modes.gid:
            os.chown(path, -1, modes.gid)
    except OSError as exc:
        raise ConfigError(f"cannot set the permissions of {path}: {exc.strerror}") from None


def make_folder(path: Path, modes: FileModes) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    secure(path, modes, folder=True)


def make_file(path: Path, modes: FileModes) -> None:
    """Create an empty file with the instance's mode before anything else opens it (SQLite then
    gives its ``-wal``, ``-shm`` and journal the database file's mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, modes.file))
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    secure(path, modes, folder=False)


def sqlite_path(database: str | None) -> Path | None:
    """The file of an SQLite URL's database part, or None (in memory, or another database)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def instance_paths(home: str, db_file: str | None, store_roots: Iterable[str]) -> list[str]:
    """What the check stats. Plain strings: pathlib's joins cost more than the stats."""
    paths = [home, f"{home}/config.json", f"{home}/keys"]
    if db_file is not None:
        paths.extend((db_file, *(db_file + s for s in SQLITE_SIDECARS)))
    for root in store_roots:
        paths.extend((root, f"{root}/sha256", f"{root}/refs"))
    return paths


def problems(paths: Iterable[str], modes: FileModes) -> list[str]:
    """One line per path that is wider than ``modes`` allow or not the caller's (missing paths
    are no problem: the SQLite companions and the object folders come and go)."""
    euid = os.geteuid()
    found: list[str] = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if st.st_uid != euid:
            found.append(f"{path} is owned by {_user(st.st_uid)}, not by {_user(euid)} who runs this: run "
                         f"nextstat-pro as its owner (or: chown -R {_user(euid)} {path})")
            continue
        mode = stat.S_IMODE(st.st_mode)
        wide = mode & modes.forbidden
        if wide:
            found.append(f"{path} is mode {mode:04o}: {_who(wide)} {_what(wide)} it; fix: chmod "
                         f"{'g-w,o-rwx' if modes.gid is not None else 'go-rwx'} {path}")
        elif modes.gid is not None and mode & 0o070 and st.st_gid != modes.gid:
            found.append(f"{path} is readable by group {_group(st.st_gid)}, not {_group(modes.gid)}; fix: "
                         f"chgrp {_group(modes.gid)} {path}")
    return found


def check_home_permissions(instance: Instance) -> list[str]:
    """The permission problems of an open instance (none: an empty list), for ``audit verify``."""
    c = instance.config
    return problems(paths_of(instance.home, c.db_url, instance.db.engine.url.database, c.store_url, c.archive_url),
                    modes_for(c.permissions))


def paths_of(home: Path, db_url: str, database: str | None, store_url: str, archive_url: str | None) -> list[str]:
    """The paths whose modes and owner the check reads, from an instance's configuration."""
    db_file = sqlite_path(database) if db_url.startswith("sqlite") else None
    return instance_paths(str(home), None if db_file is None else str(db_file),
                          _store_roots(str(home), store_url, archive_url))


def _store_roots(home: str, store_url: str, archive_url: str | None) -> list[str]:
    """The local folders of the object store and of the archive (S3 has no file modes)."""
    if archive_url is None and not store_url.startswith("s3://"):
        archive_url = f"{home}/archive"  # Instance.archive()'s default
    roots = []
    for url in (store_url, archive_url):
        if url is not None and not url.startswith("s3://"):
            roots.append(url[len("file://"):] if url.startswith("file://") else url)
    return roots


def enforce(home: Path, db_url: str, database: str | None, store_url: str, archive_url: str | None,
            modes: FileModes) -> None:
    """Refuse to open an instance whose files are wider than configured, in one line."""
    found = problems(paths_of(home, db_url, database, store_url, archive_url), modes)
    if found:
        more = f" (and {len(found) - 1} more; nextstat-pro audit verify lists them)" if len(found) > 1 else ""
        raise InsecurePermissionsError(f"refusing to open the instance: {found[0]}{more}")


def _who(bits: int) -> str:
    who = [name for name, mask in (("the group", 0o070), ("every local account", 0o007)) if bits & mask]
    return " and ".join(who)


def _what(bits: int) -> str:
    return "may change" if bits & 0o022 else "may read"


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"
