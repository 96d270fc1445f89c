"""Task parameters: ``--param key=value`` pairs checked against a model per task."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .. import text
from ..errors import ParamError


def _float_list(value: Any) -> Any:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


FloatList = Annotated[list[float], BeforeValidator(_float_list)]


class TaskParams(BaseModel):
    # NaN and infinity are no parameter values (a NaN POI tests nothing; an infinite bound
    # would be recorded as a result that no JSON reader can take back).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    grad_tol: float = Field(default=0.1, gt=0, description="fit-quality tolerance on the projected gradient norm")


class FitParams(TaskParams):
    covariance: bool = Field(default=False, description="also report the free parameters' covariance matrix")


class HypotestParams(TaskParams):
    mu: float = Field(default=1.0, description="POI value tested")


class UpperLimitParams(TaskParams):
    alpha: float = Field(default=0.05, gt=0, lt=1, description="1 - confidence level")
    cls_points: int = Field(default=0, ge=0, le=200, description=(
        "Also record the CLs curve (observed and expected band) at this many POI values from 0 to 1.2x "
        "the largest limit, as cls_scan (the CLs-vs-POI plot); 0 records the limits only."))


class ScanParams(TaskParams):
    mu_min: float = 0.0
    mu_max: float = 3.0
    points: int = Field(default=31, ge=2, le=10_000)


class RankingParams(TaskParams):
    pass


class ToysParams(TaskParams):
    n_toys: int = Field(default=100, ge=1, le=10_000_000)
    mu: float | None = Field(default=None, description="POI value toys are generated at (default: best fit)")


class PkNlmeParams(TaskParams):
    theta_init: FloatList = Field(default_factory=lambda: [1.0, 10.0, 1.0], description="CL, V, Ka")
    omega_init: FloatList = Field(default_factory=lambda: [0.3, 0.3, 0.3])
    method: Literal["foce", "focei"] = "focei"
    error_model: Literal["proportional", "additive", "combined"] = "proportional"
    sigma: float = Field(default=0.1, gt=0)


SEED_LIMIT = 2**63  # the engine's seeds are signed 64-bit; toy k uses seed + k


def check_seed(seed: int | None, n_draws: int = 1) -> None:
    """A seed the engine can use for ``n_draws`` consecutive toys: 0 <= seed and seed + n_draws <= 2^63."""
    if seed is None:
        return
    if seed < 0 or seed + max(n_draws, 1) > SEED_LIMIT:
        raise ParamError(f"seed must be a whole number from 0 to 2^63 - {max(n_draws, 1)} (got {seed})")


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``; a malformed pair is a ParamError."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"malformed --param {pair!r}: expected key=value")
        if key in out:
            raise ParamError(f"--param {key} given twice")
        out[key] = value.strip()
    return out


def build_params(model: type[TaskParams], task: str, raw: dict[str, Any]) -> TaskParams:
    # Keys and values are recorded as given (manifest, run listings): people read them, so
    # they follow the text rules before anything else looks at them.
    for key, value in raw.items():
        text.check("parameter name", str(key))
        if isinstance(value, str):
            text.check("parameter value", value)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "?"
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(model.model_fields)) or "none"
            raise ParamError(f"unknown parameter {key!r} for task {task} (allowed: {allowed})") from None
        raise ParamError(f"bad value for parameter {key!r} of task {task}: {err['msg']}") from None
