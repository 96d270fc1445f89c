"""The runs list's filters beyond status, task, author, fit quality and dates: registry version,
approval state (its SQL condition against ``approval_state`` over every combination of
signatures), free text and the two orders with their keyset cursors; through the service, the
HTTP API, the CLI, the dashboard's links, and a run's live event stream. SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from nextstat_pro.audit.events import append_event
from nextstat_pro.config import ApprovalPolicy
from nextstat_pro.db.models import HubItem, HubVersion, Project, Run, RunVersion, Signature, User
from nextstat_pro.errors import FieldError, NotFoundError, UsageError
from nextstat_pro.instance import Instance
from nextstat_pro.projects.service import get_project
from nextstat_pro.runs.board import board_page, run_events
from nextstat_pro.runs.listing import RunFilter, _version_match, time_bound
from nextstat_pro.runs.reads import list_run_rows, list_runs_page
from nextstat_pro.runs.records import create_run
from nextstat_pro.server.app import create_app
from nextstat_pro.signing.approval import APPROVAL_STATES, SignatureFact, approval_condition, approval_state
from nextstat_pro.web import mount

from .conftest import PASSWORD
from .identity_helpers import add_user, session_for
from .server_api_helpers import bearer, problem

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DIGEST_A = "sha256:" + "a1" * 32
DIGEST_B = "sha256:" + "b2" * 32


def _ids(rows: Any) -> list[str]:
    return [r.run_id for r in rows]


def _users(session: Any, names: list[str]) -> dict[str, str]:
    ids = {name: f"00000000-0000-0000-0000-{i:012d}" for i, name in enumerate(names, start=1)}
    session.execute(insert(User), [{"id": uid, "username": name, "printed_name": name.title(), "password_hash": "-",
                                    "created_at": T0} for name, uid in ids.items()])
    return ids


def _runs(session: Any, project: Project, author: str, rows: list[dict[str, Any]]) -> list[str]:
    """Runs created a minute apart from T0, oldest first; each dict may set task and error."""
    ids = [f"{i:08x}-0000-7000-8000-{i:012x}" for i in range(1, len(rows) + 1)]
    session.execute(insert(Run), [{"id": run_id, "project_id": project.id, "task": row.get("task", "fit"),
                                   "status": "succeeded", "params": {}, "created_by": row.get("by", author),
                                   "created_at": T0 + timedelta(minutes=i), "error": row.get("error")}
                                  for i, (run_id, row) in enumerate(zip(ids, rows, strict=True))])
    return ids


# --- approval state: the SQL condition and the Python rule agree ---------------------------------

# Each signature a run may carry; every subset of them is one run (2^8 runs).
FACTS = [("u1", "authorship", "approve"), ("u2", "review", "approve"), ("u2", "review", "reject"),
         ("u3", "approval", "approve"), ("u4", "approval", "approve"), ("u3", "approval", "reject"),
         ("u1", "responsibility", "approve"), ("u4", "review", "approve")]
POLICIES = [ApprovalPolicy(), ApprovalPolicy(sequence=[], min_approvals=1),
            ApprovalPolicy(sequence=["authorship", "review", "approval"], min_approvals=2),
            ApprovalPolicy(sequence=["review", "responsibility"], min_approvals=3)]


def test_approval_condition_agrees_with_approval_state(instance: Instance) -> None:
    subsets = [combo for n in range(len(FACTS) + 1) for combo in itertools.combinations(FACTS, n)]
    with instance.db.transaction() as s:
        project = get_project(s, "default")
        users = _users(s, ["u1", "u2", "u3", "u4"])
        run_ids = _runs(s, project, users["u1"], [{} for _ in subsets])
        s.execute(insert(Signature), [
            {"id": f"{r[:8]}-{i:04d}-7000-8000-000000000000", "run_id": r, "user_id": users[u], "meaning": m,
             "decision": d, "payload": "{}", "key_id": "k", "signature": "s", "signed_at": T0}
            for r, combo in zip(run_ids, subsets, strict=True) for i, (u, m, d) in enumerate(combo)])
    expected_facts = {r: [SignatureFact(users[u], m, d) for u, m, d in combo]
                      for r, combo in zip(run_ids, subsets, strict=True)}
    with instance.db.read() as s:
        for policy in POLICIES:
            seen: set[str] = set()
            for state in APPROVAL_STATES:
                got = set(s.scalars(select(Run.id).where(approval_condition(state, policy, Run.id))))
                want = {r for r, facts in expected_facts.items() if approval_state(facts, policy) == state}
                assert got == want, (policy, state, sorted(got ^ want)[:3])
                seen |= got
            assert seen == set(run_ids)  # the four states cover every run, once
    # And through the listing, under the project's configured policy.
    instance.config.approval["default"] = POLICIES[2]
    page = list_runs_page(instance, instance.context(), "default", RunFilter(approval="approved"), 500)
    assert set(_ids(page.items)) == {r for r, f in expected_facts.items() if approval_state(f, POLICIES[2]) ==
                                     "approved"}
    assert page.items and len(page.items) < len(run_ids)
    board = board_page(instance, instance.context(), "default", RunFilter(approval="in review"), 500)
    assert board.items and {b.approval_state for b in board.items} == {"in review"}


def test_unknown_approval_state_names_the_states() -> None:
    with pytest.raises(UsageError, match=r"unknown approval state 'done' \(approval states: draft, in review, "
                                         r"approved, rejected\)"):
        approval_condition("done", ApprovalPolicy(), Run.id)


# --- registry version, free text, order ----------------------------------------------------------

@pytest.fixture
def listed(instance: Instance) -> dict[str, str]:
    """Five runs, oldest first: r1 used simple@1.0.0, r2 simple@1.1.0 and other@2.0.0, r3 failed
    with a message of LIKE metacharacters, r4 a limit by rita, r5 nothing special."""
    with instance.db.transaction() as s:
        project = get_project(s, "default")
        admin = s.scalar(select(User.id).where(User.username == "admin"))
        assert admin is not None
        rita = _users(s, ["rita_q"])["rita_q"]
        r1, r2, r3, r4, r5 = _runs(s, project, admin, [
            {}, {"task": "hypotest"}, {"error": "stopped at 100%_done by the engine"},
            {"task": "upper-limit", "by": rita}, {"error": "stopped at 100x done"}])
        items = {"simple": "10000000-0000-7000-8000-000000000001", "other": "10000000-0000-7000-8000-000000000002"}
        s.execute(insert(HubItem), [{"id": iid, "project_id": project.id, "kind": "model", "name": name,
                                     "created_at": T0} for name, iid in items.items()])
        versions = [("20000000-0000-7000-8000-000000000001", "simple", DIGEST_A, "1.0.0"),
                    ("20000000-0000-7000-8000-000000000002", "simple", DIGEST_B, "1.1.0"),
                    ("20000000-0000-7000-8000-000000000003", "other", "sha256:" + "c3" * 32, "2.0.0")]
        s.execute(insert(HubVersion), [{"id": vid, "item_id": items[name], "digest": digest, "semver": semver,
                                        "size": 1, "media_type": "application/json", "meta": {}, "description": "",
                                        "created_at": T0, "created_by": admin}
                                       for vid, name, digest, semver in versions])
        s.execute(insert(RunVersion), [{"run_id": run_id, "version_id": versions[v][0], "role": "model", "ref": "x"}
                                       for run_id, v in ((r1, 0), (r2, 1), (r2, 2))])
    return {"r1": r1, "r2": r2, "r3": r3, "r4": r4, "r5": r5}


def _list(instance: Instance, **f: Any) -> list[str]:
    return _ids(list_runs_page(instance, instance.context(), "default", RunFilter(**f), 500).items)


def test_version_filter_takes_names_semvers_and_digest_prefixes(instance: Instance, listed: dict[str, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from nextstat_pro.runs import listing

    r1, r2 = listed["r1"], listed["r2"]
    assert _list(instance, version="simple") == [r2, r1]
    assert _list(instance, version="simple@1.0.0") == [r1]
    assert _list(instance, version="simple@" + DIGEST_B[:19]) == [r2]  # the label the list shows
    assert _list(instance, version=DIGEST_A[:30]) == [r1]
    assert _list(instance, version="other") == [r2]
    assert _list(instance, version="other@1.0.0") == []
    assert _list(instance, version="nothing") == []
    assert _list(instance, version="simple", task="fit") == [r1]
    monkeypatch.setattr(listing, "_MAX_LISTED_VERSIONS", 1)  # an item of many versions: a subquery
    assert _list(instance, version="simple") == [r2, r1]
    assert _list(instance, version="simple@1.1.0") == [r2]


@pytest.mark.parametrize("ref", ["", "simple@", "@1.0.0", "Simple", "simple@prod", "simple@latest", "sha256:abc",
                                 "sha256:" + "g" * 12, "simple@1.0", "simple@1.0.0#patch", "sha256:" + "a" * 12 + "@x"])
def test_a_bad_version_reference_names_the_forms(ref: str) -> None:
    with pytest.raises(UsageError, match=re.escape(f"version {ref!r} is not a registry reference: give NAME, "
                                                   "NAME@SEMVER, NAME@sha256:PREFIX or sha256:PREFIX")):
        _version_match(ref)


def test_free_text_matches_id_task_error_author_and_item(instance: Instance, listed: dict[str, str]) -> None:
    r1, r2, r3, r4, r5 = (listed[k] for k in ("r1", "r2", "r3", "r4", "r5"))
    assert _list(instance, text=r3[:8]) == [r3]  # an id prefix
    assert _list(instance, text=r3[2:10]) == []  # a prefix, not any part of the id
    assert _list(instance, text="HYPO") == [r2]  # the task
    assert _list(instance, text="  Upper-Limit ") == [r4]
    assert _list(instance, text="ENGINE") == [r3]  # the error message
    assert _list(instance, text="rita") == [r4]  # the author's username
    assert _list(instance, text="OTHE") == [r2]  # a registry item's name
    assert _list(instance, text="simple") == [r2, r1]
    # LIKE's metacharacters match themselves: % and _ are not wildcards.
    assert _list(instance, text="100%_") == [r3]
    assert _list(instance, text="%") == [r3]
    assert _list(instance, text="a_q") == [r4]  # rita_q
    assert _list(instance, text="0x d") == [r5]
    assert _list(instance, text="100_") == []
    assert _list(instance, text="no such thing") == []
    assert _list(instance, text="fit", status="succeeded") == [r5, r3, r1]
    with pytest.raises(UsageError, match="free text is empty"):
        _list(instance, text="   ")


def test_both_orders_page_by_cursor_and_refuse_the_others_cursor(instance: Instance,
                                                                 listed: dict[str, str]) -> None:
    ctx, newest = instance.context(), [listed[k] for k in ("r5", "r4", "r3", "r2", "r1")]

    def pages(sort: str) -> tuple[list[str], list[str]]:
        seen, cursors, cursor = [], [], None
        while True:
            page = list_runs_page(instance, ctx, "default", RunFilter(sort=sort, since=T0), 2, cursor)
            seen += _ids(page.items)
            if page.next_cursor is None:
                return seen, cursors
            cursor = page.next_cursor
            cursors.append(cursor)

    by_newest, newest_cursors = pages("created")
    by_oldest, oldest_cursors = pages("oldest")
    assert by_newest == newest and by_oldest == newest[::-1]
    assert _list(instance, sort="oldest", text="simple") == [listed["r1"], listed["r2"]]
    with pytest.raises(FieldError, match=r"cursor continues a list sorted newest first \(sort=created\), not oldest "
                                         r"first \(sort=oldest\): leave the cursor out"):
        list_runs_page(instance, ctx, "default", RunFilter(sort="oldest"), 2, newest_cursors[0])
    with pytest.raises(FieldError, match="sorted oldest first"):
        list_runs_page(instance, ctx, "default", RunFilter(), 2, oldest_cursors[0])
    with pytest.raises(UsageError, match=r"unknown sort 'newest' \(sorts: created, oldest\)"):
        list_runs_page(instance, ctx, "default", RunFilter(sort="newest"), 2)
    # The local CLI's listing takes the same filter.
    rows = list_run_rows(instance, ctx, "default", limit=3, f=RunFilter(sort="oldest", since=T0))
    assert _ids(rows) == newest[::-1][:3]


def test_a_cursor_from_before_the_orders_still_continues_newest_first(instance: Instance,
                                                                      listed: dict[str, str]) -> None:
    import base64

    from nextstat_pro.db.types import rfc3339

    with instance.db.read() as s:
        run = s.get(Run, listed["r3"])
        assert run is not None
        legacy = base64.urlsafe_b64encode(f"{rfc3339(run.created_at)}|{run.id}".encode()).decode().rstrip("=")
    page = list_runs_page(instance, instance.context(), "default", RunFilter(since=T0), 10, legacy)
    assert _ids(page.items) == [listed["r2"], listed["r1"]]
    for bad in ("bm9wZQ", base64.urlsafe_b64encode(b"newest|2026-11-01T00:00:00Z|x").decode()):
        with pytest.raises(FieldError, match="cursor is not one this server issued"):
            list_runs_page(instance, instance.context(), "default", RunFilter(), 10, bad)


# --- duration: finished_at - started_at, to the microsecond, on both databases --------------------

# (started, duration) in microseconds from T0; None: no such timestamp. Sub-second starts and
# ends crossing a second, a minute and days, and runs that never started or never finished.
TIMED: list[tuple[int | None, int | None]] = [
    (0, 1), (0, 250_000), (900_000, 200_000), (500_000, 500_000), (0, 1_000_000), (999_999, 1_000_001),
    (123_456, 1_500_000), (59_000_001, 59_999_999), (0, 60_000_000), (7_654_321, 3_600_123_456),
    (999_999, 2 * 86_400_000_000 + 500_001), (0, 0), (0, None), (None, None),
]


@pytest.fixture
def timed(instance: Instance) -> dict[str, int | None]:
    """Runs with the durations of ``TIMED``; their ids with the duration in microseconds."""
    with instance.db.transaction() as s:
        project = get_project(s, "default")
        admin = s.scalar(select(User.id).where(User.username == "admin"))
        assert admin is not None
        ids = _runs(s, project, admin, [{} for _ in TIMED])
        for run_id, (start, took) in zip(ids, TIMED, strict=True):
            started = None if start is None else T0 + timedelta(microseconds=start)
            finished = None if started is None or took is None else started + timedelta(microseconds=took)
            s.execute(update(Run).where(Run.id == run_id).values(started_at=started, finished_at=finished))
    with instance.db.read() as s:  # the durations as Python computes them from what was stored
        stored = s.execute(select(Run.id, Run.started_at, Run.finished_at).where(Run.id.in_(ids))).all()
    return {r: (f - b) // timedelta(microseconds=1) if b and f else None for r, b, f in stored}


def test_duration_bounds_agree_with_python_at_the_microsecond(instance: Instance,
                                                              timed: dict[str, int | None]) -> None:
    assert sorted(d for d in timed.values() if d is not None) == sorted(t for _, t in TIMED[:-2] if t is not None)
    each = sorted({d for d in timed.values() if d is not None})
    bounds: list[tuple[float | None, float | None]] = [(0, None), (None, 0), (None, None), (0.25, 1), (1e-6, 1e-6)]
    for d in each:  # every duration as each bound, and a microsecond either side of it
        for us in (d - 1, d, d + 1):
            bounds += [(max(us, 0) / 1e6, None), (None, max(us, 0) / 1e6), (d / 1e6, max(us, d) / 1e6)]
    for low, high in bounds:
        want = {r for r, d in timed.items() if d is not None and (low is None or d >= round(low * 1e6))
                and (high is None or d <= round(high * 1e6))}
        got = set(_list(instance, min_duration_s=low, max_duration_s=high, since=T0))
        if low is None and high is None:
            assert got == set(timed)  # no bound: unfinished runs too
        else:
            assert got == want, (low, high, sorted(got ^ want))
    assert set(_list(instance, min_duration_s=0)) == {r for r, d in timed.items() if d is not None}
    assert len(_list(instance, min_duration_s=1, max_duration_s=1)) == 1  # exactly one second, inclusive
    assert _list(instance, min_duration_s=3 * 86400) == []
    # With another filter and the other order, the condition is the same.
    assert _list(instance, min_duration_s=1.5, task="fit", sort="oldest") == sorted(
        (r for r, d in timed.items() if d is not None and d >= 1_500_000), key=list(timed).index)


@pytest.mark.parametrize("low, high, message, fields", [
    (-1, None, "minimum duration -1 is not a number of seconds from 0 to 3162240000", ("min_duration_s",)),
    (None, -0.5, "maximum duration -0.5 is not a number of seconds from 0 to 3162240000", ("max_duration_s",)),
    (float("nan"), None, "minimum duration nan is not", ("min_duration_s",)),
    (None, float("inf"), "maximum duration inf is not", ("max_duration_s",)),
    (1e12, None, "minimum duration 1e+12 is not", ("min_duration_s",)),
    (2.5, 2, "minimum duration 2.5 s is above the maximum 2 s", ("min_duration_s", "max_duration_s")),
])
def test_bad_duration_bounds_say_why_in_one_line(sqlite_instance: Instance, low: float | None, high: float | None,
                                                 message: str, fields: tuple[str, ...]) -> None:
    with pytest.raises(FieldError, match=re.escape(message)) as caught:
        _list(sqlite_instance, min_duration_s=low, max_duration_s=high)
    assert caught.value.fields == fields and "\n" not in caught.value.message


# --- the HTTP API and the CLI --------------------------------------------------------------------

def test_runs_list_route_takes_the_filters_and_answers_bad_ones_with_problems(instance: Instance,
                                                                              listed: dict[str, str]) -> None:
    inst, ids = instance, listed
    with TestClient(create_app(inst, background=())) as c:
        h = bearer(inst)
        url = "/api/v1/projects/default/runs"

        def get(**params: Any) -> list[str]:
            r = c.get(url, headers=h, params={"since": T0.isoformat(), **params})
            assert r.status_code == 200, r.text
            return [row["run_id"] for row in r.json()["items"]]

        assert get(version="simple@1.1.0") == [ids["r2"]]
        assert get(q="ENGINE") == [ids["r3"]]
        assert get(approval="draft", sort="oldest", limit=2) == [ids["r1"], ids["r2"]]
        assert get(approval="approved") == []
        body = problem(c.get(url, headers=h, params={"approval": "done"}), 400, 2)
        assert body["detail"] == "unknown approval state 'done' (approval states: draft, in review, approved, rejected)"
        assert "NAME@SEMVER" in problem(c.get(url, headers=h, params={"version": "simple@prod"}), 400, 2)["detail"]
        assert "sorts: created, oldest" in problem(c.get(url, headers=h, params={"sort": "up"}), 400, 2)["detail"]
        first = c.get(url, headers=h, params={"limit": 1}).json()
        body = problem(c.get(url, headers=h, params={"sort": "oldest", "cursor": first["next_cursor"]}), 400, 2)
        assert "sorted newest first" in body["detail"]
        params = {p["name"]: p for p in c.get("/api/v1/openapi.json").json()["paths"]["/api/v1/projects/{project}/runs"]
                  ["get"]["parameters"]}
        assert params["approval"]["schema"]["enum"] == list(APPROVAL_STATES)
        assert params["sort"]["schema"]["enum"] == ["created", "oldest"]
        assert {"version", "q"} <= set(params)


def test_cli_runs_list_filters(cli, instance: Instance, listed: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    h = ("--home", str(instance.home))
    assert cli(*h, "login", "-u", "admin", env={"NSP_PASSWORD": PASSWORD}).code == 0
    out = cli(*h, "runs", "list", "--since", "2026-11-01", "--approval", "draft", "--text", "simple", "--sort",
              "oldest", "--json")
    assert out.code == 0, out.err
    assert [r["run_id"] for r in json.loads(out.out)] == [listed["r1"], listed["r2"]]
    out = cli(*h, "runs", "list", "--version", "other@2.0.0", "--until", "2026-11-30", "--json")
    assert [r["run_id"] for r in json.loads(out.out)] == [listed["r2"]]
    out = cli(*h, "runs", "list", "--author", "rita_q", "--fit", "bad", "--json")
    assert out.code == 0 and json.loads(out.out) == []
    for args, message in ((["--approval", "done"], "approval states: draft, in review, approved, rejected"),
                          (["--version", "simple@"], "NAME@SEMVER"), (["--sort", "up"], "sorts: created, oldest"),
                          (["--fit", "fine"], "give ok or bad"), (["--until", "soon"], "--until 'soon' is not a date")):
        r = cli(*h, "runs", "list", *args)
        assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)


def test_duration_bounds_through_the_api_and_the_cli(cli, instance: Instance,  # type: ignore[no-untyped-def]
                                                     timed: dict[str, int | None]) -> None:
    want = [r for r, d in reversed(timed.items()) if d is not None and 1_000_000 <= d <= 60_000_000]
    with TestClient(create_app(instance, background=())) as c:
        h, url = bearer(instance), "/api/v1/projects/default/runs"
        r = c.get(url, headers=h, params={"min_duration_s": 1, "max_duration_s": 60})
        assert r.status_code == 200, r.text
        assert [row["run_id"] for row in r.json()["items"]] == want
        body = problem(c.get(url, headers=h, params={"min_duration_s": -1}), 400, 2)
        assert body["detail"] == "minimum duration -1 is not a number of seconds from 0 to 3162240000"
        assert body["fields"] == ["min_duration_s"]
        body = problem(c.get(url, headers=h, params={"min_duration_s": 5, "max_duration_s": "0.5"}), 400, 2)
        assert body["detail"] == "minimum duration 5 s is above the maximum 0.5 s"
        assert "max_duration_s" in problem(c.get(url, headers=h, params={"max_duration_s": "long"}), 400, 2)["detail"]
        params = {p["name"]: p for p in c.get("/api/v1/openapi.json").json()["paths"]["/api/v1/projects/{project}/runs"]
                  ["get"]["parameters"]}
        assert {"min_duration_s", "max_duration_s"} <= set(params)
    home = ("--home", str(instance.home))
    assert cli(*home, "login", "-u", "admin", env={"NSP_PASSWORD": PASSWORD}).code == 0
    out = cli(*home, "runs", "list", "--min-duration", "1", "--max-duration", "60", "--json")
    assert out.code == 0, out.err
    assert [r["run_id"] for r in json.loads(out.out)] == want
    for args, message in ((["--min-duration", "-2"], "minimum duration -2 is not a number of seconds"),
                          (["--min-duration", "3", "--max-duration", "1"], "minimum duration 3 s is above the maximum"),
                          (["--max-duration", "soon"], "Invalid value for '--max-duration'")):
        r = cli(*home, "runs", "list", *args)
        assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)


# --- the dashboard: filters in the URL and in the page links -------------------------------------

def test_dashboard_keeps_every_filter_in_its_links(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    with inst.db.transaction() as s:
        project = get_project(s, "default")
        admin = s.scalar(select(User.id).where(User.username == "admin"))
        assert admin is not None
        ids = _runs(s, project, admin, [{"task": "scan"} for _ in range(55)])
    with TestClient(create_app(inst, background=(), mounts=(mount,))) as c:
        r = c.post("/login", data={"username": "admin", "password": PASSWORD, "next": "/runs"},
                   follow_redirects=False)
        assert r.status_code == 303, r.text
        query = {"q": "SCAN", "approval": "draft", "sort": "oldest", "version": "", "status": "succeeded"}
        page = c.get("/runs", params=query)
        assert page.status_code == 200
        html = page.text
        assert html.count('<tr data-run-id=') == 50 and "oldest first" in html
        assert html.index(ids[0]) < html.index(ids[1])
        nxt = re.search(r'href="(/runs\?[^"]+)" rel="next"', html)
        assert nxt is not None
        link = nxt.group(1).replace("&amp;", "&")
        for part in ("q=SCAN", "approval=draft", "sort=oldest", "status=succeeded", "cursor="):
            assert part in link, link
        assert "version=" not in link  # an empty filter is no filter
        second = c.get(link).text
        assert second.count('<tr data-run-id=') == 5 and ids[54] in second
        assert 'id="f-approval"' in html and '<option value="draft" selected>' in html
        bad = c.get("/runs", params={"approval": "done"})
        assert bad.status_code == 400 and "approval states: draft, in review, approved, rejected" in bad.text
        bad = c.get("/runs", params={"version": "x@y"})
        assert bad.status_code == 400 and "is not a registry reference" in bad.text


# --- a run's live events: its status and its job's shards ----------------------------------------

def test_run_events_follow_one_run_with_its_job_events(instance: Instance) -> None:
    admin = instance.context()
    add_user(instance, "victor", "viewer", PASSWORD)
    viewer = session_for(instance, "victor", PASSWORD)
    with instance.db.transaction() as s:
        project = get_project(s, "default")
        mine = create_run(s, admin, project, "grid", {}, None, []).run_id
        other = create_run(s, admin, project, "grid", {}, None, []).run_id
    start = run_events(instance, viewer, mine, None)
    assert start.items == [] and start.last_seq > 0
    with instance.db.transaction() as s:
        for run_id in (other, mine):
            append_event(s, admin, action="job.shard_done", target=("run", run_id), project="default",
                         after={"shard": 0, "result_digest": DIGEST_A, "points": 3})
        append_event(s, admin, action="hub.pushed", target=("run", mine), project="default", after={})
    changes = run_events(instance, viewer, mine, start.last_seq)
    assert [(c.run_id, c.action, c.status) for c in changes.items] == [(mine, "job.shard_done", None)]
    assert run_events(instance, viewer, mine, changes.last_seq).items == []
    add_user(instance, "nobody", None, PASSWORD)
    with pytest.raises(NotFoundError, match="no run"):  # as for a run that does not exist
        run_events(instance, session_for(instance, "nobody", PASSWORD), mine, 0)


def test_the_job_page_has_no_polling_left() -> None:
    template = (Path(__import__("nextstat_pro.web", fromlist=["x"]).__file__).parent / "templates" / "run.html.j2")
    text = template.read_text()
    assert 'hx-trigger="every' not in text and 'hx-trigger="nsp-shards"' in text


def test_a_date_only_until_takes_in_the_whole_last_day(instance: Instance) -> None:
    """``until`` is exclusive, so a date-only bound is the next midnight: a run created in the last
    microsecond of the day is kept, one at the next midnight is not (both databases)."""
    assert time_bound("2026-11-30", end=True) == datetime(2026, 12, 1, tzinfo=UTC)
    assert time_bound("2026-11-30") == datetime(2026, 11, 30, tzinfo=UTC)
    assert time_bound("2026-11-30T12:00:00+01:00", end=True) == datetime(2026, 11, 30, 11, tzinfo=UTC)
    with pytest.raises(ValueError):
        time_bound("30/11/2026")
    with instance.db.transaction() as s:
        admin = s.scalar(select(User.id).where(User.username == "admin"))
        last, next_day = _runs(s, get_project(s, "default"), admin, [{}, {}])
        s.execute(update(Run).where(Run.id == last).values(created_at=datetime(2026, 11, 30, 23, 59, 59, 999999,
                                                                                 tzinfo=UTC)))
        s.execute(update(Run).where(Run.id == next_day).values(created_at=datetime(2026, 12, 1, tzinfo=UTC)))
    kept = _list(instance, since=time_bound("2026-11-30"), until=time_bound("2026-11-30", end=True))
    assert last in kept and next_day not in kept
