"""``nextstat-pro serve``: the HTTP API (and, in time, the dashboard) over this instance."""

from __future__ import annotations

import os

import typer

from ..errors import UsageError
from .common import err_console, state


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (behind a TLS proxy: keep 127.0.0.1)."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free port)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes (PostgreSQL only)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
) -> None:
    """Serve the HTTP API: /api/v1 (OpenAPI at /api/v1/openapi.json), /healthz, /readyz."""
    import uvicorn

    from ..server.app import create_app
    from ..server.sessions import session_key

    st = state(ctx)
    inst = st.instance()
    if workers > 1 and inst.db.dialect == "sqlite":
        raise UsageError("--workers > 1 needs PostgreSQL: an embedded SQLite instance is served by one process "
                         "(its writers take turns on one file)")
    session_key(inst.home)  # made once here, before N workers race to make it
    err_console.print(f"serving {inst.home} on http://{host}:{port} ({workers} worker(s))", markup=False)
    if workers == 1:
        uvicorn.run(create_app(inst), host=host, port=port, log_level=log_level, proxy_headers=False)
        return
    os.environ["NSP_HOME"] = str(inst.home)
    uvicorn.run("nextstat_pro.server.app:app_factory", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, proxy_headers=False)
