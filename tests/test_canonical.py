import math

import pytest

from nextstat_pro.canonical import canonical_json, digest_of, json_digest, parse_digest, sanitize


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
