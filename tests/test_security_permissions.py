"""Owner-only instance files (issue 21, part 1), shown with a second Unix account.

These tests need root (CI runs as root): they create Unix accounts and a group with
``useradd``/``groupadd`` and read as them with ``runuser``. Without root they fail, never skip.
The instances live in a folder every account may enter, so that only the instance's own modes
stand between the other account and its files (pytest's own temp folders are 0700)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nextstat_pro.files import atomic_write, ensure_folder, place_folder
from nextstat_pro.instance import Instance, init_instance
from nextstat_pro.permissions import InsecurePermissionsError, check_home_permissions, enforce, modes_for
from nextstat_pro.store import LocalStore, object_key

from .conftest import PASSWORD

PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else (shutil.which("python3") or "python3")
# A plain open, and the immutable one that reads a WAL database without writing its -shm (how a
# group member with read access only reads it).
READ_DB = ("import sqlite3, sys\n"
           "for url in (f'file:{sys.argv[1]}', f'file:{sys.argv[1]}?immutable=1'):\n"
           "    try:\n"
           "        print(sqlite3.connect(url, uri=True).execute('select count(*) from users').fetchone()); break\n"
           "    except sqlite3.Error:\n"
           "        pass\n"
           "else:\n"
           "    sys.exit(1)\n")


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests need root (CI runs as root): they create a second Unix account with useradd")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "runuser"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: these tests create and use a second Unix account")


def _account(name: str, group: str | None = None) -> bool:
    """Create the account ``name`` unless it exists (idempotent); True when this call made it."""
    if subprocess.run(["id", "-u", name], capture_output=True).returncode == 0:
        return False
    extra = ["-G", group] if group else []
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", *extra, name], check=True)
    return True


@pytest.fixture(scope="module")
def other() -> Iterator[str]:
    """A second local account, as on a shared analysis node (one per test process: parallel runs
    by other engineers never delete each other's)."""
    _need_root()
    name = f"nsp-other-{os.getpid()}"
    made = _account(name)
    yield name
    if made:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture(scope="module")
def team() -> Iterator[tuple[str, str]]:
    """A Unix group and a member of it (not the instance's owner)."""
    _need_root()
    group, member = f"nsp-team-{os.getpid()}", f"nsp-member-{os.getpid()}"
    made_group = subprocess.run(["getent", "group", group], capture_output=True).returncode != 0
    if made_group:
        subprocess.run(["groupadd", group], check=True)
    made_member = _account(member, group)
    yield group, member
    if made_member:
        subprocess.run(["userdel", member], capture_output=True)
    if made_group:
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder any account may enter and list (0755): only our modes protect what is inside."""
    path = Path(tempfile.mkdtemp(prefix="nsp-perm-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_user(user: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user, "--", *cmd], capture_output=True, text=True, timeout=120)


def can_read(user: str, path: Path) -> bool:
    """Whether ``user`` can read ``path`` by cat or by Python's open()."""
    by_cat = as_user(user, "cat", str(path)).returncode == 0
    by_open = as_user(user, PY, "-c", f"open({str(path)!r}, 'rb').read()").returncode == 0
    assert by_cat == by_open, f"cat and open() disagree on {path}"
    return by_cat


def can_query(user: str, db: Path) -> bool:
    """Whether ``user`` can read the users table (sqlite3's CLI where installed, Python's module always)."""
    ok = as_user(user, PY, "-c", READ_DB, str(db)).returncode == 0
    if shutil.which("sqlite3"):
        by_cli = as_user(user, "sqlite3", "-readonly", f"file:{db}?immutable=1",
                         "select count(*) from users").returncode == 0
        ok = ok or by_cli
    return ok


def objects_of(root: Path) -> list[Path]:
    return [p for p in (root / "sha256").rglob("*") if p.is_file()]


def wide_paths(top: Path, allowed: int = 0) -> list[str]:
    """Every path under ``top`` (itself included) with group or other bits beyond ``allowed``."""
    out = []
    for path in [top, *top.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077 & ~allowed:
            out.append(f"{path} {mode:04o}")
    return out


def init_cli(cli, home: Path, *extra: str):  # type: ignore[no-untyped-def]
    r = cli("--home", str(home), "init", "--admin", "admin", "--printed-name", "Ada Admin", *extra,
            env={"NSP_PASSWORD": PASSWORD})
    assert r.code == 0, r.err
    return r


def test_control_the_other_account_reads_what_is_world_readable(other: str, base: Path) -> None:
    """The method works: the same account reads a file that is world-readable in the same folder."""
    control = base / "control.txt"
    control.write_text("anyone may read this\n")
    os.chmod(control, 0o644)
    assert can_read(other, control)


def test_fresh_instance_is_owner_only_whatever_the_umask(cli, other: str, base: Path) -> None:  # type: ignore[no-untyped-def]
    old = os.umask(0)  # the widest a user could have: nothing may rely on it
    try:
        home = base / "home"
        init_cli(cli, home)
    finally:
        os.umask(old)
    assert wide_paths(home) == []
    folders = [p for p in [home, *home.rglob("*")] if p.is_dir()]
    assert {p.stat().st_mode & 0o7777 for p in folders} == {0o700}
    db = home / "nextstat-pro.db"
    assert db.stat().st_mode & 0o777 == 0o600
    assert not can_read(other, db) and not can_query(other, db)
    assert not can_read(other, home / "config.json")
    assert not can_read(other, home / "keys" / "audit-seal.key")
    assert not can_read(other, home / "witness" / "log.pub")
    inst = Instance.open(home)
    try:
        assert check_home_permissions(inst) == []
    finally:
        inst.close()


def test_after_runs_pushes_and_exports_nothing_is_readable(cli, other: str, base: Path) -> None:  # type: ignore[no-untyped-def]
    home, h = base / "home", ("--home", str(base / "home"))
    init_cli(cli, home)
    assert cli(*h, "examples", "write", str(base / "examples")).code == 0
    ws = str(base / "examples" / "example_workspace.json")
    assert cli(*h, "run", "fit", "--workspace", ws).code == 0
    r = cli(*h, "hub", "model", "push", "example", ws, "--version", "1.0.0", "--tag", "analysis=4top")
    assert r.code == 0, r.err
    run_id = json.loads(cli(*h, "runs", "list", "--json").out)[0]["run_id"]
    assert cli(*h, "runs", "export", run_id, str(base / "run-export")).code == 0
    assert cli(*h, "audit", "export", "--format", "csv", str(base / "audit-export")).code == 0
    # While the database is open (its -wal and -shm exist) and after the commands.
    inst = Instance.open(home)
    try:
        with inst.db.transaction() as s:
            s.connection().exec_driver_sql("select count(*) from runs").scalar()
        sidecars = [p for p in home.glob("nextstat-pro.db-*")]
        assert sidecars, "expected the WAL files while a connection is open"
        assert wide_paths(home) == []
        for path in sidecars:
            assert not can_read(other, path)
        assert check_home_permissions(inst) == []
    finally:
        inst.close()
    objects = objects_of(home / "objects")
    assert len(objects) >= 5  # inputs, result, log, manifest, envelope, the pushed model
    assert {p.stat().st_mode & 0o777 for p in objects} == {0o400}
    assert not can_query(other, home / "nextstat-pro.db")
    for obj in objects[:3]:
        assert not can_read(other, obj)
    # Exports leave the instance for a place the user chose: owner-only, whatever the instance.
    for export in (base / "run-export", base / "audit-export"):
        assert wide_paths(export) == []
        assert export.stat().st_mode & 0o777 == 0o700
        for path in (p for p in export.rglob("*") if p.is_file()):
            assert path.stat().st_mode & 0o777 == 0o600
        assert not can_read(other, export / ("manifest.json" if export.name == "run-export" else "events.csv"))


@pytest.mark.parametrize(("target", "mode"), [("home", 0o755), ("db", 0o644), ("objects", 0o755),
                                              ("config", 0o644), ("keys", 0o750), ("db", 0o666)])
def test_a_loosened_mode_is_refused_in_one_line(cli, other: str, base: Path, target: str, mode: int) -> None:  # type: ignore[no-untyped-def]
    home = base / "home"
    init_cli(cli, home)
    path = {"home": home, "db": home / "nextstat-pro.db", "objects": home / "objects",
            "config": home / "config.json", "keys": home / "keys"}[target]
    os.chmod(path, mode)
    if target in ("home", "db"):  # what the refusal guards against: the account reads it now
        os.chmod(home, 0o755)
        assert can_query(other, home / "nextstat-pro.db") == (target == "db")
        os.chmod(home, mode if target == "home" else 0o700)
    r = cli("--home", str(home), "runs", "list")
    assert r.code == 9, r.out
    lines = r.err.strip().splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0] and f"{mode:04o}" in lines[0] and "fix: chmod go-rwx" in lines[0]
    with pytest.raises(InsecurePermissionsError):
        Instance.open(home)
    inst = Instance.open(home, check_permissions=False)  # what audit verify uses to list them
    try:
        assert [p for p in check_home_permissions(inst) if str(path) in p]
    finally:
        inst.close()
    # audit verify looks all the same, and reports the wide path beside the trail's verdict.
    r = cli("--home", str(home), "audit", "verify")
    assert r.code == 9 and "audit trail intact, but instance files are too open" in r.err and str(path) in r.err
    os.chmod(path, 0o600 if target in ("db", "config") else 0o700)
    assert cli("--home", str(home), "audit", "verify").code == 0
    assert cli("--home", str(home), "runs", "list").code == 0


def test_an_instance_of_another_owner_is_refused(cli, other: str, base: Path) -> None:  # type: ignore[no-untyped-def]
    home = base / "home"
    init_cli(cli, home)
    shutil.chown(home / "nextstat-pro.db", user=other)
    r = cli("--home", str(home), "runs", "list")
    assert r.code == 9 and "is owned by" in r.err and "nextstat-pro.db" in r.err


def test_sqlite_database_outside_the_home_is_owner_only(other: str, base: Path) -> None:
    db = base / "elsewhere.db"
    inst = init_instance(base / "home", admin="admin", password=PASSWORD, db_url=f"sqlite:///{db}")
    inst.close()
    assert db.stat().st_mode & 0o777 == 0o600 and not can_query(other, db)
    os.chmod(db, 0o644)
    with pytest.raises(InsecurePermissionsError, match="elsewhere.db is mode 0644"):
        Instance.open(base / "home")


def test_shared_group_reads_but_others_do_not(cli, other: str, team: tuple[str, str], base: Path) -> None:  # type: ignore[no-untyped-def]
    group, member = team
    home, h = base / "home", ("--home", str(base / "home"))
    init_cli(cli, home, "--shared-group", group)
    assert cli(*h, "examples", "write", str(base / "examples")).code == 0
    assert cli(*h, "run", "fit", "--workspace", str(base / "examples" / "example_workspace.json")).code == 0
    config = json.loads((home / "config.json").read_text())
    assert config["permissions"]["shared_group"] == group
    assert home.stat().st_mode & 0o7777 == 0o2750 and (home / "objects").stat().st_mode & 0o7777 == 0o2750
    assert wide_paths(home, allowed=0o050) == []  # nothing writable by the group, nothing for others
    db, obj = home / "nextstat-pro.db", objects_of(home / "objects")[0]
    assert db.stat().st_mode & 0o777 == 0o640 and obj.stat().st_mode & 0o777 == 0o440
    assert can_query(member, db) and can_read(member, obj) and can_read(member, home / "config.json")
    assert not can_read(member, home / "keys" / "audit-seal.key")  # keys stay the owner's
    assert not can_query(other, db) and not can_read(other, obj)
    os.chmod(db, 0o660)
    r = cli(*h, "runs", "list")
    assert r.code == 9 and "fix: chmod g-w,o-rwx" in r.err
    os.chmod(db, 0o640)
    assert cli(*h, "runs", "list").code == 0


def test_store_objects_follow_their_folder_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        root = tmp_path / "objects"
        root.mkdir()
        os.chmod(root, 0o700)
        store = LocalStore(root)
        digest = store.put_many([b"one", b"two"])[0].digest
        store.put_ref("jobs/x/shard-1", digest)
        assert (root / object_key(digest)).stat().st_mode & 0o777 == 0o400
        assert (root / object_key(digest)).parent.stat().st_mode & 0o777 == 0o700
        assert (root / "refs" / "jobs" / "x" / "shard-1").stat().st_mode & 0o777 == 0o400
        assert wide_paths(root) == []
        shared = tmp_path / "shared"
        shared.mkdir()
        os.chmod(shared, 0o2750)
        atomic_write(shared / "a" / "b" / "note", b"x")
        assert (shared / "a" / "b").stat().st_mode & 0o7777 == 0o2750
        assert (shared / "a" / "b" / "note").stat().st_mode & 0o777 == 0o440
        assert ensure_folder(tmp_path / "new") & 0o7777 == 0o700  # as its parent (pytest's 0700 folder)
        place_folder({"x/y.txt": b"1", "z.txt": b"2"}, tmp_path / "export")
        assert wide_paths(tmp_path / "export") == []
    finally:
        os.umask(old)


def test_the_check_costs_well_under_a_millisecond(sqlite_instance: Instance) -> None:
    """The per-command cost: the stats of the check alone, and an open with and without it."""
    inst = sqlite_instance
    c = inst.config
    modes = modes_for(c.permissions)
    database = inst.db.engine.url.database

    def check() -> None:
        enforce(inst.home, c.db_url, database, c.store_url, c.archive_url, modes)

    samples = []
    for _ in range(2000):
        t = time.perf_counter()
        check()
        samples.append(time.perf_counter() - t)
    median = statistics.median(samples)
    print(f"\npermission check: median {median * 1e6:.1f} us over 2000")
    assert median < 0.5e-3
