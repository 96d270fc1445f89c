"""C2SP signed notes: the specification's example verifies, and any change breaks it."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nextstat_pro.signing.keys import KeyPair
from nextstat_pro.signing.notes import sign_checkpoint
from nextstat_pro.verify.note import Checkpoint, NoteError, Verifier, open_checkpoint, open_note

from .conftest import shared


def example() -> tuple[Verifier, str]:
    doc = json.loads(shared("testdata", "signed-note", "c2sp-example.json").read_text())
    assert doc["want_valid"] is True
    return Verifier.parse(doc["verifier_key"]), doc["note"]


def test_c2sp_example_verifies() -> None:
    verifier, note = example()
    assert open_note(note, [verifier]) == "This is an example message.\n"
    expected = json.loads(shared("testdata", "signed-note", "c2sp-example.json").read_text())
    assert str(verifier) == expected["verifier_key"]


def test_every_single_byte_change_is_rejected() -> None:
    verifier, note = example()
    data = note.encode()
    for i in range(len(data)):
        changed = bytearray(data)
        changed[i] ^= 0x01
        try:
            text = changed.decode()
        except UnicodeDecodeError:
            continue  # not a note at all
        with pytest.raises(NoteError):
            open_note(text, [verifier])


def test_unknown_key_is_rejected() -> None:
    _, note = example()
    other = Verifier.for_key("example.com/foo", KeyPair(Ed25519PrivateKey.generate()))
    with pytest.raises(NoteError):
        open_note(note, [other])


def test_checkpoint_round_trip() -> None:
    keys = KeyPair(Ed25519PrivateKey.generate())
    verifier = Verifier.for_key("log.example/a", keys)
    note = sign_checkpoint(Checkpoint("log.example/a", 42, bytes(range(32))), "log.example/a", keys)
    cp = open_checkpoint(note, Verifier.parse(str(verifier)), origin="log.example/a")
    assert cp == Checkpoint("log.example/a", 42, bytes(range(32)))
    with pytest.raises(NoteError):
        open_checkpoint(note.replace("\n42\n", "\n43\n"), verifier)
    with pytest.raises(NoteError, match="not 'other'"):
        open_checkpoint(note, verifier, origin="other")
