"""The API's routers, one per capability, each mounted under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from . import audit, auth, projects, runs

API_ROUTERS: tuple[APIRouter, ...] = (auth.router, projects.router, runs.router, audit.router)
