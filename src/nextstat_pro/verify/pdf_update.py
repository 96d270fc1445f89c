"""Large report attachments added after rendering, streamed: a PDF incremental update (ISO 32000-1
§7.5.6) written in chunks, and its byte-exact check.

Why: WeasyPrint and pikepdf take an attachment as one ``bytes`` object, and an audit-trail report of
10^6 events carries a ~100 MB events file; held whole (and copied by the writer) it made the report's
peak memory grow with the period. So a report PDF is WeasyPrint's PDF/A-3b document (the *base*: the
pages and the small attachments) followed, when the report has large evidence files, by one
incremental update that adds each of them:

    for each file, by name:  N 0 obj <</Type/EmbeddedFile ... /CheckSum <MD5> ... /Length S>>
                             stream <S bytes> endstream
                             N+1 0 obj <</Type/Filespec ... /AFRelationship/Data>>
    the catalog (its own object number) with the new file specifications appended to /AF,
    the /EmbeddedFiles name-tree node with the new names (in the catalog when it is direct),
    an uncompressed cross-reference stream: /Prev (the base's), the base's first /ID string and a
    second one derived from the base and the files (§14.4: it changes with each update),
    /NSPBase (the base's length), startxref, %%EOF.

Every byte of the update is a function of the base, the files' names, sizes and MD5s and the
report's time (``update_pieces``): the writer streams the files' bytes between those pieces, and
``verify`` regenerates the pieces and compares them byte for byte (``check_update``), so the update
can hold nothing but the attachments the signed statement names. Strings are written as hex, names
escaped, the base's catalog re-serialized by this module (not by qpdf, whose formatting may change).

A report file is either one revision (WeasyPrint's, no /Prev) or that revision and this update, whose
/NSPBase is found at the final startxref: ``split`` refuses anything else (an update appended by
someone else could draw over a page, which only a re-render would notice), and it never takes a
file of several revisions whole. Attachment names are unique in the file.
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
_EMBEDDED = re.compile(rb"(\d+) 0 obj\n<</Type/EmbeddedFile/Subtype/[^/]*/Params<<(?:[^<>]|<[0-9a-f]*>)*>>"
                       rb"/Length (\d+)>>\nstream\n")
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


@dataclass(frozen=True)
class Digests:
    """An appended file's SHA-256 (what the signed statement names) and MD5 (its /CheckSum), hex."""

    sha256: str
    md5: str


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


def _second_id(base: bytes, files: list[tuple[str, int, str, str]]) -> bytes:
    """The update's second /ID string (16 bytes, hex): a hash of the base and of each file's name,
    size and MD5, so it differs from the base's and is the same whenever the update is."""
    h = hashlib.sha256(b"nextstat-pro/pdf-update/v1\0" + hashlib.sha256(base).digest())
    for name, size, _, md5 in files:
        h.update(b"%s\0%d\0%s\0" % (name.encode("utf-8"), size, md5.encode()))
    return b"<" + h.hexdigest()[:32].encode() + b">"


def update_pieces(base: bytes, files: list[tuple[str, int, str, str]], created: datetime) -> list[bytes | int]:
    """The incremental update adding ``files`` (name, size, description, MD5 hex; sorted by name,
    each once) to ``base``: byte pieces, with the index ``i`` in place of file ``i``'s bytes."""
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
        if "/Info" in pdf.trailer:
            tail += b"/Info " + _serialize(pdf.trailer["/Info"])
        if "/ID" in pdf.trailer:
            tail += b"/ID[" + _serialize(pdf.trailer["/ID"][0]) + b" " + _second_id(base, files) + b"]"
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

        for i, (name, size, description, md5) in enumerate(files):
            if name.encode() in taken:
                raise ValueError(f"the base or the update already has an attachment {name}")
            if not re.fullmatch(r"[0-9a-f]{32}", md5):
                raise ValueError(f"the MD5 of {name} is not 32 hex digits")
            taken.add(name.encode())
            stream, spec = first + 2 * i, first + 2 * i + 1
            put(stream, b"%d 0 obj\n<</Type/EmbeddedFile/Subtype%s/Params<</Size %d/CheckSum<%s>/CreationDate%s"
                b"/ModDate%s>>/Length %d>>\nstream\n" % (stream, _media_type(name), size, md5.encode(),
                                                         _date(created), _date(created), size))
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


def _file_md5(f: Spooled) -> str:
    """A spooled file's MD5 (its /CheckSum, written before its bytes), read a chunk at a time."""
    h = hashlib.md5(usedforsecurity=False)
    with f.path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_update(base: bytes, files: list[Spooled], created: datetime, descriptions: dict[str, str],
                 out: BinaryIO) -> str:
    """Write ``base`` and its update adding ``files`` to ``out``, each file copied in chunks; return
    the whole PDF's ``sha256:`` digest."""
    files = sorted(files, key=lambda f: f.name)
    digest = hashlib.sha256()

    def emit(data: bytes) -> None:
        digest.update(data)
        out.write(data)

    # The MD5 goes before the bytes it sums: one more read of each file (from the page cache).
    listed = [(f.name, f.size, descriptions[f.name], _file_md5(f)) for f in files]
    emit(base)
    for piece in update_pieces(base, listed, created):
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


def _unescaped(name_text: bytes) -> bytes:
    """PDF syntax with name escapes undone (``/P#72ev`` is ``/Prev`` to a reader)."""
    return re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), name_text)


def _final_trailer(read: Read, total: int) -> bytes:
    """The text of a PDF's final trailer dictionary (that of the xref stream startxref points at, or
    a classic table's ``trailer``), name escapes undone."""
    end = read(max(0, total - 1024), total)
    found = _STARTXREF.search(end)
    if found is None:
        raise VerificationError("not a report PDF: the file does not end with startxref and %%EOF")
    at = int(found.group(1))
    head = read(at, min(total, at + 4096)) if 0 <= at < total else b""
    if head.startswith(b"xref"):
        trailer = end.rfind(b"trailer")
        if trailer < 0:
            raise VerificationError("not a report PDF: its final cross-reference table has no trailer near the end")
        return _unescaped(end[trailer:found.start()])
    if re.match(rb"\d+ \d+ obj\s*<<", head) is None or b"stream" not in head:
        raise VerificationError("not a report PDF: startxref points at no cross-reference section")
    return _unescaped(head[:head.index(b"stream")])


def _one_revision(read: Read, total: int, what: str) -> None:
    """Fail unless a PDF is a single revision (no /Prev in its final section: WeasyPrint's form)."""
    trailer = _final_trailer(read, total)
    if re.search(rb"/Prev(?![^\s()<>\[\]{}/%])", trailer):
        raise VerificationError(f"{what} ends with an incremental update that is not the report's own "
                                "(changed after writing: an update can draw over a page)")


def split(read: Read, total: int) -> tuple[bytes, list[Appended]]:
    """A report file's base and the attachments its update adds (none: the file is its own base,
    which must then be one revision). The update's form is checked by ``check_update``; this finds
    where things are and refuses a file of any other shape without reading it whole."""
    trailer = _final_trailer(read, total)
    base = re.search(re.escape(BASE_KEY) + rb" (\d+)/", trailer)
    if base is None:
        _one_revision(read, total, "the report file")
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
        if any(a.name == name for a in appended):
            raise VerificationError(f"the report's update adds attachment {name} twice")
        appended.append(Appended(name, start, size))
        rest = read(start + size, min(total, start + size + 4096))
        close = rest.find(b"\nendobj\n", len(b"\nendstream\nendobj\n"))
        if close < 0:
            raise VerificationError("the report's update is cut short or malformed")
        pos = start + size + close + len(b"\nendobj\n")
    if not appended:
        raise VerificationError("the report's update adds no attachment")
    base_bytes = read(0, base_len)
    _one_revision(lambda s, e: base_bytes[s:e], base_len, "the report's rendered part")
    return base_bytes, appended


def check_update(read: Read, total: int, base: bytes, appended: list[Appended], created: datetime,
                 descriptions: dict[str, str], md5: dict[str, str]) -> None:
    """Fail unless the bytes after ``base`` are exactly the update ``update_pieces`` writes for these
    attachments (their bytes aside, which the caller hashes against the signed statement; ``md5``:
    their MD5s, name → hex, from that same pass)."""
    names = [a.name for a in appended]
    if names != sorted(set(names)):
        raise VerificationError("the report's update does not list its attachments in order, each once")
    try:
        pieces = update_pieces(base, [(a.name, a.size, descriptions[a.name], md5[a.name]) for a in appended],
                               created)
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


def range_digests(read: Read, start: int, size: int) -> Digests:
    """SHA-256 and MD5 of ``size`` bytes from ``start``, read a chunk at a time (one pass)."""
    h, m = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    pos, end = start, start + size
    while pos < end:
        chunk = read(pos, min(end, pos + CHUNK))
        if not chunk:
            raise VerificationError("the report file is cut short")
        h.update(chunk)
        m.update(chunk)
        pos += len(chunk)
    return Digests(h.hexdigest(), m.hexdigest())


def hash_range(read: Read, start: int, size: int) -> str:
    """SHA-256 (hex) of ``size`` bytes from ``start``, read a chunk at a time."""
    return range_digests(read, start, size).sha256


def file_reader(path: Path) -> tuple[Read, int, Callable[[], None]]:
    """Random access to a file: ``read``, its size and ``close``."""
    fh = path.open("rb")

    def read(start: int, end: int) -> bytes:
        fh.seek(start)
        return fh.read(max(0, end - start))

    return read, path.stat().st_size, fh.close
