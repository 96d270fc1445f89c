"""Webhook signing secrets: made, shown once, stored encrypted.

The key that encrypts them (AES-256-GCM) lives in ``<home>/keys/alerts-secrets.key`` (0600, made
with the first webhook channel), beside the audit seal key and outside the database: whoever reads
a database dump or backup does not learn a secret and cannot forge a signed alert. Each secret is
bound to its channel (the channel id is the associated data), so a ciphertext copied onto another
channel's row does not decrypt.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigError
from ..signing.keys import load_or_create_secret

KEY_FILE = "keys/alerts-secrets.key"
PREFIX = "whsec_"
_VERSION = "v1:"


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return PREFIX + base64.b64encode(os.urandom(32)).decode()


def _key(home: Path, create: bool) -> AESGCM:
    path = home / KEY_FILE
    cached = _KEYS.get(path)
    if cached is None:  # read once per process: the file never changes once made
        cached = _KEYS[path] = AESGCM(load_or_create_secret(path, create=create)[:32])
    return cached


_KEYS: dict[Path, AESGCM] = {}


def encrypt(home: Path, channel_id: str, secret: str) -> str:
    nonce = os.urandom(12)
    sealed = _key(home, create=True).encrypt(nonce, secret.encode(), channel_id.encode())
    return _VERSION + base64.b64encode(nonce + sealed).decode()


def decrypt(home: Path, channel_id: str, stored: str) -> str:
    if not stored.startswith(_VERSION):
        raise ConfigError(f"the secret of alert channel {channel_id} is not in a known format")
    raw = base64.b64decode(stored[len(_VERSION):])
    try:
        return _key(home, create=False).decrypt(raw[:12], raw[12:], channel_id.encode()).decode()
    except InvalidTag:
        raise ConfigError(f"the secret of alert channel {channel_id} does not decrypt with {KEY_FILE}") from None
