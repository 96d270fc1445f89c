"""Request limits and response headers, as ASGI middleware around every route.

``BodyLimit`` refuses a body longer than the instance's limit with 413 before a route sees it
(by Content-Length) or while it streams (a chunked upload past the limit raises inside the
route's read, so the spool file it was writing is dropped: nothing is stored). JSON bodies have a
smaller bound than uploads. ``SecurityHeaders`` adds the headers every response needs: a CSP
without ``unsafe-inline`` (the dashboard has no inline script or style), no framing, nosniff,
and HSTS when the request came over TLS (directly, or through a trusted proxy).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .problems import problem_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, limits: Callable[[], tuple[int, int]]) -> None:
        self.app = app
        self.limits = limits  # (any body, JSON body): read per request, the config may change

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        any_body, json_body = self.limits()
        ctype = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        limit = json_body if ctype in ("application/json", "application/problem+json") else any_body
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await problem_response(413, f"request body of {length} bytes exceeds the limit of {limit} bytes")(
                scope, receive, send)
            return
        seen = 0
        over = False
        replaced = False

        async def limited() -> Message:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # The route's body parser sees the client go away and fails; whatever it
                    # answers is replaced by the 413 below. A route that already started
                    # spooling an upload drops it with its request.
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def answer(message: Message) -> None:
            nonlocal replaced
            if over and not replaced and message["type"] == "http.response.start":
                replaced = True
                await problem_response(413, f"request body exceeds the limit of {limit} bytes")(
                    scope, receive, send)
                return
            if replaced:
                return
            await send(message)

        try:
            await self.app(scope, limited, answer)
        except Exception:
            if not over:
                raise
            if not replaced:
                await problem_response(413, f"request body exceeds the limit of {limit} bytes")(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, trust_proxy: Callable[[], bool]) -> None:
        self.app = app
        self.trust_proxy = trust_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https" or (
            self.trust_proxy() and (_header(scope, b"x-forwarded-proto") or "").lower() == "https")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin")]
                if b"content-security-policy" not in names:  # an artifact's own, stricter CSP stays
                    extra.append((b"content-security-policy", CSP.encode()))
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                if tls:
                    extra.append((b"strict-transport-security", HSTS.encode()))
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, with_headers)
