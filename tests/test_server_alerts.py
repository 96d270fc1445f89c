"""Alerts over HTTP: admins manage channels and rules, editors read them, viewers neither; a
webhook's signing secret is shown once; a running server's dispatcher delivers a failed run's
alert to a real receiver, signed per Standard Webhooks."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from nextstat_pro.engine.params import FitParams
from nextstat_pro.engine.tasks import TASKS, TaskSpec
from nextstat_pro.instance import Instance

from .audit_helpers import actions_after, last_seq
from .conftest import PASSWORD
from .identity_helpers import add_user
from .server_helpers import WORKSPACE, assert_problem, client_for, token


def test_channels_and_rules_over_http(instance: Instance) -> None:
    add_user(instance, "eddie", "editor", PASSWORD)
    add_user(instance, "vera", "viewer", PASSWORD)
    with client_for(instance) as c:
        admin, editor, viewer = token(c), token(c, "eddie"), token(c, "vera")
        r = c.post("/api/v1/projects/default/alerts/channels", headers=admin,
                   json={"name": "ops", "webhook": "http://127.0.0.1:9/hook"})
        assert r.status_code == 201, r.text
        assert r.json()["secret"].startswith("whsec_")
        listed = c.get("/api/v1/projects/default/alerts/channels", headers=editor).json()
        assert [ch["name"] for ch in listed] == ["ops"] and "whsec_" not in json.dumps(listed)
        rule = c.post("/api/v1/projects/default/alerts/rules", headers=admin,
                      json={"name": "failures", "kind": "failed", "channel": "ops"})
        assert rule.status_code == 201, rule.text
        rules = c.get("/api/v1/projects/default/alerts/rules", headers=editor).json()
        assert [x["name"] for x in rules] == ["failures"]
        seq = last_seq(instance)
        assert_problem(c.post("/api/v1/projects/default/alerts/rules", headers=editor,
                              json={"name": "x", "kind": "failed", "channel": "ops"}), 403, 6)
        assert_problem(c.get("/api/v1/projects/default/alerts/rules", headers=viewer), 403, 6)
        assert actions_after(instance, seq) == ["access.denied", "access.denied"]
        assert_problem(c.post("/api/v1/projects/default/alerts/rules", headers=admin,
                              json={"name": "y", "kind": "nonsense", "channel": "ops"}), 400, 2)
        assert len(c.get("/api/v1/projects/default/alerts/rules", headers=admin).json()) == 1


class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes, float]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).got.append(({k.lower(): v for k, v in self.headers.items()}, body, time.time()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def boom(subject: Any, params: Any, seed: int | None) -> dict[str, Any]:
    raise RuntimeError("boom: the task raised")


def test_serve_delivers_a_failed_runs_alert(sqlite_instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from nextstat_pro.server.app import create_app

    monkeypatch.setitem(TASKS, "boom", TaskSpec("boom", "histfactory", FitParams, boom, "raises"))
    inst = sqlite_instance
    receiver = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.got = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        with TestClient(create_app(inst)) as c:  # with the server's background work: the dispatcher
            h = token(c)
            secret = c.post("/api/v1/projects/default/alerts/channels", headers=h,
                            json={"name": "ops", "webhook": f"http://127.0.0.1:{receiver.server_port}/hook"}
                            ).json()["secret"]
            c.post("/api/v1/projects/default/alerts/rules", headers=h,
                   json={"name": "failures", "kind": "failed", "channel": "ops"}).raise_for_status()
            r = c.post("/api/v1/projects/default/runs", headers=h, data={"task": "boom"},
                       files={"workspace": (WORKSPACE.name, WORKSPACE.read_bytes(), "application/json")})
            assert r.status_code == 201 and r.json()["status"] == "failed", r.text
            failed_at = time.time()
            deadline = failed_at + 15
            while not _Receiver.got and time.time() < deadline:
                time.sleep(0.02)
        assert _Receiver.got, "no alert reached the receiver"
        headers, body, arrived = _Receiver.got[0]
        Webhook(secret).verify(body, headers)  # raises when the signature is wrong
        doc = json.loads(body)
        assert doc["type"] == "alert.failed" and doc["data"]["details"]["run_id"] == r.json()["run_id"]
        assert arrived - failed_at < 5
    finally:
        receiver.shutdown()
        receiver.server_close()
