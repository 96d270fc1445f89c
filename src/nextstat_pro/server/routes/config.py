"""The instance configuration: ``config show`` and ``config set`` over HTTP (passwords in URLs
masked; each change audited with its reason)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ...config import InstanceConfig
from ...config_service import set_config, show_config
from ..auth import Caller, Inst
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["config"])


class ConfigChange(BaseModel):
    """One settable key (``section.field`` or a top-level key) and its new value, as JSON."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=100)
    value: JsonValue = Field(description="The new value (any JSON: a number, a string, an object, null).")
    reason: str = Field(min_length=1, max_length=2000)


@router.get("/config", response_model=InstanceConfig, summary="The instance configuration (URL passwords masked)")
def show(inst: Inst, ctx: Caller) -> InstanceConfig:
    return show_config(inst, ctx)


@router.put("/config", response_model=InstanceConfig, summary="Set one key of the configuration (audited)")
def set_key(inst: Inst, ctx: Caller, body: ConfigChange) -> InstanceConfig:
    value: Any = body.value
    # The service parses the CLI's text; the JSON value given here is that text, exactly.
    set_config(inst, ctx, body.key, json.dumps(value), body.reason)
    # What set_config returns holds the database URL's password: the response is show's, masked.
    return show_config(inst, ctx)
