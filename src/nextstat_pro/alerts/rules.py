"""The rule kinds: their options, and which audit events fire them.

Evaluation is pure: an event of the log (``LogEvent``) and what the dispatcher looks up about its run
(``Facts``: task, error, the stored result, the baseline's result) go in, a ``Finding`` (one alert's
root cause, title and details) or nothing comes out. ``stuck`` and ``integrity`` are not events but
periodic checks (alerts/checks.py); they return the same ``Finding``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import UsageError
from .regression import compare

KINDS = ("failed", "fit-quality", "regression", "stuck", "security", "integrity")
# Kinds whose findings are about the whole instance (sign-ins, the log): rules an instance admin adds.
INSTANCE_WIDE = frozenset({"security", "integrity"})
# Refusals worth a page even when the event itself is not marked ``"alert": true``.
SECURITY_ACTIONS = frozenset({"user.locked", "signature.refused", "access.denied"})
# What a rule of each kind reads: the dispatcher parses no other event's body.
EVENT_ACTIONS: dict[str, frozenset[str]] = {
    "failed": frozenset({"run.failed", "job.shard_failed", "job.launch_failed"}),
    "fit-quality": frozenset({"run.succeeded"}),
    "regression": frozenset({"run.succeeded"}),
}


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(_Options):
    pass


class RegressionOptions(_Options):
    # previous-version: the run of the same task (same parameters) on the model item's previous version;
    # alias:NAME: on the version the alias NAME pointed to before it moved to this run's version.
    baseline: str = "previous-version"
    sigmas: float = Field(default=1.0, gt=0)
    limit_pct: float = Field(default=5.0, ge=0)
    wall_pct: float = Field(default=50.0, ge=0)

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: str) -> str:
        if value != "previous-version" and not (value.startswith("alias:") and len(value) > len("alias:")):
            raise ValueError("baseline must be previous-version or alias:NAME")
        return value


class StuckOptions(_Options):
    after_s: float = Field(default=300.0, gt=0, le=30 * 86_400)


OPTIONS: dict[str, type[_Options]] = {
    "failed": NoOptions, "fit-quality": NoOptions, "regression": RegressionOptions, "stuck": StuckOptions,
    "security": NoOptions, "integrity": NoOptions,
}


def check_options(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A rule's options, validated for its kind and with the defaults written out."""
    if kind not in OPTIONS:
        raise UsageError(f"unknown alert kind {kind!r} (kinds: {', '.join(KINDS)})")
    try:
        return OPTIONS[kind].model_validate(raw).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"bad option for a {kind} rule: {where + ': ' if where else ''}{first['msg']}") from None


@dataclass(frozen=True)
class LogEvent:
    """An audit event as the dispatcher reads it: the query columns, the body parsed on demand."""

    seq: int
    action: str
    project: str | None
    target_type: str
    target_id: str
    body: str

    @cached_property
    def doc(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def after(self) -> dict[str, Any]:
        after = self.doc.get("after")
        return after if isinstance(after, dict) else {}


@dataclass(frozen=True)
class Finding:
    """One root cause: alerts of a rule with the same ``group_key`` within the window are one alert.
    ``once``: never alert twice for this key (a stall, a tamper finding), whatever the window."""

    group_key: str
    title: str
    details: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    once: bool = False


@dataclass(frozen=True)
class Baseline:
    run_id: str
    version: str
    result: dict[str, Any]


class Facts(Protocol):
    """What rules need to know beyond the event (alerts/facts.py reads it from the database and store)."""

    def task(self, run_id: str) -> str: ...

    def result(self, run_id: str) -> dict[str, Any] | None: ...

    def baseline(self, run_id: str, options: RegressionOptions) -> Baseline | None: ...


def is_security(event: LogEvent) -> bool:
    if event.action in SECURITY_ACTIONS:
        return True
    if not event.action.startswith(("auth.", "access.", "signature.", "user.", "token.")):
        return False
    after = event.after
    return after.get("alert") is True or (event.action == "auth.refused" and after.get("reason") in ("revoked",
                                                                                                     "locked"))


def wants(kind: str, event: LogEvent) -> bool:
    """Whether a rule of ``kind`` looks at ``event`` at all (cheap: no body parsed unless needed)."""
    if kind == "security":
        return event.action in SECURITY_ACTIONS or event.action.startswith(("auth.", "access.", "signature.",
                                                                            "user.locked"))
    return event.action in EVENT_ACTIONS.get(kind, frozenset())


def _line(text: Any, limit: int = 200) -> str:
    first = str(text or "").strip().splitlines()
    out = first[0] if first else ""
    return out if len(out) <= limit else out[: limit - 1] + "…"


def evaluate(kind: str, options: dict[str, Any], event: LogEvent, facts: Facts) -> Finding | None:
    """The finding ``event`` makes for a rule of ``kind``, or None."""
    if not wants(kind, event):
        return None
    if kind == "failed":
        return _failed(event, facts)
    if kind == "fit-quality":
        return _fit_quality(event, facts)
    if kind == "regression":
        return _regression(event, facts, RegressionOptions.model_validate(options))
    if kind == "security":
        return _security(event) if is_security(event) else None
    return None


def _failed(event: LogEvent, facts: Facts) -> Finding | None:
    run_id, after = event.target_id, event.after
    base = {"run_id": run_id, "task": facts.task(run_id), "seq": event.seq}
    if event.action == "run.failed":
        reason = event.doc.get("reason")
        title = f"run {run_id[:8]} ({base['task']}) failed: {_line(after.get('error'))}"
        return Finding(f"run:{run_id}", title, {**base, "error": after.get("error"), "reason": reason}, event.seq)
    if event.action == "job.shard_failed" and after.get("retry") is False:
        title = (f"job {run_id[:8]} ({base['task']}): shard {after.get('shard')} failed after "
                 f"{after.get('attempt')} attempt(s): {_line(after.get('error'))}")
        return Finding(f"run:{run_id}", title, {**base, "shard": after.get("shard"), "error": after.get("error")},
                       event.seq)
    if event.action == "job.launch_failed":
        title = f"job {run_id[:8]} ({base['task']}): shards could not be launched: {_line(after.get('error'))}"
        return Finding(f"run:{run_id}", title, {**base, "shards": after.get("shards"), "error": after.get("error")},
                       event.seq)
    return None


def _fit_quality(event: LogEvent, facts: Facts) -> Finding | None:
    if event.after.get("fit_quality_ok") is not False:
        return None
    run_id = event.target_id
    result = facts.result(run_id) or {}
    quality = result.get("quality") if isinstance(result.get("quality"), dict) else {}
    assert isinstance(quality, dict)
    reasons = quality.get("reasons") or ["the run's result is marked not ok"]
    task = facts.task(run_id)
    return Finding(f"run:{run_id}", f"run {run_id[:8]} ({task}): fit quality bad: {'; '.join(map(str, reasons))}",
                   {"run_id": run_id, "task": task, "reasons": reasons, "converged": quality.get("converged"),
                    "at_bound": quality.get("at_bound"), "projected_grad_norm": quality.get("projected_grad_norm"),
                    "grad_tol": quality.get("grad_tol"), "seq": event.seq}, event.seq)


def _regression(event: LogEvent, facts: Facts, options: RegressionOptions) -> Finding | None:
    run_id = event.target_id
    baseline = facts.baseline(run_id, options)
    if baseline is None:
        return None
    current = facts.result(run_id)
    if current is None:
        return None
    diffs = compare(baseline.result, current, sigmas=options.sigmas, limit_pct=options.limit_pct,
                    wall_pct=options.wall_pct)
    if not diffs:
        return None
    task = facts.task(run_id)
    first = diffs[0]
    title = (f"run {run_id[:8]} ({task}) regressed against baseline run {baseline.run_id[:8]} ({baseline.version}): "
             f"{first['what']} {first['baseline']:.6g} -> {first['current']:.6g} ({first['change']})"
             + (f" and {len(diffs) - 1} more" if len(diffs) > 1 else ""))
    return Finding(f"run:{run_id}", title, {"run_id": run_id, "task": task, "baseline_run_id": baseline.run_id,
                                            "baseline_version": baseline.version, "differences": diffs,
                                            "seq": event.seq}, event.seq)


def _security(event: LogEvent) -> Finding:
    actor = event.doc.get("actor") or {}
    who = actor.get("name") or actor.get("id") or "?"
    target = f"{event.target_type} {event.target_id}"
    reason = event.after.get("reason") or event.after.get("why") or event.doc.get("reason")
    title = f"security: {event.action} by {who} on {target}" + (f" ({_line(reason)})" if reason else "")
    return Finding(f"{event.action}:{actor.get('id')}:{event.target_type}:{event.target_id}", title,
                   {"action": event.action, "actor": actor, "project": event.project, "after": event.after,
                    "target": {"type": event.target_type, "id": event.target_id}, "seq": event.seq}, event.seq)
