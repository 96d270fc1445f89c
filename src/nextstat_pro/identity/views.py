"""What the identity operations return: who is signed in, user rows, tokens, role bindings,
password resets.

Built by ``identity.users``, ``identity.auth`` and ``identity.resets`` from the database; the CLI
renders them (a table, or ``--json``: the model's own JSON, the HTTP body to come). No secret is
ever in one but ``ResetApproved.token``: the one-time reset token the approving administrator hands
to the user, shown once (its hash alone is stored).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from ..viewbase import VIEW_CONFIG
from .sso_views import PassphraseSet

_CONFIG = VIEW_CONFIG
Role = Literal["viewer", "editor", "admin"]


class WhoAmI(BaseModel):
    """The signed-in caller: the account, the credential behind the request and what it may do."""

    model_config = _CONFIG
    username: str | None
    printed_name: str = Field(description="The name printed on the caller's signatures.")
    instance_admin: bool
    credential: str | None = Field(description="session (from login) or api (an API token).")
    roles: dict[str, Role | None] = Field(
        description="Each visible project and the caller's role there through this credential (bound role, "
                    "capped by an API token's role; null for an auditor without a binding).")
    auditor: bool = Field(description="Instance-level auditor: reads and verifies everything, changes nothing.")
    token_id: str | None = Field(description="The id of the credential (give it to `token revoke`).")
    token_project: str | None = Field(description="The one project an API token reaches (null: a session).")
    token_role: Role | None = Field(description="An API token's role cap (null: a session, no cap).")
    expires_at: datetime | None = Field(description="When the credential expires (UTC).")


class UserRow(BaseModel):
    """One user account (accounts are never deleted: disabled)."""

    model_config = _CONFIG
    username: str
    printed_name: str
    email: str | None
    instance_admin: bool
    disabled: bool
    locked: bool = Field(description="Locked after failed sign-ins until an administrator resets the password.")
    must_change_password: bool
    auditor: bool


class TokenRow(BaseModel):
    """A credential of the caller: a CLI session or an API token (never its secret)."""

    model_config = _CONFIG
    token_id: str
    kind: Literal["session", "api"]
    name: str
    project: str | None = Field(description="The project an API token is scoped to.")
    role: Role | None = Field(description="An API token's role cap.")
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    current: bool = Field(description="The credential of this request.")


class RoleBindingRow(BaseModel):
    """A user's role in a project."""

    model_config = _CONFIG
    project: str
    username: str
    printed_name: str
    role: Role
    since: datetime


class ResetRequested(BaseModel):
    """``user reset-password``: how the user will get their one-time reset token."""

    model_config = _CONFIG
    username: str
    reset_id: str
    channel: Literal["email", "approval"] = Field(
        description="email: sent to the user's address over the instance's SMTP (no administrator sees it); "
                    "approval: a second instance admin must approve, and hands the token over.")
    sent_to: str | None = Field(description="The address the token was sent to (email only).")
    expires_at: datetime = Field(description="When the token (email) or the unapproved request expires (UTC).")
    superseded: list[str] = Field(description="Earlier open resets of this user, no longer usable.")


class ResetApproved(BaseModel):
    """``user approve-reset``: the second administrator's approval and the one-time token to hand to
    the user. The key the user then makes is marked as created after an admin reset."""

    model_config = _CONFIG
    username: str
    reset_id: str
    requested_by: str = Field(description="Username of the administrator who asked for the reset.")
    token: str = Field(description="The one-time reset token (shown once; only its hash is stored).")
    expires_at: datetime


class ResetCompleted(BaseModel):
    """``passwd --reset-token``: the user's new password is set and their new signing key made."""

    model_config = _CONFIG
    username: str
    key_id: str = Field(description="The new signing key (sha256 of its public key).")
    key_after_admin_reset: bool = Field(
        description="The key was made with a token an administrator saw: every signature by it says so.")
    sessions_revoked: int = Field(description="The user's sessions still in force, ended by the reset.")


VIEWS: tuple[type[BaseModel], ...] = (WhoAmI, UserRow, TokenRow, RoleBindingRow, ResetRequested, ResetApproved,
                                      ResetCompleted, PassphraseSet)
