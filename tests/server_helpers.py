"""Shared pieces of the server tests: an app over a test instance, tokens, uploads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from nextstat_pro.instance import Instance
from nextstat_pro.server.app import create_app

from .conftest import PASSWORD, shared

WORKSPACE = shared("workspaces", "simple_workspace.json")


@contextmanager
def client_for(inst: Instance, base_url: str = "http://testserver") -> Iterator[TestClient]:
    # No background threads: a test's instance is witnessed when it closes.
    with TestClient(create_app(inst, background=()), base_url=base_url) as client:
        yield client


def token(client: TestClient, username: str = "admin", password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run_fit(client: TestClient, headers: dict[str, str], project: str = "default", path: Path = WORKSPACE,
            **form: str) -> dict[str, object]:
    r = client.post(f"/api/v1/projects/{project}/runs", headers=headers, data={"task": "fit", **form},
                    files={"workspace": (path.name, path.read_bytes(), "application/json")})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


def assert_problem(r: object, status: int, exit_code: int) -> dict[str, object]:
    from httpx import Response

    assert isinstance(r, Response)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = r.json()
    assert body["status"] == status and body["exit_code"] == exit_code and body["detail"]
    return body
