"""Ed25519 key pairs kept as PEM files outside the database (0600), so that a database
administrator who can rewrite tables cannot also sign."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ConfigError


@dataclass(frozen=True)
class KeyPair:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def public_raw(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def load_or_create_keypair(path: Path, create: bool = False) -> KeyPair:
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as exc:
            raise ConfigError(f"{path} is not a PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} is not an Ed25519 key")
        return KeyPair(key)
    if not create:
        raise ConfigError(f"signing key {path} is missing")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return KeyPair(key)


def load_or_create_secret(path: Path, create: bool = False, size: int = 32) -> bytes:
    """A random secret in a 0600 file (hex), e.g. the audit seal key."""
    if path.exists():
        try:
            secret = bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise ConfigError(f"{path} does not hold a hex secret") from None
        if len(secret) < 32:
            raise ConfigError(f"{path} holds a secret shorter than 32 bytes")
        return secret
    if not create:
        raise ConfigError(f"secret {path} is missing")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = os.urandom(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.hex() + "\n")
    return secret
