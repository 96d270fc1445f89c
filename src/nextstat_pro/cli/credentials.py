"""Where the CLI keeps its session credential: one 0600 file per instance under the user's
config folder ($XDG_CONFIG_HOME/nextstat-pro/sessions/<instance id>.token), and one per server
for ``login --server URL`` (``server-<sha256 of the URL>.token``, see ``server_key``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def server_key(url: str) -> str:
    """The name a server's credential is kept under: a token is only ever sent back to the URL
    that issued it (the same scheme, host, port and path, a trailing slash aside)."""
    return "server-" + hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:32]


def session_file(instance_id: str) -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "nextstat-pro" / "sessions" / f"{instance_id}.token"


def save(instance_id: str, token: str) -> Path:
    path = session_file(instance_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)
    return path


def load(instance_id: str) -> str | None:
    """``$NSP_TOKEN`` first (API tokens, CI), then the session file of ``login``."""
    token = os.environ.get("NSP_TOKEN")
    if token:
        return token.strip()
    path = session_file(instance_id)
    return path.read_text().strip() if path.exists() else None


def forget(instance_id: str) -> None:
    session_file(instance_id).unlink(missing_ok=True)
