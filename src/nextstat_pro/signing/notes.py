"""Signing C2SP signed notes and tlog checkpoints (Ed25519) with the log key. The format, and
opening a note, is ``verify.note``."""

from __future__ import annotations

import base64

from ..verify.note import DASH, Checkpoint, key_id
from .keys import KeyPair


def sign_note(text: str, name: str, keys: KeyPair) -> str:
    if not text.endswith("\n") or "\n\n" in text:
        raise ValueError("note text must end in a newline and contain no blank line")
    sig = keys.sign(text.encode())
    return f"{text}\n{DASH} {name} {base64.b64encode(key_id(name, keys.public_raw) + sig).decode()}\n"


def sign_checkpoint(cp: Checkpoint, name: str, keys: KeyPair) -> str:
    return sign_note(cp.text(), name, keys)
