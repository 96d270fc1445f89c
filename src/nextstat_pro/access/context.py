"""Who is acting, and through which interface: attached to every service call and audit event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Interface = Literal["cli", "api", "worker", "system"]


@dataclass(frozen=True)
class Actor:
    id: str
    name: str
    kind: Literal["user", "service"] = "user"
    username: str | None = None
    is_instance_admin: bool = False
    # Instance-level read-only role (access/rbac.py): reads and verifies everything, changes nothing.
    is_auditor: bool = False

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "name": self.name}


@dataclass(frozen=True)
class RequestContext:
    actor: Actor
    interface: Interface = "cli"
    client: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # The credential behind the request: a CLI session or an API token (scoped to one
    # project and capped at one role), or None for in-process callers such as init.
    token_id: str | None = None
    token_kind: str | None = None
    token_project_id: str | None = None
    token_role: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"interface": self.interface, "client": self.client}
