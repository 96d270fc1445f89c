"""The sign-in form and the runs pages: the list (filters in the URL, keyset pages) and one run.

Each page calls service operations with the visitor's context and renders what they return;
nothing here decides who may see what (the services do), it only leaves out the controls the
visitor's role would not be allowed to use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from ..errors import NSPError, UsageError
from ..identity.auth import logout
from ..runs import run_artifacts, run_result, show_run
from ..runs.board import board_page, run_changes, run_events, run_signatures
from ..runs.listing import RunFilter, time_bound
from ..runs.records import STATUSES
from ..server.auth import Inst, set_session_cookie, sign_in_request
from ..server.sessions import COOKIE
from ..signing.approval import APPROVAL_STATES, MEANINGS
from .guard import Page, Visitor, safe_next
from .render import page

router = APIRouter(include_in_schema=False)
TASKS = ("fit", "upper-limit", "hypotest", "scan", "ranking", "toys", "pk-nlme", "grid")
PAGE_SIZE = 50


def error_page(request: Request, visitor: Visitor | None, exc: NSPError) -> Response:
    return page(request, "error.html.j2", status=exc.http_status, visitor=visitor, title="Error",
                message=exc.message)


# --- signing in and out --------------------------------------------------------------------------

def _sso(inst: Any) -> dict[str, str]:
    """The single sign-on links the login form offers (the routes are NS-Server's)."""
    sso = getattr(inst.config, "sso", None)
    links = {}
    if sso is not None and getattr(sso, "oidc", None) is not None:
        links["Sign in with SSO"] = "/api/v1/auth/oidc/login"
    if sso is not None and getattr(sso, "saml", None) is not None:
        links["Sign in with SSO (SAML)" if links else "Sign in with SSO"] = "/api/v1/auth/saml/login"
    return links


@router.get("/login")
def login_form(request: Request, inst: Inst, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    return page(request, "login.html.j2", visitor=None, title="Sign in", next=safe_next(next), error=None,
                username="", sso=_sso(inst))


@router.post("/login")
def login_submit(request: Request, inst: Inst, username: Annotated[str, Form(max_length=200)] = "",
                 password: Annotated[str, Form(max_length=1024)] = "",
                 next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    try:
        cred = sign_in_request(request, username, password)
    except (NSPError, ValidationError) as exc:
        message = exc.message if isinstance(exc, NSPError) else "enter your username and password"
        status = exc.http_status if isinstance(exc, NSPError) else 400
        return page(request, "login.html.j2", status=status, visitor=None, title="Sign in", next=safe_next(next),
                    error=message, username=username, sso=_sso(inst))
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, response, cred.token)
    return response


@router.post("/logout")
def logout_submit(inst: Inst, visitor: Page) -> Response:
    logout(inst, visitor.ctx)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- the runs list -------------------------------------------------------------------------------

def _date(value: str | None, name: str, end: bool = False) -> datetime | None:
    """A date (YYYY-MM-DD) or date-time from a filter field; ``end`` makes a date inclusive."""
    if not value:
        return None
    try:
        return time_bound(value, end=end)
    except ValueError:
        raise UsageError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None


def _seconds(value: str | None, name: str) -> float | None:
    """A number of seconds from a filter field (the service checks its range); empty is no filter."""
    if not value or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"{name}: {value!r} is not a number of seconds") from None


def default_project(inst: Any, visitor: Visitor, asked: str | None) -> str | None:
    if asked:
        return asked
    configured = getattr(inst.config, "default_project", None)
    if configured and configured in visitor.me.roles:
        return str(configured)
    return next(iter(visitor.me.roles), None)


@router.get("/")
@router.get("/runs")
def runs_list(
    request: Request, inst: Inst, visitor: Page,
    project: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    task: Annotated[str | None, Query(max_length=40)] = None,
    author: Annotated[str | None, Query(max_length=200)] = None,
    fit: Annotated[str | None, Query(max_length=8)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    version: Annotated[str | None, Query(max_length=200)] = None,
    approval: Annotated[str | None, Query(max_length=16)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    min_duration: Annotated[str | None, Query(max_length=40)] = None,
    max_duration: Annotated[str | None, Query(max_length=40)] = None,
    sort: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    name = default_project(inst, visitor, project)
    # Every filter is in the URL (shareable; the back button and the page links keep them); an
    # empty field is no filter, and the default order is left out of the links.
    filters = {"status": status or "", "task": task or "", "author": author or "", "fit": fit or "",
               "since": since or "", "until": until or "", "version": (version or "").strip(),
               "approval": approval or "", "q": (q or "").strip(), "min_duration": (min_duration or "").strip(),
               "max_duration": (max_duration or "").strip(), "sort": "" if sort == "created" else sort or ""}
    values: dict[str, Any] = {"visitor": visitor, "title": "Runs", "project": name, "filters": filters,
                              "statuses": STATUSES, "tasks": TASKS, "approvals": APPROVAL_STATES,
                              "projects": list(visitor.me.roles), "rows": [], "next_cursor": None, "cursor": cursor,
                              "error": None, "live_after": 0}
    if name is None:
        return page(request, "runs.html.j2", **values)
    try:
        f = RunFilter(status=status or None, task=task or None, since=_date(since, "since"),
                      until=_date(until, "until", end=True), created_by=author or None,
                      fit_ok={"ok": True, "bad": False}.get(fit or ""), version=filters["version"] or None,
                      approval=approval or None, text=filters["q"] or None,
                      min_duration_s=_seconds(min_duration, "min_duration"),
                      max_duration_s=_seconds(max_duration, "max_duration"), sort=filters["sort"] or "created")
        # The log's end before the page is read: the live stream continues from there, so a
        # change between this read and the browser's connection is not missed.
        values["live_after"] = run_changes(inst, visitor.ctx, name, None).last_seq
        board = board_page(inst, visitor.ctx, name, f, PAGE_SIZE, cursor or None)
    except NSPError as exc:
        values["error"] = exc.message
        return page(request, "runs.html.j2", status=exc.http_status, **values)
    values.update(rows=board.items, next_cursor=board.next_cursor)
    return page(request, "runs.html.j2", **values)


# --- one run -------------------------------------------------------------------------------------

@router.get("/runs/{run_id}")
def run_page(request: Request, inst: Inst, visitor: Page, run_id: str) -> Response:
    from ..audit import service as audit
    from ..audit.records import EventFilter

    try:
        # The log's end before the page is read: a run still moving gets its status and its
        # shards pushed from there (live.js), so a change made while the page renders still arrives.
        log_end = run_events(inst, visitor.ctx, run_id, None).last_seq
        detail = show_run(inst, visitor.ctx, run_id)
        artifacts = run_artifacts(inst, visitor.ctx, detail.run_id)
        result = run_result(inst, visitor.ctx, detail.run_id)
        signatures, approval = run_signatures(inst, visitor.ctx, detail.run_id)
        history = audit.read_events(inst, visitor.ctx, EventFilter(target_type="run", target_id=detail.run_id,
                                                                   project=detail.project), 0, 200)
        job = job_values(inst, visitor, detail) if "shards" in detail.params else {"job": None}
        live_after = log_end if detail.status in ("queued", "running") else None
    except NSPError as exc:
        return error_page(request, visitor, exc)
    return page(request, "run.html.j2", **job, live_after=live_after, visitor=visitor,
                title=f"Run {detail.run_id[:13]}", run=detail,
                artifacts=artifacts, result=result, tables=result_tables(result), signatures=signatures,
                approval=approval, history=history, meanings=MEANINGS, may_write=visitor.may_write(detail.project),
                csrf=visitor.csrf)


def job_values(inst: Any, visitor: Visitor, detail: Any) -> dict[str, Any]:
    """A job's shard progress with its rate (fits/s since it started) and the time left at that rate."""
    from ..scale import service as jobs

    job = jobs.status_of(inst, visitor.ctx, detail.run_id)
    counts = {"done": 0, "failed": 0, "retrying": 0, "pending": 0}
    for shard in job.shards:
        state = "retrying" if shard.status == "pending" and shard.attempts > 1 else shard.status
        counts[state] = counts.get(state, 0) + 1
    rate, eta = None, None
    if detail.started_at is not None and job.progress.points_done:
        end = detail.finished_at or datetime.now(UTC)
        elapsed = (end - detail.started_at).total_seconds()
        if elapsed > 0:
            rate = job.progress.points_done / elapsed
            if detail.status == "running":
                eta = (job.progress.points_total - job.progress.points_done) / rate
    return {"job": job, "counts": counts, "rate": rate, "eta": eta}


@router.get("/runs/{run_id}/shards")
def shards(request: Request, inst: Inst, visitor: Page, run_id: str) -> Response:
    """An htmx fragment: a running job's shard table, fetched again by the page when the live
    stream reports a shard or job event of the run (live.js)."""
    try:
        detail = show_run(inst, visitor.ctx, run_id)
        values = job_values(inst, visitor, detail)
    except NSPError as exc:
        return error_page(request, visitor, exc)
    return page(request, "_shards.html.j2", visitor=visitor, **values)


def result_tables(result: dict[str, Any] | None) -> dict[str, Any]:
    """What of a result reads as tables: best-fit values with uncertainties, the scalar figures
    (NLL, observed limit, CL), a limit's expected band; the JSON viewer pages through the rest."""
    tables: dict[str, Any] = {"parameters": [], "parameters_more": 0, "scalars": {}, "band": []}
    if not isinstance(result, dict):
        return tables
    params = result.get("parameters")
    if isinstance(params, list) and all(isinstance(p, dict) and "name" in p for p in params):
        tables["parameters"] = params[:500]
        tables["parameters_more"] = max(0, len(params) - 500)
    scalars = {k: v for k, v in sorted(result.items())
               if isinstance(v, (int, float, str, bool)) and k not in ("schema", "task")}
    poi = result.get("poi")
    if isinstance(poi, dict):
        scalars.update({f"poi.{k}": v for k, v in poi.items() if isinstance(v, (int, float, str, bool))})
    if scalars:
        tables["scalars"] = scalars
    band = result.get("expected")
    if isinstance(band, dict) and all(isinstance(v, (int, float)) for v in band.values()):
        tables["band"] = list(band.items())
    return tables
