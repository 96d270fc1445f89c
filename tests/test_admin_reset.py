"""An administrator can never sign as someone else (issue #14, attack 4).

The attack: an admin resets a user's password to one the admin chose, logs in as the user, runs
``passwd`` (a new signing key) and signs as them. Now a reset gives the user a one-time token
through a channel the admin does not see (e-mail over the instance's SMTP, tested against a real
SMTP server: aiosmtpd on 127.0.0.1), or, without SMTP, needs a second admin's approval and marks
the user's next key as made after an admin reset.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from nextstat_pro.config_service import set_config
from nextstat_pro.db.models import AuditEvent, PasswordReset, User, UserKey
from nextstat_pro.db.types import utcnow
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import AuthenticationError, NotFoundError, PermissionDeniedError, UsageError
from nextstat_pro.identity import auth
from nextstat_pro.identity.resets import approve_reset, complete_reset, reset_password
from nextstat_pro.identity.users import create_user
from nextstat_pro.instance import Instance
from nextstat_pro.runs import RunRequest, export_run, run_task
from nextstat_pro.runs.esignatures import sign_run

from .audit_helpers import actions_after, last_seq
from .conftest import one_line_error, shared
from .identity_helpers import add_user, session_for

RITA = "rita-reviewer-password-1"
CHOSEN = "admin-knows-this-password-1"  # what a hostile admin would set
NEW = "rita-chose-this-herself-2"
OLGA = "olga-second-admin-password-3"
TOKEN = re.compile(r"nspr_[0-9a-f-]{36}\.[A-Za-z0-9_-]+")


def _fit(inst: Instance) -> str:
    request = RunRequest("fit", "default", {}, None,
                         [InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))])
    return run_task(inst, inst.context(), request).run_id


def _active_key(inst: Instance, username: str) -> UserKey:
    with inst.db.transaction() as s:
        user = s.scalar(select(User).where(User.username == username))
        key = s.scalar(select(UserKey).where(UserKey.user_id == user.id, UserKey.retired_at.is_(None)))
        assert key is not None
        s.expunge(key)
        return key


def _state(inst: Instance) -> tuple[object, ...]:
    """Every row a reset could change: passwords, lockout, keys, resets."""
    with inst.db.transaction() as s:
        users = [(u.username, u.password_hash, u.locked_at, u.failed_logins, u.must_change_password)
                 for u in s.scalars(select(User).order_by(User.username))]
        keys = [(k.key_id, k.retired_at, k.after_admin_reset)
                for k in s.scalars(select(UserKey).order_by(UserKey.key_id))]
        resets = [(r.id, r.state, r.used_at, r.token_hash)
                  for r in s.scalars(select(PasswordReset).order_by(PasswordReset.id))]
    return tuple(users), tuple(keys), tuple(resets)


def _bodies(inst: Instance) -> str:
    with inst.db.transaction() as s:
        return "\n".join(s.scalars(select(AuditEvent.body)))


# --- the attack of the issue -------------------------------------------------------------------

def test_the_admin_chosen_password_path_is_refused(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    """Admin sets a password of their choosing, logs in as the user, passwd, signs: refused at the
    first step that needs the chosen password, and the user's key and password stay hers."""
    h = ["--home", str(home)]
    assert cli(*h, "user", "create", "rita", "--printed-name", "Rita Reviewer",
               env={"NSP_NEW_PASSWORD": RITA}).code == 0
    assert cli(*h, "role", "grant", "rita", "editor", "--reason", "team").code == 0
    inst = Instance.open(home)
    try:
        key, before = _active_key(inst, "rita"), _state(inst)
        # The admin "resets" rita's password to one they chose: no password is taken at all.
        r = cli(*h, "user", "reset-password", "rita", "--reason", "forgotten", env={"NSP_NEW_PASSWORD": CHOSEN})
        assert r.code == 0 and "another instance admin must approve" in r.out, r.err
        # ... and logs in as rita with it: refused, exactly as any wrong password.
        r = cli(*h, "login", "-u", "rita", env={"NSP_PASSWORD": CHOSEN})
        assert r.code == 10 and one_line_error(r) == f"error: {auth.SIGN_IN_REFUSED}"
        # Approving their own request, to get a token: refused (and audited).
        r = cli(*h, "user", "approve-reset", "rita", "--reason", "it is me")
        assert r.code == 6 and "a second instance admin must" in one_line_error(r)
        # A made-up reset token: refused.
        r = cli(*h, "passwd", "-u", "rita", "--reset-token", "nspr_00000000-0000-0000-0000-000000000000.guess",
                env={"NSP_NEW_PASSWORD": CHOSEN})
        assert r.code == 10 and one_line_error(r) == "error: unknown or invalid reset token"
        # Nothing of rita's changed (the failed sign-in counts towards her lockout, as any); her key
        # signs for her alone.
        after = _state(inst)
        assert [u[:2] for u in after[0]] == [u[:2] for u in before[0]] and after[1] == before[1]
        assert _active_key(inst, "rita").key_id == key.key_id
        run_id = _fit(inst)
        signed = sign_run(inst, session_for(inst, "rita", RITA), run_id, "review", "checked", RITA, "rita")
        assert signed.payload["signer"]["username"] == "rita"
        # Her key was made at `user create` under the first password the admin chose: every
        # manifestation of her signatures says so (until a reset by e-mailed token replaces it).
        assert signed.payload["signer"]["key_after_admin_reset"] is True
        with inst.db.transaction() as s:
            denied = s.scalars(select(AuditEvent.action).where(AuditEvent.action == "access.denied")).all()
        assert denied == ["access.denied"]
    finally:
        inst.close()


# --- with SMTP: the token goes to the user only --------------------------------------------------

class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        # The body as a mail client shows it (a long line travels quoted-printable).
        body = message_from_bytes(envelope.content, policy=default).get_content()
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), body))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[_Inbox, int]]:
    inbox, port = _Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_the_email_path_end_to_end(cli, home: Path, smtp_server: tuple[_Inbox, int]) -> None:  # type: ignore[no-untyped-def]
    inbox, port = smtp_server
    h = ["--home", str(home)]
    smtp = {"host": "127.0.0.1", "port": port, "from_address": "nextstat@lab.example", "security": "none"}
    assert cli(*h, "config", "set", "smtp", json.dumps(smtp), "--reason", "the lab's relay").code == 0
    assert cli(*h, "user", "create", "rita", "--printed-name", "Rita Reviewer", "--email", "rita@lab.example",
               env={"NSP_NEW_PASSWORD": RITA}).code == 0
    assert cli(*h, "role", "grant", "rita", "editor", "--reason", "team").code == 0

    r = cli(*h, "user", "reset-password", "rita", "--reason", "forgotten", "--json")
    assert r.code == 0, r.err
    shown = json.loads(r.out)
    assert (shown["channel"], shown["sent_to"]) == ("email", "rita@lab.example")
    assert len(inbox.messages) == 1
    sender, to, message = inbox.messages[0]
    assert (sender, to) == ("nextstat@lab.example", ["rita@lab.example"])
    token = TOKEN.search(message)
    assert token is not None and "passwd --username rita --reset-token" in message
    secret = token.group().partition(".")[2]
    inst = Instance.open(home)
    try:
        # The admin saw no token, and neither the log nor the table holds it.
        assert secret not in r.out and secret not in _bodies(inst)
        with inst.db.transaction() as s:
            assert all(secret not in (row.token_hash or "") for row in s.scalars(select(PasswordReset)))
        old_key = _active_key(inst, "rita")

        r = cli(*h, "passwd", "-u", "rita", "--reset-token", token.group(), env={"NSP_NEW_PASSWORD": NEW})
        assert r.code == 0 and "password of rita set" in r.out and "admin reset" not in r.out, r.err
        new_key = _active_key(inst, "rita")
        assert new_key.key_id != old_key.key_id and not new_key.after_admin_reset
        with pytest.raises(AuthenticationError):
            auth.sign_in(inst, "rita", RITA)  # the old password is gone
        rita = session_for(inst, "rita", NEW)
        run_id = _fit(inst)
        sign_run(inst, rita, run_id, "review", "checked", NEW, "rita")
        with inst.db.transaction() as s:
            events = [(e.action, json.loads(e.body)) for e in s.scalars(select(AuditEvent).where(
                AuditEvent.action.startswith("user.")).order_by(AuditEvent.seq))]
        actions = [a for a, _ in events]
        assert actions[-4:] == ["user.password_reset_requested", "user.reset_token_issued", "user.key_created",
                                "user.password_reset_completed"]
        key_created = events[-2][1]
        assert key_created["after"]["key_id"] == new_key.key_id and key_created["after"]["after_admin_reset"] is False
        assert key_created["before"] == {"key_id": old_key.key_id}
        export_run(inst, inst.context(), run_id, home.parent / "export")
        records = json.loads((home.parent / "export" / "signatures.json").read_text())
        assert [(rec["key_id"], rec["key_after_admin_reset"]) for rec in records] == [(new_key.key_id, False)]

        # Used once: the same token again is refused with one line, and nothing changes.
        before = _state(inst)
        r = cli(*h, "passwd", "-u", "rita", "--reset-token", token.group(), env={"NSP_NEW_PASSWORD": CHOSEN})
        assert r.code == 10 and one_line_error(r).startswith("error: this reset token was used already")
        assert _state(inst) == before
    finally:
        inst.close()


def test_a_failed_send_records_no_reset(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    add_user(inst, "rita", "editor", RITA)
    with inst.db.transaction() as s:
        s.scalar(select(User).where(User.username == "rita")).email = "rita@lab.example"
    # Nothing listens on this port: the send fails, the reset is not recorded.
    set_config(inst, inst.context(), "smtp",
               json.dumps({"host": "127.0.0.1", "port": _free_port(), "from_address": "n@lab.example",
                           "security": "none", "timeout_s": 5}), "relay")
    before, seq = _state(inst), last_seq(inst)
    with pytest.raises(Exception, match="could not send the reset e-mail through 127.0.0.1"):
        reset_password(inst, inst.context(), "rita", "forgotten")
    assert _state(inst) == before and actions_after(inst, seq) == []
    with pytest.raises(UsageError, match="smtp.from_address: Field required"):
        set_config(inst, inst.context(), "smtp", '{"host": "mail.lab.example"}', "half a config")


# --- without SMTP: a second admin, and the key says so --------------------------------------------

def test_the_two_admin_path_marks_the_key(instance: Instance, tmp_path: Path) -> None:
    inst, admin = instance, instance.context()
    add_user(inst, "rita", "editor", RITA)
    create_user(inst, admin, username="olga", printed_name="Olga Second", password=OLGA, instance_admin=True)
    rita = session_for(inst, "rita", RITA)
    old_key, seq = _active_key(inst, "rita"), last_seq(inst)

    asked = reset_password(inst, admin, "rita", "forgotten")
    assert (asked.channel, asked.sent_to) == ("approval", None)
    for who in (admin, rita):  # the requester, and a non-admin
        with pytest.raises(PermissionDeniedError):
            approve_reset(inst, who, "rita", "me")
    approved = approve_reset(inst, inst.context("olga"), "rita", "she called the help desk")
    assert approved.requested_by == "admin" and TOKEN.fullmatch(approved.token)
    assert approved.token.partition(".")[2] not in _bodies(inst)
    with pytest.raises(NotFoundError, match="no password reset of rita awaits approval"):
        approve_reset(inst, inst.context("olga"), "rita", "twice")
    assert actions_after(inst, seq) == ["user.password_reset_requested", "access.denied", "access.denied",
                                        "user.password_reset_approved", "user.reset_token_issued"]

    done = complete_reset(inst, "rita", approved.token, NEW)
    assert done.key_after_admin_reset and done.key_id != old_key.key_id
    assert _active_key(inst, "rita").after_admin_reset
    with inst.db.transaction() as s:
        created = json.loads(s.scalar(select(AuditEvent.body).where(AuditEvent.action == "user.key_created")
                                      .order_by(AuditEvent.seq.desc()).limit(1)) or "{}")
    assert created["after"]["key_id"] == done.key_id and created["after"]["after_admin_reset"] is True

    run_id = _fit(inst)
    sign_run(inst, session_for(inst, "rita", NEW), run_id, "review", "checked", NEW, "rita")
    export_run(inst, admin, run_id, tmp_path / "export")
    records = json.loads((tmp_path / "export" / "signatures.json").read_text())
    assert [(rec["key_id"], rec["key_after_admin_reset"]) for rec in records] == [(done.key_id, True)]
    # Every manifestation says so: the signed payload, the sealed event, the offline verifier's line.
    assert records[0]["payload"]["signer"]["key_after_admin_reset"] is True
    with inst.db.transaction() as s:
        signed = json.loads(s.scalar(select(AuditEvent.body).where(AuditEvent.action == "run.signed")) or "{}")
    assert signed["after"]["key_after_admin_reset"] is True
    from nextstat_pro.verify import verify_run_folder
    from nextstat_pro.verify.run_export import signer_label

    verified = verify_run_folder(tmp_path / "export")
    assert [signer_label(p) for p in verified.signatures] == [
        "Rita (rita) [signing key made under a password an administrator chose]"]


# --- tokens that must not work ----------------------------------------------------------------------

def test_a_token_reused_expired_superseded_or_for_another_user_is_refused(sqlite_instance: Instance) -> None:
    inst, admin = sqlite_instance, sqlite_instance.context()
    add_user(inst, "rita", "editor", RITA)
    add_user(inst, "sam", "editor", "sam-the-analyst-password-4")
    create_user(inst, admin, username="olga", printed_name="Olga Second", password=OLGA, instance_admin=True)
    olga = inst.context("olga")

    def refused(username: str, token: str, match: str) -> None:
        before, seq = _state(inst), last_seq(inst)
        with pytest.raises(AuthenticationError, match=match) as info:
            complete_reset(inst, username, token, NEW)
        assert "\n" not in str(info.value)
        assert _state(inst) == before, "a refused token changed something"
        assert actions_after(inst, seq) == ["auth.refused"]

    reset_password(inst, admin, "rita", "forgotten")
    first = approve_reset(inst, olga, "rita", "ok").token
    refused("sam", first, "^this reset token is not for sam$")
    refused("rita", first[:-3] + "xyz", "^unknown or invalid reset token$")
    refused("rita", "not-a-token", "^unknown or invalid reset token$")
    with inst.db.transaction() as s:
        s.scalar(select(PasswordReset).where(PasswordReset.state == "issued")).expires_at = utcnow()
    refused("rita", first, "^this reset token expired at ")

    reset_password(inst, admin, "rita", "again")
    refused("rita", first, "^this reset token was replaced by a newer reset$")
    second = approve_reset(inst, olga, "rita", "ok").token
    complete_reset(inst, "rita", second, NEW)
    refused("rita", second, r"^this reset token was used already \(")
    auth.sign_in(inst, "rita", NEW)


def test_an_admin_who_created_the_account_cannot_sign_unmarked(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    """The same attack through account creation: the admin chose bob's first password, signs in as
    bob, changes the password and signs. The key was made under the admin's password, so the
    signature says so in the payload, the sealed event and the offline verifier's line."""
    h = ["--home", str(home)]
    assert cli(*h, "user", "create", "bob", "--printed-name", "Bob Builder",
               env={"NSP_NEW_PASSWORD": CHOSEN}).code == 0
    assert cli(*h, "role", "grant", "bob", "editor", "--reason", "team").code == 0
    inst = Instance.open(home)
    try:
        run_id = _fit(inst)
        bob = session_for(inst, "bob", CHOSEN)
        auth.change_password(inst, bob, CHOSEN, NEW)  # "bob's own" password now: the same key
        signed = sign_run(inst, session_for(inst, "bob", NEW), run_id, "review", "looks fine", NEW, "bob")
        assert signed.payload["signer"]["key_after_admin_reset"] is True
        with inst.db.transaction() as s:
            event = json.loads(s.scalar(select(AuditEvent.body).where(AuditEvent.action == "run.signed")) or "{}")
        assert event["after"]["key_after_admin_reset"] is True
    finally:
        inst.close()
