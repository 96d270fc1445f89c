"""Registry references: ``NAME``, ``NAME@1.2.0``, ``NAME@ALIAS``, ``NAME@sha256:PREFIX``
(at least 12 hex digits), ``NAME@latest``, and for patches ``NAME@REF#PATCH``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import UsageError

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}\Z")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?\Z")
DIGEST_PREFIX = re.compile(r"^sha256:([0-9a-f]{12,64})\Z")
ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}\Z")

Selector = Literal["latest", "semver", "digest", "alias"]


@dataclass(frozen=True)
class Ref:
    name: str
    selector: Selector
    value: str  # the semver, hex digest prefix, alias or "latest"
    patch: str | None = None

    def __str__(self) -> str:
        sel = {"latest": "latest", "semver": self.value, "alias": self.value,
               "digest": f"sha256:{self.value}"}[self.selector]
        return f"{self.name}@{sel}" + (f"#{self.patch}" if self.patch else "")


def parse_ref(text: str) -> Ref:
    body, _, patch = text.partition("#")
    name, at, selector = body.partition("@")
    if not NAME.match(name):
        raise UsageError(f"malformed reference {text!r}: NAME must be lowercase letters, digits, '.', '_' or '-'")
    if "#" in text and not patch:
        raise UsageError(f"malformed reference {text!r}: empty patch name after '#'")
    if not at or selector == "latest":
        return Ref(name, "latest", "latest", patch or None)
    if SEMVER.match(selector):
        return Ref(name, "semver", selector, patch or None)
    if m := DIGEST_PREFIX.match(selector):
        return Ref(name, "digest", m.group(1), patch or None)
    if selector.startswith("sha256:"):
        raise UsageError(f"malformed reference {text!r}: a digest needs at least 12 lowercase hex digits")
    if ALIAS.match(selector):
        return Ref(name, "alias", selector, patch or None)
    raise UsageError(f"malformed reference {text!r}: after '@' comes a semver, an alias, sha256:PREFIX or latest")
