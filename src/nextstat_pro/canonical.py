"""Canonical JSON (RFC 8785) and sha256 digests: the identity of everything we store."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import rfc8785

DIGEST_PREFIX = "sha256:"


def sanitize(value: Any) -> Any:
    """Return ``value`` with every non-finite float replaced by None.

    RFC 8785 (like JSON itself) has no NaN or Infinity; the engine produces them for
    undefined uncertainties, so they are normalised here once, before hashing.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    return value


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of ``value`` (non-finite floats become null)."""
    return rfc8785.dumps(sanitize(value))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of some bytes."""
    return DIGEST_PREFIX + sha256_hex(data)


def json_digest(value: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``value``."""
    return digest_of(canonical_json(value))


def parse_digest(digest: str) -> str:
    """Return the hex part of ``sha256:<hex>``; raise ValueError when it is not one."""
    if not digest.startswith(DIGEST_PREFIX):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    hexpart = digest[len(DIGEST_PREFIX):]
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexpart
