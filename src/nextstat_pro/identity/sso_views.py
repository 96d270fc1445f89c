"""What the single sign-on operations return (the HTTP bodies of routes/sso.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..viewbase import VIEW_CONFIG


class PassphraseSet(BaseModel):
    """An SSO user's signature passphrase was set (first: their signing key made under it) or changed."""

    model_config = VIEW_CONFIG
    username: str
    key_id: str | None = Field(description="The signing key the passphrase unlocks (sha256 of its public key).")
    first: bool = Field(description="The first passphrase of this account: its signing key was made now.")


VIEWS: tuple[type[BaseModel], ...] = (PassphraseSet,)
