"""Creating an instance, on SQLite and PostgreSQL; a second init changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from nextstat_pro.audit.service import verify
from nextstat_pro.db import migrate
from nextstat_pro.db.models import AuditEvent, Project, User
from nextstat_pro.errors import InstanceExistsError, UsageError
from nextstat_pro.identity.passwords import verify_password
from nextstat_pro.instance import Instance, init_instance

from .conftest import PASSWORD


def test_init_creates_admin_project_and_events(instance: Instance) -> None:
    with instance.db.transaction() as s:
        admin = s.scalar(select(User).where(User.username == "admin"))
        assert admin is not None and admin.is_instance_admin and admin.printed_name == "Ada Admin"
        assert verify_password(admin.password_hash, PASSWORD)
        assert admin.password_hash != PASSWORD
        assert [p.name for p in s.scalars(select(Project))] == ["default"]
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
        assert actions == ["user.created", "instance.initialized", "project.created"]
        from nextstat_pro.db.models import UserKey

        assert s.scalar(select(UserKey.user_id)) == admin.id  # the admin's signing key
    assert verify(instance).ok
    assert migrate.current_revision(instance.db.engine) == migrate.head_revision()
    assert (instance.home / "config.json").stat().st_mode & 0o777 == 0o600


def test_second_init_in_the_same_home_is_refused(instance: Instance) -> None:
    before = (instance.home / "config.json").read_bytes()
    with pytest.raises(InstanceExistsError, match="exists already"):
        init_instance(instance.home, admin="other", password=PASSWORD, db_url=instance.config.db_url)
    assert (instance.home / "config.json").read_bytes() == before
    with instance.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 1


def test_second_init_on_the_same_database_is_refused(instance: Instance, tmp_path: Path) -> None:
    with pytest.raises(InstanceExistsError, match="holds an instance"):
        init_instance(tmp_path / "other-home", admin="other", password=PASSWORD, db_url=instance.config.db_url)
    assert not (tmp_path / "other-home").exists()
    with instance.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 3


def test_bad_admin_password_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="password too short"):
        init_instance(tmp_path / "home", admin="admin", password="short")
    assert not (tmp_path / "home").exists()


def test_upgrade_is_idempotent(instance: Instance) -> None:
    migrate.upgrade(instance.db.engine)
    assert migrate.current_revision(instance.db.engine) == migrate.head_revision()


def test_instance_on_s3_store(tmp_path: Path, s3_endpoint: str) -> None:
    inst = init_instance(tmp_path / "home", admin="admin", password=PASSWORD, store_url="s3://nsp-init-test/objs")
    try:
        digest = inst.store.put(b"x").digest
        assert Instance.open(inst.home).store.get(digest) == b"x"
    finally:
        inst.close()
