"""The registry, the audit log and the administration pages."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from ..audit import service as audit
from ..audit.records import EventFilter
from ..errors import NSPError, PermissionDeniedError
from ..hub import service as hub
from ..identity.auth import create_token, list_tokens, revoke_token
from ..identity.users import list_role_bindings, list_users
from ..signing.approval import MEANINGS
from .guard import Page, Visitor
from .pages import default_project, error_page
from .policy import policies_for
from .render import page
from .reports import forms_for

router = APIRouter(include_in_schema=False)
EVENTS_PER_PAGE = 50


@router.get("/registry")
def registry(
    request: Request, visitor: Page,
    project: Annotated[str | None, Query(max_length=100)] = None,
    kind: Annotated[str, Query(max_length=10)] = "model",
    name: Annotated[str, Query(max_length=100)] = "",
    version: Annotated[str, Query(max_length=300)] = "",
    a: Annotated[str, Query(max_length=300)] = "",
    b: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    proj = default_project(request.app.state.instance, visitor, project)
    values: dict[str, Any] = {"visitor": visitor, "title": "Registry", "project": proj,
                              "projects": list(visitor.me.roles), "kinds": hub.KINDS, "kind": kind, "name": name,
                              "items": [], "versions": [], "detail": None, "diff": None, "a": a, "b": b,
                              "error": None, "may_write": proj is not None and visitor.may_write(proj)}
    if proj is None:
        return page(request, "registry.html.j2", **values)
    inst = request.app.state.instance
    try:
        values["items"] = hub.list_items(inst, visitor.ctx, proj, kind)
        if name:
            values["versions"] = hub.versions(inst, visitor.ctx, proj, kind, name)
            ref = version or (f"{name}@{values['versions'][-1].digest}" if values["versions"] else "")
            if ref:
                values["detail"] = hub.show(inst, visitor.ctx, proj, kind, ref, with_runs=True)
        if a and b:
            values["diff"] = hub.diff_models(inst, visitor.ctx, proj, a, b)
    except NSPError as exc:
        values["error"] = exc.message
        return page(request, "registry.html.j2", status=exc.http_status, **values)
    return page(request, "registry.html.j2", **values)


@router.get("/audit")
def audit_log(
    request: Request, visitor: Page,
    project: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=100)] = "",
    target_type: Annotated[str, Query(max_length=40)] = "",
    target_id: Annotated[str, Query(max_length=200)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    text: Annotated[str, Query(max_length=200)] = "",
    after: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    inst = request.app.state.instance
    whole = visitor.me.auditor or visitor.me.instance_admin
    proj = project if project or whole else default_project(inst, visitor, None)
    filters = {"project": proj or "", "actor": actor, "action": action, "target_type": target_type,
               "target_id": target_id, "since": since, "until": until, "text": text}
    values: dict[str, Any] = {"visitor": visitor, "title": "Audit log", "filters": filters, "events": [],
                              "next_after": None, "after": after, "checkpoint": None, "error": None,
                              "projects": list(visitor.me.roles), "whole": whole}
    try:
        f = EventFilter(actor=actor or None, action=action or None, target_type=target_type or None,
                        target_id=target_id or None, project=proj or None, since=since or None,
                        until=until or None, text=text or None)
        rows = audit.read_events(inst, visitor.ctx, f, after, EVENTS_PER_PAGE + 1)
        values["events"] = rows[:EVENTS_PER_PAGE]
        if len(rows) > EVENTS_PER_PAGE:
            values["next_after"] = rows[EVENTS_PER_PAGE - 1].seq
        if whole:
            checkpoints = audit.list_checkpoints(inst, visitor.ctx)
            values["checkpoint"] = checkpoints[-1] if checkpoints else None
    except NSPError as exc:
        values["error"] = exc.message
        return page(request, "audit.html.j2", status=exc.http_status, **values)
    return page(request, "audit.html.j2", **values)


@router.post("/audit/verify")
def audit_verify(request: Request, visitor: Page) -> Response:
    try:
        report = audit.verify(request.app.state.instance, visitor.ctx, state=False)
    except NSPError as exc:
        return error_page(request, visitor, exc)
    return page(request, "verify.html.j2", visitor=visitor, title="Audit verification", report=report)


def _admin_values(request: Request, visitor: Visitor) -> dict[str, Any]:
    inst = request.app.state.instance
    users = None
    if visitor.me.auditor or visitor.me.instance_admin:
        users = list_users(inst, visitor.ctx)
    roles = {}
    for project in visitor.me.roles:
        try:
            roles[project] = list_role_bindings(inst, visitor.ctx, project)
        except PermissionDeniedError:
            continue  # an auditor without a binding: the users table shows the accounts
    writable = [p for p in visitor.me.roles if visitor.may_write(p)]
    return {"visitor": visitor, "title": "Administration", "users": users, "roles": roles,
            "tokens": list_tokens(inst, visitor.ctx), "writable": writable, "issued": None, "error": None,
            "alerts": _alerts(inst, visitor), "reports": _reports(inst, visitor),
            "report_forms": forms_for(visitor, list(visitor.me.roles)), "meanings": MEANINGS,
            "policies": policies_for(inst, visitor)}


def _alerts(inst: Any, visitor: Visitor) -> dict[str, Any]:
    """Each project's alert rules and latest deliveries, where the visitor may read them (editors)."""
    from ..alerts import service as alerts

    out: dict[str, Any] = {}
    for project in visitor.me.roles:
        try:
            out[project] = (alerts.list_rules(inst, visitor.ctx, project),
                            alerts.list_deliveries(inst, visitor.ctx, project, limit=20))
        except PermissionDeniedError:
            continue
    return out


def _reports(inst: Any, visitor: Visitor) -> dict[str, Any]:
    from ..compliance import service as compliance

    out: dict[str, Any] = {}
    for project in visitor.me.roles:
        try:
            out[project] = compliance.list_reports(inst, visitor.ctx, project, limit=20)
        except PermissionDeniedError:
            continue
    return out


@router.get("/admin")
def admin(request: Request, visitor: Page) -> Response:
    try:
        return page(request, "admin.html.j2", **_admin_values(request, visitor))
    except NSPError as exc:
        return error_page(request, visitor, exc)


@router.post("/admin/tokens")
def admin_create_token(
    request: Request, visitor: Page,
    project: Annotated[str, Form(min_length=1, max_length=100)],
    role: Annotated[str, Form(max_length=10)],
    name: Annotated[str, Form(min_length=1, max_length=100)],
    days: Annotated[int, Form(ge=1, le=3650)] = 30,
) -> Response:
    """Create an API token: its secret is on this response's page once, never again."""
    try:
        cred = create_token(request.app.state.instance, visitor.ctx, project, role, name, days)
        values = _admin_values(request, visitor)
    except NSPError as exc:
        return error_page(request, visitor, exc)
    values["issued"] = cred
    return page(request, "admin.html.j2", **values)


@router.post("/admin/tokens/{token_id}/revoke")
def admin_revoke_token(request: Request, visitor: Page, token_id: str,
                       reason: Annotated[str, Form(min_length=1, max_length=500)] = "revoked in the dashboard",
                       ) -> Response:
    try:
        revoke_token(request.app.state.instance, visitor.ctx, token_id, reason)
    except NSPError as exc:
        return error_page(request, visitor, exc)
    return RedirectResponse("/admin", status_code=303)
