"""Verifying an audit bundle (``audit export``) offline: every event's hash, its inclusion in the
bundle's checkpoint signed by the log key, the chain links between consecutive events, and that
the human formats (``events.csv``, ``events.json``) show exactly the verified events.

The CSV rendering is defined here, next to the check that compares a bundle's ``events.csv``
with it; the exporter (``audit.export``) writes the same rendering. ``events.csv`` is written
by ``csvsafe.write_csv``: a cell a spreadsheet would run as a formula gets a leading
apostrophe (docs/audit.md). It is a view: the events themselves keep their exact text.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path
from typing import Any

from ..csvsafe import write_csv
from ..errors import InputError
from .merkle import ProofError, verify_inclusion
from .note import NoteError, Verifier, open_checkpoint
from .proofs import ProofVerificationError, event_leaf

CSV_COLUMNS = ("seq", "event_id", "ts", "actor_id", "actor_name", "action", "target_type", "target_id", "project",
               "reason", "interface", "client", "before", "after", "prev_hash", "hash")


def csv_row(e: dict[str, Any]) -> list[object]:
    return [
        e["seq"], e["event_id"], e["ts"], e["actor"]["id"], e["actor"]["name"], e["action"], e["target"]["type"],
        e["target"]["id"], e["project"] or "", e["reason"] or "", e["context"]["interface"],
        e["context"]["client"] or "", json.dumps(e["before"]), json.dumps(e["after"]), e["prev_hash"], e["hash"],
    ]


def render_csv(events: list[dict[str, Any]]) -> str:
    """``events.csv`` of a bundle holding ``events``."""
    return write_csv(CSV_COLUMNS, (csv_row(e) for e in events))


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _csv_check(text: str, events: list[dict[str, Any]]) -> str:
    """Check that events.csv shows exactly the verified events, cell by cell; return a warning
    for a bundle written before cells were neutralised whose cells a spreadsheet would run."""
    cells = _cells(text)
    if cells == _cells(render_csv(events)):
        return ""
    if cells != [list(CSV_COLUMNS), *([str(c) for c in csv_row(e)] for e in events)]:
        raise ProofVerificationError("events.csv differs from the verified events")
    return ("; warning: its events.csv predates formula neutralisation and holds cells a spreadsheet would run "
            "as formulas: read events.jsonl, or export again")


def verify_bundle(folder: Path, key_text: str | None = None) -> str:
    """Verify a bundle with no database and no network. The key is the one given (trusted),
    else the bundle's own ``log.pub`` (then only as trustworthy as where the bundle came from).
    Malformed files are a ProofVerificationError too, never a traceback; a missing one is an
    InputError."""
    try:
        return _verify_bundle(folder, key_text)
    except (ProofVerificationError, InputError):
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ProofVerificationError(f"malformed bundle ({type(exc).__name__}: {exc})") from None


def _verify_bundle(folder: Path, key_text: str | None) -> str:
    def read(name: str) -> str:
        try:
            return (folder / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"bundle {folder} lacks {name}") from None

    def read_exact(name: str) -> str:  # without newline translation: a CSV cell may hold a CR
        try:
            return (folder / name).read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise InputError(f"bundle {folder} lacks {name}") from None

    own_key = read("log.pub").strip()
    try:
        key = Verifier.parse(key_text if key_text is not None else own_key)
        cp = open_checkpoint(read("checkpoint.note"), key)
    except NoteError as exc:
        raise ProofVerificationError(f"bundle checkpoint does not verify: {exc}") from None
    if str(key) != own_key:
        raise ProofVerificationError("the bundle names another log key than the one given")
    events = [json.loads(line) for line in read("events.jsonl").splitlines() if line]
    proofs = {p["seq"]: p["proof"] for p in (json.loads(line) for line in read("proofs.jsonl").splitlines() if line)}
    previous: dict[str, Any] | None = None
    for e in events:
        leaf = event_leaf(e)
        if e["seq"] not in proofs:
            raise ProofVerificationError(f"bundle has no proof for event {e['seq']}")
        try:
            path = [base64.b64decode(p) for p in proofs[e["seq"]]]
            verify_inclusion(e["seq"] - 1, cp.size, leaf, path, cp.root)
        except ProofError as exc:
            raise ProofVerificationError(f"event {e['seq']}: {exc}") from None
        if previous is not None and e["seq"] == previous["seq"] + 1 and e["prev_hash"] != previous["hash"]:
            raise ProofVerificationError(f"event {e['seq']} does not link to event {previous['seq']}")
        previous = e
    summary = json.loads(read("bundle.json"))
    if summary.get("events") != len(events):
        raise ProofVerificationError("bundle.json counts another number of events than events.jsonl holds")
    warning = ""
    if summary.get("format") == "csv":
        # Every cell, not only the keys: a view must show what the verified events say.
        warning = _csv_check(read_exact("events.csv"), events)
    elif summary.get("format") == "json":
        if json.loads(read("events.json")) != events:
            raise ProofVerificationError("events.json differs from the verified events")
    return f"{len(events)} events verified against the checkpoint at tree size {cp.size} of {cp.origin}{warning}"
