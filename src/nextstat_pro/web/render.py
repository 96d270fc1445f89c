"""Rendering pages: one Jinja2 environment (autoescaped: every value a user or a run wrote is text,
never markup) and the response that carries a page with the refreshed session cookie."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


@cache
def asset_version() -> str:
    """A digest of every static file: asset URLs carry it, so browsers may keep them for a year
    and still load the new ones after an upgrade."""
    h = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(STATIC).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _asset(path: str) -> str:
    return f"/static/{path}?v={asset_version()}"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("T", " ")[:19]
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def _size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _url(path: str, params: dict[str, Any] | None = None, **more: Any) -> str:
    """``path`` with the non-empty ``params`` and ``more`` as its query (later ones win)."""
    merged = {**(params or {}), **more}
    query = urlencode([(k, str(v)) for k, v in merged.items() if v not in (None, "")])
    return f"{path}?{query}" if query else path


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True,
                                                                                       default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, duration=_duration, size=_size, pretty=_pretty, number=_number,
                       pathpart=lambda v: quote(str(v), safe=""))
    env.globals.update(url=_url, asset=_asset)
    return env


def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """A rendered template. The session cookie the page's authentication re-issued (its idle
    clock restarted) rides along: FastAPI drops a dependency's headers when a route returns a
    response object of its own."""
    html = environment().get_template(template).render(request=request, **values)
    response = HTMLResponse(html, status_code=status)
    for cookie in getattr(request.state, "set_cookies", ()):
        response.raw_headers.append((b"set-cookie", cookie))
    return response
