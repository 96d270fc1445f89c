"""NS-Dashboard: the web pages served by ``nextstat-pro serve`` (same origin, sessions and RBAC as the API)."""

from __future__ import annotations

from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    """Add the dashboard's pages and static files to ``app``."""
