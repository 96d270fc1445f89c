"""Building a report (pure: data + template + evidence → record, HTML, PDF) and recording it (store
objects, the ``reports`` row and its ``report.created`` event in the caller's transaction).

The build is deterministic: its only inputs are its arguments (the report id, the data, the template,
the evidence files, the data's own time and the run-signing key; Ed25519 signatures are
deterministic), so the same arguments give byte-identical HTML and PDF (tests/test_reports.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..audit.events import append_event
from ..canonical import canonical_json, digest_of
from ..db.models import HubVersion, Project
from ..db.types import utcnow
from ..signing.dsse import sign_statement
from ..signing.keys import KeyPair
from ..verify.report_pdf import (
    DATA_NAME,
    ENVELOPE_NAME,
    HTML_NAME,
    KEY_NAME,
    RECORD_NAME,
    REPORT_SCHEMA,
    TEMPLATE_NAME,
    render_pdf,
    renderer,
    statement_for,
)
from .models import Report
from .templates import Template, render

if TYPE_CHECKING:
    from ..instance import Instance


@dataclass(frozen=True)
class Built:
    """A built report: its record, the files embedded in the PDF (``files``), the HTML and the PDF."""

    record: dict[str, Any]
    files: dict[str, bytes]
    html: bytes
    pdf: bytes

    @property
    def record_digest(self) -> str:
        return digest_of(self.files[RECORD_NAME])


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def build(*, report_id: str, kind: str, project: str, title: str, template: Template, data: dict[str, Any],
          inputs: list[dict[str, Any]], evidence: dict[str, bytes], created: str, keys: KeyPair) -> Built:
    """Render a report. ``created``: an RFC 3339 time taken from the data (never the clock);
    ``inputs``: what it was generated from, by digest; ``evidence``: more files to embed."""
    data_bytes = canonical_json(data)
    names = sorted({RECORD_NAME, DATA_NAME, HTML_NAME, TEMPLATE_NAME, ENVELOPE_NAME, KEY_NAME, *evidence})
    header = {"title": title, "kind": kind, "created": created, "template": template.ref(), "attachments": names,
              "report_id": report_id}
    # The template reads the data as JSON values, exactly what data.json holds.
    html = render(template, header, _plain(data)).encode("utf-8")
    record = {"schema": REPORT_SCHEMA, "report_id": report_id, "kind": kind, "project": project, "title": title,
              "template": template.ref(), "template_digest": template.digest, "data_digest": digest_of(data_bytes),
              "html_digest": digest_of(html), "inputs": inputs, "created": created, "renderer": renderer()}
    files = {**evidence, RECORD_NAME: canonical_json(record), DATA_NAME: data_bytes, HTML_NAME: html,
             TEMPLATE_NAME: template.packed()}
    envelope = sign_statement(statement_for(record, files), keys)
    files[ENVELOPE_NAME] = canonical_json(envelope) + b"\n"
    files[KEY_NAME] = keys.public.public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    pdf = render_pdf(html.decode("utf-8"), files, parse_time(created))
    return Built(record, files, html, pdf)


def _plain(value: Any) -> Any:
    import json

    return json.loads(canonical_json(value))


def record_report(instance: Instance, session: Session, ctx: RequestContext, project: Project, built: Built,
                  template_version: HubVersion, params: dict[str, Any], parent_id: str | None = None) -> Report:
    """Store the report's objects and write its row and ``report.created`` event in the caller's
    transaction (which has authorized the report's operation)."""
    envelope = built.files[ENVELOPE_NAME]
    record = built.files[RECORD_NAME]
    instance.store.put_many([built.pdf, built.html, built.files[DATA_NAME], record, envelope])
    r = built.record
    row = Report(id=r["report_id"], project_id=project.id, kind=r["kind"], title=r["title"],
                 template_version_id=template_version.id, template_digest=r["template_digest"],
                 record_digest=digest_of(record), data_digest=r["data_digest"], html_digest=r["html_digest"],
                 pdf_digest=digest_of(built.pdf), envelope_digest=digest_of(envelope), parent_id=parent_id,
                 params=params, created_at=utcnow(), created_by=ctx.actor.id)
    session.add(row)
    session.flush()
    append_event(session, ctx, action="report.created", target=("report", row.id), project=project.name,
                 after={"kind": row.kind, "title": row.title, "template": r["template"],
                        "record_digest": row.record_digest, "pdf_digest": row.pdf_digest,
                        "html_digest": row.html_digest, "data_digest": row.data_digest,
                        "envelope_digest": row.envelope_digest, "parent_id": parent_id, "params": params,
                        "inputs": r["inputs"]})
    return row
