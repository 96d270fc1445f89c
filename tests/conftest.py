"""Shared fixtures. Database tests run on SQLite and on the PostgreSQL server that
`make test` starts; a missing server fails the test (it never skips)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from nextstat_pro.cli.main import main
from nextstat_pro.instance import Instance, init_instance

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NSP_SHARED") or ROOT.parent / "shared")
WORKSPACES = SHARED / "workspaces"
PASSWORD = "test-password-123"


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"test input {path} is missing: the suite reads ../shared beside the project")
    return path


def pg_admin_url() -> str:
    url = os.environ.get("NSP_TEST_PG_URL")
    if not url:
        pytest.fail("PostgreSQL is not running: NSP_TEST_PG_URL is unset (run the suite with `make test`)")
    return url


def new_pg_database() -> str:
    """A fresh, empty database on the test server; returns its URL."""
    admin = pg_admin_url()
    name = "nsp_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + "/" + name


# What ``init_instance`` records: the admin, its key, the instance, the default project (the
# CLI's ``init`` then registers the shipped report templates: tests/test_report_templates_init.py).
INIT_ACTIONS = ["user.created", "user.key_created", "instance.initialized", "project.created"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return new_pg_database()


@pytest.fixture
def instance(tmp_path: Path, db_url: str) -> Iterator[Instance]:
    inst = init_instance(
        tmp_path / "home", admin="admin", password=PASSWORD, printed_name="Ada Admin", db_url=db_url
    )
    yield inst
    inst.close()


@pytest.fixture
def sqlite_instance(tmp_path: Path) -> Iterator[Instance]:
    inst = init_instance(tmp_path / "home", admin="admin", password=PASSWORD, printed_name="Ada Admin")
    yield inst
    inst.close()


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> str:
    endpoint = os.environ.get("NSP_TEST_S3_ENDPOINT")
    if not endpoint:
        pytest.fail("moto_server is not running: NSP_TEST_S3_ENDPOINT is unset (run the suite with `make test`)")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return endpoint


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
        tmp_path_factory: pytest.TempPathFactory):
    """Call the real entry point (argument parsing, error handling, exit code) in-process."""

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("NSP_TOKEN", raising=False)

    def invoke(*args: str, env: dict[str, str] | None = None) -> CliResult:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(sys, "argv", ["nextstat-pro", *args])
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def home(tmp_path: Path, cli) -> Path:  # type: ignore[no-untyped-def]
    """An initialised embedded instance, through the CLI."""
    home = tmp_path / "home"
    r = cli("--home", str(home), "init", "--admin", "admin", env={"NSP_PASSWORD": PASSWORD})
    assert r.code == 0, r.err
    return home


def event_count(home: Path) -> int:
    """How many audit events the instance at ``home`` holds."""
    from sqlalchemy import func, select

    from nextstat_pro.db.models import AuditEvent
    from nextstat_pro.instance import Instance

    inst = Instance.open(home)
    try:
        with inst.db.transaction() as s:
            return s.scalar(select(func.count()).select_from(AuditEvent)) or 0
    finally:
        inst.close()


def one_line_error(r: CliResult) -> str:
    """The one line a failed command printed on stderr (fails the test otherwise)."""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("error: ") and "Traceback" not in r.err
    return lines[0]
