"""The (method, path) pairs an application answers, its included routers flattened: what the
routes table of docs/rbac.md must cover (tests/test_server_routes.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI


def _flatten(routes: Iterable[Any]) -> Iterable[tuple[str | None, set[str] | None]]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # a router included with include_router (FastAPI >= 0.160)
            for ctx in contexts():
                yield ctx.path, ctx.methods
        else:
            yield getattr(route, "path", None), getattr(route, "methods", None)


def route_table(app: FastAPI) -> set[tuple[str, str]]:
    """Every (METHOD, path) of ``app``; HEAD is GET's, and mounts (static files) have none."""
    out: set[tuple[str, str]] = set()
    for path, methods in _flatten(app.routes):
        if path is None or not methods:
            continue
        out.update((m, path) for m in methods if m != "HEAD")
    return out
