"""Canonical JSON (RFC 8785) and sha256 digests: the identity of everything we store."""

from __future__ import annotations

import hashlib
import json
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


_SAFE_INT = 2**53 - 1


def _plain(value: Any) -> bool:
    """True when ``json.dumps`` already writes the RFC 8785 form of ``value``: no floats
    (ES6 number formatting differs from Python's repr) and no keys outside the Basic
    Multilingual Plane (RFC 8785 sorts keys by UTF-16 code units, Python by code points)."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_SAFE_INT <= value <= _SAFE_INT  # beyond it rfc8785 refuses (I-JSON)
    if isinstance(value, dict):
        return all(isinstance(k, str) and (k.isascii() or max(k) < "\U00010000") and _plain(v)
                   for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of ``value`` (non-finite floats become null).

    Values without floats take the C ``json`` encoder (5x faster: the audit append is on
    the path of every change); a test checks both paths agree on random documents.
    """
    if _plain(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
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
