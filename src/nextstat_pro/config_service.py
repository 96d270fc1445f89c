"""Changing the instance configuration: each change is audited with before/after values."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from .audit.events import append_event
from .config import InstanceConfig, write_config
from .errors import UsageError
from .identity.actors import RequestContext
from .identity.rbac import authorize
from .instance import Instance

SETTABLE = (
    "default_project",
    "checkpoint_interval_s",
    "protected_aliases",
    "hub_min_years",
    "retention.min_years",
    "retention.legal_hold_projects",
    "retention.legal_hold_runs",
    "run_lease_s",
    "auth.min_password_length",
    "auth.min_password_score",
)


def set_config(instance: Instance, ctx: RequestContext, key: str, raw_value: str, reason: str) -> InstanceConfig:
    """Set ``key`` to the JSON value ``raw_value`` (a bare word counts as a string)."""
    if key not in SETTABLE:
        raise UsageError(f"cannot set {key!r} (settable: {', '.join(SETTABLE)})")
    try:
        value: Any = json.loads(raw_value)
    except ValueError:
        value = raw_value
    data = instance.config.model_dump()
    section, _, field = key.partition(".")
    holder = data[section] if field else data
    name = field or section
    before = holder[name]
    holder[name] = value
    try:
        new = InstanceConfig.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"bad value for {key}: {exc.errors()[0]['msg']}") from None
    after = new.model_dump()[section][field] if field else new.model_dump()[name]
    old = instance.config
    written = False
    try:
        with instance.db.transaction() as session:
            authorize(session, ctx, "instance.configure")
            append_event(session, ctx, action="config.changed", target=("config", key), before={key: before},
                         after={key: after}, reason=reason)
            # Written inside the transaction, put back if the transaction does not commit
            # (the commit itself included): neither the file nor the event without the other.
            write_config(instance.home, new)
            written = True
    except BaseException:
        if written:
            write_config(instance.home, old)
        raise
    instance.config = new
    return new
