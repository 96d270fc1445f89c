"""Helpers: users with roles, sessions for them."""

from __future__ import annotations

from nextstat_pro.access.context import RequestContext
from nextstat_pro.identity import auth
from nextstat_pro.identity.users import create_user, grant_role
from nextstat_pro.instance import Instance


def add_user(inst: Instance, name: str, role: str | None, password: str) -> None:
    admin = inst.context()
    create_user(inst, admin, username=name, printed_name=name.title(), password=password)
    if role:
        grant_role(inst, admin, name, "default", role, "test")


def session_for(inst: Instance, name: str, password: str) -> RequestContext:
    cred = auth.sign_in(inst, name, password)
    return auth.authenticate(inst, cred.token)
