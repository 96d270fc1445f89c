"""Self-contained audit bundles: events, the checkpoint covering them, an inclusion proof per
event and the log's public key, verifiable offline with ``audit verify --bundle``.

Layout: ``events.jsonl`` (the hashed events, one per line: the verifiable record),
``events.csv`` or ``events.json`` when asked (for people and spreadsheets), ``checkpoint.note``,
``proofs.jsonl`` (``{"seq", "proof"}``), ``log.pub`` and ``bundle.json``.

``events.csv`` is written by ``csvsafe.write_csv``: a cell a spreadsheet would run as a formula
gets a leading apostrophe (docs/audit.md). It is a view: the verifier checks that it is exactly
the rendering of the verified events, and the events themselves keep their exact text.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any, Literal

from ..csvsafe import write_csv
from ..errors import InputError, UsageError
from ..files import place_folder, require_empty
from ..identity.actors import RequestContext
from ..identity.rbac import authorize
from ..instance import Instance
from . import merkle, tree
from .events import append_event
from .note import NoteError, Verifier, open_checkpoint
from .proofs import ProofVerificationError, b64, event_leaf
from .service import EventFilter, checkpoint_in, query_events

Format = Literal["csv", "json", "jsonl"]
CSV_COLUMNS = ("seq", "event_id", "ts", "actor_id", "actor_name", "action", "target_type", "target_id", "project",
               "reason", "interface", "client", "before", "after", "prev_hash", "hash")
BUNDLE = "nextstat-pro/audit-bundle/v1"


def _csv_row(e: dict[str, Any]) -> list[object]:
    return [
        e["seq"], e["event_id"], e["ts"], e["actor"]["id"], e["actor"]["name"], e["action"], e["target"]["type"],
        e["target"]["id"], e["project"] or "", e["reason"] or "", e["context"]["interface"],
        e["context"]["client"] or "", json.dumps(e["before"]), json.dumps(e["after"]), e["prev_hash"], e["hash"],
    ]


def _csv(events: list[dict[str, Any]]) -> str:
    return write_csv(CSV_COLUMNS, (_csv_row(e) for e in events))


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _csv_check(text: str, events: list[dict[str, Any]]) -> str:
    """Check that events.csv shows exactly the verified events, cell by cell; return a warning
    for a bundle written before cells were neutralised whose cells a spreadsheet would run."""
    cells = _cells(text)
    if cells == _cells(_csv(events)):
        return ""
    if cells != [list(CSV_COLUMNS), *([str(c) for c in _csv_row(e)] for e in events)]:
        raise ProofVerificationError("events.csv differs from the verified events")
    return ("; warning: its events.csv predates formula neutralisation and holds cells a spreadsheet would run "
            "as formulas: read events.jsonl, or export again")


def export_bundle(
    instance: Instance, ctx: RequestContext, dest: Path, fmt: Format = "jsonl",
    since: str | None = None, until: str | None = None,
) -> dict[str, Any]:
    if fmt not in ("csv", "json", "jsonl"):
        raise UsageError(f"unknown format {fmt!r} (csv, json or jsonl)")
    require_empty(dest)
    placed = False
    try:
        with instance.db.transaction() as session:
            authorize(session, ctx, "audit.export")
            cp = checkpoint_in(instance, session)
            events: list[dict[str, Any]] = []
            cursor = 0
            while True:
                page = query_events(session, EventFilter(since=since, until=until), after_seq=cursor, limit=5000)
                page = [e for e in page if e["seq"] <= cp.size]
                if not page:
                    break
                events.extend(page)
                cursor = page[-1]["seq"]
            proofs = [{"seq": e["seq"], "proof": [b64(p) for p in tree.inclusion(session, e["seq"], cp.size)]}
                      for e in events]
            summary = {"type": BUNDLE, "format": fmt, "events": len(events), "tree_size": cp.size,
                       "first_seq": events[0]["seq"] if events else None,
                       "last_seq": events[-1]["seq"] if events else None, "since": since, "until": until}
            files = {
                "events.jsonl": "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events),
                "checkpoint.note": cp.note,
                "proofs.jsonl": "".join(json.dumps(p) + "\n" for p in proofs),
                "log.pub": f"{instance.log_verifier()}\n",
                "bundle.json": json.dumps(summary, indent=2) + "\n",
            }
            if fmt == "csv":
                files["events.csv"] = _csv(events)
            elif fmt == "json":
                files["events.json"] = json.dumps(events, indent=2, ensure_ascii=False) + "\n"
            append_event(session, ctx, action="audit.exported", target=("audit", instance.config.log_origin),
                         after={**summary, "destination": str(dest.resolve())})
            place_folder({k: v.encode() for k, v in files.items()}, dest)
            placed = True
    except BaseException:
        if placed:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    return summary


def verify_bundle(folder: Path, key_text: str | None = None) -> str:
    """Verify a bundle with no database and no network. The key is the one given (trusted),
    else the bundle's own ``log.pub`` (then only as trustworthy as where the bundle came from).
    Malformed files are a ProofVerificationError too, never a traceback."""
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
            merkle.verify_inclusion(e["seq"] - 1, cp.size, leaf, path, cp.root)
        except merkle.ProofError as exc:
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
