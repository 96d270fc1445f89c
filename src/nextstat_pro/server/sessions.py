"""Browser sessions: a cookie that carries a session credential and the time of its last use.

The credential is an ordinary ``session`` token of ``identity.auth`` (so it expires after
``auth.session_hours`` — the absolute timeout — and revocation, lockout and disabling apply as to
the CLI). The cookie adds the idle timeout without a database write per request: it holds the
time of the last request, MACed with the server's session key, and each request re-issues it.
A new sign-in always makes a new credential (the session id rotates at login). The CSRF token is
a MAC of the credential's id: a page gets it from the server and sends it back in a header or a
form field on every state-changing request; a cross-site form cannot know it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import AuthenticationError
from ..signing.keys import load_or_create_secret

COOKIE = "nsp_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
KEY_FILE = "keys/server-session.key"


def session_key(home: Path) -> bytes:
    """The server's session key, made on first use (by the first of N workers to get there)."""
    path = home / KEY_FILE
    try:
        return load_or_create_secret(path, create=True)
    except FileExistsError:  # another worker made it between the check and the create
        return load_or_create_secret(path)


@dataclass(frozen=True)
class SessionCodec:
    key: bytes
    # Read per request: ``config set server.session_idle_minutes`` applies at once.
    idle_s: Callable[[], float]

    def _mac(self, *parts: str) -> str:
        return hmac.new(self.key, "|".join(parts).encode(), hashlib.sha256).hexdigest()

    def encode(self, token: str, now: float | None = None) -> str:
        seen = str(int(now if now is not None else time.time()))
        return f"{token}|{seen}|{self._mac('session', token, seen)}"

    def decode(self, value: str, now: float | None = None) -> str:
        """The credential in a session cookie, or AuthenticationError when the cookie was not
        made here or the session has been idle longer than allowed."""
        token, seen, mac = (value.split("|") + ["", "", ""])[:3]
        if not (token and seen.isdigit() and hmac.compare_digest(mac, self._mac("session", token, seen))):
            raise AuthenticationError("invalid session cookie: sign in again")
        if (now if now is not None else time.time()) - int(seen) > self.idle_s():
            raise AuthenticationError("session expired after inactivity: sign in again")
        return token

    def csrf(self, token_id: str) -> str:
        return self._mac("csrf", token_id)

    def check_csrf(self, token_id: str, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf(token_id))
