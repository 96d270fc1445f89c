"""Who is calling: the ``RequestContext`` of a request, from a bearer token or a browser session.

``Authorization: Bearer nsp_…`` (a CLI session or an API token) or the ``nsp_session`` cookie of
a browser sign-in; both go through ``identity.auth.authenticate``, so an expired, revoked or
locked credential is refused (and audited) exactly as in the CLI. A cookie-authenticated request
that changes something must carry the session's CSRF token (header ``X-CSRF-Token`` or form field
``csrf_token``): a refusal is a 403 and an ``auth.refused`` event.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from ..access.context import RequestContext
from ..errors import AuthenticationError, PermissionDeniedError
from ..identity.auth import Credential, authenticate, record_refusal, sign_in
from ..instance import Instance
from .sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, SessionCodec

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def instance_of(request: Request) -> Instance:
    inst: Instance = request.app.state.instance
    return inst


def codec_of(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.sessions
    return codec


def client_of(request: Request) -> str | None:
    """The client's address: the peer, or the first X-Forwarded-For hop behind a trusted proxy."""
    inst = instance_of(request)
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and inst.config.server.trust_proxy_headers:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else None


def is_tls(request: Request) -> bool:
    if request.url.scheme == "https":
        return True
    inst = instance_of(request)
    return inst.config.server.trust_proxy_headers and request.headers.get("x-forwarded-proto", "") == "https"


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(COOKIE, codec_of(request).encode(token), httponly=True, samesite="strict",
                        secure=is_tls(request), path="/")


async def _form_csrf(request: Request) -> str | None:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def caller(request: Request, response: Response) -> RequestContext:
    """The authenticated caller of this request (401 problem when there is none)."""
    return await _caller(request, response, allow_password_change=False)


async def caller_changing_password(request: Request, response: Response) -> RequestContext:
    """The caller of the routes a user whose password must change may still use (who am I, change
    it, sign out), as the CLI's ``whoami``, ``passwd`` and ``logout``."""
    return await _caller(request, response, allow_password_change=True)


async def _caller(request: Request, response: Response, allow_password_change: bool) -> RequestContext:
    inst = instance_of(request)
    client = client_of(request)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Authorization header must be 'Bearer <token>'")
        ctx = authenticate(inst, token.strip(), "api", allow_password_change)
        return _with_client(ctx, client)
    cookie = request.cookies.get(COOKIE)
    if cookie is None:
        raise AuthenticationError("not signed in: send 'Authorization: Bearer <token>' or sign in")
    codec = codec_of(request)
    token = codec.decode(cookie)
    ctx = authenticate(inst, token, "api", allow_password_change)
    if request.method not in SAFE_METHODS:
        presented = request.headers.get(CSRF_HEADER) or await _form_csrf(request)
        assert ctx.token_id is not None
        if not codec.check_csrf(ctx.token_id, presented):
            record_refusal(inst, "csrf", client=client, who=ctx.actor.username or ctx.actor.id,
                           target=("user", ctx.actor.id), detail={"method": request.method, "path": request.url.path})
            raise PermissionDeniedError("missing or wrong CSRF token: reload the page and try again")
    set_session_cookie(request, response, token)  # the idle clock restarts
    return _with_client(ctx, client)


def _with_client(ctx: RequestContext, client: str | None) -> RequestContext:
    from dataclasses import replace

    return replace(ctx, client=client)


async def _instance(request: Request) -> Instance:
    # A coroutine on purpose: FastAPI runs a plain function dependency in a worker thread, a
    # thread hop per request for an attribute read.
    return instance_of(request)


Caller = Annotated[RequestContext, Depends(caller)]
CallerChangingPassword = Annotated[RequestContext, Depends(caller_changing_password)]
Inst = Annotated[Instance, Depends(_instance)]


class TooManyAttemptsError(AuthenticationError):
    http_status = 429


def sign_in_request(request: Request, username: str, password: str) -> Credential:
    """``identity.auth.sign_in`` for a request (the API's token and session sign-ins, the
    dashboard's form), behind the per-address attempt limit (``ratelimit``)."""
    inst = instance_of(request)
    client = client_of(request)
    limiter = request.app.state.login_limiter
    if not limiter.allow(client or "-", inst.config.server.login_attempts_per_minute):
        record_refusal(inst, "rate_limited", client=client, who=username, target=("user", username))
        raise TooManyAttemptsError("too many sign-in attempts from this address: wait a minute")
    return sign_in(inst, username, password, "api")
