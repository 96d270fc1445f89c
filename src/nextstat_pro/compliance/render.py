"""Building a report (pure: data + template + evidence → record, HTML, PDF) and recording it (store
objects, the ``reports`` row and its ``report.created`` event in the caller's transaction).

The build is deterministic: its only inputs are its arguments (the report id, the data, the template,
the evidence files, the data's own time and the run-signing key; Ed25519 signatures are
deterministic), so the same arguments give byte-identical HTML and PDF (tests/test_reports.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
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
from ..verify.pdf_update import Spooled
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
    sha256_hex,
    statement_for,
    write_report_pdf,
)
from .models import Report
from .templates import Template, render

if TYPE_CHECKING:
    from ..instance import Instance


@dataclass(frozen=True)
class Built:
    """A built report: its record, the files rendered into the PDF (``files``), the large files
    appended to it (``streamed``, in spool files), the HTML and the PDF: ``base`` when nothing is
    appended, else the file at ``pdf_path`` (written in chunks, never held whole)."""

    record: dict[str, Any]
    files: dict[str, bytes]
    html: bytes
    base: bytes
    pdf_digest: str
    streamed: tuple[Spooled, ...] = ()
    pdf_path: Path | None = None

    @property
    def record_digest(self) -> str:
        return digest_of(self.files[RECORD_NAME])

    @property
    def pdf(self) -> bytes:
        """The whole PDF in memory: for small reports and tests (the service streams ``pdf_path``)."""
        return self.pdf_path.read_bytes() if self.pdf_path is not None else self.base


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def build(*, report_id: str, kind: str, project: str, title: str, template: Template, data: dict[str, Any],
          inputs: list[dict[str, Any]], evidence: dict[str, bytes], created: str, keys: KeyPair,
          streamed: list[Spooled] | None = None, spool: Path | None = None) -> Built:
    """Render a report. ``created``: an RFC 3339 time taken from the data (never the clock);
    ``inputs``: what it was generated from, by digest; ``evidence``: more files to embed;
    ``streamed``: large files appended after rendering (``verify/pdf_update.py``), the PDF then
    written into the folder ``spool``."""
    streamed = sorted(streamed or [], key=lambda f: f.name)
    data_bytes = canonical_json(data)
    names = sorted({RECORD_NAME, DATA_NAME, HTML_NAME, TEMPLATE_NAME, ENVELOPE_NAME, KEY_NAME, *evidence,
                    *(f.name for f in streamed)})
    header = {"title": title, "kind": kind, "created": created, "template": template.ref(), "attachments": names,
              "report_id": report_id}
    # The template reads the data as JSON values, exactly what data.json holds.
    html = render(template, header, _plain(data)).encode("utf-8")
    record = {"schema": REPORT_SCHEMA, "report_id": report_id, "kind": kind, "project": project, "title": title,
              "template": template.ref(), "template_digest": template.digest, "data_digest": digest_of(data_bytes),
              "html_digest": digest_of(html), "inputs": inputs, "created": created, "renderer": renderer()}
    files = {**evidence, RECORD_NAME: canonical_json(record), DATA_NAME: data_bytes, HTML_NAME: html,
             TEMPLATE_NAME: template.packed()}
    digests = {n: sha256_hex(d) for n, d in files.items()} | {f.name: f.sha256 for f in streamed}
    envelope = sign_statement(statement_for(record, digests, [f.name for f in streamed]), keys)
    files[ENVELOPE_NAME] = canonical_json(envelope) + b"\n"
    files[KEY_NAME] = keys.public.public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    base = render_pdf(html.decode("utf-8"), files, parse_time(created))
    if not streamed:
        return Built(record, files, html, base, digest_of(base))
    if spool is None:
        raise ValueError("a report with streamed attachments needs a spool folder")
    path = spool / f"report-{report_id}.pdf"
    with path.open("wb") as out:
        pdf_digest = write_report_pdf(base, streamed, parse_time(created), out)
    return Built(record, files, html, base, pdf_digest, tuple(streamed), path)


def _plain(value: Any) -> Any:
    import json

    return json.loads(canonical_json(value))


def record_report(instance: Instance, session: Session, ctx: RequestContext, project: Project, built: Built,
                  template_version: HubVersion, params: dict[str, Any], parent_id: str | None = None) -> Report:
    """Store the report's objects and write its row and ``report.created`` event in the caller's
    transaction (which has authorized the report's operation)."""
    envelope = built.files[ENVELOPE_NAME]
    record = built.files[RECORD_NAME]
    instance.store.put_many([built.html, built.files[DATA_NAME], record, envelope])
    if built.pdf_path is not None:  # copied in chunks
        instance.store.put_file(built.pdf_path, built.pdf_digest)
    else:
        instance.store.put(built.base, built.pdf_digest)
    r = built.record
    row = Report(id=r["report_id"], project_id=project.id, kind=r["kind"], title=r["title"],
                 template_version_id=template_version.id, template_digest=r["template_digest"],
                 record_digest=digest_of(record), data_digest=r["data_digest"], html_digest=r["html_digest"],
                 pdf_digest=built.pdf_digest, envelope_digest=digest_of(envelope), parent_id=parent_id,
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
