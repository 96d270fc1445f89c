"""The FastAPI application over one instance: middleware, error mapping, routes, background work.

``create_app(instance)`` serves an instance the caller opened (tests, benchmarks); ``serve``
(cli/server.py) composes it with the dashboard's pages, in each worker process.
Background threads of a server process: the audit tail is witnessed every
``checkpoint_interval_s`` (a server has no command end at which to flush it, audit/witnessing.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import func, select

from ..config import load_config
from ..db.models import AuditEvent
from ..instance import Instance
from ..observability import configure
from ..observability.http import instrument_app
from . import problems
from .ratelimit import RateLimiter
from .routes import API_ROUTERS, health, metrics
from .security import BodyLimit, SecurityHeaders
from .sessions import SessionCodec, session_key

log = logging.getLogger("nextstat_pro.server")
CONFIG_POLL_S = 2.0
API_TITLE = "NextStat Pro API"
API_VERSION = "1"

# Work a server process runs beside its requests, each a function (instance, stop event); the
# alerts dispatcher registers itself here when its package is installed (server/background.py).
Background = Callable[[Instance, threading.Event], None]


def _config_loop(instance: Instance, stop: threading.Event) -> None:
    """Follow configuration changes made by other processes (another worker's or a CLI's
    ``config set``): each is a ``config.changed`` event, so a newer one than this process has
    seen means config.json changed; it is read again."""
    seen = _last_config_change(instance)
    while not stop.wait(CONFIG_POLL_S):
        try:
            latest = _last_config_change(instance)
            if latest != seen:
                instance.config = load_config(instance.home)
                seen = latest
        except Exception:
            log.exception("reading the configuration again failed")


def _last_config_change(instance: Instance) -> int:
    with instance.db.read() as session:
        return int(session.scalar(select(func.max(AuditEvent.seq)).where(AuditEvent.action == "config.changed"))
                   or 0)


def _witness_loop(instance: Instance, stop: threading.Event) -> None:
    interval = float(instance.config.checkpoint_interval_s)
    while not stop.wait(interval):
        try:
            instance.witnessing.due()
        except Exception:  # a failed witnessing is retried at the next tick; verify reports a gap
            log.exception("witnessing the audit tail failed")


Mount = Callable[[FastAPI], None]


def build_app(lifespan: Callable[[FastAPI], Any] | None = None, mounts: tuple[Mount, ...] = ()) -> FastAPI:
    """The application's routes and error mapping, without an instance: what the OpenAPI
    document describes (``server.openapi``); ``create_app`` adds the instance and middleware.
    ``mounts`` add more (the dashboard's pages: ``web.mount``), composed by ``serve``."""
    app = FastAPI(title=API_TITLE, version=API_VERSION, lifespan=lifespan,
                  description="The HTTP API of NextStat Pro: every route adapts one service operation. "
                              "Errors are RFC 9457 problem documents whose `exit_code` is the CLI's.",
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None)
    problems.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    for router in API_ROUTERS:
        app.include_router(router)
    for mount in mounts:
        mount(app)
    return app


def create_app(instance: Instance, *, background: tuple[Background, ...] | None = None,
               close_instance: bool = False, mounts: tuple[Mount, ...] = ()) -> FastAPI:
    from .background import default_background

    tasks = (_witness_loop, _config_loop, *default_background()) if background is None else background

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The threads that run the synchronous routes: bounded, as each keeps a connection.
        anyio.to_thread.current_default_thread_limiter().total_tokens = instance.config.server.threads
        stop = threading.Event()
        threads = [threading.Thread(target=task, args=(instance, stop), name=f"nsp-{task.__name__}", daemon=True)
                   for task in tasks]
        for t in threads:
            t.start()
        try:
            yield
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=10)
            instance.witnessing.flush()
            if close_instance:
                instance.close()

    app = build_app(lifespan, mounts)
    app.state.instance = instance
    app.state.sessions = SessionCodec(session_key(instance.home),
                                      lambda: instance.config.server.session_idle_minutes * 60)
    app.state.login_limiter = RateLimiter()
    # Traces when the OTEL_* environment asks for them; metrics and request latency always.
    configure()
    instrument_app(app, instance)
    # Read per request (a config change in this or another process applies without a restart).
    app.add_middleware(BodyLimit, limits=lambda: (instance.config.server.max_body_bytes,
                                                  instance.config.server.max_json_bytes))
    app.add_middleware(SecurityHeaders, trust_proxy=lambda: instance.config.server.trust_proxy_headers)
    return app
