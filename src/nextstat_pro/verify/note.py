"""C2SP signed notes (signed-note v1.0.0, Ed25519) and tlog checkpoints (tlog-checkpoint): parsing
and verification. Signing a note needs the log's private key: ``signing.notes``.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> <base64(key id (4 bytes) || signature)>``. The key id of an Ed25519 key
is the first 4 bytes of SHA-256(name || "\\n" || 0x01 || public key). A checkpoint is a
note whose text is ``<origin>\\n<tree size>\\n<base64 root hash>\\n``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import VerificationError

ED25519 = 0x01
DASH = "\u2014"


class NoteError(VerificationError):
    """A note or checkpoint is malformed or its signature does not verify."""


class PublicKeyHolder(Protocol):
    """Anything that knows its raw Ed25519 public key (``signing.keys.KeyPair``)."""

    @property
    def public_raw(self) -> bytes: ...


def key_id(name: str, public_raw: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_raw).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: bytes
    public: Ed25519PublicKey
    public_raw: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Parse a verifier key ``<name>+<hex key id>+<base64(0x01 || key)>``."""
        try:
            name, hex_id, b64 = text.strip().split("+", 2)
            raw = base64.b64decode(b64, validate=True)
            kid = bytes.fromhex(hex_id)
        except (ValueError, binascii.Error):
            raise NoteError(f"malformed verifier key {text!r}") from None
        if len(raw) != 33 or raw[0] != ED25519 or len(kid) != 4 or not name:
            raise NoteError("verifier key is not an Ed25519 signed-note key")
        if key_id(name, raw[1:]) != kid:
            raise NoteError("verifier key id does not match its name and key")
        return cls(name, kid, Ed25519PublicKey.from_public_bytes(raw[1:]), raw[1:])

    @classmethod
    def for_key(cls, name: str, keys: PublicKeyHolder) -> Verifier:
        raw = keys.public_raw
        return cls(name, key_id(name, raw), Ed25519PublicKey.from_public_bytes(raw), raw)

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ED25519]) + self.public_raw).decode()}"


def open_note(note: str, verifiers: Sequence[Verifier]) -> str:
    """Return the note's text when a signature by one of ``verifiers`` verifies.

    Raises NoteError on malformed notes, on a known key whose signature fails, and when no
    known key signed it.
    """
    if not note.endswith("\n"):
        raise NoteError("note does not end in a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("note has no signature block")
    text, block = note[: cut + 1], note[cut + 2 :]
    verified = False
    for line in block.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise NoteError(f"malformed signature line {line!r}")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise NoteError("signature is not base64") from None
        if len(blob) < 5:
            raise NoteError("signature is too short")
        for v in verifiers:
            if v.name == parts[1] and v.key_id == blob[:4]:
                try:
                    v.public.verify(blob[4:], text.encode())
                except InvalidSignature:
                    raise NoteError(f"signature by {v.name} does not verify") from None
                verified = True
    if not verified:
        raise NoteError("note is not signed by a known key")
    return text


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint needs origin, size and root lines")
        origin, size_s, root_s = lines[0], lines[1], lines[2]
        if not origin or not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
            raise NoteError("checkpoint origin or size is malformed")
        try:
            root = base64.b64decode(root_s, validate=True)
        except binascii.Error:
            raise NoteError("checkpoint root is not base64") from None
        if len(root) != 32:
            raise NoteError("checkpoint root is not a SHA-256 hash")
        return cls(origin, int(size_s), root)


def open_checkpoint(note: str, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    cp = Checkpoint.parse(open_note(note, [verifier]))
    if origin is not None and cp.origin != origin:
        raise NoteError(f"checkpoint is for log {cp.origin!r}, not {origin!r}")
    return cp
