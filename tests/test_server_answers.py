"""The hot read routes answer their JSON themselves (server/answers.py): the body is the response
model's, a browser session's refreshed cookie still goes out with it, and only a bounded listing
runs on the event loop (free text and duration bounds go to a worker thread), on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
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
from nextstat_pro.server.routes import runs as runs_routes
from nextstat_pro.server.sessions import COOKIE

from .conftest import PASSWORD
from .server_helpers import WORKSPACE, client_for, run_fit, token


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


def test_only_bounded_listings_run_on_the_event_loop(instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    where: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> RunPage:
        try:
            asyncio.get_running_loop()
            where.append("loop")
        except RuntimeError:
            where.append("thread")
        return list_runs_page(*args, **kwargs)

    monkeypatch.setattr(runs_routes, "list_runs_page", spy)
    with client_for(instance) as c:
        h = token(c)
        for params in ({"status": "succeeded", "task": "fit"}, {"q": "fit"}, {"min_duration_s": "1"},
                       {"max_duration_s": "5"}, {"approval": "approved", "sort": "oldest"}):
            assert c.get("/api/v1/projects/default/runs", params=params, headers=h).status_code == 200
    assert where == ["loop", "thread", "thread", "thread", "loop"]
    assert RunFilter(status="failed", approval="approved", version="m").bounded
    assert not RunFilter(text="x").bounded and not RunFilter(min_duration_s=0).bounded
