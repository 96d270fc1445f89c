"""PostgreSQL: the audit tables belong to a NOLOGIN role; the application role may only
SELECT and INSERT them, so even with the triggers gone it cannot UPDATE, DELETE or TRUNCATE."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from nextstat_pro.audit.service import make_checkpoint, verify
from nextstat_pro.hub.service import refresh_statistics
from nextstat_pro.instance import init_instance
from nextstat_pro.projects import create_project

from .conftest import PASSWORD, new_pg_database, pg_admin_url


def test_application_role_cannot_rewrite_the_audit_tables(tmp_path: Path) -> None:
    admin_url = new_pg_database()
    role = "nsp_app_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'app-secret'")
    host_db = admin_url.split("@", 1)[1]
    app_url = f"postgresql://{role}:app-secret@{host_db}"
    inst = init_instance(tmp_path / "home", admin="admin", password=PASSWORD, db_url=app_url, admin_db_url=admin_url)
    try:
        with inst.db.transaction() as s:  # the application works as usual
            create_project(s, inst.context(), "ok")
        make_checkpoint(inst, inst.context())
        owner = None
        with inst.db.transaction() as s:
            owner = s.execute(text("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events'")).scalar()
            can_login = s.execute(text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": owner}).scalar()
            assert can_login is False
        assert owner == "nsp_audit_owner"
        for statement in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_tree_nodes",
                          "TRUNCATE audit_checkpoints", "ALTER TABLE audit_events DISABLE TRIGGER ALL",
                          "SET session_replication_role = replica"):
            with pytest.raises(ProgrammingError, match="permission denied|must be owner"), inst.db.transaction() as s:
                s.execute(text(statement))
        assert verify(inst, inst.context()).ok
        # The statistics refresh a registry import ends with: the application role does not own
        # the tables, so PostgreSQL skips them with a warning; the import is not failed by it.
        refresh_statistics(inst)
    finally:
        inst.close()
