"""``/healthz`` (the process answers) and ``/readyz`` (database, store and schema ready)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from ...db import migrate
from ...instance import Instance

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    # On the event loop, no request thread: it answers while every thread is busy.
    return Health(status="ok")


@router.get("/readyz", response_model=Health, summary="Database and store reachable, migrations current",
            responses={503: {"model": Health}})
def readyz(request: Request) -> JSONResponse:
    inst: Instance = request.app.state.instance
    checks: dict[str, str] = {}
    try:
        with inst.db.read() as session:
            session.execute(text("SELECT 1"))
        current, head = migrate.current_revision(inst.db.engine), migrate.head_revision()
        checks["database"] = "ok"
        checks["migrations"] = "ok" if current == head else f"at {current}, code expects {head}"
    except Exception as exc:  # any failure means not ready; the reason is the check's value
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        inst.store.exists("sha256:" + "0" * 64)
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = Health(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
