"""The HTTP API over the service layer: authentication (tokens, cookie sessions, CSRF, limits),
problem documents with the CLI's exit codes, runs over HTTP (uploads, keyset pages, streamed
downloads with Range, export that verify accepts), and refused requests that change nothing."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nextstat_pro.db.models import Run
from nextstat_pro.instance import Instance
from nextstat_pro.server.sessions import COOKIE
from nextstat_pro.verify import verify_run_folder

from .audit_helpers import actions_after, last_seq
from .conftest import PASSWORD
from .identity_helpers import add_user
from .server_helpers import WORKSPACE, assert_problem, client_for, run_fit, sha256, token


def _runs(inst: Instance) -> int:
    with inst.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Run)) or 0)


def test_health_and_readiness(instance: Instance) -> None:
    with client_for(instance) as c:
        assert c.get("/healthz").json() == {"status": "ok", "checks": {}}
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready" and set(ready["checks"]) == {"database", "migrations", "store"}


def test_no_credential_is_a_401_problem_with_the_cli_exit_code(instance: Instance) -> None:
    with client_for(instance) as c:
        r = c.get("/api/v1/projects")
        assert_problem(r, 401, 10)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert_problem(c.get("/api/v1/projects", headers={"Authorization": "Basic abc"}), 401, 10)
        assert_problem(c.get("/api/v1/projects", headers={"Authorization": "Bearer nsp_x.y"}), 401, 10)
        assert_problem(c.post("/api/v1/auth/token", json={"username": "admin", "password": "wrong-password"}), 401, 10)


def test_revoked_and_forged_tokens_are_refused_and_audited(instance: Instance) -> None:
    with client_for(instance) as c:
        h = token(c)
        assert c.post("/api/v1/auth/logout", headers=h).status_code == 204
        seq = last_seq(instance)
        assert_problem(c.get("/api/v1/me", headers=h), 401, 10)
        assert "auth.refused" in actions_after(instance, seq)
        forged = {"Authorization": h["Authorization"][:-4] + "AAAA"}
        assert_problem(c.get("/api/v1/me", headers=forged), 401, 10)


def test_cookie_session_needs_csrf_for_changes_and_rotates_at_sign_in(instance: Instance) -> None:
    with client_for(instance) as c:
        first = c.post("/api/v1/auth/session", json={"username": "admin", "password": PASSWORD})
        assert first.status_code == 200
        cookie = first.cookies[COOKIE]
        set_cookie = first.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        assert c.get("/api/v1/me").json()["username"] == "admin"  # reads need no CSRF token
        seq = last_seq(instance)
        assert_problem(c.post("/api/v1/projects", json={"name": "nocsrf"}), 403, 6)
        assert_problem(c.post("/api/v1/projects", json={"name": "nocsrf"}, headers={"X-CSRF-Token": "0" * 64}), 403, 6)
        assert actions_after(instance, seq).count("auth.refused") == 2
        assert "nocsrf" not in [p["name"] for p in c.get("/api/v1/projects").json()]
        second = c.post("/api/v1/auth/session", json={"username": "admin", "password": PASSWORD})
        assert second.cookies[COOKIE] != cookie
        csrf = second.json()["csrf_token"]
        assert c.post("/api/v1/projects", json={"name": "withcsrf"}, headers={"X-CSRF-Token": csrf}).status_code == 201
        # The first session ended when the second began.
        c.cookies.set(COOKIE, cookie)
        assert_problem(c.get("/api/v1/me"), 401, 10)


def test_idle_session_expires(instance: Instance) -> None:
    with client_for(instance) as c:
        c.post("/api/v1/auth/session", json={"username": "admin", "password": PASSWORD})
        codec = c.app.state.sessions  # type: ignore[attr-defined]
        token_value = codec.decode(c.cookies[COOKIE])
        c.cookies.set(COOKIE, codec.encode(token_value, now=0.0))  # last request in 1970
        r = assert_problem(c.get("/api/v1/me"), 401, 10)
        assert "inactivity" in str(r["detail"])
        c.cookies.set(COOKIE, "nsp_x.y|123|" + "0" * 64)
        assert_problem(c.get("/api/v1/me"), 401, 10)


def test_sign_in_attempts_are_limited_per_address(instance: Instance) -> None:
    instance.config.server.login_attempts_per_minute = 3
    with client_for(instance) as c:
        for _ in range(3):
            assert c.post("/api/v1/auth/token", json={"username": "admin", "password": "nope-nope"}).status_code == 401
        seq = last_seq(instance)
        r = c.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
        assert_problem(r, 429, 10)
        assert actions_after(instance, seq) == ["auth.refused"]


def test_security_headers_and_hsts_only_over_tls(instance: Instance) -> None:
    with client_for(instance) as c:
        h = c.get("/healthz").headers
        assert "unsafe-inline" not in h["content-security-policy"]
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in h
    with client_for(instance, base_url="https://testserver") as c:
        assert c.get("/healthz").headers["strict-transport-security"].startswith("max-age=")
        r = c.post("/api/v1/auth/session", json={"username": "admin", "password": PASSWORD})
        assert "secure" in r.headers["set-cookie"].lower()


def test_bad_requests_are_problems_and_change_nothing(instance: Instance) -> None:
    with client_for(instance) as c:
        h = token(c)
        r = c.post("/api/v1/projects", headers={**h, "Content-Type": "application/json"}, content=b"{not json")
        assert_problem(r, 400, 2)
        assert_problem(c.post("/api/v1/projects", headers=h, json={"name": "x", "extra": 1}), 400, 2)
        r = c.post("/api/v1/projects", headers={**h, "Content-Type": "text/plain"}, content=b"name=x")
        assert r.status_code in (400, 415, 422) and r.headers["content-type"] == "application/problem+json"
        # SQL metacharacters in a filter are only text.
        r = c.get("/api/v1/projects/default/runs", headers=h, params={"task": "x' OR '1'='1", "author": "a;--"})
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}
        assert_problem(c.get("/api/v1/projects/default/runs", headers=h, params={"cursor": "bm9wZQ"}), 400, 2)
        assert_problem(c.get("/api/v1/projects/default/runs", headers=h, params={"status": "weird"}), 400, 2)
        assert_problem(c.get("/api/v1/projects/nope/runs", headers=h), 404, 4)
        assert [p["name"] for p in c.get("/api/v1/projects", headers=h).json()] == ["default"]


def test_oversized_bodies_are_refused_before_anything_is_stored(instance: Instance) -> None:
    instance.config.server.max_body_bytes = 4096
    instance.config.server.max_json_bytes = 1024
    with client_for(instance) as c:
        h = token(c)
        before = _runs(instance)
        big = b"{" + b" " * 10_000 + b"}"
        r = c.post("/api/v1/projects/default/runs", headers=h, data={"task": "fit"},
                   files={"workspace": ("ws.json", big, "application/json")})
        assert_problem(r, 413, 2)
        assert_problem(c.post("/api/v1/projects", headers=h, json={"name": "x", "description": "d" * 2000}), 413, 2)

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b"x" * 1000  # no Content-Length: the limit applies while it streams

        r = c.post("/api/v1/projects", headers={**h, "Content-Type": "application/json"}, content=chunks())
        assert_problem(r, 413, 2)
        assert _runs(instance) == before


def test_a_viewer_cannot_write_and_the_refusal_is_audited(instance: Instance) -> None:
    add_user(instance, "vera", "viewer", PASSWORD)
    with client_for(instance) as c:
        h = token(c, "vera")
        seq = last_seq(instance)
        assert_problem(c.post("/api/v1/projects", headers=h, json={"name": "mine"}), 403, 6)
        before = _runs(instance)
        r = c.post("/api/v1/projects/default/runs", headers=h, data={"task": "fit"},
                   files={"workspace": (WORKSPACE.name, WORKSPACE.read_bytes(), "application/json")})
        assert_problem(r, 403, 6)
        assert _runs(instance) == before
        assert actions_after(instance, seq).count("access.denied") == 2


def test_runs_over_http_pages_downloads_and_export(instance: Instance, tmp_path: Path) -> None:
    with client_for(instance) as c:
        h = token(c)
        ids = [str(run_fit(c, h)["run_id"]) for _ in range(3)]
        page = c.get("/api/v1/projects/default/runs", headers=h, params={"limit": 2}).json()
        assert [r["run_id"] for r in page["items"]] == ids[::-1][:2]
        rest = c.get("/api/v1/projects/default/runs", headers=h, params={"limit": 2, "cursor": page["next_cursor"]})
        assert [r["run_id"] for r in rest.json()["items"]] == [ids[0]] and rest.json()["next_cursor"] is None
        filtered = c.get("/api/v1/projects/default/runs", headers=h, params={"status": "succeeded", "author": "admin",
                                                                              "task": "fit", "fit_ok": True})
        assert len(filtered.json()["items"]) == 3

        run_id = ids[-1]
        detail = c.get(f"/api/v1/runs/{run_id}", headers=h).json()
        assert detail["status"] == "succeeded" and detail["inputs"][0]["digest"] == sha256(WORKSPACE.read_bytes())
        result_doc = c.get(f"/api/v1/runs/{run_id}/result", headers=h).json()
        artifacts = {a["name"]: a for a in c.get(f"/api/v1/runs/{run_id}/artifacts", headers=h).json()}
        result = artifacts["result.json"]
        r = c.get(f"/api/v1/runs/{run_id}/artifacts/result.json", headers=h)
        assert r.status_code == 200 and sha256(r.content) == result["digest"]
        assert json.loads(r.content) == result_doc
        assert r.headers["etag"] == f'"{result["digest"]}"' and "sandbox" in r.headers["content-security-policy"]
        whole = r.content
        part = c.get(f"/api/v1/runs/{run_id}/artifacts/result.json", headers={**h, "Range": "bytes=5-14"})
        assert part.status_code == 206 and part.content == whole[5:15]
        assert part.headers["content-range"] == f"bytes 5-14/{len(whole)}"
        tail = c.get(f"/api/v1/runs/{run_id}/artifacts/result.json", headers={**h, "Range": "bytes=-7"})
        assert tail.content == whole[-7:]
        assert_problem(c.get(f"/api/v1/runs/{run_id}/artifacts/result.json",
                             headers={**h, "Range": f"bytes={len(whole)}-"}), 416, 2)
        cached = c.get(f"/api/v1/runs/{run_id}/artifacts/result.json",
                       headers={**h, "If-None-Match": r.headers["etag"]})
        assert cached.status_code == 304
        manifest = c.get(f"/api/v1/runs/{run_id}/artifacts/manifest.json", headers=h)
        assert sha256(manifest.content) == detail["manifest_digest"]
        assert_problem(c.get(f"/api/v1/runs/{run_id}/artifacts/..%2F..%2Fkeys", headers=h), 404, 4)
        assert_problem(c.get(f"/api/v1/runs/{run_id}/artifacts/nope.json", headers=h), 404, 4)

        export = c.get(f"/api/v1/runs/{run_id}/export", headers=h)
        assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
        zipfile.ZipFile(io.BytesIO(export.content)).extractall(tmp_path)
        verified = verify_run_folder(tmp_path / f"run-{run_id}")
        assert (verified.run_id, verified.status) == (run_id, "succeeded")


def test_uploads_with_unsafe_names_or_wrong_digests_store_nothing(instance: Instance) -> None:
    with client_for(instance) as c:
        h = token(c)
        before = _runs(instance)
        data = WORKSPACE.read_bytes()
        for name in ("../../etc/passwd", "..", "a\\b.json", "/etc/passwd"):
            r = c.post("/api/v1/projects/default/runs", headers=h, data={"task": "fit"},
                       files={"workspace": (name, data, "application/json")})
            assert r.status_code == 400, (name, r.text)
        seq = last_seq(instance)
        r = c.post("/api/v1/projects/default/runs", headers=h,
                   data={"task": "fit", "digests": '{"workspace": "sha256:' + "0" * 64 + '"}'},
                   files={"workspace": (WORKSPACE.name, data, "application/json")})
        assert_problem(r, 422, 3)
        assert actions_after(instance, seq) == ["auth.refused"]
        assert _runs(instance) == before
        good = run_fit(c, h, digests='{"workspace": "' + sha256(data) + '"}')
        assert good["status"] == "succeeded"


def test_signing_over_http_needs_the_password_again(instance: Instance) -> None:
    add_user(instance, "rita", "viewer", "rita-reviews-42!")
    with client_for(instance) as c:
        run_id = run_fit(c, token(c))["run_id"]
        h = token(c, "rita", "rita-reviews-42!")
        body = {"meaning": "review", "reason": "checked the pulls", "password": "wrong-one-42"}
        assert_problem(c.post(f"/api/v1/runs/{run_id}/signatures", headers=h, json=body), 401, 10)
        body["password"] = "rita-reviews-42!"
        problem = assert_problem(c.post(f"/api/v1/runs/{run_id}/signatures", headers=h, json=body), 401, 10)
        assert "username and password" in str(problem["detail"])  # 11.200: the first signing of a session
        r = c.post(f"/api/v1/runs/{run_id}/signatures", headers=h, json={**body, "username": "rita"})
        assert r.status_code == 201, r.text
        assert r.json()["approval_state"]


@pytest.mark.parametrize("path", ["/api/v1/audit/events", "/api/v1/audit/checkpoints"])
def test_audit_reads_over_http(instance: Instance, path: str) -> None:
    with client_for(instance) as c:
        h = token(c)
        r = c.get(path, headers=h)
        assert r.status_code == 200, r.text
    with client_for(instance) as c:
        h = token(c)
        page = c.get("/api/v1/audit/events", headers=h, params={"limit": 2}).json()
        nxt = c.get("/api/v1/audit/events", headers=h, params={"limit": 2, "after": page["next_after"]}).json()
        assert nxt["items"][0]["seq"] == page["items"][-1]["seq"] + 1
        report = c.post("/api/v1/audit/verify", headers=h).json()
        assert report["ok"] is True and report["problem"] is None


def test_upload_names_keep_only_plain_file_names() -> None:
    from nextstat_pro.errors import FieldError
    from nextstat_pro.server.uploads import safe_name

    assert safe_name("ws.json", "workspace") == "ws.json" and safe_name(None, "workspace") == "workspace"
    for bad in ("../x", "..", "a/b", "a\\b", "bad\x00name", "bad\x1bname", "\u202eevil.json", "x" * 256):
        with pytest.raises(FieldError):
            safe_name(bad, "workspace")


def test_a_config_change_by_another_process_applies_without_restart(instance: Instance) -> None:
    import time

    from fastapi.testclient import TestClient

    from nextstat_pro.config_service import set_config
    from nextstat_pro.server.app import _config_loop, create_app

    other = Instance.open(instance.home)  # another worker or a CLI on the same instance
    try:
        with TestClient(create_app(instance, background=(_config_loop,))) as c:
            h = token(c)
            body = {"name": "roomy", "description": "d" * 1500}
            set_config(other, other.context(), "server.max_json_bytes", "1024", reason="tighter")
            deadline = time.monotonic() + 10
            while instance.config.server.max_json_bytes != 1024 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert_problem(c.post("/api/v1/projects", headers=h, json=body), 413, 2)
    finally:
        other.close()
