"""The API's routers, one per capability, each mounted under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from . import alerts, audit, audit_export, auth, config, hub, identity, jobs, projects, reports, runs, sso, verify

API_ROUTERS: tuple[APIRouter, ...] = (
    auth.router, sso.router, projects.router, runs.router, jobs.router, hub.router, audit.router,
    audit_export.router, identity.router, config.router, verify.router, alerts.router, reports.router,
)
