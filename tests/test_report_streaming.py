"""Large report attachments (an audit trail's events) appended to the rendered PDF/A-3b as an
incremental update written in chunks (verify/pdf_update.py): PDF/A structure, determinism, memory
that does not grow with the file, and ``verify`` failing on any change to the update."""

from __future__ import annotations

import gzip
import hashlib
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pikepdf
import pytest

from nextstat_pro.compliance.render import Built, build
from nextstat_pro.compliance.templates import builtin
from nextstat_pro.signing.keys import load_or_create_keypair
from nextstat_pro.verify import VerificationError
from nextstat_pro.verify.pdf_update import Spooled, check_update, file_reader, hash_range, split, write_update
from nextstat_pro.verify.report_pdf import read_attachments, verify_report_pdf

from .test_reports import assert_pdfa

EVENTS = "audit/events.jsonl.gz"


def spooled(path: Path, data: bytes) -> Spooled:
    path.write_bytes(data)
    return Spooled(EVENTS, path, len(data), hashlib.sha256(data).hexdigest())


def built(tmp_path: Path, events: Spooled, spool: str) -> Built:
    keys = load_or_create_keypair(tmp_path / "run.key", create=True)
    (tmp_path / spool).mkdir(exist_ok=True)
    data: dict[str, Any] = {"filters": {"project": "p", "target": None},
                            "checkpoint": {"size": 1, "root": "00", "statement": "s"},
                            "range": {"from_": None, "to": None, "count": 0, "first_seq": None, "last_seq": None,
                                      "printed": 0, "events_file": EVENTS, "events_digest": "d"},
                            "events": [], "by_action": []}
    return build(report_id="01900000-0000-7000-8000-000000000000", kind="audit-trail", project="p", title="T",
                 template=builtin("audit-trail"), data=data, inputs=[], evidence={"audit/proofs.json": b"{}"},
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
    # pikepdf rewriting the file (no incremental update of ours any more): its pages no longer
    # render from the signed HTML to these bytes.
    with pikepdf.open(b.pdf_path or Path()) as doc:
        doc.save(tmp_path / "rewritten.pdf")
    with pytest.raises(VerificationError):
        verify_report_pdf(tmp_path / "rewritten.pdf")


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
    from datetime import UTC, datetime

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    tracemalloc.start()
    try:
        with (tmp_path / "big.pdf").open("wb") as out:
            write_update(small.base, [events], when, {EVENTS: "Evidence: " + EVENTS}, out)
        read, total, close = file_reader(tmp_path / "big.pdf")
        base, appended = split(read, total)
        check_update(read, total, base, appended, when, {EVENTS: "Evidence: " + EVENTS})
        assert hash_range(read, appended[0].start, appended[0].size) == digest
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
