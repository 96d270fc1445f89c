"""Alerts of a project: channels (webhook, e-mail, Slack-compatible), rules, deliveries, a test
notification. Admins manage, editors read (the service authorizes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ...alerts import service as alerts
from ...alerts.views import ChannelCreated, ChannelRow, DeliveryRow, RuleRow, SecretRotated
from ..auth import Caller, Inst
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["alerts"])


class NewChannel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    webhook: str | None = Field(default=None, max_length=2000, description="An http(s) URL.")
    email: str | None = Field(default=None, max_length=2000, description="Addresses, comma-separated.")
    slack: bool = Field(default=False, description="Send a Slack-compatible JSON body to the webhook.")


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
    grace_s: float | None = Field(default=None, gt=0, le=30 * 86_400,
                                  description="How long the old secret stays valid.")


class NewRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    kind: str = Field(max_length=40, description="failed, fit-quality, regression, stuck, security or integrity.")
    channel: str = Field(min_length=1, max_length=100)
    options: dict[str, Any] | None = None


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


@router.get("/projects/{project}/alerts/channels", response_model=list[ChannelRow], summary="Alert channels")
def list_channels(inst: Inst, ctx: Caller, project: str) -> list[ChannelRow]:
    return alerts.list_channels(inst, ctx, project)


@router.post("/projects/{project}/alerts/channels", response_model=ChannelCreated, status_code=201,
             summary="Add a channel (a webhook's signing secret is shown once)")
def add_channel(inst: Inst, ctx: Caller, project: str, body: NewChannel) -> ChannelCreated:
    return alerts.add_channel(inst, ctx, project, body.name, webhook=body.webhook, email=body.email, slack=body.slack)


@router.post("/projects/{project}/alerts/channels/{name}/rotate", response_model=SecretRotated,
             summary="Rotate a webhook's signing secret (the old one stays valid for a grace period)")
def rotate(inst: Inst, ctx: Caller, project: str, name: str, body: Rotation) -> SecretRotated:
    if body.grace_s is None:
        return alerts.rotate_secret(inst, ctx, project, name, body.reason)
    return alerts.rotate_secret(inst, ctx, project, name, body.reason, body.grace_s)


@router.get("/projects/{project}/alerts/rules", response_model=list[RuleRow], summary="Alert rules")
def list_rules(inst: Inst, ctx: Caller, project: str) -> list[RuleRow]:
    return alerts.list_rules(inst, ctx, project)


@router.post("/projects/{project}/alerts/rules", response_model=RuleRow, status_code=201, summary="Add a rule")
def add_rule(inst: Inst, ctx: Caller, project: str, body: NewRule) -> RuleRow:
    return alerts.add_rule(inst, ctx, project, body.name, body.kind, body.channel, body.options)


@router.post("/projects/{project}/alerts/rules/{name}/disable", response_model=RuleRow, summary="Disable a rule")
def disable_rule(inst: Inst, ctx: Caller, project: str, name: str, body: Reason) -> RuleRow:
    return alerts.disable_rule(inst, ctx, project, name, body.reason)


@router.post("/projects/{project}/alerts/rules/{name}/test", response_model=DeliveryRow,
             summary="Send a test notification through a rule's channel")
def test_rule(inst: Inst, ctx: Caller, project: str, name: str) -> DeliveryRow:
    return alerts.test_rule(inst, ctx, project, name)


@router.get("/projects/{project}/alerts/deliveries", response_model=list[DeliveryRow],
            summary="Deliveries and their attempts (status, response code, latency)")
def deliveries(inst: Inst, ctx: Caller, project: str, failed: bool = False,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[DeliveryRow]:
    return alerts.list_deliveries(inst, ctx, project, failed=failed, limit=limit)
