"""The hot read routes answer their JSON themselves (server/answers.py): the body is the response
model's, a browser session's refreshed cookie still goes out with it, and only a bounded listing
runs on the event loop (free text, duration, version, approval and fit filters, a run's detail,
a version's runs and audit queries go to a request thread), errors are the same problem documents,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from nextstat_pro.engine import InputFile
from nextstat_pro.hub import service as hub
from nextstat_pro.hub.views import VersionDetail
from nextstat_pro.instance import Instance
from nextstat_pro.runs.listing import RunFilter
from nextstat_pro.runs.reads import list_runs_page
from nextstat_pro.runs.views import RunDetail, RunPage
from nextstat_pro.server.routes import audit as audit_routes
from nextstat_pro.server.routes import hub as hub_routes
from nextstat_pro.server.routes import runs as runs_routes
from nextstat_pro.server.sessions import COOKIE

from .conftest import PASSWORD
from .server_helpers import WORKSPACE, assert_problem, client_for, run_fit, token


def test_hot_reads_answer_their_model_and_keep_the_session_cookie(instance: Instance) -> None:
    ctx = instance.context("admin")
    hub.push(instance, ctx, "default", "model", "simple", InputFile.read("workspace", WORKSPACE), semver="1.0.0")
    with client_for(instance) as c:
        run_id = str(run_fit(c, token(c))["run_id"])
        assert c.post("/api/v1/auth/session", json={"username": "admin", "password": PASSWORD}).status_code == 200
        reads: list[tuple[str, dict[str, Any], type[BaseModel]]] = [
            ("/api/v1/projects/default/runs", {"status": "succeeded"}, RunPage),
            (f"/api/v1/runs/{run_id}", {}, RunDetail),
            ("/api/v1/projects/default/hub/model/resolve", {"ref": "simple@1.0.0"}, VersionDetail),
            ("/api/v1/audit/events", {"action": "run."}, audit_routes.EventPage),
        ]
        for url, params, model in reads:
            r = c.get(url, params=params)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/json"
            model.model_validate_json(r.content)
            # The session's idle clock restarted: the dependency's cookie went out with the body.
            assert r.headers["set-cookie"].startswith(f"{COOKIE}="), url
        page = c.get("/api/v1/projects/default/runs", params={"status": "succeeded"}).json()
    service = list_runs_page(instance, ctx, "default", RunFilter(status="succeeded"))
    assert page == json.loads(service.model_dump_json()) and [i["run_id"] for i in page["items"]] == [run_id]


def _where() -> str:
    try:
        asyncio.get_running_loop()
        return "loop"
    except RuntimeError:  # a request thread has no running loop
        return "thread"


def test_only_bounded_reads_run_on_the_event_loop(instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    where: list[tuple[str, str]] = []

    def spying(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, **kwargs: Any) -> Any:
            where.append((name, _where()))
            return real(*args, **kwargs)
        return spy

    monkeypatch.setattr(runs_routes, "list_runs_page", spying("list", list_runs_page))
    monkeypatch.setattr(runs_routes, "show_run", spying("show", runs_routes.show_run))
    monkeypatch.setattr(hub_routes.service, "show", spying("resolve", hub.show))
    monkeypatch.setattr(audit_routes.audit, "read_events", spying("audit", audit_routes.audit.read_events))
    ctx = instance.context("admin")
    hub.push(instance, ctx, "default", "model", "simple", InputFile.read("workspace", WORKSPACE), semver="1.0.0")
    with client_for(instance) as c:
        h = token(c)
        run_id = str(run_fit(c, h)["run_id"])
        lists = ({"status": "succeeded", "task": "fit"}, {"author": "admin", "sort": "oldest"}, {"q": "fit"},
                 {"min_duration_s": "1"}, {"max_duration_s": "5"}, {"approval": "approved"}, {"version": "simple"},
                 {"fit_ok": "true"})
        for params in lists:
            r = c.get("/api/v1/projects/default/runs", params=params, headers=h)
            assert r.status_code == 200 and "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert c.get(f"/api/v1/runs/{run_id}", headers=h).status_code == 200
        resolve = "/api/v1/projects/default/hub/model/resolve"
        assert c.get(resolve, params={"ref": "simple@1.0.0"}, headers=h).status_code == 200
        assert c.get(resolve, params={"ref": "simple@1.0.0", "runs": "true"}, headers=h).status_code == 200
        assert c.get("/api/v1/audit/events", headers=h).status_code == 200
        # Errors from the coroutine routes are the same problem documents, inline or not.
        assert_problem(c.get("/api/v1/projects/nope/runs", headers=h), 404, 4)
        assert_problem(c.get("/api/v1/projects/nope/runs", params={"q": "x"}, headers=h), 404, 4)
        assert_problem(c.get("/api/v1/runs/00000000-0000-0000-0000-000000000000", headers=h), 404, 4)
        assert_problem(c.get(resolve, params={"ref": "nope@1.0.0"}, headers=h), 404, 4)
    assert where == [("list", "loop"), ("list", "loop")] + [("list", "thread")] * 6 + [
        ("show", "thread"), ("resolve", "loop"), ("resolve", "thread"), ("audit", "thread"),
        ("list", "loop"), ("list", "thread"), ("show", "thread"), ("resolve", "loop")]
    assert RunFilter(status="failed", task="fit", created_by="u", since=datetime.now(UTC)).bounded
    for unbounded in (RunFilter(text="x"), RunFilter(min_duration_s=0), RunFilter(max_duration_s=1),
                      RunFilter(version="m"), RunFilter(approval="approved"), RunFilter(fit_ok=False)):
        assert not unbounded.bounded, unbounded
