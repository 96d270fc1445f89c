"""Reading plot inputs out of a stored result, which may be of an older or foreign shape.

Every accessor raises ``Missing`` when the value is absent or not what a plot needs; the
dispatcher then leaves that plot out (never a plot drawn from guessed values)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


class Missing(Exception):
    """The result lacks what a plot needs."""


def member(obj: Any, key: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj or obj[key] is None:
        raise Missing(key)
    return obj[key]


def mapping(obj: Any, key: str) -> Mapping[str, Any]:
    value = member(obj, key)
    if not isinstance(value, Mapping):
        raise Missing(key)
    return value


def record(value: Any) -> Mapping[str, Any]:
    """One entry of a list of records (a parameter, an impact, a toy)."""
    if not isinstance(value, Mapping):
        raise Missing("record")
    return value


def items(obj: Any, key: str) -> Sequence[Any]:
    value = member(obj, key)
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise Missing(key)
    return value


def number(value: Any) -> float:
    """A finite float (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Missing("number")
    return float(value)


def numbers(value: Any) -> list[float]:
    """A list of finite floats."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise Missing("numbers")
    return [number(x) for x in value]


def num(obj: Any, key: str) -> float:
    return number(member(obj, key))


def text(obj: Any, key: str) -> str:
    value = member(obj, key)
    if not isinstance(value, str):
        raise Missing(key)
    return value


def finite(value: Any) -> bool:
    try:
        number(value)
    except Missing:
        return False
    return True


def job_points(result: Any) -> list[tuple[Any, Mapping[str, Any]]]:
    """A merged job result's successful points as (item or grid values, point result)."""
    out = []
    for point in items(result, "points"):
        if isinstance(point, Mapping) and point.get("ok") and isinstance(point.get("result"), Mapping):
            out.append((point.get("values", point.get("item")), point["result"]))
    return out


def is_job(result: Any) -> bool:
    return isinstance(result, Mapping) and str(result.get("schema", "")).endswith("/job-result/v1")
