"""The reports forms of the administration page: generate a run certificate, an audit-trail report
or an audit-trail review, and sign a report (21 CFR 11.200: the signer re-enters their credentials,
meaning and reason). Plain HTML form posts carrying the session's CSRF token (checked by the
``Page`` dependency, as every change the dashboard makes); each calls the compliance operation the
HTTP API calls (server/routes/reports.py), which authorizes; a refusal is the error page.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ..compliance import audit_reports, certificate, service
from ..errors import NSPError
from .guard import Page, Visitor
from .pages import error_page

router = APIRouter(include_in_schema=False)
BACK = "/admin#h-reports"  # after a change, the list that shows it

Text = Annotated[str, Form(max_length=40)]


def _or_none(value: str) -> str | None:
    return value.strip() or None


def forms_for(visitor: Visitor, projects: list[str]) -> dict[str, Any]:
    """Which forms the page shows (the operations still decide): certificates where the visitor
    may write, audit reports where they administer the project or read the whole log, signing
    wherever they have a role (a viewer may sign: RBAC's ``report.sign``)."""
    me = visitor.me
    return {"certificate": [p for p in projects if visitor.may_write(p)],
            "audit": [p for p in projects if visitor.role_in(p) == "admin"],
            "whole_log": me.auditor or me.instance_admin}


def _done(request: Request, visitor: Visitor, call: Any) -> Response:
    try:
        call()
    except NSPError as exc:
        return error_page(request, visitor, exc)
    return RedirectResponse(BACK, status_code=303)


@router.post("/admin/reports/certificate")
def generate_certificate(request: Request, visitor: Page,
                         run_id: Annotated[str, Form(min_length=1, max_length=100)],
                         plots: Annotated[bool, Form()] = False) -> Response:
    inst = request.app.state.instance
    return _done(request, visitor,
                 lambda: certificate.run_certificate(inst, visitor.ctx, run_id.strip(), plots=plots))


@router.post("/admin/reports/audit-trail")
def generate_trail(request: Request, visitor: Page, project: Annotated[str, Form(max_length=100)] = "",
                   since: Text = "", until: Text = "") -> Response:
    inst = request.app.state.instance
    return _done(request, visitor, lambda: audit_reports.audit_trail(
        inst, visitor.ctx, _or_none(project), _or_none(since), _or_none(until)))


@router.post("/admin/reports/audit-review")
def generate_review(request: Request, visitor: Page, until: Annotated[str, Form(min_length=1, max_length=40)],
                    project: Annotated[str, Form(max_length=100)] = "", since: Text = "") -> Response:
    inst = request.app.state.instance
    return _done(request, visitor, lambda: audit_reports.audit_review(
        inst, visitor.ctx, _or_none(since), until.strip(), _or_none(project)))


@router.post("/admin/reports/{report_id}/sign")
def sign(request: Request, visitor: Page, report_id: str,
         meaning: Annotated[str, Form(max_length=40)],
         reason: Annotated[str, Form(min_length=1, max_length=2000)],
         password: Annotated[str, Form(min_length=1, max_length=1024)],
         username: Annotated[str, Form(max_length=200)] = "",
         decision: Annotated[Literal["approve", "reject"], Form()] = "approve") -> Response:
    inst = request.app.state.instance
    return _done(request, visitor, lambda: service.sign_report(
        inst, visitor.ctx, report_id, meaning, reason, password, _or_none(username), decision))
