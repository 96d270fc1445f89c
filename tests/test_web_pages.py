"""The dashboard without a browser: vendored files, previews by range reads (a 200 MB log),
the live-status read and the runs board on SQLite and PostgreSQL, escaping and redirects."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nextstat_pro.db.models import Run
from nextstat_pro.errors import NotFoundError, PermissionDeniedError
from nextstat_pro.instance import Instance
from nextstat_pro.projects.service import get_project
from nextstat_pro.runs.board import board_page, run_changes, run_signatures
from nextstat_pro.runs.listing import RunFilter
from nextstat_pro.runs.records import create_run, transition
from nextstat_pro.web import previews
from nextstat_pro.web.guard import safe_next
from nextstat_pro.web.render import environment

from .conftest import PASSWORD
from .identity_helpers import add_user, session_for

WEB = Path(__import__("nextstat_pro.web", fromlist=["x"]).__file__).parent


def test_vendored_files_match_their_recorded_hashes() -> None:
    record = json.loads((WEB / "static" / "vendor" / "VENDORED.json").read_text())
    assert set(record["files"]) == {"static/vendor/htmx.min.js", "testing/axe.min.js"}
    for rel, meta in record["files"].items():
        assert hashlib.sha256((WEB / rel).read_bytes()).hexdigest() == meta["sha256"], rel
        assert meta["version"] and meta["package"] and meta["license"]
    vendored = {p.name for p in (WEB / "static" / "vendor").iterdir()} - {"VENDORED.json"}
    assert vendored == {"htmx.min.js"}, "every served vendored file is recorded"


def test_templates_have_no_inline_script_or_style() -> None:
    for path in (WEB / "templates").glob("*.j2"):
        text = path.read_text()
        assert "<style" not in text and " style=" not in text, path.name
        for tag in text.split("<script")[1:]:
            assert tag.lstrip().startswith("src="), f"{path.name}: an inline script"
        assert not re.search(r"\son[a-z]+=", text), f"{path.name}: an inline event handler"


def test_markup_in_values_renders_as_text() -> None:
    html = environment().get_template("_message.html.j2").render(message="<script>alert(1)</script>")
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_the_login_form_offers_the_configured_single_sign_on() -> None:
    from types import SimpleNamespace

    from nextstat_pro.web.pages import _sso

    def inst(sso: object) -> object:
        return SimpleNamespace(config=SimpleNamespace(sso=sso))

    assert _sso(inst(None)) == {}
    assert _sso(inst(SimpleNamespace(oidc=object(), saml=None))) == {"Sign in with SSO": "/api/v1/auth/oidc/login"}
    assert _sso(inst(SimpleNamespace(oidc=None, saml=object()))) == {"Sign in with SSO": "/api/v1/auth/saml/login"}


@pytest.mark.parametrize("target, expected", [
    ("/runs?task=fit", "/runs?task=fit"), ("//evil.example/", "/"), ("https://evil.example/", "/"),
    ("/\\evil.example", "/"), (None, "/"), ("", "/"), ("runs", "/"),
])
def test_sign_in_returns_only_to_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


# --- previews by range reads --------------------------------------------------------------------

class Counting:
    """A store's read_range that counts the bytes it hands out."""

    def __init__(self, inst: Instance, digest: str) -> None:
        self.inst, self.digest, self.bytes = inst, digest, 0

    def __call__(self, start: int, end: int | None) -> Iterator[bytes]:
        for chunk in self.inst.store.read_range(self.digest, start, end):
            self.bytes += len(chunk)
            yield chunk


@pytest.fixture
def big_log(sqlite_instance: Instance, tmp_path: Path) -> tuple[Instance, str, int]:
    path = tmp_path / "big.log"
    line = b"2026-12-02T07:00:00Z fit iteration ok nll=12.3589968971\n"
    block = line * ((1 << 20) // len(line) + 1)
    with path.open("wb") as f:
        while f.tell() < 200 * (1 << 20):
            f.write(block)
        f.write(b"the last line: done\n")
    stored = sqlite_instance.store.put_file(path)
    return sqlite_instance, stored.digest, path.stat().st_size


def test_a_200_mb_log_previews_by_range_reads(big_log: tuple[Instance, str, int]) -> None:
    inst, digest, size = big_log
    read = Counting(inst, digest)
    started = time.perf_counter()
    tail = previews.text_window(read, size, None)
    took = time.perf_counter() - started
    assert tail.text.endswith("the last line: done\n") and tail.end == size
    assert read.bytes <= previews.WINDOW and took < 0.5
    assert tail.text.startswith("2026-12-02")  # the partial first line was cut
    read.bytes = 0
    middle = previews.text_window(read, size, size // 2)
    assert read.bytes <= previews.WINDOW and middle.previous is not None and middle.next is not None


def test_search_streams_and_stops_at_the_limit() -> None:
    chunk = b"fit iteration ok\n" * 60_000  # about 1 MB
    size, served = 200 * len(chunk), [0]

    def read(start: int, end: int | None) -> Iterator[bytes]:
        for _ in range(200):
            served[0] += len(chunk)
            yield chunk

    hits, more = previews.search_lines(read, size, "iteration", limit=5)
    assert more and len(hits) == 5 and [h.line for h in hits] == [1, 2, 3, 4, 5]
    assert served[0] == len(chunk), "the search read past the chunk holding its limit"


def test_search_finds_lines_across_chunk_edges() -> None:
    data = b"".join(f"line {i} {'needle' if i % 1000 == 0 else 'hay'}\n".encode() for i in range(5000))

    def read(start: int, end: int | None) -> Iterator[bytes]:
        view = data[start:end]
        for i in range(0, len(view), 777):  # chunks that cut lines anywhere
            yield view[i:i + 777]

    hits, more = previews.search_lines(read, len(data), "needle")
    assert not more and [h.line for h in hits] == [1, 1001, 2001, 3001, 4001]
    for h in hits:
        assert data[h.offset:].startswith(h.text.encode())


def test_json_pages_and_paths() -> None:
    doc = json.dumps({"parameters": [{"name": f"p{i}", "value": i} for i in range(250)], "nll": 1.5}).encode()
    top = previews.json_page(doc, [], 0)
    assert top.total == 2 and ("parameters", "[…] 250 entries", True) in top.entries
    second = previews.json_page(doc, ["parameters"], 1)
    assert second.pages == 3 and second.entries[0][0] == "100"
    with pytest.raises(KeyError):
        previews.json_page(doc, ["missing"], 0)


def test_csv_preview_reads_only_the_head() -> None:
    data = b"a,b\n" + b"".join(f"{i},{i * 2}\n".encode() for i in range(100_000))
    seen = []

    def read(start: int, end: int | None) -> Iterator[bytes]:
        seen.append((start, end))
        yield data[start:end]

    table = previews.csv_preview(read, len(data))
    assert table.header == ["a", "b"] and len(table.rows) == 50 and table.truncated
    assert seen == [(0, previews.WINDOW)]


# --- the service reads behind the runs list and live status --------------------------------------

def test_run_changes_stream_a_projects_run_events(instance: Instance) -> None:
    admin = instance.context()
    add_user(instance, "victor", "viewer", PASSWORD)
    viewer = session_for(instance, "victor", PASSWORD)
    start = run_changes(instance, viewer, "default", None)
    assert start.items == [] and start.last_seq > 0
    with instance.db.transaction() as s:
        run_id = create_run(s, admin, get_project(s, "default"), "fit", {}, None, []).run_id
    with instance.db.transaction() as s:
        run = s.get(Run, run_id)
        assert run is not None
        transition(s, admin, run, "default", "running")
    changes = run_changes(instance, viewer, "default", start.last_seq)
    assert [(c.run_id, c.action, c.status) for c in changes.items] == [
        (run_id, "run.created", "queued"), (run_id, "run.started", "running")]
    assert run_changes(instance, viewer, "default", changes.last_seq).items == []
    add_user(instance, "nobody", None, PASSWORD)
    with pytest.raises((PermissionDeniedError, NotFoundError)):
        run_changes(instance, session_for(instance, "nobody", PASSWORD), "default", 0)


def test_board_rows_carry_author_approval_and_duration(instance: Instance) -> None:
    admin = instance.context()
    with instance.db.transaction() as s:
        run_id = create_run(s, admin, get_project(s, "default"), "fit", {}, None, []).run_id
    page = board_page(instance, admin, "default", RunFilter(), 10)
    row = next(r for r in page.items if r.run.run_id == run_id)
    assert row.author == "admin" and row.approval_state == "draft" and row.duration_s is None
    signatures, state = run_signatures(instance, admin, run_id)
    assert signatures == [] and state == "draft"


# --- the runs list's duration filter: in the URL, the form and the page links --------------------

def test_runs_page_filters_by_duration_and_keeps_it_in_its_links(sqlite_instance: Instance) -> None:
    from datetime import UTC, datetime, timedelta

    from fastapi.testclient import TestClient
    from sqlalchemy import insert, select

    from nextstat_pro.db.models import User
    from nextstat_pro.server.app import create_app
    from nextstat_pro.web import mount

    inst, t0 = sqlite_instance, datetime(2026, 11, 1, tzinfo=UTC)
    # Run i took i/2 seconds; the last two never finished (no duration: no bound keeps them).
    took = {f"{i:08x}-0000-7000-8000-{i:012x}": (i / 2 if i < 58 else None) for i in range(60)}
    with inst.db.transaction() as s:
        project = get_project(s, "default")
        admin = s.scalar(select(User.id).where(User.username == "admin"))
        s.execute(insert(Run), [{"id": run_id, "project_id": project.id, "task": "fit", "status": "succeeded",
                                 "params": {}, "created_by": admin, "created_at": t0 + timedelta(minutes=i),
                                 "started_at": t0 + timedelta(minutes=i, microseconds=250_000),
                                 "finished_at": None if d is None else t0 + timedelta(minutes=i, seconds=d,
                                                                                      microseconds=250_000)}
                                for i, (run_id, d) in enumerate(took.items())])
    want = {r for r, d in took.items() if d is not None and 2 <= d <= 27.5}  # 52 runs: two pages
    with TestClient(create_app(inst, background=(), mounts=(mount,))) as c:
        assert c.post("/login", data={"username": "admin", "password": PASSWORD, "next": "/runs"},
                      follow_redirects=False).status_code == 303
        html = c.get("/runs", params={"min_duration": "2", "max_duration": " 27.5 "}).text
        first = re.findall(r'<tr data-run-id="([^"]+)"', html)
        assert len(first) == 50 and set(first) <= want
        assert 'id="f-min-duration" name="min_duration" type="number"' in html and 'value="27.5"' in html
        nxt = re.search(r'href="(/runs\?[^"]+)" rel="next"', html)
        assert nxt is not None
        link = nxt.group(1).replace("&amp;", "&")
        assert "min_duration=2&" in link and "max_duration=27.5&" in link, link
        second = re.findall(r'<tr data-run-id="([^"]+)"', c.get(link).text)
        assert set(first) | set(second) == want and len(second) == 2
        only = re.findall(r'<tr data-run-id="([^"]+)"', c.get("/runs", params={"min_duration": "28.5"}).text)
        assert set(only) == {r for r, d in took.items() if d is not None and d >= 28.5}
        for params, message in (({"min_duration": "long"}, "min_duration: &#39;long&#39; is not a number of seconds"),
                                ({"max_duration": "-1"}, "maximum duration -1 is not a number of seconds"),
                                ({"min_duration": "5", "max_duration": "1"}, "minimum duration 5 s is above the "
                                                                             "maximum 1 s")):
            bad = c.get("/runs", params=params)
            assert bad.status_code == 400 and message in bad.text, (params, bad.text[-600:])
            assert '<tr data-run-id=' not in bad.text
