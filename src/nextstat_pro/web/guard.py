"""Who is looking at a page: the API's ``caller`` (same cookie session, same CSRF check), except
that a browser without a valid session is sent to ``/login`` instead of getting a 401 document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from ..access.context import RequestContext
from ..errors import AuthenticationError
from ..identity.users import whoami
from ..identity.views import WhoAmI
from ..server.auth import caller, codec_of, instance_of


class LoginRequiredError(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


@dataclass(frozen=True)
class Visitor:
    """The signed-in caller of a page: their context (for service calls), who they are (for the
    navigation and for showing only the controls their roles allow) and the CSRF token every form
    that changes something sends back."""

    ctx: RequestContext
    me: WhoAmI
    csrf: str

    def role_in(self, project: str) -> str | None:
        if self.me.instance_admin:
            return "admin"
        return self.me.roles.get(project)

    def may_write(self, project: str) -> bool:
        """Editor or more there: the pages show change controls (the service still decides)."""
        return self.role_in(project) in ("editor", "admin")


def safe_next(target: str | None) -> str:
    """A path of this site to return to after sign-in; anything else (another origin, a scheme
    relative ``//host``, a backslash trick) becomes ``/``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def visitor(request: Request) -> Visitor:
    sub = Response()
    try:
        ctx = await caller(request, sub)
    except AuthenticationError:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequiredError(path) from None
    request.state.set_cookies = [v for k, v in sub.raw_headers if k == b"set-cookie"]
    me = await run_in_threadpool(whoami, instance_of(request), ctx)
    csrf = codec_of(request).csrf(ctx.token_id) if ctx.token_id else ""
    return Visitor(ctx=ctx, me=me, csrf=csrf)


Page = Annotated[Visitor, Depends(visitor)]


def install(app: FastAPI) -> None:
    @app.exception_handler(LoginRequiredError)
    async def _to_login(_request: Request, exc: LoginRequiredError) -> Response:
        return RedirectResponse(f"/login?next={quote(safe_next(exc.target), safe='/')}", status_code=303)
