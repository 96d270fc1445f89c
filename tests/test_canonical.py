import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from nextstat_pro.canonical import (
    canonical_json,
    digest_of,
    is_plain,
    json_digest,
    parse_digest,
    sanitize,
    sanitize_plain,
)
from nextstat_pro.db.types import rfc3339


def test_rfc8785_orders_keys_and_formats_numbers() -> None:
    assert canonical_json({"b": 1, "a": [1.0, 1e21, "é"]}) == '{"a":[1,1e+21,"é"],"b":1}'.encode()


def test_non_finite_floats_become_null() -> None:
    assert sanitize({"x": [math.nan, math.inf, -math.inf, 1.5]}) == {"x": [None, None, None, 1.5]}
    assert canonical_json({"x": math.nan}) == b'{"x":null}'


def test_json_digest_is_independent_of_key_order() -> None:
    assert json_digest({"a": 1, "b": 2}) == json_digest({"b": 2, "a": 1})
    assert digest_of(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("bad", ["md5:abc", "sha256:xyz", "sha256:" + "A" * 64, "sha256:" + "a" * 63])
def test_parse_digest_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_digest(bad)


def test_fast_path_agrees_with_rfc8785_on_random_documents() -> None:
    import random

    import rfc8785

    rng = random.Random(7)
    alphabet = ["a", "Z", "é", "\u2014", "\U0001f600", '"', "\\", "\n", "\x01", "\x7f", " ", "\u2028"]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 6)))

    def value(depth: int = 0):  # type: ignore[no-untyped-def]
        kind = rng.randrange(7 if depth < 3 else 4)
        if kind == 0:
            return text()
        if kind == 1:
            return rng.choice([0, -1, 2**53, 10**20, rng.randrange(-10**6, 10**6)])
        if kind == 2:
            return rng.choice([None, True, False])
        if kind == 3:
            return rng.choice([0.1, 1.0, 1e21, 1e-7, -0.0, 123.456, 5e-324, 1e16, 1e20, 1.5e-6, 1e-6, 0.00001,
                               -2.5e-5, 123456789.125, 1.7976931348623157e308, rng.uniform(-1e3, 1e3),
                               rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30), float(rng.randint(-10**6, 10**6))])
        if kind == 4:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {text(): value(depth + 1) for _ in range(rng.randrange(4))}

    for _ in range(5000):
        doc = value()
        try:
            expected = rfc8785.dumps(doc)
        except rfc8785.IntegerDomainError:
            with pytest.raises(rfc8785.IntegerDomainError):
                canonical_json(doc)
            continue
        assert canonical_json(doc) == expected


def test_float_path_agrees_with_rfc8785_on_every_kind_of_double() -> None:
    """Random bit patterns (subnormals, huge, tiny, integral) at the top level, in arrays and
    in objects, beside strings that look like numbers: the C-encoder path must give the
    rfc8785 bytes, or give way to rfc8785."""
    import random
    import struct

    import rfc8785

    rng = random.Random(11)
    specials = [0.0, -0.0, 1.0, -1.0, 5e-324, 1e21, 1e-7, 1e-6, 1e16, 1e20, 123e18, 0.1, 100.0, 2.0**53]
    doubles = specials + [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20000)]
    for x in doubles:
        if math.isnan(x) or math.isinf(x):
            continue
        for doc in (x, [x], {"k": x}, {"v": "1.0.0", "w": [x, "2e-07", x], "z": ":1.0,"}):
            assert canonical_json(doc) == rfc8785.dumps(doc), doc


def test_splice_and_cut_round_trip_and_refuse_non_canonical_bytes() -> None:
    from nextstat_pro.canonical import cut, join_arrays, splice

    doc = {"b": [1.5, 2], "a": "x", "points": [{"x": 1.0}, {"y": 1e-7}], "z": {"q": 1e21}}
    raw = canonical_json(doc["points"])
    data = canonical_json(doc)
    assert splice(doc, "points", raw) == data
    assert cut(data, doc, "points") == raw
    assert splice({"points": [1]}, "points", b"[1]") == b'{"points":[1]}'
    assert join_arrays([canonical_json([1, 2.5]), b"[]", canonical_json([{"a": 1e-7}])]) == canonical_json(
        [1, 2.5, {"a": 1e-7}])
    with pytest.raises(ValueError):
        cut(json.dumps(doc).encode(), doc, "points")  # spaces: not canonical


@pytest.mark.parametrize("value", [
    None, True, 3, 2**53, -(2**53) + 1, 1.5, float("nan"), float("-inf"), "x", "\U0001f600",
    {"a": 1, "b": [1, "c", None]}, {"a": float("inf")}, {"\U0001f600": 1}, {"é": {"k": [1.0]}},
    [1, [2, [3.25]]], (1, 2), {1: "int key"}, {("\U0001f600",): 1},
])
def test_sanitize_plain_is_sanitize_and_is_plain_in_one_walk(value: object) -> None:
    def reference(v: object) -> object:  # what sanitize means, written out plainly
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {str(k): reference(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [reference(x) for x in v]
        return v

    clean, plain = sanitize_plain(value)
    assert json.dumps(clean) == json.dumps(reference(value)) == json.dumps(sanitize(value))
    assert plain == is_plain(reference(value))


def test_rfc3339_timestamps_keep_their_format() -> None:
    """Audit events stamp times with isoformat now; the bytes must stay what strftime wrote."""
    for ts in (datetime(2026, 1, 2, 3, 4, 5, 0, UTC), datetime(2026, 12, 31, 23, 59, 59, 999999, UTC),
               datetime(2026, 6, 1, 12, 0, 0, 7, timezone(timedelta(hours=-5)))):
        assert rfc3339(ts) == ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
