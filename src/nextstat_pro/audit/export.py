"""Self-contained audit bundles: events, the checkpoint covering them, an inclusion proof per
event and the log's public key, verifiable offline with ``audit verify --bundle``.

Layout: ``events.jsonl`` (the hashed events, one per line: the verifiable record),
``events.csv`` or ``events.json`` when asked (for people and spreadsheets), ``checkpoint.note``,
``proofs.jsonl`` (``{"seq", "proof"}``), ``log.pub`` and ``bundle.json``.

``events.csv`` is ``verify.bundle.render_csv`` (``csvsafe.write_csv``): a cell a spreadsheet would
run as a formula gets a leading apostrophe (docs/audit.md). It is a view: the verifier
(``verify.bundle``) checks that it is exactly that rendering of the verified events, and the events
themselves keep their exact text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..access.context import RequestContext
from ..access.rbac import authorize
from ..errors import UsageError
from ..files import place_folder, require_empty
from ..verify.bundle import render_csv, verify_bundle
from . import tree
from .events import append_event
from .proofs import b64
from .records import EventFilter, checkpoint_in, query_events
from .views import AuditExportSummary

if TYPE_CHECKING:
    from ..instance import Instance

Format = Literal["csv", "json", "jsonl"]
BUNDLE = "nextstat-pro/audit-bundle/v1"


def export_bundle(
    instance: Instance, ctx: RequestContext, dest: Path, fmt: Format = "jsonl",
    since: str | None = None, until: str | None = None,
) -> AuditExportSummary:
    """Write the events between ``since`` and ``until`` (all by default) with their proofs
    against a checkpoint signed now into the empty folder ``dest`` (an auditor's or an
    instance admin's ``audit.export``), and audit the export."""
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
                files["events.csv"] = render_csv(events)
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
    return AuditExportSummary.model_validate(summary)


__all__ = ["BUNDLE", "Format", "export_bundle", "verify_bundle"]  # verify_bundle: tests/test_security_csv.py
