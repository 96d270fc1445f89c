"""Identifiers: UUIDv7 (RFC 9562) so that ids sort by creation time."""

from __future__ import annotations

import uuid6


def new_id() -> str:
    return str(uuid6.uuid7())
