"""``nextstat-pro serve``: the HTTP API and the dashboard over this instance.

This is where the two are composed (``site``): the API (``server``) knows nothing of the pages,
the pages (``web``) build on the API's sessions and error mapping.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..errors import UsageError
from .common import err_console, state

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..instance import Instance


def site(instance: Instance, *, close_instance: bool = False) -> FastAPI:
    """The API and the dashboard over ``instance``, with the server's background work."""
    from ..server.app import create_app
    from ..web import mount

    return create_app(instance, close_instance=close_instance, mounts=(mount,))


def app_factory() -> FastAPI:
    """The application of a worker process: the instance of ``$NSP_HOME`` (set by ``serve``)."""
    from ..config import resolve_home
    from ..instance import Instance

    home = Path(os.environ["NSP_HOME"]) if os.environ.get("NSP_HOME") else resolve_home(None)
    return site(Instance.open(home), close_instance=True)


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (behind a TLS proxy: keep 127.0.0.1)."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free port)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes (PostgreSQL only)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
) -> None:
    """Serve the HTTP API: /api/v1 (OpenAPI at /api/v1/openapi.json), /healthz, /readyz."""
    import uvicorn

    from ..server.sessions import session_key

    st = state(ctx)
    inst = st.instance()
    if workers > 1 and inst.db.dialect == "sqlite":
        raise UsageError("--workers > 1 needs PostgreSQL: an embedded SQLite instance is served by one process "
                         "(its writers take turns on one file)")
    session_key(inst.home)  # made once here, before N workers race to make it
    err_console.print(f"serving {inst.home} on http://{host}:{port} ({workers} worker(s))", markup=False)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the handler it
    # replaced: for serve that is a normal end (exit 0), not the CLI's "terminated" error.
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if workers == 1:
            uvicorn.run(site(inst), host=host, port=port, log_level=log_level, proxy_headers=False)
        else:
            os.environ["NSP_HOME"] = str(inst.home)
            uvicorn.run("nextstat_pro.cli.server:app_factory", factory=True, host=host, port=port,
                        workers=workers, log_level=log_level, proxy_headers=False)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stopped(_signum: int, _frame: object) -> None:
    """The signal that stopped the server, raised again by uvicorn after its shutdown."""
