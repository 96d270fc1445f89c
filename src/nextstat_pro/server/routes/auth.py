"""Signing in and out: a bearer token for API clients (the CLI's ``login --server``), a cookie
session for browsers. Both are ``identity.auth.sign_in``: the same password checks, lockout and
audit events as the CLI's ``login``; the server adds a per-address attempt limit."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ...errors import AuthenticationError, NSPError
from ...identity.auth import logout
from ...identity.users import whoami
from ...identity.views import WhoAmI
from ..auth import Caller, CallerChangingPassword, Inst, codec_of, set_session_cookie, sign_in_request
from ..sessions import COOKIE
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["auth"])


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class TokenIssued(BaseModel):
    """A bearer credential, shown once: the server keeps only its hash."""

    token: str
    token_id: str
    expires_at: datetime


class SessionStarted(BaseModel):
    """A browser session: the cookie is set; send ``csrf_token`` with every change."""

    username: str
    csrf_token: str
    expires_at: datetime


class CsrfToken(BaseModel):
    csrf_token: str


@router.post("/auth/token", response_model=TokenIssued, summary="Sign in for a bearer token (API clients)")
def token(request: Request, body: SignIn) -> TokenIssued:
    cred = sign_in_request(request, body.username, body.password)
    return TokenIssued(token=cred.token, token_id=cred.token_id, expires_at=cred.expires_at)


@router.post("/auth/session", response_model=SessionStarted, summary="Sign in a browser (cookie session)")
def session(request: Request, response: Response, body: SignIn) -> SessionStarted:
    old = request.cookies.get(COOKIE)
    cred = sign_in_request(request, body.username, body.password)
    if old is not None:  # the session id rotates at sign-in: the previous one ends
        _end_quietly(request, old)
    set_session_cookie(request, response, cred.token)
    return SessionStarted(username=body.username, csrf_token=codec_of(request).csrf(cred.token_id),
                          expires_at=cred.expires_at)


def _end_quietly(request: Request, cookie: str) -> None:
    from ...identity.auth import authenticate

    inst = request.app.state.instance
    try:
        ctx = authenticate(inst, codec_of(request).decode(cookie), "api")
        logout(inst, ctx)
    except NSPError:
        pass  # an expired or foreign cookie: nothing to end


@router.get("/auth/csrf", response_model=CsrfToken, summary="The CSRF token of this browser session")
def csrf(request: Request, ctx: Caller) -> CsrfToken:
    if ctx.token_id is None:
        raise AuthenticationError("no session")
    return CsrfToken(csrf_token=codec_of(request).csrf(ctx.token_id))


@router.post("/auth/logout", status_code=204, summary="End this session or revoke this token")
def sign_out(inst: Inst, ctx: CallerChangingPassword, response: Response) -> Response:
    logout(inst, ctx)
    out = Response(status_code=204)
    out.delete_cookie(COOKIE, path="/")
    return out


@router.get("/me", response_model=WhoAmI, summary="The caller's account, credential and role cap")
def me(inst: Inst, ctx: CallerChangingPassword) -> WhoAmI:
    return whoami(inst, ctx)
