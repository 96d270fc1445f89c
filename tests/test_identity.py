"""Authentication: sessions, lockout, resets, tokens, disabled users, denied access — each audited.
Password resets in full: tests/test_admin_reset.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from nextstat_pro.db.models import ApiToken, User, UserKey
from nextstat_pro.db.types import utcnow
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import AuthenticationError, ConflictError, PermissionDeniedError
from nextstat_pro.identity import auth, resets
from nextstat_pro.identity.users import create_user, disable_user
from nextstat_pro.instance import Instance
from nextstat_pro.projects import create_project
from nextstat_pro.runs import RunRequest, list_run_rows, run_task

from .audit_helpers import actions_after, last_seq
from .conftest import PASSWORD, shared
from .identity_helpers import add_user, session_for

OTHER = "viewer-password-1"


def test_login_and_authenticate(instance: Instance) -> None:
    before = last_seq(instance)
    ctx = session_for(instance, "admin", PASSWORD)
    assert ctx.actor.username == "admin" and ctx.token_kind == "session"
    assert actions_after(instance, before) == ["auth.login"]


def test_wrong_passwords_lock_the_account_and_are_audited(instance: Instance) -> None:
    add_user(instance, "vera", "viewer", OTHER)
    before = last_seq(instance)
    for _ in range(5):
        with pytest.raises(AuthenticationError, match="wrong password"):
            auth.login(instance.db.transaction, instance.config.auth, "vera", "not-her-password")
    assert actions_after(instance, before) == ["auth.failed"] * 5 + ["user.locked"]
    with pytest.raises(AuthenticationError, match="locked"):
        auth.login(instance.db.transaction, instance.config.auth, "vera", OTHER)
    assert actions_after(instance, before)[-1] == "auth.refused"
    # Only a completed reset unlocks: asked for by one admin, approved by another (no SMTP), the
    # token used by the user, who gets a new signing key (the old one retired, kept).
    create_user(instance, instance.context(), username="olga", printed_name="Olga Admin", password=OTHER,
                instance_admin=True)
    resets.reset_password(instance, instance.context(), "vera", "locked out")
    token = resets.approve_reset(instance, instance.context("olga"), "vera", "she called").token
    resets.complete_reset(instance, "vera", token, "her-own-password-2")
    auth.authenticate(instance, auth.sign_in(instance, "vera", "her-own-password-2").token)
    with instance.db.transaction() as s:
        user = s.scalar(select(User).where(User.username == "vera"))
        keys = list(s.scalars(select(UserKey).where(UserKey.user_id == user.id).order_by(UserKey.created_at)))
        assert len(keys) == 2 and keys[0].retired_at is not None and keys[1].retired_at is None
        assert user.locked_at is None and user.failed_logins == 0


def test_unknown_user_is_audited(instance: Instance) -> None:
    before = last_seq(instance)
    with pytest.raises(AuthenticationError, match="unknown user or wrong password"):
        auth.login(instance.db.transaction, instance.config.auth, "mallory", "whatever-password")
    assert actions_after(instance, before) == ["auth.failed"]


def test_expired_and_revoked_credentials(instance: Instance) -> None:
    cred = auth.login(instance.db.transaction, instance.config.auth, "admin", PASSWORD)
    with instance.db.transaction() as s:
        s.get(ApiToken, cred.token_id).expires_at = utcnow() - timedelta(seconds=1)
    before = last_seq(instance)
    with pytest.raises(AuthenticationError, match="expired"):
        auth.authenticate(instance, cred.token)
    assert actions_after(instance, before) == ["auth.refused"]
    cred = auth.sign_in(instance, "admin", PASSWORD)
    auth.logout(instance, auth.authenticate(instance, cred.token))
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate(instance, cred.token)
    with pytest.raises(AuthenticationError, match="invalid token"):
        auth.authenticate(instance, cred.token[:-2] + "xx")


def test_disabled_user_cannot_sign_in_or_be_recreated(instance: Instance) -> None:
    add_user(instance, "dora", "editor", OTHER)
    cred = auth.login(instance.db.transaction, instance.config.auth, "dora", OTHER)
    disable_user(instance, instance.context(), "dora", "left the company")
    with pytest.raises(AuthenticationError, match="disabled"):
        auth.authenticate(instance, cred.token)  # her session dies with the account
    with pytest.raises(AuthenticationError, match="disabled"):
        auth.login(instance.db.transaction, instance.config.auth, "dora", OTHER)
    with pytest.raises(ConflictError, match="never reused"):
        create_user(instance, instance.context(), username="dora", printed_name="Dora 2", password=OTHER)


def test_viewer_cannot_write_and_the_attempt_is_audited(instance: Instance) -> None:
    add_user(instance, "vic", "viewer", OTHER)
    ctx = session_for(instance, "vic", OTHER)
    before = last_seq(instance)
    request = RunRequest("fit", "default", {}, None,
                         [InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))])
    with pytest.raises(PermissionDeniedError, match=r"vic \(viewer in project default\) may not run.create"):
        run_task(instance, ctx, request)
    with pytest.raises(PermissionDeniedError), instance.db.transaction() as s:
        create_project(s, ctx, "sneaky")
    assert actions_after(instance, before) == ["access.denied", "access.denied"]
    assert list_run_rows(instance, ctx, "default") == []  # reading is fine


def test_api_tokens_are_scoped_and_capped(instance: Instance) -> None:
    add_user(instance, "eddie", "editor", OTHER)
    ctx = session_for(instance, "eddie", OTHER)
    with instance.db.transaction() as s:
        create_project(s, instance.context(), "elsewhere")
    with pytest.raises(PermissionDeniedError):
        auth.create_token(instance, ctx, "default", "admin", "too much", 30)
    cred = auth.create_token(instance, ctx, "default", "viewer", "ci", 30)
    with instance.db.transaction() as s:
        stored = s.get(ApiToken, cred.token_id)
        assert cred.token.split(".")[1] not in stored.secret_hash  # only a hash is stored
    tctx = auth.authenticate(instance, cred.token)
    assert tctx.actor.username == "eddie" and tctx.token_role == "viewer"
    list_run_rows(instance, tctx, "default")
    with pytest.raises(PermissionDeniedError):
        list_run_rows(instance, tctx, "elsewhere")
    request = RunRequest("fit", "default", {}, None,
                         [InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))])
    with pytest.raises(PermissionDeniedError):
        run_task(instance, tctx, request)


def test_token_list_and_revoke_need_their_own_permissions(instance: Instance) -> None:
    """Revoking one's own credential needs no role (``token.revoke``); another user's needs an
    instance admin (``token.revoke_any``, it was ``user.disable``)."""
    add_user(instance, "eddie", "editor", OTHER)
    add_user(instance, "vic", "viewer", OTHER)
    eddie, vic = session_for(instance, "eddie", OTHER), session_for(instance, "vic", OTHER)
    cred = auth.create_token(instance, eddie, "default", "viewer", "ci", 30)
    tokens = auth.list_tokens(instance, eddie)
    assert [(t.kind, t.name, t.project, t.role, t.current) for t in tokens] == [
        ("api", "ci", "default", "viewer", False), ("session", "cli session", None, None, True)]
    assert [t.token_id for t in auth.list_tokens(instance, vic)] == [vic.token_id]  # only one's own
    before = last_seq(instance)
    with pytest.raises(PermissionDeniedError, match="may not token.revoke_any: needs instance-admin"):
        auth.revoke_token(instance, vic, cred.token_id, "not mine")
    assert actions_after(instance, before) == ["access.denied"]
    assert auth.revoke_token(instance, eddie, cred.token_id, "rotated").revoked_at is not None
    admin = instance.context()
    assert [t.name for t in auth.list_tokens(instance, eddie)] == ["cli session"]
    auth.revoke_token(instance, admin, vic.token_id or "", "left the team")  # an instance admin may
    assert actions_after(instance, before)[1:] == ["token.revoked", "token.revoked"]
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate(instance, cred.token)
