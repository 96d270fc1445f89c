"""OpenID Connect sign-in against a real provider: panva's oidc-provider (tests/oidc/provider.mjs)
on 127.0.0.1, driven through its login and consent forms like a browser.

The good path provisions the user, maps IdP groups to project roles and starts a browser session
like ``POST /auth/session``. The provider's ``/__tamper`` switch makes its next token response carry
a forged ID token (another key, issuer, audience, nonce, expiry): each is refused with a problem,
an ``auth.refused`` event, and no user or session. A replayed or foreign state is refused too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from nextstat_pro.db.models import ApiToken, User
from nextstat_pro.identity.sso_models import SsoIdentity
from nextstat_pro.identity.users import create_user, disable_user
from nextstat_pro.instance import Instance
from nextstat_pro.projects.service import create as create_project
from nextstat_pro.server.sessions import COOKIE

from .conftest import PASSWORD
from .server_helpers import assert_problem, client_for
from .sso_helpers import configure_sso, events, free_port

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
CALLBACK = "http://testserver/api/v1/auth/oidc/callback"
SECRET_ENV = "NSP_TEST_OIDC_SECRET"
# The login typed at the provider is the subject; the username claim is another value.
ACCOUNTS = {"u1001": {"username": "alice", "name": "Alice Liddell", "email": "alice@example.org",
                      "groups": ["qa", "physics"]},
            "u1002": {"username": "bob", "name": "Bob Builder", "groups": ["physics"]},
            "u1003": {"username": "carol", "name": "Carol Local", "groups": []}}


def _install() -> None:
    """npm install the pinned provider into tests/oidc/node_modules (once; kept between runs)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the OpenID Connect tests (Debian: apt-get install nodejs npm)")
    wanted = json.loads((OIDC_DIR / "package.json").read_text())["dependencies"]
    installed = OIDC_DIR / "node_modules" / "oidc-provider" / "package.json"
    if installed.is_file() and json.loads(installed.read_text())["version"] == wanted["oidc-provider"]:
        return
    subprocess.run(["npm", "ci" if (OIDC_DIR / "package-lock.json").is_file() else "install", "--no-audit",
                    "--no-fund", "--loglevel=error"], cwd=OIDC_DIR, check=True, timeout=300)


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    _install()
    port = free_port()
    proc = subprocess.Popen(["node", str(OIDC_DIR / "provider.mjs"), str(port), CALLBACK, json.dumps(ACCOUNTS)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "ready <issuer>" once it listens
        if not line.startswith("ready "):
            pytest.fail(f"the OpenID provider did not start: {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def sso(instance: Instance, provider: str, monkeypatch: pytest.MonkeyPatch) -> Instance:
    monkeypatch.setenv(SECRET_ENV, "test-client-secret")
    for name in ("qa", "physics"):
        create_project(instance, instance.context(), name, "")
    configure_sso(instance, {
        "oidc": {"issuer": provider, "client_id": "nextstat-pro", "client_secret_env": SECRET_ENV,
                 "redirect_url": CALLBACK, "scopes": ["openid", "profile", "email", "groups"]},
        "group_roles": {"qa": {"qa": "viewer", "default": "viewer"}, "physics": {"physics": "editor",
                                                                                "default": "editor"}}})
    return instance


def _tamper(provider: str, mode: str) -> None:
    httpx.post(f"{provider}/__tamper", params={"mode": mode}).raise_for_status()


def browser_sign_in(client: TestClient, provider: str, login: str) -> tuple[str, httpx.Response]:
    """Follow the redirects and forms of a sign-in as a browser would; return the callback URL the
    provider sent the browser to and our server's answer to it."""
    r = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
    assert r.status_code == 302, r.text
    url = r.headers["location"]
    assert url.startswith(provider) and "code_challenge_method=S256" in url and "nonce=" in url
    with httpx.Client(follow_redirects=False) as browser:  # the browser at the provider: its own cookies
        for _ in range(12):
            if url.startswith(CALLBACK):
                return url, client.get(url.removeprefix("http://testserver"), follow_redirects=False)
            r = browser.get(url)
            if r.status_code in (302, 303):
                url = httpx.URL(url).join(r.headers["location"]).__str__()
                continue
            assert r.status_code == 200, r.text
            action = re.search(r'<form[^>]*action="([^"]+)"', r.text)
            assert action is not None, r.text
            form = {"prompt": "login", "login": login, "password": "anything"} if 'name="login"' in r.text \
                else {"prompt": "consent"}
            r = browser.post(httpx.URL(url).join(action.group(1)), data=form)
            assert r.status_code in (302, 303), r.text
            url = httpx.URL(url).join(r.headers["location"]).__str__()
    raise AssertionError("the sign-in did not come back to the callback")


def _count(inst: Instance, model: Any) -> int:
    with inst.db.read() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_first_sign_in_provisions_the_user_maps_groups_and_starts_a_session(sso: Instance, provider: str) -> None:
    with client_for(sso) as client:
        _, r = browser_sign_in(client, provider, "u1001")
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert COOKIE in r.cookies
        me = client.get("/api/v1/me")
        assert me.status_code == 200, me.text
        body = me.json()
        assert body["username"] == "alice" and body["printed_name"] == "Alice Liddell"
        assert body["credential"] == "session"
        # qa gives viewer, physics editor: the highest role wins where both map (default).
        assert body["roles"] == {"default": "editor", "physics": "editor", "qa": "viewer"}
        # A cookie session: a change needs the CSRF token, like any browser session.
        assert client.post("/api/v1/auth/logout").status_code == 403
    with sso.db.read() as s:
        user = s.scalar(select(User).where(User.username == "alice"))
        assert user is not None and user.email == "alice@example.org"
        bound = s.scalar(select(SsoIdentity).where(SsoIdentity.user_id == user.id))
        assert bound is not None and (bound.issuer, bound.subject, bound.protocol) == (provider, "u1001", "oidc")
    created = [e for e in events(sso, "user.created") if e["after"]["username"] == "alice"]
    assert len(created) == 1 and created[0]["actor"]["id"] == "sso:oidc"
    granted = {e["project"]: e["after"]["role"] for e in events(sso, "role.granted")}
    assert granted == {"default": "editor", "physics": "editor", "qa": "viewer"}
    login = events(sso, "auth.login")[-1]
    assert login["after"]["method"] == "oidc" and login["after"]["subject"] == "u1001"
    assert login["after"]["groups"] == ["physics", "qa"]


def test_a_second_sign_in_finds_the_user_and_roles_follow_the_groups(sso: Instance, provider: str) -> None:
    with client_for(sso) as client:
        assert browser_sign_in(client, provider, "u1002")[1].status_code == 303
        first_cookie = client.cookies.get(COOKIE)
        # The mapping changes: physics now gives viewer in default and nothing in physics.
        configure_sso(sso, {**sso.config.sso.model_dump(),  # type: ignore[union-attr]
                            "group_roles": {"physics": {"default": "viewer"}, "qa": {"physics": "viewer"}}})
        assert browser_sign_in(client, provider, "u1002")[1].status_code == 303
        assert client.cookies.get(COOKIE) != first_cookie  # the session id rotates at sign-in
        assert client.get("/api/v1/me").json()["roles"] == {"default": "viewer"}
    assert len([e for e in events(sso, "user.created") if e["after"]["username"] == "bob"]) == 1
    assert [e["project"] for e in events(sso, "role.changed")] == ["default"]
    assert [e["project"] for e in events(sso, "role.revoked")] == ["physics"]
    # The first session ended when the second began.
    with sso.db.read() as s:
        sessions = s.scalars(select(ApiToken).join(User, User.id == ApiToken.user_id)
                             .where(User.username == "bob")).all()
        assert sorted(t.revoked_at is None for t in sessions) == [False, True]


def test_a_username_taken_by_a_local_account_is_refused(sso: Instance, provider: str) -> None:
    create_user(sso, sso.context(), username="carol", printed_name="Carol Original", password=PASSWORD + "x")
    with client_for(sso) as client:
        _, r = browser_sign_in(client, provider, "u1003")
        assert "belongs to another account" in assert_problem(r, 401, 10)["detail"]  # type: ignore[operator]
        assert client.get("/api/v1/me").status_code == 401
    assert _count(sso, SsoIdentity) == 0
    refused = events(sso, "auth.refused")[-1]
    assert refused["after"]["reason"] == "username taken" and refused["after"]["subject"] == "u1003"


FORGERIES = [("foreign-key", "signature does not verify"), ("issuer", "iss is wrong"), ("audience", "aud is wrong"),
             ("nonce", "nonce is wrong"), ("no-nonce", "nonce is wrong or missing"), ("expired", "expired")]


def test_a_forged_id_token_is_refused(sso: Instance, provider: str) -> None:
    """Each forgery in its own sign-in (one instance for all: the setup is the slow part)."""
    users = _count(sso, User)
    with client_for(sso) as client:
        for mode, why in FORGERIES:
            _tamper(provider, mode)
            _, r = browser_sign_in(client, provider, "u1001")
            detail = assert_problem(r, 401, 10)["detail"]
            assert why in str(detail), (mode, detail)
            assert COOKIE not in r.cookies and client.get("/api/v1/me").status_code == 401
            refused = events(sso, "auth.refused")[-1]
            assert refused["actor"]["id"] == "unauthenticated:sso:oidc", mode
            assert why.split()[0] in refused["after"]["reason"], (mode, refused)
    assert _count(sso, User) == users and _count(sso, SsoIdentity) == 0 and events(sso, "auth.login") == []
    # The same flow untampered signs in: the refusals were the forgeries'.
    with client_for(sso) as client:
        assert browser_sign_in(client, provider, "u1001")[1].status_code == 303


def test_a_replayed_or_foreign_state_is_refused(sso: Instance, provider: str) -> None:
    with client_for(sso) as client:
        callback, r = browser_sign_in(client, provider, "u1001")
        assert r.status_code == 303
        state = httpx.URL(callback).params["state"]
        # The same callback again, cookie and all (as an attacker who recorded it would send it).
        client.cookies.set("nsp_sso_state", state, domain="testserver.local", path="/api/v1/auth")
        again = client.get(callback.removeprefix("http://testserver"), follow_redirects=False)
        assert "already used" in str(assert_problem(again, 401, 10)["detail"])
    with client_for(sso) as other:  # a callback in a browser that did not start the sign-in
        foreign = other.get(callback.removeprefix("http://testserver"), follow_redirects=False)
        assert "does not match this browser" in str(assert_problem(foreign, 401, 10)["detail"])
    reasons = [e["after"]["reason"] for e in events(sso, "auth.refused")]
    assert any("already used" in x for x in reasons) and any("this browser" in x for x in reasons)
    assert len(events(sso, "auth.login")) == 1


def test_a_disabled_user_and_a_provider_error_are_refused(sso: Instance, provider: str) -> None:
    with client_for(sso) as client:
        assert browser_sign_in(client, provider, "u1002")[1].status_code == 303
        disable_user(sso, sso.context(), "bob", "left the group")
        _, r = browser_sign_in(client, provider, "u1002")
        assert "disabled" in str(assert_problem(r, 401, 10)["detail"])
        assert events(sso, "auth.refused")[-1]["after"] == {"reason": "disabled", "method": "oidc"}
        # The provider's own refusal (the user declined consent) comes back as an error.
        start = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
        state = httpx.URL(start.headers["location"]).params["state"]
        r = client.get("/api/v1/auth/oidc/callback", params={"state": state, "error": "access_denied"},
                       follow_redirects=False)
        assert "access_denied" in str(assert_problem(r, 401, 10)["detail"])
    assert len(events(sso, "auth.login")) == 1


def test_without_sso_configured_the_routes_say_so(instance: Instance) -> None:
    with client_for(instance) as client:
        r = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
        assert "not configured" in str(assert_problem(r, 500, 9)["detail"])
