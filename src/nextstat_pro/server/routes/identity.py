"""Users, project roles, API tokens and passwords: the ``user``, ``role``, ``token`` and ``passwd``
commands over HTTP (``whoami`` is ``GET /me``). Each route calls the operation the command calls;
the operation authorizes. A new token's secret and an approved reset's one-time token are in the
response once and never again (the server keeps their hashes)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ...identity import auth, resets, users
from ...identity.views import ResetApproved, ResetCompleted, ResetRequested, RoleBindingRow, TokenRow, UserRow
from ..auth import Caller, CallerChangingPassword, Inst, TooManyAttemptsError, client_of
from .auth import TokenIssued
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["identity"])

Role = Literal["viewer", "editor", "admin"]


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class NewUser(BaseModel):
    """A user account; ``password`` is the initial one (the user changes it, ``POST /me/password``)."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    printed_name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)
    email: str | None = Field(default=None, max_length=320)
    instance_admin: bool = False
    auditor: bool = Field(default=False, description="Instance-level auditor: reads and verifies everything.")


class AuditorChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    auditor: bool = Field(description="true grants the auditor role, false takes it away.")
    reason: str = Field(min_length=1, max_length=2000)


class RoleGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    reason: str = Field(min_length=1, max_length=2000)


class NewToken(BaseModel):
    """An API token of the caller, scoped to one project and capped at a role."""

    model_config = ConfigDict(extra="forbid")
    project: str = Field(min_length=1, max_length=100)
    role: Role = "viewer"
    name: str = Field(min_length=1, max_length=200)
    days: int = Field(default=90, ge=1, le=3650)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class ResetCompletion(BaseModel):
    """A new password set with the one-time token of a reset (no sign-in: the token is the credential)."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=200)
    token: str = Field(min_length=1, max_length=500)
    new_password: str = Field(min_length=1, max_length=1024)


@router.get("/users", response_model=list[UserRow], summary="Every user account (disabled ones included)")
def list_users(inst: Inst, ctx: Caller) -> list[UserRow]:
    return users.list_users(inst, ctx)


@router.post("/users", response_model=UserRow, status_code=201, summary="Create a user with a signing key")
def create_user(inst: Inst, ctx: Caller, body: NewUser) -> UserRow:
    return users.create_user(inst, ctx, username=body.username, printed_name=body.printed_name,
                             password=body.password, email=body.email, instance_admin=body.instance_admin,
                             auditor=body.auditor)


@router.post("/users/{username}/disable", response_model=UserRow, summary="Disable a user (never deleted)")
def disable_user(inst: Inst, ctx: Caller, username: str, body: Reason) -> UserRow:
    return users.disable_user(inst, ctx, username, body.reason)


@router.put("/users/{username}/auditor", response_model=UserRow, summary="Grant or revoke the auditor role")
def set_auditor(inst: Inst, ctx: Caller, username: str, body: AuditorChange) -> UserRow:
    return users.set_auditor(inst, ctx, username, body.auditor, body.reason)


@router.post("/users/{username}/password-reset", response_model=ResetRequested, status_code=201,
             summary="Reset a user's password: a token e-mailed to them, or a request a second admin approves")
def reset_password(inst: Inst, ctx: Caller, username: str, body: Reason) -> ResetRequested:
    return resets.reset_password(inst, ctx, username, body.reason)


@router.post("/users/{username}/password-reset/approve", response_model=ResetApproved,
             summary="Approve another admin's reset; the one-time token is in the response, once")
def approve_reset(inst: Inst, ctx: Caller, username: str, body: Reason) -> ResetApproved:
    return resets.approve_reset(inst, ctx, username, body.reason)


@router.post("/password-reset/complete", response_model=ResetCompleted,
             summary="Set a new password with a reset's one-time token (no sign-in)")
def complete_reset(request: Request, inst: Inst, body: ResetCompletion) -> ResetCompleted:
    # A token is a credential: guessing is limited per address like sign-in attempts.
    client = client_of(request)
    if not request.app.state.login_limiter.allow(client or "-", inst.config.server.login_attempts_per_minute):
        auth.record_refusal(inst, "rate_limited", client=client, who=body.username, target=("user", body.username))
        raise TooManyAttemptsError("too many attempts from this address: wait a minute")
    return resets.complete_reset(inst, body.username, body.token, body.new_password, "api")


@router.post("/me/password", status_code=204, summary="Change your password (re-encrypts your signing key)")
def change_password(inst: Inst, ctx: CallerChangingPassword, body: PasswordChange) -> Response:
    auth.change_password(inst, ctx, body.current_password, body.new_password)
    return Response(status_code=204)


@router.get("/projects/{project}/roles", response_model=list[RoleBindingRow],
            summary="Who has which role in a project")
def list_roles(inst: Inst, ctx: Caller, project: str) -> list[RoleBindingRow]:
    return users.list_role_bindings(inst, ctx, project)


@router.put("/projects/{project}/roles/{username}", response_model=RoleBindingRow,
            summary="Give a user a role in a project (or change it)")
def grant_role(inst: Inst, ctx: Caller, project: str, username: str, body: RoleGrant) -> RoleBindingRow:
    return users.grant_role(inst, ctx, username, project, body.role, body.reason)


@router.post("/projects/{project}/roles/{username}/revoke", response_model=RoleBindingRow,
             summary="Remove a user's role in a project (returns the binding as it was)")
def revoke_role(inst: Inst, ctx: Caller, project: str, username: str, body: Reason) -> RoleBindingRow:
    return users.revoke_role(inst, ctx, username, project, body.reason)


@router.get("/tokens", response_model=list[TokenRow], summary="Your sessions and API tokens still in force")
def list_tokens(inst: Inst, ctx: Caller) -> list[TokenRow]:
    return auth.list_tokens(inst, ctx)


@router.post("/tokens", response_model=TokenIssued, status_code=201,
             summary="Create an API token (its secret is in this response only)")
def create_token(inst: Inst, ctx: Caller, body: NewToken) -> TokenIssued:
    cred = auth.create_token(inst, ctx, body.project, body.role, body.name, body.days)
    return TokenIssued(token=cred.token, token_id=cred.token_id, expires_at=cred.expires_at)


@router.post("/tokens/{token_id}/revoke", response_model=TokenRow,
             summary="Revoke a credential: your own, or (instance admins) anyone's")
def revoke_token(inst: Inst, ctx: Caller, token_id: str, body: Reason) -> TokenRow:
    return auth.revoke_token(inst, ctx, token_id, body.reason)
