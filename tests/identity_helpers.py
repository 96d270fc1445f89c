"""Helpers: users with roles, sessions for them."""

from __future__ import annotations

from nextstat_pro.identity import auth
from nextstat_pro.identity.actors import RequestContext
from nextstat_pro.identity.users import create_user, grant_role
from nextstat_pro.instance import Instance
from nextstat_pro.projects import get_project


def add_user(inst: Instance, name: str, role: str | None, password: str) -> None:
    admin = inst.context()
    with inst.db.transaction() as s:
        create_user(s, admin, username=name, printed_name=name.title(), password=password)
        if role:
            grant_role(s, admin, name, get_project(s, "default"), role, "test")


def session_for(inst: Instance, name: str, password: str) -> RequestContext:
    cred = auth.login(inst.db.transaction, inst.config.auth, name, password)
    with inst.db.transaction() as s:
        return auth.authenticate(s, cred.token)
