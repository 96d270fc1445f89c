"""Canonical JSON (RFC 8785) and sha256 digests: the identity of everything we store."""

from __future__ import annotations

import gc
import hashlib
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import rfc8785

DIGEST_PREFIX = "sha256:"


def sanitize(value: Any) -> Any:
    """Return ``value`` with every non-finite float replaced by None.

    RFC 8785 (like JSON itself) has no NaN or Infinity; the engine produces them for
    undefined uncertainties, so they are normalised here once, before hashing.
    """
    return sanitize_plain(value)[0]


_SAFE_INT = 2**53 - 1


def is_plain(value: Any) -> bool:
    """True when ``json.dumps`` already writes the RFC 8785 form of ``value``: no floats
    (ES6 number formatting differs from Python's repr) and no keys outside the Basic
    Multilingual Plane (RFC 8785 sorts keys by UTF-16 code units, Python by code points)."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_SAFE_INT <= value <= _SAFE_INT  # beyond it rfc8785 refuses (I-JSON)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _bmp_key(k) and is_plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    return False


def _bmp_key(key: str) -> bool:
    """Whether Python orders ``key`` as RFC 8785 does (by UTF-16 code units: the same for keys
    inside the Basic Multilingual Plane)."""
    return key.isascii() or max(key) < "\U00010000"


def sanitize_plain(value: Any) -> tuple[Any, bool]:
    """``sanitize(value)`` and whether ``is_plain`` holds for it, in one walk (an audit event
    checks both for its before/after values on every change)."""
    if value is None or isinstance(value, (str, bool)):
        return value, True
    if isinstance(value, int):
        return value, -_SAFE_INT <= value <= _SAFE_INT
    if isinstance(value, float):
        return (value, False) if math.isfinite(value) else (None, True)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        plain = True
        for k, v in value.items():
            k = k if isinstance(k, str) else str(k)
            if not _bmp_key(k):
                plain = False
            out[k], p = sanitize_plain(v)
            plain = plain and p
        return out, plain
    if isinstance(value, (list, tuple)):
        items = []
        plain = True
        for v in value:
            item, p = sanitize_plain(v)
            items.append(item)
            plain = plain and p
        return items, plain
    return value, False


_NUMBER_CHARS = frozenset("0123456789.-")
_BEFORE_NUMBER = frozenset(":,[")
_AFTER_NUMBER = frozenset(",]}")


def _es6_number(token: str) -> str:
    """ECMA-262 Number::toString of a float given as Python's repr (the same digits)."""
    sign = "-" if token[0] == "-" else ""
    mantissa, _, exponent = token.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    n = len(whole) + (int(exponent) if exponent else 0)  # the decimal point sits after n digits
    significant = digits.lstrip("0")
    if not significant.rstrip("0"):
        return "0"  # RFC 8785 writes -0 as 0
    n -= len(digits) - len(significant)
    s = significant.rstrip("0")
    k = len(s)
    if k <= n <= 21:
        return sign + s + "0" * (n - k)
    if 0 < n <= 21:
        return sign + s[:n] + "." + s[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + s
    e = n - 1
    return sign + s[0] + ("." + s[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def _token_at(text: str, i: int) -> tuple[int, int] | None:
    """The number token around position ``i`` of ``json.dumps`` output, when it stands
    where a number stands (text start or after ":,[", text end or before ",]}")."""
    start = i
    while start > 0 and text[start - 1] in _NUMBER_CHARS:
        start -= 1
    end = i
    while end < len(text) and text[end] in _NUMBER_CHARS or end < len(text) and text[end] in "e+":
        end += 1
    if start > 0 and text[start - 1] not in _BEFORE_NUMBER or end < len(text) and text[end] not in _AFTER_NUMBER:
        return None
    return start, end


def _rewrite_floats(text: str) -> str:
    """Rewrite the float tokens whose ECMAScript form differs from Python's repr: those with
    an exponent ("1e-07") or a trailing ".0". Every other float token has the same shortest
    round-trip digits in both. Found with ``str.find`` (the regex engine is 3x slower here)."""
    spans: set[tuple[int, int]] = set()
    for needle in ("e-", "e+", ".0,", ".0]", ".0}"):
        i = text.find(needle)
        while i != -1:
            span = _token_at(text, i)
            if span is not None:
                spans.add(span)
            i = text.find(needle, i + 2)
    if text.endswith(".0") and (span := _token_at(text, len(text) - 2)) is not None:
        spans.add(span)
    if not spans:
        return text
    out, last = [], 0
    for start, end in sorted(spans):
        out += [text[last:start], _es6_number(text[start:end])]
        last = end
    out.append(text[last:])
    return "".join(out)


class _UnsafeInteger(Exception):
    pass


def _safe_int(token: str) -> int:
    value = int(token)
    if not -_SAFE_INT <= value <= _SAFE_INT:
        raise _UnsafeInteger(token)  # rfc8785 refuses it (I-JSON)
    return value


def _floats(value: Any) -> bytes | None:
    """RFC 8785 of a document with floats through the C ``json`` encoder, or None when it
    cannot be shown to agree. Float tokens are rewritten to ECMAScript form; the text must
    then parse back to a value equal to ``value``, which proves that keys were strings,
    nothing was converted, no rewrite touched a string and every integer is in I-JSON's
    range. Keys must also sort the same in UTF-16 and in code points (nothing outside the
    Basic Multilingual Plane)."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if not text.isascii() and max(text) >= "\U00010000":
        return None
    text = _rewrite_floats(text)
    try:
        if json.loads(text, parse_int=_safe_int) != value:
            return None
    except _UnsafeInteger:
        return None
    return text.encode()


def _floats_orjson(value: Any) -> bytes | None:
    """``_floats`` with orjson writing the text (30x faster than the C ``json`` encoder with
    sorted keys on fit results, which are most of a shard's encoding time), or None when it
    cannot be shown to agree. orjson writes strings, sorted keys, integers and separators as
    ``json.dumps`` does here, and the same shortest round-trip digits for every double (tests
    check all code points and random doubles against rfc8785); only its exponent forms
    differ from repr's ("1e-7" for "1e-07", "0.00001" for "1e-05"), and every token with an
    exponent or a trailing ".0" is rewritten to ECMAScript form anyway. orjson refuses keys
    that are not strings, surrogates and, with ``OPT_STRICT_INTEGER``, exactly the integers
    beyond I-JSON's range (±(2**53 - 1)). The text must then parse back to a value equal to
    ``value``: what orjson converts (dataclasses, dates, NaN as null) is left to ``_floats``."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER).decode()
    except TypeError:  # orjson.JSONEncodeError
        return None
    if not text.isascii() and max(text) >= "\U00010000":
        return None
    data = _rewrite_floats(text).encode()
    try:
        if orjson.loads(data) != value:
            return None
    except orjson.JSONDecodeError:
        return None
    return data


def plain_json(value: Any) -> bytes:
    """RFC 8785 bytes of a value for which ``is_plain`` holds (the caller has checked)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of ``value`` (non-finite floats become null).

    Values without floats take the C ``json`` encoder as they are; values with floats take
    orjson, or else the C ``json`` encoder, with their float tokens rewritten (the C encoder
    is 2-3x faster than the pure Python rfc8785 on fit results, which every shard and run
    encodes; orjson is 3x faster again); anything else (NaN, tuples, keys that are not
    strings) is sanitised first, and what is still not shown to agree takes rfc8785.
    Tests check that all paths agree on random documents and on random doubles.
    """
    if is_plain(value):
        return plain_json(value)
    fast = _floats_orjson(value)
    if fast is None:
        fast = _floats(value)
    if fast is not None:
        return fast
    clean = sanitize(value)
    fast = _floats_orjson(clean)
    if fast is None:
        fast = _floats(clean)
    return fast if fast is not None else rfc8785.dumps(clean)


def _around(doc: dict[str, Any], key: str) -> tuple[bytes, bytes]:
    """The canonical bytes of ``doc`` before and after the value of ``key`` (whatever ``doc``
    holds under ``key`` is left out; ASCII keys, so Python's order is RFC 8785's)."""
    if not key.isascii() or not all(k.isascii() for k in doc):
        raise ValueError("splice and cut take documents with ASCII keys only")
    before = canonical_json({**{k: v for k, v in doc.items() if k < key}, key: None})
    after = canonical_json({k: v for k, v in doc.items() if k > key})
    return before[: -len(b"null}")], (b"," + after[1:] if after != b"{}" else b"}")


def splice(doc: dict[str, Any], key: str, raw: bytes) -> bytes:
    """Canonical JSON of ``doc`` with ``doc[key]`` given as its canonical bytes ``raw``, which
    are placed as they are: a large member already encoded is not encoded again."""
    head, tail = _around(doc, key)
    return head + raw + tail


def cut(data: bytes, doc: dict[str, Any], key: str) -> bytes:
    """The bytes of ``doc[key]`` inside ``data``, the canonical JSON of ``doc``; raises
    ValueError when everything around that member is not exactly canonical."""
    head, tail = _around(doc, key)
    if len(data) < len(head) + len(tail) or not data.startswith(head) or not data.endswith(tail):
        raise ValueError("not canonical JSON around the member " + repr(key))
    return data[len(head): len(data) - len(tail)]


def join_arrays(arrays: list[bytes]) -> bytes:
    """One canonical JSON array from canonical arrays, in order."""
    items = [a[1:-1] for a in arrays if a != b"[]"]
    return b"[" + b",".join(items) + b"]"


@contextmanager
def gc_paused() -> Iterator[None]:
    """The garbage collector paused while a large JSON document is parsed. Every container
    the parser creates survives the parse, so the collections it triggers find nothing, and
    each older-generation one walks more of the heap: a 10^4-patch patchset took 50-300 ms
    to parse in a worker under load (17 ms paused); reading the 16 shard results of a 10^4
    point grid cost a coordinator 215 collections and 0.4-0.5 s (20 and 0.1 s paused).
    Parsed JSON holds no cycle. The collector is resumed as it was; a thread that pauses it
    meanwhile only finds it running again sooner."""
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of some bytes."""
    return DIGEST_PREFIX + sha256_hex(data)


def json_digest(value: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``value``."""
    return digest_of(canonical_json(value))


def parse_digest(digest: str) -> str:
    """Return the hex part of ``sha256:<hex>``; raise ValueError when it is not one."""
    if not digest.startswith(DIGEST_PREFIX):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    hexpart = digest[len(DIGEST_PREFIX):]
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexpart
