"""Large report attachments added after rendering, streamed: a PDF incremental update (ISO 32000-1
§7.5.6) written in chunks, and its byte-exact check.

Why: WeasyPrint and pikepdf take an attachment as one ``bytes`` object, and an audit-trail report of
10^6 events carries a ~100 MB events file; held whole (and copied by the writer) it made the report's
peak memory grow with the period. So a report PDF is WeasyPrint's PDF/A-3b document (the *base*: the
pages and the small attachments) followed, when the report has large evidence files, by one
incremental update that adds each of them:

    for each file, by name:  N 0 obj <</Type/EmbeddedFile ... /Length S>> stream <S bytes> endstream
                             N+1 0 obj <</Type/Filespec ... /AFRelationship/Data>>
    the catalog (its own object number) with the new file specifications appended to /AF,
    the /EmbeddedFiles name-tree node with the new names (in the catalog when it is direct),
    an uncompressed cross-reference stream: /Prev (the base's), /NSPBase (the base's length),
    startxref, %%EOF.

Every byte of the update is a function of the base, the files' names and sizes and the report's
time (``update_pieces``): the writer streams the files' bytes between those pieces, and ``verify``
regenerates the pieces and compares them byte for byte (``check_update``), so the update can hold
nothing but the attachments the signed statement names. Strings are written as hex, names escaped,
the base's catalog re-serialized by this module (not by qpdf, whose formatting may change).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from .errors import VerificationError

CHUNK = 1 << 20
BASE_KEY = b"/NSPBase"
_W = (1, 8, 2)  # cross-reference stream field widths: type, offset (up to 2^64), generation
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_EMBEDDED = re.compile(rb"(\d+) 0 obj\n<</Type/EmbeddedFile/Subtype/[^/]*/Params<<[^>]*>>/Length (\d+)>>\nstream\n")
_FILESPEC = re.compile(rb"\nendstream\nendobj\n\d+ 0 obj\n<</Type/Filespec/F <([0-9a-f]*)>")

Read = Callable[[int, int], bytes]  # bytes [start, end) of the report file


@dataclass(frozen=True)
class Spooled:
    """A large attachment waiting in a file: its name, where it is, its size and SHA-256 (hex)."""

    name: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Appended:
    """An attachment found in a report's update: its name and where its bytes are in the file."""

    name: str
    start: int
    size: int


def _name(value: str) -> bytes:
    """A PDF name (``/application/gzip`` → ``/application#2Fgzip``)."""
    out = bytearray(b"/")
    for c in value.removeprefix("/").encode("utf-8"):
        out += bytes([c]) if 0x21 <= c <= 0x7E and c not in b"#()<>[]{}/%" else b"#%02X" % c
    return bytes(out)


def _text(value: str) -> bytes:
    """A PDF text string, hex: PDFDocEncoding for ASCII, UTF-16BE with its mark otherwise."""
    raw = value.encode("ascii") if value.isascii() else b"\xfe\xff" + value.encode("utf-16-be")
    return b"<" + raw.hex().encode() + b">"


def _serialize(obj: Any) -> bytes:
    """A pikepdf object as PDF syntax: indirect objects by reference, everything else written out."""
    import pikepdf

    if isinstance(obj, pikepdf.Object) and obj.is_indirect:
        number, generation = obj.objgen
        return b"%d %d R" % (number, generation)
    if isinstance(obj, pikepdf.Dictionary):
        return b"<<" + b"".join(_name(str(k)) + b" " + _serialize(obj[k]) for k in sorted(obj.keys())) + b">>"
    if isinstance(obj, pikepdf.Array):
        return b"[" + b" ".join(_serialize(v) for v in obj) + b"]"
    if isinstance(obj, pikepdf.Name):
        return _name(str(obj))
    if isinstance(obj, pikepdf.String):
        return b"<" + bytes(obj).hex().encode() + b">"
    if isinstance(obj, bool):
        return b"true" if obj else b"false"
    if isinstance(obj, int):
        return str(obj).encode()
    if isinstance(obj, Decimal):
        return format(obj, "f").encode()
    if obj is None:
        return b"null"
    raise ValueError(f"cannot write a {type(obj).__name__} into a report's update")


def _date(when: datetime) -> bytes:
    return b"(D:" + when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode() + b")"


def _media_type(name: str) -> bytes:
    return _name("application/gzip" if name.endswith(".gz") else "application/octet-stream")


def update_pieces(base: bytes, files: list[tuple[str, int, str]], created: datetime) -> list[bytes | int]:
    """The incremental update adding ``files`` (name, size, description; sorted by name) to ``base``:
    byte pieces, with the index ``i`` in place of file ``i``'s bytes."""
    import pikepdf

    found = _STARTXREF.search(base[-1024:])
    if found is None or not base.endswith(b"\n"):
        raise ValueError("the base PDF does not end with startxref and %%EOF on a line")
    prev = int(found.group(1))
    with pikepdf.open(io.BytesIO(base)) as pdf:
        first = int(pdf.trailer["/Size"])
        catalog = pdf.Root
        root = catalog.objgen
        tail = b""
        for key in ("/Info", "/ID"):
            if key in pdf.trailer:
                tail += _name(key) + b" " + _serialize(pdf.trailer[key])
        names = catalog.get("/Names", pikepdf.Dictionary())
        tree = names.get("/EmbeddedFiles", pikepdf.Dictionary(Names=pikepdf.Array()))
        if "/Kids" in tree or set(tree.keys()) - {"/Names"}:
            raise ValueError("the base's /EmbeddedFiles name tree is not one flat node")
        old = list(tree.get("/Names", pikepdf.Array()))
        entries = [(bytes(old[i]), _serialize(old[i + 1])) for i in range(0, len(old), 2)]
        taken = {e[0] for e in entries}
        pieces: list[bytes | int] = []
        offsets: dict[int, int] = {}
        at = len(base)
        specs: list[bytes] = []

        def put(number: int | None, data: bytes | int) -> None:
            nonlocal at
            if number is not None:
                offsets[number] = at
            pieces.append(data)
            at += len(data) if isinstance(data, bytes) else files[data][1]

        for i, (name, size, description) in enumerate(files):
            if name.encode() in taken:
                raise ValueError(f"the base already has an attachment {name}")
            stream, spec = first + 2 * i, first + 2 * i + 1
            put(stream, b"%d 0 obj\n<</Type/EmbeddedFile/Subtype%s/Params<</Size %d/CreationDate%s/ModDate%s>>"
                b"/Length %d>>\nstream\n" % (stream, _media_type(name), size, _date(created), _date(created), size))
            put(None, i)
            put(None, b"\nendstream\nendobj\n")
            put(spec, b"%d 0 obj\n<</Type/Filespec/F %s/UF %s/Desc %s/EF<</F %d 0 R/UF %d 0 R>>"
                b"/AFRelationship/Data>>\nendobj\n" % (spec, _text(name), _text(name), _text(description),
                                                       stream, stream))
            entries.append((name.encode(), b"%d 0 R" % spec))
            specs.append(b"%d 0 R" % spec)
        node = b"<</Names[" + b" ".join(b"<" + n.hex().encode() + b"> " + ref for n, ref in sorted(entries)) + b"]>>"
        af = [_serialize(v) for v in catalog.get("/AF", pikepdf.Array())] + specs
        body = []
        for key in sorted(set(catalog.keys()) | {"/AF", "/Names"}):
            if key == "/AF":
                value = b"[" + b" ".join(af) + b"]"
            elif key == "/Names":
                value = b"<<" + b"".join(_name(str(k)) + b" " + _serialize(names[k])
                                         for k in sorted(names.keys()) if k != "/EmbeddedFiles")
                value += b"/EmbeddedFiles " + (_serialize(tree) if tree.is_indirect else node) + b">>"
            else:
                value = _serialize(catalog[key])
            body.append(_name(key) + b" " + value)
        put(root[0], b"%d %d obj\n<<%s>>\nendobj\n" % (root[0], root[1], b"".join(body)))
        generations = {root[0]: root[1]}
        if tree.is_indirect:
            number, generation = tree.objgen
            generations[number] = generation
            put(number, b"%d %d obj\n%s\nendobj\n" % (number, generation, node))
    xref = first + 2 * len(files)
    offsets[xref] = at
    numbers = sorted(offsets)
    rows = b"".join(b"\x01" + offsets[n].to_bytes(_W[1], "big") + generations.get(n, 0).to_bytes(_W[2], "big")
                    for n in numbers)
    index = b" ".join(b"%d 1" % n for n in numbers)
    pieces.append(b"%d 0 obj\n<</Type/XRef/Size %d/W[%d %d %d]/Index[%s]/Prev %d/Root %d %d R%s%s %d/Length %d>>"
                  b"\nstream\n%s\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n"
                  % (xref, xref + 1, *_W, index, prev, root[0], root[1], tail, BASE_KEY, len(base), len(rows),
                     rows, at))
    return pieces


def write_update(base: bytes, files: list[Spooled], created: datetime, descriptions: dict[str, str],
                 out: BinaryIO) -> str:
    """Write ``base`` and its update adding ``files`` to ``out``, each file copied in chunks; return
    the whole PDF's ``sha256:`` digest."""
    files = sorted(files, key=lambda f: f.name)
    digest = hashlib.sha256()

    def emit(data: bytes) -> None:
        digest.update(data)
        out.write(data)

    emit(base)
    for piece in update_pieces(base, [(f.name, f.size, descriptions[f.name]) for f in files], created):
        if isinstance(piece, bytes):
            emit(piece)
            continue
        copied = hashlib.sha256()
        with files[piece].path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                copied.update(chunk)
                emit(chunk)
        if copied.hexdigest() != files[piece].sha256:
            raise ValueError(f"{files[piece].name} changed while it was spooled")
    return "sha256:" + digest.hexdigest()


def split(read: Read, total: int) -> tuple[bytes, list[Appended]]:
    """A report file's base and the attachments its update adds (none: the file is its own base).
    The update's form is checked by ``check_update``; this only finds where things are."""
    end = read(max(0, total - 1024), total)
    found = _STARTXREF.search(end)
    if found is None:
        return read(0, total), []
    at = int(found.group(1))
    head = read(at, min(total, at + 4096)) if at < total else b""
    base = re.search(rb"^\d+ 0 obj\n<</Type/XRef[^\n]*" + re.escape(BASE_KEY) + rb" (\d+)/", head)
    if base is None:
        return read(0, total), []
    base_len = int(base.group(1))
    if not 0 < base_len < total:
        raise VerificationError("the report's update names a base outside the file")
    appended: list[Appended] = []
    pos = base_len
    while True:
        obj = _EMBEDDED.match(read(pos, min(total, pos + 1024)))
        if obj is None:
            break
        start, size = pos + obj.end(), int(obj.group(2))
        spec = _FILESPEC.match(read(start + size, min(total, start + size + 2048)))
        if start + size > total or spec is None:
            raise VerificationError("the report's update is cut short or malformed")
        try:
            name = bytes.fromhex(spec.group(1).decode()).decode("ascii")
        except ValueError:
            raise VerificationError("the report's update names an attachment unreadably") from None
        appended.append(Appended(name, start, size))
        rest = read(start + size, min(total, start + size + 4096))
        close = rest.find(b"\nendobj\n", len(b"\nendstream\nendobj\n"))
        if close < 0:
            raise VerificationError("the report's update is cut short or malformed")
        pos = start + size + close + len(b"\nendobj\n")
    if not appended:
        raise VerificationError("the report's update adds no attachment")
    return read(0, base_len), appended


def check_update(read: Read, total: int, base: bytes, appended: list[Appended], created: datetime,
                 descriptions: dict[str, str]) -> None:
    """Fail unless the bytes after ``base`` are exactly the update ``update_pieces`` writes for these
    attachments (their bytes aside, which the caller hashes against the signed statement)."""
    if [a.name for a in appended] != sorted(a.name for a in appended):
        raise VerificationError("the report's update does not list its attachments in order")
    try:
        pieces = update_pieces(base, [(a.name, a.size, descriptions[a.name]) for a in appended], created)
    except ValueError as exc:
        raise VerificationError(f"the report's base PDF: {exc}") from None
    pos = len(base)
    for piece in pieces:
        if isinstance(piece, int):
            if appended[piece].start != pos:
                raise VerificationError(f"attachment {appended[piece].name} is not where the update places it")
            pos += appended[piece].size
            continue
        if read(pos, pos + len(piece)) != piece:
            raise VerificationError("the report's incremental update differs from the one its attachments give "
                                    "(changed after writing)")
        pos += len(piece)
    if pos != total:
        raise VerificationError("the report file has bytes after its update")


def hash_range(read: Read, start: int, size: int) -> str:
    """SHA-256 (hex) of ``size`` bytes from ``start``, read a chunk at a time."""
    h = hashlib.sha256()
    pos, end = start, start + size
    while pos < end:
        chunk = read(pos, min(end, pos + CHUNK))
        if not chunk:
            raise VerificationError("the report file is cut short")
        h.update(chunk)
        pos += len(chunk)
    return h.hexdigest()


def file_reader(path: Path) -> tuple[Read, int, Callable[[], None]]:
    """Random access to a file: ``read``, its size and ``close``."""
    fh = path.open("rb")

    def read(start: int, end: int) -> bytes:
        fh.seek(start)
        return fh.read(max(0, end - start))

    return read, path.stat().st_size, fh.close
