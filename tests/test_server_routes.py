"""Every route of the server is in docs/rbac.md's routes table, names operations the matrix
knows, and refuses a caller without a credential (only the table's ``public`` rows answer one)."""

from __future__ import annotations

import re

from nextstat_pro.access.rbac import PERMISSIONS
from nextstat_pro.instance import Instance
from nextstat_pro.server.app import build_app
from nextstat_pro.server.routetable import route_table

from .conftest import ROOT
from .server_helpers import client_for

RBAC_DOC = ROOT / "docs" / "rbac.md"


def documented() -> dict[tuple[str, str], list[str]]:
    text = RBAC_DOC.read_text()
    table = text.split("<!-- routes:start -->", 1)[1].split("<!-- routes:end -->", 1)[0]
    rows: dict[tuple[str, str], list[str]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isupper():
            assert (cells[0], cells[1]) not in rows, f"route {cells[0]} {cells[1]} listed twice"
            rows[(cells[0], cells[1])] = [op.strip() for op in cells[2].split(",")]
    return rows


def app_routes() -> set[tuple[str, str]]:
    from nextstat_pro.web import mount

    return route_table(build_app(mounts=(mount,)))


def test_every_route_has_a_documented_operation() -> None:
    rows = documented()
    missing = sorted(app_routes() - set(rows))
    assert missing == [], f"routes without a row in docs/rbac.md: {missing}"
    stale = sorted(set(rows) - app_routes())
    assert stale == [], f"rows in docs/rbac.md for routes that do not exist: {stale}"
    for route, ops in rows.items():
        for op in ops:
            assert op in PERMISSIONS or op in ("public", "authenticated"), f"{route}: unknown operation {op!r}"


def test_every_non_public_route_refuses_a_caller_without_credentials(sqlite_instance: Instance) -> None:
    rows = documented()
    with client_for(sqlite_instance) as c:
        for (method, path), ops in sorted(rows.items()):
            if ops == ["public"] or not (path.startswith("/api/") or path == "/metrics"):
                continue  # pages answer a missing session with a redirect to /login (tests/test_web_*)
            url = re.sub(r"\{[^}]+\}", "x", path)
            r = c.request(method, url)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
