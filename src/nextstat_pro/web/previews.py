"""Previews of stored objects by range reads: never the whole object in memory, so a 200 MB log
previews as fast as a small one. Pure functions over a ``read_range(start, end)`` callable."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ReadRange = Callable[[int, int | None], Iterator[bytes]]
WINDOW = 64 * 1024
MAX_HITS = 200
MAX_LINE = 2000
JSON_IN_MEMORY = 8 * 1024 * 1024  # JSON this small is parsed and paged by entries; larger by bytes


def _read(read: ReadRange, start: int, end: int) -> bytes:
    return b"".join(read(start, end)) if end > start else b""


@dataclass(frozen=True)
class TextWindow:
    text: str
    start: int
    end: int
    size: int

    @property
    def previous(self) -> int | None:
        return max(0, self.start - WINDOW) if self.start > 0 else None

    @property
    def next(self) -> int | None:
        return self.end if self.end < self.size else None


def text_window(read: ReadRange, size: int, offset: int | None) -> TextWindow:
    """``WINDOW`` bytes from ``offset`` (None: the tail), cut to whole lines where it can."""
    start = max(0, size - WINDOW) if offset is None else min(max(0, offset), size)
    end = min(size, start + WINDOW)
    data = _read(read, start, end)
    if start > 0 and b"\n" in data:  # drop the partial first line
        cut = data.index(b"\n") + 1
        data, start = data[cut:], start + cut
    if end < size and b"\n" in data:  # and the partial last one
        cut = data.rindex(b"\n") + 1
        data, end = data[:cut], start + cut
    return TextWindow(data.decode("utf-8", errors="replace"), start, end, size)


@dataclass(frozen=True)
class Hit:
    line: int
    offset: int
    text: str


def search_lines(read: ReadRange, size: int, needle: str, limit: int = MAX_HITS) -> tuple[list[Hit], bool]:
    """Lines holding ``needle`` (case-sensitive), streamed chunk by chunk: at most ``limit`` hits,
    and whether there were more."""
    want = needle.encode()
    hits: list[Hit] = []
    carry, carry_at, line_no = b"", 0, 1
    for chunk in read(0, size):
        data = carry + chunk
        lines = data.split(b"\n")
        carry = lines.pop()
        at = carry_at
        for raw in lines:
            if want in raw:
                if len(hits) == limit:
                    return hits, True
                hits.append(Hit(line_no, at, raw[:MAX_LINE].decode("utf-8", errors="replace")))
            at += len(raw) + 1
            line_no += 1
        carry_at = at
    if carry and want in carry:
        if len(hits) == limit:
            return hits, True
        hits.append(Hit(line_no, carry_at, carry[:MAX_LINE].decode("utf-8", errors="replace")))
    return hits, False


@dataclass(frozen=True)
class JsonPage:
    path: list[str]
    entries: list[tuple[str, str, bool]]  # key, shown value (JSON text, shortened), whether it opens
    page: int
    pages: int
    total: int


PER_PAGE = 100


def json_page(data: bytes, path: list[str], page: int) -> JsonPage:
    """The entries of the object or array at ``path`` (keys or indexes), ``PER_PAGE`` a page;
    nested containers are shown closed (a link opens them), scalars in full up to a bound."""
    node: Any = json.loads(data)
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(part)
    items: list[tuple[str, Any]]
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = [(str(i), v) for i, v in enumerate(node)]
    else:
        items = [("", node)]
    pages = max(1, -(-len(items) // PER_PAGE))
    page = min(max(0, page), pages - 1)
    shown = []
    for key, value in items[page * PER_PAGE:(page + 1) * PER_PAGE]:
        if isinstance(value, (dict, list)):
            shown.append((key, f"{'{…}' if isinstance(value, dict) else '[…]'} {len(value)} entries", True))
        else:
            text = json.dumps(value, ensure_ascii=False)
            shown.append((key, text if len(text) <= MAX_LINE else text[:MAX_LINE] + "…", False))
    return JsonPage(path, shown, page, pages, len(items))


@dataclass(frozen=True)
class CsvPreview:
    header: list[str]
    rows: list[list[str]]
    truncated: bool


def csv_preview(read: ReadRange, size: int, max_rows: int = 50) -> CsvPreview:
    """The header and first rows of a CSV, from its first ``WINDOW`` bytes."""
    head = _read(read, 0, min(size, WINDOW))
    text = head.decode("utf-8", errors="replace")
    if size > WINDOW and "\n" in text:
        text = text[: text.rindex("\n") + 1]
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0] if rows else []
    body = rows[1: max_rows + 1]
    return CsvPreview(header, body, truncated=len(rows) - 1 > max_rows or size > WINDOW)
