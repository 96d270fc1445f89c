"""Shared pieces of the single sign-on tests: the instance's sso section, audit lookups."""

from __future__ import annotations

import json
import socket
from typing import Any

from sqlalchemy import select

from nextstat_pro.config_service import set_config
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.instance import Instance


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def configure_sso(inst: Instance, sso: dict[str, Any]) -> None:
    """Set the sso section the audited way (``config set sso``), as an administrator would."""
    set_config(inst, inst.context(), "sso", json.dumps(sso), "single sign-on for the tests")


def events(inst: Instance, action: str) -> list[dict[str, Any]]:
    with inst.db.read() as s:
        return [json.loads(b) for b in s.scalars(select(AuditEvent.body).where(AuditEvent.action == action)
                                                 .order_by(AuditEvent.seq))]
