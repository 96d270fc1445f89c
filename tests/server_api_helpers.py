"""Helpers for the HTTP API tests: a client over an instance, bearer credentials, problem
documents, and counts of rows, events and stored objects (a refusal must change none)."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from nextstat_pro.db.models import AuditEvent
from nextstat_pro.identity import auth
from nextstat_pro.instance import Instance
from nextstat_pro.server.app import create_app

from .conftest import PASSWORD
from .identity_helpers import add_user

API = "/api/v1"


def api_client(inst: Instance) -> TestClient:
    """The app over ``inst`` without background threads (nothing runs between requests)."""
    return TestClient(create_app(inst, background=()))


def bearer(inst: Instance, username: str = "admin", password: str = PASSWORD) -> dict[str, str]:
    cred = auth.sign_in(inst, username, password, "api")
    return {"Authorization": f"Bearer {cred.token}"}


def user_with_role(inst: Instance, username: str, role: str | None) -> dict[str, str]:
    """A new user bound to ``role`` in the default project, and their bearer header."""
    add_user(inst, username, role, PASSWORD)
    return bearer(inst, username)


def problem(r: httpx.Response, status: int, exit_code: int) -> dict[str, Any]:
    """The problem document of ``r``, checked for its status and the CLI's exit code."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["exit_code"] == exit_code, body
    assert "Traceback" not in body["detail"]
    return body


def rows(inst: Instance, model: type, *where: Any) -> int:
    with inst.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def events(inst: Instance, action: str, target_id: str | None = None) -> int:
    clauses = [AuditEvent.action == action]
    if target_id is not None:
        clauses.append(AuditEvent.target_id == target_id)
    return rows(inst, AuditEvent, *clauses)


def refusal_reasons(inst: Instance) -> list[str]:
    """The reasons of the ``auth.refused`` events, oldest first."""
    import json

    with inst.db.transaction() as s:
        bodies = s.scalars(select(AuditEvent.body).where(AuditEvent.action == "auth.refused").order_by(AuditEvent.seq))
        return [json.loads(b)["after"]["reason"] for b in bodies]


def stored_objects(inst: Instance) -> int:
    """Files in a local object store (an upload refused must add none)."""
    from nextstat_pro.store.local import LocalStore

    assert isinstance(inst.store, LocalStore)
    return sum(1 for p in inst.store.root.rglob("*") if p.is_file())


def zip_bytes(members: dict[str, bytes] | list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> bytes:
    """A zip of ``members`` (path → bytes; a list may name a path twice), names written as given,
    and ``symlinks`` (path → target)."""
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name": wanted here
        for name, data in members.items() if isinstance(members, dict) else members:
            zf.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), data, compress_type=zipfile.ZIP_DEFLATED)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return buf.getvalue()
