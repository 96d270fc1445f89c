"""NS-Dashboard: the web pages served by ``nextstat-pro serve`` (same origin, sessions and RBAC as the API).

Server-rendered Jinja2 pages with htmx for the parts that load on their own (artifact previews,
plots) and server-sent events for live run status. No inline script or style anywhere (the
server's CSP forbids both): behaviour is in ``static/*.js``, looks in ``static/app.css``; the
vendored front-end files are pinned in ``static/vendor/VENDORED.json``. docs/dashboard.md."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response


class _Assets(StaticFiles):
    """Static files with a long cache life: their URLs carry a digest of them (render.asset)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def mount(app: FastAPI) -> None:
    """Add the dashboard's pages and static files to ``app``."""
    from . import artifacts, browse, guard, live, pages, policy, reports
    from .render import STATIC

    guard.install(app)
    app.mount("/static", _Assets(directory=STATIC), name="static")
    # live before pages: /live/runs must not be read as a run id.
    for module in (live, artifacts, browse, reports, policy, pages):
        app.include_router(module.router)
