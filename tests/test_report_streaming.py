"""Large report attachments (an audit trail's events) appended to the rendered PDF/A-3b as an
incremental update written in chunks (verify/pdf_update.py): PDF/A structure, determinism, memory
that does not grow with the file, and ``verify`` failing on any change to the update."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pikepdf
import pytest

from nextstat_pro.compliance.render import Built, build
from nextstat_pro.compliance.templates import builtin
from nextstat_pro.signing.keys import load_or_create_keypair
from nextstat_pro.verify import VerificationError, report_pdf
from nextstat_pro.verify.pdf_update import (
    Spooled,
    _serialize,
    check_update,
    file_reader,
    hash_range,
    range_digests,
    split,
    write_update,
)
from nextstat_pro.verify.report_pdf import read_attachments, verify_report_pdf

from .test_reports import assert_pdfa

EVENTS = "audit/events.jsonl.gz"


def spooled(path: Path, data: bytes) -> Spooled:
    path.write_bytes(data)
    return Spooled(EVENTS, path, len(data), hashlib.sha256(data).hexdigest())


def built_data() -> dict[str, Any]:
    return {"filters": {"project": "p", "target": None}, "checkpoint": {"size": 1, "root": "00", "statement": "s"},
            "range": {"from_": None, "to": None, "count": 0, "first_seq": None, "last_seq": None,
                      "printed": 0, "events_file": EVENTS, "events_digest": "d"},
            "events": [], "by_action": []}


def built(tmp_path: Path, events: Spooled, spool: str) -> Built:
    keys = load_or_create_keypair(tmp_path / "run.key", create=True)
    (tmp_path / spool).mkdir(exist_ok=True)
    return build(report_id="01900000-0000-7000-8000-000000000000", kind="audit-trail", project="p", title="T",
                 template=builtin("audit-trail"), data=built_data(), inputs=[], evidence={"audit/proofs.json": b"{}"},
                 created="2026-01-02T03:04:05.000000Z", keys=keys, streamed=[events], spool=tmp_path / spool)


def test_appended_events_are_a_valid_deterministic_update(tmp_path: Path) -> None:
    events = gzip.compress(b'{"seq": 1}\n' * 5000, mtime=0)
    first = built(tmp_path, spooled(tmp_path / "ev1", events), "s1")
    second = built(tmp_path, spooled(tmp_path / "ev2", events), "s2")
    assert first.pdf_path is not None and first.pdf == second.pdf  # same data, same bytes
    assert first.pdf.startswith(first.base) and first.pdf_digest == "sha256:" + hashlib.sha256(first.pdf).hexdigest()
    pdf = first.pdf_path
    assert_pdfa(pdf)  # pikepdf's PDF/A-3b checks and qpdf --check, on the updated file
    with pikepdf.open(pdf) as doc:  # a PDF reader sees the appended file as an associated file
        assert any(spec.get("/UF") == EVENTS for spec in doc.Root.AF)
        # Its /CheckSum is the file's MD5; the update's second /ID string is new (ISO 32000-1 §14.4).
        params = doc.attachments[EVENTS].obj.EF.F.Params
        assert bytes(params.CheckSum) == hashlib.md5(events, usedforsecurity=False).digest()
        first_id, second_id = (bytes(i) for i in doc.trailer.ID)
    with pikepdf.open(io.BytesIO(first.base)) as doc:
        assert [bytes(i) for i in doc.trailer.ID] == [first_id, first_id] and second_id != first_id
    files = read_attachments(pdf.read_bytes())
    assert files[EVENTS] == events and {"report.json", "audit/proofs.json"} <= files.keys()
    v = verify_report_pdf(pdf)
    assert v.rerendered and v.attachments == len(files)


def cases(pdf: bytes, base_len: int, start: int) -> dict[str, tuple[bytes, str | None]]:
    catalog = pdf.index(b"/Type /Catalog", base_len)
    return {"events": (pdf[:start + 10] + bytes([pdf[start + 10] ^ 1]) + pdf[start + 11:],
                       f"attachment {EVENTS}: digest mismatch"),
            "catalog": (pdf[:catalog] + b"/Type /Catalig" + pdf[catalog + 14:], "incremental update differs"),
            "base": (pdf[:100] + bytes([pdf[100] ^ 1]) + pdf[101:], None),
            "trailing": (pdf + b"% more\n", None),
            "cut": (pdf[:start + 100], None)}


def test_verify_fails_on_any_change_to_the_update(tmp_path: Path) -> None:
    b = built(tmp_path, spooled(tmp_path / "ev", os.urandom(300_000)), "s")
    pdf = b.pdf
    read, total, close = file_reader(b.pdf_path or Path())
    _, appended = split(read, total)
    close()
    assert [a.name for a in appended] == [EVENTS] and appended[0].size == 300_000
    for name, (data, message) in cases(pdf, len(b.base), appended[0].start).items():
        (tmp_path / f"{name}.pdf").write_bytes(data)
        with pytest.raises(VerificationError, match=message):
            verify_report_pdf(tmp_path / f"{name}.pdf")
    # pikepdf rewriting the file (no incremental update of ours any more): the signed statement
    # lists the events as appended, so this fails even where the pages cannot be re-rendered.
    with pikepdf.open(b.pdf_path or Path()) as doc:
        doc.save(tmp_path / "rewritten.pdf")
    for verify in (verify_report_pdf, _other_renderer):
        with pytest.raises(VerificationError, match=r"does not end with the report's own update"):
            verify(tmp_path / "rewritten.pdf")


def _other_renderer(pdf: Path) -> Any:
    """``verify`` as on a machine with another WeasyPrint (the pages are then not re-rendered)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(report_pdf, "renderer", lambda: "weasyprint 0.0 (another machine)")
    try:
        return verify_report_pdf(pdf)
    finally:
        mp.undo()


def overlay(pdf: bytes, escaped: bool = False) -> bytes:
    """Someone else's incremental update after ``pdf``: a red square drawn over page 1 (a new
    content stream and the page object again, a classic xref table with /Prev)."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        page, size, root = doc.pages[0].obj, int(doc.trailer.Size), doc.Root.objgen[0]
        body = b"".join(pikepdf.Name(k).unparse() + b" " + (b"[" + _serialize(page[k]) + b" %d 0 R]" % size
                                                              if k == "/Contents" else _serialize(page[k]))
                        for k in page.keys())
        number = page.objgen[0]
    content = b"1 0 0 rg 50 50 300 300 re f"
    obj1 = b"%d 0 obj\n<</Length %d>>\nstream\n%s\nendstream\nendobj\n" % (size, len(content), content)
    obj2 = b"%d 0 obj\n<<%s>>\nendobj\n" % (number, body)
    prev = int(pdf.rsplit(b"startxref", 1)[1].split()[0])
    o1, o2 = len(pdf), len(pdf) + len(obj1)
    key = b"/P#72ev" if escaped else b"/Prev"
    xref = (b"xref\n%d 1\n%010d 00000 n \n%d 1\n%010d 00000 n \ntrailer\n<</Size %d/Root %d 0 R%s %d>>\n"
            b"startxref\n%d\n%%%%EOF\n" % (number, o2, size, o1, size + 1, root, key, prev, o2 + len(obj2)))
    return pdf + obj1 + obj2 + xref


def test_foreign_updates_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    """An update drawn over a page after the report's own (or before it, inside the rendered part)
    fails even where the pages are not re-rendered, and without reading the file whole; an
    attachment name twice (a reader may open the first, a mapping by name keeps the last) fails."""
    events = gzip.compress(b'{"seq": 1}\n' * 2000, mtime=0)
    b = built(tmp_path, spooled(tmp_path / "ev", events), "s")
    for name, data, message in [
            ("after", overlay(b.pdf), "the report file ends with an incremental update that is not the report's own"),
            ("escaped", overlay(b.pdf, escaped=True), "not the report's own"),
            ("before", _with_update(overlay(b.base), tmp_path, events), "the report's rendered part ends with an "
                                                                         "incremental update")]:
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(data)
        read, total, close = file_reader(path)
        seen: list[int] = []

        def counted(start: int, end: int, read: Any = read, seen: list[int] = seen) -> bytes:
            seen.append(end - start)
            return bytes(read(start, end))

        with pytest.raises(VerificationError, match=message):
            split(counted, total)
        close()
        assert sum(seen) < 64 << 10 or name == "before", (name, sum(seen))  # refused before reading it whole
        for verify in (verify_report_pdf, _other_renderer):
            with pytest.raises(VerificationError, match=message):
                verify(path)

    # The same name twice in the update: write_update refuses to write it, split to read it.
    a, z = Spooled("audit/a.gz", tmp_path / "ev", len(events), hashlib.sha256(events).hexdigest()), \
        Spooled("audit/z.gz", tmp_path / "ev", len(events), hashlib.sha256(events).hexdigest())
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="already has an attachment audit/a.gz"):
        write_update(b.base, [a, a], when, {"audit/a.gz": "x"}, io.BytesIO())
    out = io.BytesIO()
    write_update(b.base, [a, z], when, {"audit/a.gz": "x", "audit/z.gz": "x"}, out)
    twice = out.getvalue().replace(b"audit/z.gz".hex().encode(), b"audit/a.gz".hex().encode())
    with pytest.raises(VerificationError, match="adds attachment audit/a.gz twice"):
        split(lambda s, e: twice[s:e], len(twice))
    # ... and twice in the rendered part: a second file specification of one name in /AF, or in
    # the name tree (which qpdf finds out of order and repairs: damaged).
    for where, message in (("af", "embeds attachment data.json twice"),
                           ("tree", r"damaged \(a reader repairs it its own way\): \(Name/Number tree node")):
        with pikepdf.open(io.BytesIO(b.base)) as doc:
            tree = doc.Root.Names.EmbeddedFiles.Names
            spec = doc.make_indirect(pikepdf.Dictionary(
                Type=pikepdf.Name.Filespec, F=pikepdf.String("data.json"), UF=pikepdf.String("data.json"),
                EF=pikepdf.Dictionary(F=doc.make_stream(b'{"forged": true}'))))
            doc.Root.AF.append(spec)
            if where == "tree":
                at = list(tree).index("data.json")
                tree.insert(at, spec)
                tree.insert(at, pikepdf.String("data.json"))
            doc.save(tmp_path / "dup.pdf")
        with pytest.raises(VerificationError, match=message):
            read_attachments((tmp_path / "dup.pdf").read_bytes())


def _with_update(base: bytes, tmp_path: Path, events: bytes) -> bytes:
    out = io.BytesIO()
    write_update(base, [spooled(tmp_path / "ev", events)], datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                 {EVENTS: "Evidence: " + EVENTS}, out)
    return out.getvalue()


def test_an_update_the_statement_does_not_list_is_refused(tmp_path: Path) -> None:
    """A report rendered without appended files, with the events appended afterwards by a valid
    update of our form: its signed statement lists nothing as appended, so it fails."""
    keys = load_or_create_keypair(tmp_path / "run.key", create=True)
    b = build(report_id="01900000-0000-7000-8000-000000000001", kind="audit-trail", project="p", title="T",
              template=builtin("audit-trail"), data=built_data(), inputs=[], evidence={"audit/proofs.json": b"{}"},
              created="2026-01-02T03:04:05.000000Z", keys=keys)
    (tmp_path / "added.pdf").write_bytes(_with_update(b.base, tmp_path, b"events"))
    with pytest.raises(VerificationError, match="its signed statement lists no appended attachment"):
        verify_report_pdf(tmp_path / "added.pdf")


def test_update_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """Writing, splitting, checking and hashing a 48 MB appended file stays within a few MB of
    Python memory: the bytes move a chunk (1 MiB) at a time."""
    small = built(tmp_path, spooled(tmp_path / "ev", b"x" * 1000), "s")
    big = tmp_path / "big"
    with big.open("wb") as fh:
        for _ in range(48):
            fh.write(os.urandom(1 << 20))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    events = Spooled(EVENTS, big, big.stat().st_size, digest)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    tracemalloc.start()
    try:
        with (tmp_path / "big.pdf").open("wb") as out:
            write_update(small.base, [events], when, {EVENTS: "Evidence: " + EVENTS}, out)
        read, total, close = file_reader(tmp_path / "big.pdf")
        base, appended = split(read, total)
        sums = range_digests(read, appended[0].start, appended[0].size)
        check_update(read, total, base, appended, when, {EVENTS: "Evidence: " + EVENTS}, {EVENTS: sums.md5})
        assert sums.sha256 == digest == hash_range(read, appended[0].start, appended[0].size)
        close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 48 << 20 and peak < 8 << 20, peak


def test_malformed_updates_are_refused(tmp_path: Path) -> None:
    b = built(tmp_path, spooled(tmp_path / "ev", b"data" * 100), "s")
    pdf = b.pdf
    at = pdf.rindex(b"/NSPBase ") + len(b"/NSPBase ")
    end = pdf.index(b"/", at)
    bases: list[tuple[int, str | None]] = [(0, "a base outside the file"), (len(pdf) + 5, "a base outside the file"),
                                           (len(b.base) - 3, None)]
    for value, message in bases:
        bad = pdf[:at] + str(value).encode().rjust(end - at, b"0") + pdf[end:]
        (tmp_path / "bad.pdf").write_bytes(bad)
        with pytest.raises(VerificationError, match=message):
            verify_report_pdf(tmp_path / "bad.pdf")
