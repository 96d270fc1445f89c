"""The rules for text that people and reports will read: printed names, e-mail addresses,
reasons, descriptions, tags, run parameters.

Such text ends up in terminals, manifests, signature records, audit events and PDF or HTML
reports, so a character that moves the cursor, recolours a terminal (ANSI escapes), reorders
what is shown (bidi overrides and isolates) or hides itself (zero-width and other format
characters) could make a record say one thing on screen and another in its bytes. Every
service that takes such text passes it through ``clean`` (or ``check`` where the value is
recorded exactly as given) before anything is written; the refusal is one line naming the
field and the code point. HTML is never interpreted: it is stored as text and escaped by
whatever renders it.

Refused everywhere:
  - control characters (Unicode category Cc: C0, DEL, C1; ESC starts every ANSI escape), except
    LINE FEED in fields that are paragraphs (``newlines=True``: descriptions);
  - format characters (Cf), which include the bidi embeddings, overrides and isolates
    (U+202A-202E, U+2066-2069), the marks U+200E, U+200F, U+061C, zero-width space, word joiner,
    soft hyphen, BOM and the tag characters; only ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER
    are accepted, since Persian, Indic and other scripts spell names with them;
  - line and paragraph separators (Zl, Zp), lone surrogates (Cs: undecodable bytes of a
    command line arrive as these) and unassigned code points (Cn).
Text is Unicode NFC-normalised and stripped of leading and trailing white space; lengths count
code points after that, against ``LIMITS`` (docs/security.md has the same table).
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

from .errors import TextError


class Limit(NamedTuple):
    max_length: int
    newlines: bool = False  # a paragraph: LINE FEED allowed (never CR, TAB or the others)


LIMITS: dict[str, Limit] = {
    "printed name": Limit(200),  # the users.printed_name column's size
    "e-mail": Limit(254),  # RFC 5321's longest forward path, less its angle brackets
    "reason": Limit(1000),
    "description": Limit(4000, newlines=True),
    "tag key": Limit(64),
    "tag value": Limit(256),
    "parameter name": Limit(64),
    "parameter value": Limit(1000),
    "input file name": Limit(255),  # what a file system allows in one path component
}

# Format characters that spell text rather than hide it.
_JOINERS = frozenset("\u200c\u200d")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
# unicodedata has no names for control characters: these are their Unicode name aliases.
_CONTROL_NAMES = {
    0x00: "NULL", 0x07: "BELL", 0x08: "BACKSPACE", 0x09: "CHARACTER TABULATION", 0x0A: "LINE FEED",
    0x0B: "LINE TABULATION", 0x0C: "FORM FEED", 0x0D: "CARRIAGE RETURN", 0x1B: "ESCAPE", 0x7F: "DELETE",
    0x85: "NEXT LINE", 0x9B: "CONTROL SEQUENCE INTRODUCER",
}
_SPACES = re.compile(r"\s+")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")


def describe(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: a code point as an error message names it."""
    code = ord(char)
    if unicodedata.category(char) == "Cc":
        name = _CONTROL_NAMES.get(code, "CONTROL CHARACTER")
    elif unicodedata.category(char) == "Cs":
        name = "SURROGATE (bytes that are not UTF-8)"
    else:
        name = unicodedata.name(char, "UNASSIGNED CODE POINT")
    return f"U+{code:04X} {name}"


def check(field: str, value: str) -> None:
    """Refuse ``value`` if it holds a character the rules refuse or is longer than the
    field's limit (a field missing from ``LIMITS`` is a programming error: KeyError)."""
    _check_characters(field, value)
    _check_length(field, value)


def clean(field: str, value: str) -> str:
    """``value`` NFC-normalised and stripped, once the rules accept it."""
    _check_characters(field, value)  # before NFC, which a lone surrogate makes raise
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    value = value.strip()
    _check_length(field, value)  # after NFC: a name typed decomposed is not longer
    return value


def _check_characters(field: str, value: str) -> None:
    # Printable ASCII (the common case) holds no refused character: skip the scan.
    if value.isascii() and value.isprintable():
        return
    newlines = LIMITS[field].newlines
    for index, char in enumerate(value):
        if unicodedata.category(char) in _REFUSED_CATEGORIES and char not in _JOINERS:
            if char == "\n" and newlines:
                continue
            raise TextError(field, f"{field} contains {describe(char)} at character {index + 1}", char)


def _check_length(field: str, value: str) -> None:
    limit = LIMITS[field].max_length
    if len(value) > limit:
        raise TextError(field, f"{field} is too long: {len(value)} characters, at most {limit}")


def clean_optional(field: str, value: str | None) -> str | None:
    return None if value is None else clean(field, value)


def email(value: str | None) -> str | None:
    """An e-mail address cleaned, and refused unless it looks like ``local@domain.tld``
    (deliverability is the mail server's to judge). An empty address is no address."""
    value = clean_optional("e-mail", value)
    if not value:
        return None
    if not _EMAIL.fullmatch(value):
        raise TextError("e-mail", f"e-mail {value!r} is not an address like name@example.org")
    return value


def name_key(printed_name: str) -> str:
    """What two printed names must differ in to be told apart by a reader: compatibility
    forms and case folded (NFKC, casefold: "Ａlice" and "ALICE" are "alice"), joiners
    dropped and runs of white space made one space. Stricter than NFC + casefold alone."""
    text = unicodedata.normalize("NFKC", printed_name)
    text = unicodedata.normalize("NFKC", text.casefold())
    text = "".join(c for c in text if c not in _JOINERS)
    return _SPACES.sub(" ", text).strip()


def shown(value: str) -> str:
    """``value`` safe to print whatever its origin (an export read back, a row written before
    these rules): every character the rules refuse, LINE FEED included, becomes its escape
    (``\\u202e``), so a terminal shows what the bytes say."""
    if value.isascii() and value.isprintable():
        return value
    return "".join(
        (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
        if unicodedata.category(c) in _REFUSED_CATEGORIES and c not in _JOINERS else c
        for c in value
    )
