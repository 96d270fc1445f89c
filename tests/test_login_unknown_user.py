"""A sign-in for a user who does not exist answers exactly as one with a wrong password: the same
exception class, the same message, about the same time (an argon2 verification against a hash
of no account); locked and disabled accounts answer the same too. Each cause is audited."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from nextstat_pro.db.models import AuditEvent, User
from nextstat_pro.db.types import utcnow
from nextstat_pro.errors import AuthenticationError
from nextstat_pro.identity import auth
from nextstat_pro.identity.users import disable_user
from nextstat_pro.instance import Instance

from .audit_helpers import actions_after, last_seq
from .conftest import one_line_error
from .identity_helpers import add_user

VERA = "vera-password-long-1"


def refusal(inst: Instance, username: str, password: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        auth.login(inst.db.transaction, inst.config.auth, username, password)
    return info.value


def test_every_refusal_answers_alike_and_each_cause_is_audited(instance: Instance) -> None:
    add_user(instance, "vera", "viewer", VERA)
    before = last_seq(instance)
    wrong = refusal(instance, "vera", "not-her-password")
    unknown = refusal(instance, "nobody", "not-her-password")
    assert type(unknown) is type(wrong) is AuthenticationError
    assert unknown.message == wrong.message == auth.SIGN_IN_REFUSED
    assert "vera" not in wrong.message
    assert actions_after(instance, before) == ["auth.failed", "auth.failed"]
    with instance.db.transaction() as s:
        reasons = [json.loads(e.body)["after"].get("reason") for e in
                   s.scalars(select(AuditEvent).where(AuditEvent.seq > before).order_by(AuditEvent.seq))]
    assert reasons == [None, "unknown user"]  # the log tells an administrator which it was

    with instance.db.transaction() as s:  # locked
        s.scalar(select(User).where(User.username == "vera")).locked_at = utcnow()
    before = last_seq(instance)
    locked = refusal(instance, "vera", VERA)
    assert (type(locked), locked.message) == (AuthenticationError, auth.SIGN_IN_REFUSED)
    assert actions_after(instance, before) == ["auth.refused"]

    add_user(instance, "dora", "viewer", VERA)
    disable_user(instance, instance.context(), "dora", "left the company")
    before = last_seq(instance)
    disabled = refusal(instance, "dora", VERA)
    assert (type(disabled), disabled.message) == (AuthenticationError, auth.SIGN_IN_REFUSED)
    assert actions_after(instance, before) == ["auth.refused"]


def test_the_attempt_that_locks_answers_alike(instance: Instance) -> None:
    add_user(instance, "vera", "viewer", VERA)
    messages = {refusal(instance, "vera", f"wrong-{i}").message for i in range(instance.config.auth.lockout_attempts)}
    assert messages == {auth.SIGN_IN_REFUSED}


@pytest.mark.parametrize("username", ["vera\n", "v\x1b[31mera", "\udcff", "vera\u202e", "x" * 5000])
def test_a_name_no_account_can_have_is_an_unknown_user(instance: Instance, username: str) -> None:
    add_user(instance, "vera", "viewer", VERA)
    before = last_seq(instance)
    err = refusal(instance, username, VERA)  # "vera\n" with vera's password: still refused
    assert err.message == auth.SIGN_IN_REFUSED
    with instance.db.transaction() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.seq > before))
    # Recorded escaped (printable ASCII), never as the raw text.
    assert event.action == "auth.failed" and event.target_id.isascii() and event.target_id.isprintable()
    assert len(event.target_id) <= 80


def test_through_the_cli_unknown_and_wrong_are_one_line(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    h = ["--home", str(home)]
    assert cli(*h, "user", "create", "rita", "--printed-name", "Rita Reviewer",
               env={"NSP_NEW_PASSWORD": "rita-password-long-1"}).code == 0
    wrong = cli(*h, "login", "-u", "rita", env={"NSP_PASSWORD": "wrong-password-1"})
    unknown = cli(*h, "login", "-u", "ritta", env={"NSP_PASSWORD": "wrong-password-1"})
    assert wrong.code == unknown.code == 10
    assert one_line_error(wrong) == one_line_error(unknown) == f"error: {auth.SIGN_IN_REFUSED}"


def _refused_ms(inst: Instance, policy: auth.AuthPolicy, username: str, password: str) -> float:
    t0 = time.perf_counter()
    with pytest.raises(AuthenticationError):
        auth.login(inst.db.transaction, policy, username, password)
    return (time.perf_counter() - t0) * 1000


def test_unknown_user_takes_as_long_as_a_wrong_password(sqlite_instance: Instance) -> None:
    """Medians of 50 each, interleaved (the machine is shared): without the argon2 verification
    against a hash of no account, an unknown user answers many times sooner."""
    inst = sqlite_instance
    add_user(inst, "vera", "viewer", VERA)
    policy = inst.config.auth.model_copy(update={"lockout_attempts": 10_000})
    _refused_ms(inst, policy, "nobody", "warm-up")  # the hash of no account is made once
    wrong, unknown = [], []
    for _ in range(50):
        wrong.append(_refused_ms(inst, policy, "vera", "not-her-password"))
        unknown.append(_refused_ms(inst, policy, "nobody", "not-her-password"))
    w, u = statistics.median(wrong), statistics.median(unknown)
    print(f"login refused, median of 50 (ms): wrong password {w:.1f}, unknown user {u:.1f}")
    assert 0.7 < u / w < 1.4, (w, u)
