"""Report PDFs: the format (PDF/A-3b with the evidence embedded as attachments), rendering one
deterministically, and ``nextstat-pro verify REPORT.pdf`` offline: no database, no network.

A report PDF carries these attachments (PDF/A-3 "associated files"):

- ``report.json``: the report record (schema ``REPORT_SCHEMA``): id, kind, project, title, the
  template (name, version, digest), the digests of ``data.json`` and ``report.html``, the input list
  (what the report was generated from, by digest), the data's time (``created``), the renderer;
- ``data.json``: the report's data, RFC 8785 canonical JSON (what the template rendered);
- ``report.html``: the HTML page the PDF was rendered from; ``template.json``: the packed template;
- kind-specific evidence under a folder (a run certificate embeds the run's export under ``run/``:
  ``verify`` checks it as ``verify RUN-FOLDER`` would);
- ``report.intoto.jsonl``: a DSSE envelope (run-signing key) over an in-toto statement whose
  subjects are every other attachment (its predicate lists the appended ones, below, under
  ``appended``); ``keys/run-signing.pub``: that key.

Large evidence (an audit trail's ``audit/events.jsonl.gz``) is not rendered by WeasyPrint but
appended after it as one incremental update written in chunks (``pdf_update``): the file is the
rendered *base* followed by that update, and a PDF reader sees every attachment in one document.

``verify_report_pdf`` checks: the attachments against the signed statement (none missing, none
extra, none changed, each name once; appended ones hashed a chunk at a time); that the appended ones
are exactly those the statement lists as appended, in the report's own update (so a file rewritten
into one revision, or with someone else's update after ours, fails); that an update holds exactly
what ``pdf_update`` writes for them; the record's digests against ``data.json`` and ``report.html``;
embedded evidence (a run export) as its own verifier does; and, when this machine's WeasyPrint is
the one that rendered the report, that re-rendering ``report.html`` with the rendered attachments
gives the base byte for byte, so a change to the printed text fails too (with another renderer version that
step is reported as not done, never as passed).

WeasyPrint pitfalls handled here (checked on this machine): attachment dates default to the clock
(pinned to the data's time), the document dates come from ``<meta name="dcterms.created">`` (the
template sets it), and PNGs are interpolated unless CSS says ``image-rendering: crisp-edges``
(the template checks require it).
"""

from __future__ import annotations

import base64
import gc
import hashlib
import io
import json
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .dsse import EnvelopeError, key_id, open_envelope
from .errors import VerificationError
from .pdf_update import Appended, Read, Spooled, check_update, file_reader, range_digests, split, write_update
from .report_signatures import bind_report_signatures, sealed_events

REPORT_SCHEMA = "https://nextstat.pro/schemas/report/v1"
REPORT_PREDICATE = "https://nextstat.pro/attestations/report/v1"
RECORD_NAME = "report.json"
DATA_NAME = "data.json"
HTML_NAME = "report.html"
TEMPLATE_NAME = "template.json"
ENVELOPE_NAME = "report.intoto.jsonl"
KEY_NAME = "keys/run-signing.pub"
RUN_FOLDER = "run/"
SIGNATURES_NAME = "signatures.json"
SIGNATURE_TYPE = "nextstat-pro/report-signature/v1"
_DESCRIPTIONS = {RECORD_NAME: "Report record: template, inputs, digests", DATA_NAME: "Report data (RFC 8785 JSON)",
                 HTML_NAME: "The HTML this PDF was rendered from", TEMPLATE_NAME: "The packed template",
                 ENVELOPE_NAME: "DSSE envelope signing every other attachment",
                 KEY_NAME: "The instance's run-signing public key (PEM)"}


def renderer() -> str:
    """The renderer's name and version, recorded in a report (a re-render is compared only under it)."""
    import weasyprint

    return f"weasyprint {weasyprint.__version__}"


def render_pdf(html: str, attachments: dict[str, bytes], created: datetime) -> bytes:
    """PDF/A-3b of ``html`` with ``attachments`` embedded, dated ``created`` (from the data, never
    the clock): the same arguments give the same bytes."""
    import weasyprint

    files = [weasyprint.Attachment(string=data, name=name, description=_describe(name), created=created,
                                   modified=created, relationship="Data" if name != HTML_NAME else "Source")
             for name, data in sorted(attachments.items())]
    # WeasyPrint 70 opens its sRGB profile for PDF/A's output intent and never closes it: the file
    # is closed when the rendered document is freed, inside this block, where that warns nobody.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        # No base URL: a report fetches nothing (its assets are data: URIs from the packed template).
        doc = weasyprint.HTML(string=html, base_url=None, url_fetcher=_no_fetch)
        pdf: bytes = doc.write_pdf(pdf_variant="pdf/a-3b", attachments=files, uncompressed_pdf=False)
        del doc
        gc.collect()
    return pdf


def _no_fetch(url: str, timeout: int = 10, ssl_context: Any = None) -> dict[str, Any]:
    if url.startswith("data:"):
        import weasyprint

        fetched: dict[str, Any] = weasyprint.default_url_fetcher(url, timeout, ssl_context)
        return fetched
    raise ValueError(f"a report fetches nothing: {url}")


def _describe(name: str) -> str:
    if name in _DESCRIPTIONS:
        return _DESCRIPTIONS[name]
    if name.startswith(RUN_FOLDER):
        return "Run export: " + name.removeprefix(RUN_FOLDER)
    return "Evidence: " + name


def read_attachments(pdf: bytes) -> dict[str, bytes]:
    """The embedded files of a PDF by name (pikepdf, no rendering). Each name once: the name tree
    and the associated files (/AF) must list the same names, none twice (a mapping by name keeps
    the last; a reader may open the first)."""
    import pikepdf

    stream = io.BytesIO(pdf)
    try:
        with pikepdf.open(stream) as doc:
            tree = doc.Root.get("/Names", pikepdf.Dictionary()).get("/EmbeddedFiles", pikepdf.Dictionary())
            flat = tree.get("/Names", pikepdf.Array())
            listed = [str(flat[i]) for i in range(0, len(flat), 2)]
            # WeasyPrint 70 lists each file specification twice in /AF (one object, two references).
            specs = {spec.objgen if spec.is_indirect else i: spec
                     for i, spec in enumerate(doc.Root.get("/AF", pikepdf.Array()))}
            associated = [str(spec.get("/UF", spec.get("/F", ""))) for spec in specs.values()]
            files = {name: spec.get_file().read_bytes() for name, spec in doc.attachments.items()}
            damaged = doc.get_warnings()
            if damaged:
                where = f"stream {stream!r}"
                raise VerificationError("the PDF is damaged (a reader repairs it its own way): "
                                        + str(damaged[0]).replace(where + ": ", "").replace(where + " ", ""))
    except pikepdf.PdfError as exc:
        raise VerificationError(f"not a readable PDF: {exc}") from None
    for names in (listed, associated):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise VerificationError(f"the PDF embeds attachment {twice[0]} twice")
    if "/Kids" in tree or sorted(listed) != sorted(files) or sorted(associated) != sorted(files):
        raise VerificationError("the PDF's associated files (/AF) and its embedded-file names differ")
    return files


@dataclass
class ReportVerification:
    report_id: str
    kind: str
    title: str
    template: dict[str, str]
    run_key_id: str
    run_key_pinned: bool
    attachments: int
    rerendered: bool | None  # None: this machine's renderer differs from the one recorded
    renderer: str
    run: Any = None  # a RunVerification of the embedded run export (run certificates)
    # The printed report signatures, each with ``key_after_admin_reset`` when its key's sealed
    # user.key_created event says so; bound to the signers only as far as the log key is trusted.
    signatures: list[dict[str, Any]] = field(default_factory=list)
    log_key_pinned: bool = False


def statement_for(record: dict[str, Any], digests: dict[str, str], appended: Iterable[str] = ()) -> dict[str, Any]:
    """The in-toto statement a report's envelope signs: every attachment but the envelope and key,
    by its SHA-256 (hex, ``digests``: name → digest), and which of them are ``appended`` after
    rendering (listed only when some are: a report without any signs what it always did)."""
    from .dsse import STATEMENT_TYPE

    predicate = {"report_id": record["report_id"], "kind": record["kind"], "project": record["project"],
                 "template": record["template"], "created": record["created"]}
    names = sorted(appended)
    if names:
        predicate["appended"] = names
    return {"_type": STATEMENT_TYPE,
            "subject": [{"name": n, "digest": {"sha256": d}}
                        for n, d in sorted(digests.items()) if n not in (ENVELOPE_NAME, KEY_NAME)],
            "predicateType": REPORT_PREDICATE, "predicate": predicate}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_report_pdf(base: bytes, streamed: list[Spooled], created: datetime, out: BinaryIO) -> str:
    """The report file: the rendered ``base`` and, when there are ``streamed`` attachments, the
    incremental update adding them, copied in chunks (``pdf_update``); returns its digest."""
    return write_update(base, streamed, created, {f.name: _describe(f.name) for f in streamed}, out)


def verify_report_pdf(path: Path, run_key_pem: bytes | None = None, log_key: str | None = None) -> ReportVerification:
    try:
        read, total, close = file_reader(path)
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return _verify(read, total, run_key_pem, log_key)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VerificationError(f"malformed report: {type(exc).__name__}: {exc}") from None
    finally:
        close()


def report_files(read: Read, total: int) -> tuple[bytes, dict[str, bytes], list[Appended]]:
    """A report file's base PDF, the attachments it embeds (read whole: they are small) and those
    its update appends (where they are: they can be large)."""
    base, appended = split(read, total)
    files = read_attachments(base)
    for a in appended:
        if a.name in files or a.name.startswith(RUN_FOLDER):
            raise VerificationError(f"attachment {a.name} is both rendered and appended")
    return base, files, appended


def _verify(read: Read, total: int, run_key_pem: bytes | None, log_key: str | None) -> ReportVerification:
    base, files, appended = report_files(read, total)
    for name in (RECORD_NAME, DATA_NAME, HTML_NAME, ENVELOPE_NAME, KEY_NAME):
        if name not in files:
            raise VerificationError(f"the PDF has no attachment {name}: not a NextStat Pro report")
    pem = run_key_pem or files[KEY_NAME]
    public = serialization.load_pem_public_key(pem)
    if not isinstance(public, Ed25519PublicKey):
        raise VerificationError("the run-signing key is not an Ed25519 key")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    envelope = json.loads(files[ENVELOPE_NAME])
    try:
        statement = open_envelope(envelope, public, raw)
    except EnvelopeError as exc:
        raise VerificationError(f"report envelope: {exc}") from None
    record = json.loads(files[RECORD_NAME])
    created = datetime.fromisoformat(record["created"].replace("Z", "+00:00"))
    names = [s["name"] for s in statement["subject"]]
    if len(set(names)) != len(names):
        raise VerificationError("the signed statement names an attachment twice")
    signed = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    _check_appended(statement, appended)
    present = {n: sha256_hex(d) for n, d in files.items() if n not in (ENVELOPE_NAME, KEY_NAME)}
    md5: dict[str, str] = {}
    for a in appended:  # hashed a chunk at a time: an audit trail's events file can be large
        digests = range_digests(read, a.start, a.size)
        present[a.name], md5[a.name] = digests.sha256, digests.md5
    for name in sorted(signed.keys() | present.keys()):
        if name not in present:
            raise VerificationError(f"attachment {name} is signed but missing")
        if name not in signed:
            raise VerificationError(f"attachment {name} is not signed by the report's envelope")
        if signed[name] != present[name]:
            raise VerificationError(f"attachment {name}: digest mismatch (changed after signing)")
    if statement != statement_for(record, present, [a.name for a in appended]):
        raise VerificationError("the signed statement does not describe this report record")
    if appended:
        check_update(read, total, base, appended, created, {a.name: _describe(a.name) for a in appended}, md5)
    for name, key in ((DATA_NAME, "data_digest"), (HTML_NAME, "html_digest"), (TEMPLATE_NAME, "template_digest")):
        if name in files and record.get(key) != "sha256:" + present[name]:
            raise VerificationError(f"{RECORD_NAME}: {key} does not match {name}")
    if TEMPLATE_NAME in files and record["template"]["digest"] != record.get("template_digest"):
        raise VerificationError(f"{RECORD_NAME}: the template digest does not match the packed template")
    run = None
    if any(n.startswith(RUN_FOLDER) for n in files):
        run = _verify_run(files, run_key_pem, log_key)
    rerendered: bool | None = None
    if record.get("renderer") == renderer():
        # The base is what WeasyPrint renders from the signed HTML and the rendered attachments.
        again = render_pdf(files[HTML_NAME].decode("utf-8"), dict(files), created)
        if again != base:
            raise VerificationError("the PDF differs from the one its signed HTML and attachments render to "
                                    "(its pages were changed)")
        rerendered = True
    data = json.loads(files[DATA_NAME])
    sigs = data.get("report_signatures", []) if isinstance(data, dict) else []
    if record["kind"] == "run-certificate":
        _check_run_signatures(files, data.get("signatures", []) if isinstance(data, dict) else [])
    printed: list[dict[str, Any]] = []
    if SIGNATURES_NAME in files or sigs:
        reset = _check_signatures(files, record, sigs, log_key)
        printed = [{**s, "key_after_admin_reset": True} if reset.get(s["id"]) else s for s in sigs]
    return ReportVerification(report_id=record["report_id"], kind=record["kind"], title=record["title"],
                              template=record["template"], run_key_id=key_id(raw), run_key_pinned=bool(run_key_pem),
                              attachments=len(files) + len(appended), rerendered=rerendered,
                              renderer=str(record.get("renderer")), run=run, signatures=printed,
                              log_key_pinned=log_key is not None)


def _check_appended(statement: dict[str, Any], appended: list[Appended]) -> None:
    """The attachments the file's update appends (each once: ``split``) are exactly the ones the
    signed statement lists as appended: a file rewritten into one revision fails here. That they
    are exactly the signed ones the rendered part lacks follows from ``report_files`` (none both
    rendered and appended) and the caller's check that the signed and present names are equal."""
    declared = statement["predicate"].get("appended", [])
    found = [a.name for a in appended]
    if not declared and found:
        raise VerificationError(f"the report file appends {found[0]}, but its signed statement lists no appended "
                                "attachment")
    if declared and not found:
        raise VerificationError(f"the signed statement lists {declared[0]} as appended, but the file does not end "
                                "with the report's own update (/NSPBase): changed after writing")
    if found != declared:
        raise VerificationError(f"the report's update appends {', '.join(found)}; its signed statement lists "
                                f"{', '.join(map(str, declared))}")


def _check_run_signatures(files: dict[str, bytes], shown: list[dict[str, Any]]) -> None:
    """A run certificate prints the run's signatures: exactly the records of the embedded export
    (which its verifier binds to the sealed log)."""
    records = json.loads(files.get(RUN_FOLDER + SIGNATURES_NAME, b"[]"))
    expected = [{"id": r["id"], "printed_name": r["payload"]["signer"]["printed_name"],
                 "username": r["payload"]["signer"]["username"], "signed_at": r["payload"]["signed_at"],
                 "meaning": r["payload"]["meaning"], "decision": r["payload"]["decision"],
                 "reason": r["payload"]["reason"], "manifest_digest": r["payload"]["manifest_digest"],
                 "key_id": r["key_id"]} for r in records]
    if expected != shown:
        raise VerificationError("the printed signatures differ from the run's signature records")


def _check_signatures(files: dict[str, bytes], record: dict[str, Any], shown: list[dict[str, Any]],
                      log_key: str | None) -> dict[str, bool]:
    """A signed rendition: every signature record verifies under its key over the signed report's
    record digest, the printed manifestations are exactly those records (none added, dropped or
    altered), and each key is bound to the signer by the sealed log (``report_signatures``; only
    as far as the log key is trusted: pinned, or the file's own). Returns, by signature id,
    whether its key was made after an administrator's password reset."""
    from ..canonical import canonical_json

    if SIGNATURES_NAME not in files:
        raise VerificationError("the report shows signatures but carries no signature records")
    parents = [i for i in record.get("inputs", []) if isinstance(i, dict) and i.get("kind") == "report"]
    if len(parents) != 1:
        raise VerificationError("a signed rendition must name the one report it re-renders")
    signed_digest = parents[0]["record_digest"]
    records = json.loads(files[SIGNATURES_NAME])
    if len(records) != len(shown):
        raise VerificationError(f"{len(shown)} signatures printed, {len(records)} signature records attached")
    for rec, man in zip(records, shown, strict=True):
        payload = rec["payload"]
        if payload.get("type") != SIGNATURE_TYPE or payload.get("record_digest") != signed_digest:
            raise VerificationError(f"signature {rec.get('id')} is over another report")
        try:
            raw = bytes.fromhex(rec["public_key"])
            Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(rec["signature"]), canonical_json(payload))
        except (InvalidSignature, ValueError, TypeError):
            raise VerificationError(f"signature {rec.get('id')} does not verify") from None
        if hashlib.sha256(raw).hexdigest() != rec["key_id"]:
            raise VerificationError(f"signature {rec.get('id')} names another key than it carries")
        expected = {"id": rec["id"], "printed_name": payload["signer"]["printed_name"],
                    "username": payload["signer"]["username"], "signed_at": payload["signed_at"],
                    "meaning": payload["meaning"], "decision": payload["decision"], "reason": payload["reason"],
                    "record_digest": payload["record_digest"], "key_id": rec["key_id"]}
        if man != expected:
            raise VerificationError(f"the printed manifestation of signature {rec.get('id')} differs from its record")
    signed, keys, _ = sealed_events(files, parents[0]["report_id"], log_key)
    return bind_report_signatures(records, signed, keys)


def _verify_run(files: dict[str, bytes], run_key_pem: bytes | None, log_key: str | None) -> Any:
    """The embedded run export, written to a scratch folder and checked as ``verify RUN-FOLDER``."""
    from .run_export import verify_run_folder

    with tempfile.TemporaryDirectory(prefix="nsp-report-run-") as tmp:
        root = Path(tmp)
        for name, data in files.items():
            if not name.startswith(RUN_FOLDER):
                continue
            rel = Path(name.removeprefix(RUN_FOLDER))
            if rel.is_absolute() or ".." in rel.parts:
                raise VerificationError(f"attachment {name}: not a plain relative path")
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            return verify_run_folder(root, run_key_pem, log_key)
        except VerificationError as exc:
            raise VerificationError(f"embedded run export: {exc}") from None


def describe(r: ReportVerification) -> list[str]:
    """What ``verify REPORT.pdf`` prints (text from the file is shown through ``text.shown``)."""
    from ..text import shown
    from .run_export import signer_label

    t = r.template
    lines = [f"✔ verified report {r.report_id} ({shown(r.kind)}): {shown(r.title)}",
             f"  ✔ {r.attachments} attachments match the DSSE/in-toto statement signed by run key "
             f"{r.run_key_id[:16]}…" + ("" if r.run_key_pinned else " (the embedded key: pin it with --key)"),
             f"  ✔ rendered with template {shown(t['name'])}@{shown(t['version'])} ({shown(t['digest'])})"]
    if r.rerendered:
        lines.append(f"  ✔ the pages are exactly what the signed HTML renders to ({shown(r.renderer)})")
    else:
        lines.append(f"  · pages not re-rendered: made with {shown(r.renderer)}, this machine has another renderer")
    if r.run is not None:
        lines.append(f"  ✔ embedded run export of run {r.run.run_id} verified: {r.run.files} files, "
                     f"{r.run.events} audit events included at tree size {r.run.checkpoint_size}, "
                     f"{len(r.run.signatures)} e-signature(s) bound to the sealed log"
                     + ("" if r.run.log_key_pinned else " (the embedded log key: pin it with --log-key)"))
    if r.signatures and r.log_key_pinned:
        lines.append(f"  ✔ {len(r.signatures)} report e-signature(s), each key bound to its signer by the sealed log "
                     "(log key pinned)")
    elif r.signatures:
        # The file's own log key is no evidence: whoever holds the run key can bring a log key,
        # checkpoint and events of their own (as the run-folder verify says of its exported key).
        lines.append(f"  · {len(r.signatures)} report e-signature(s) verify, and match events proven under the log key "
                     "the file carries; their binding to the signers is NOT established: pin it with --log-key")
    mark = "✔" if r.log_key_pinned else "·"
    for s in r.signatures:
        lines.append(f"  {mark} e-signature by {shown(signer_label({'signer': s}))} at "
                     f"{shown(str(s.get('signed_at')))}: meaning {shown(str(s.get('meaning')))} "
                     f"({shown(str(s.get('decision')))}); reason: {shown(str(s.get('reason')))}")
    return lines
