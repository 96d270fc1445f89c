"""RFC 9457 problem details: every error the API sends, one shape, one mapping.

An ``NSPError`` carries its HTTP status and the CLI's exit code (``errors.py``): the problem's
``type`` names the error class, ``exit_code`` is the code the CLI exits with for the same refusal,
so a client (the CLI in ``--server`` mode) reports what local mode would. Request validation and
routing errors become problems too; an unexpected exception is a 500 that says nothing of its
cause (it is logged), never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import NSPError

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://nextstat.pro/problems/"
log = logging.getLogger("nextstat_pro.server")

# HTTP statuses the framework raises itself, as the exit code a CLI would use for them.
_EXIT_OF_STATUS = {400: 2, 401: 10, 403: 6, 404: 4, 405: 2, 409: 5, 413: 2, 415: 2, 422: 3, 429: 6}
_TITLES = {400: "Bad request", 401: "Authentication required", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 409: "Conflict", 413: "Request body too large",
           415: "Unsupported media type", 416: "Range not satisfiable", 422: "Unprocessable input",
           429: "Too many requests", 500: "Internal error"}


class Problem(BaseModel):
    """An RFC 9457 problem document, with the CLI's exit code for the same error."""

    type: str = Field(description="A URI naming the kind of error (the error class).")
    title: str
    status: int
    detail: str = Field(description="The one-line message the CLI prints after `error:`.")
    exit_code: int = Field(description="The exit code of the CLI for the same error.")
    fields: list[str] | None = Field(default=None, description="Request fields the error is about, if any.")


def problem_response(status: int, detail: str, *, kind: str | None = None, exit_code: int | None = None,
                     fields: list[str] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(type=TYPE_BASE + (kind or _slug(_TITLES.get(status, "error"))),
                   title=_TITLES.get(status, "Error"), status=status, detail=detail,
                   exit_code=exit_code if exit_code is not None else _EXIT_OF_STATUS.get(status, 1),
                   fields=fields or None)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=MEDIA_TYPE,
                        headers=headers)


def _slug(text: str) -> str:
    return text.lower().replace(" ", "-")


def _kind(exc: NSPError) -> str:
    name = type(exc).__name__
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-").removesuffix("-error")


def nsp_error_response(exc: NSPError) -> JSONResponse:
    fields = list(getattr(exc, "fields", ()) or ()) or None
    if fields is None and getattr(exc, "field", None):
        fields = [str(exc.field)]  # type: ignore[attr-defined]
    headers = {"WWW-Authenticate": 'Bearer realm="nextstat-pro"'} if exc.http_status == 401 else None
    return problem_response(exc.http_status, exc.message, kind=_kind(exc), exit_code=exc.exit_code,
                            fields=fields, headers=headers)


def _validation_detail(errors: list[Any]) -> tuple[str, list[str]]:
    fields, parts = [], []
    for err in errors[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header", "cookie")]
        name = ".".join(loc) or "body"
        fields.append(name)
        parts.append(f"{name}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts), fields


def install(app: FastAPI) -> None:
    """Make every error of ``app`` a problem document."""

    @app.exception_handler(NSPError)
    async def _nsp(_request: Request, exc: NSPError) -> JSONResponse:
        return nsp_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, fields = _validation_detail(list(exc.errors()))
        return problem_response(400, detail, kind="usage", exit_code=2, fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "error")
        return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal error: the server log has the details", kind="internal")
