"""Alerts: each rule fires exactly when it should, deliveries are signed, retried, dead-lettered and
visible, with real receivers on 127.0.0.1 (an http.server thread and an aiosmtpd server).

The dispatcher is driven cycle by cycle here (``drain``); tests/test_alerts_dispatch.py runs it as a
process (kill -9, two at once) and tests/test_alerts_rules.py covers regression and stuck jobs.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message as EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, text
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from nextstat_pro.alerts import service
from nextstat_pro.alerts.dispatcher import Dispatcher
from nextstat_pro.alerts.models import Alert, AlertChannel
from nextstat_pro.audit.events import append_event
from nextstat_pro.config_service import set_config
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.engine import InputFile
from nextstat_pro.engine.params import FitParams
from nextstat_pro.engine.tasks import TASKS, TaskSpec
from nextstat_pro.errors import ConflictError, PermissionDeniedError, UsageError
from nextstat_pro.identity.users import create_user, grant_role
from nextstat_pro.instance import Instance
from nextstat_pro.runs import RunRequest, run_task

from .conftest import PASSWORD, shared

# -- real receivers ----------------------------------------------------------------------------------


@dataclass
class Hit:
    at: float
    headers: dict[str, str]
    body: bytes

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    # http.server's listen backlog is 5: concurrent senders beyond it wait a second for a SYN retry.
    request_queue_size = 128


class Receiver:
    """A webhook receiver thread on 127.0.0.1: records every request (arrival time, headers, body) and
    answers with the queued status codes, then 200; ``delay_s`` holds each answer back."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.hits: list[Hit] = []
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.hits.append(Hit(time.time(), {k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n: int, timeout_s: float = 20.0) -> list[Hit]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.hits) >= n:
                    return list(self.hits)
            time.sleep(0.02)
        raise AssertionError(f"the receiver got {len(self.hits)} request(s), expected {n}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, _Inbox]]:
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- helpers -------------------------------------------------------------------------------------------


def boom(subject: Any, params: Any, seed: int | None) -> dict[str, Any]:
    raise RuntimeError("boom: the task raised")


@pytest.fixture
def failing_task(monkeypatch: pytest.MonkeyPatch) -> str:
    """A task that raises: its runs are recorded failed by the real run path."""
    monkeypatch.setitem(TASKS, "boom", TaskSpec("boom", "histfactory", FitParams, boom, "raises"))
    return "boom"


def workspace() -> InputFile:
    return InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))


def run(instance: Instance, task: str, params: dict[str, Any] | None = None) -> str:
    out = run_task(instance, instance.context(), RunRequest(task, "default", params or {}, None, [workspace()]))
    return out.run_id


def configure(instance: Instance, **values: Any) -> None:
    ctx = instance.context()
    for key, value in values.items():
        set_config(instance, ctx, key, json.dumps(value), reason="test")


def drain(instance: Instance, until: float = 0.5, timeout_s: float = 20.0) -> None:
    """Run dispatcher cycles until nothing is pending (or due within ``until`` seconds) any more."""
    dispatcher = Dispatcher(instance)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dispatcher.cycle()
            with instance.db.transaction() as s:
                pending = s.scalar(text("SELECT COUNT(*) FROM alert_deliveries WHERE status = 'pending'"))
                caught_up = dispatcher.cursor == \
                    s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
            if not pending and caught_up:
                return
            time.sleep(0.05)
        raise AssertionError("deliveries still pending")
    finally:
        dispatcher.release()
        dispatcher.close()


def webhook_channel(instance: Instance, url: str, name: str = "hook", slack: bool = False) -> str:
    created = service.add_channel(instance, instance.context(), "default", name, webhook=url, slack=slack)
    assert created.secret is not None and created.secret.startswith("whsec_")
    return created.secret


# -- tests ---------------------------------------------------------------------------------------------


def test_a_failed_run_alerts_once_signed_and_a_changed_body_fails(instance: Instance, receiver: Receiver,
                                                                   failing_task: str) -> None:
    secret = webhook_channel(instance, receiver.url)
    service.add_rule(instance, instance.context(), "default", "failures", "failed", "hook")
    run(instance, "fit")  # succeeds: no alert
    failed = run(instance, failing_task)
    drain(instance)
    [hit] = receiver.wait_for(1)
    time.sleep(0.2)
    assert len(receiver.hits) == 1
    doc = Webhook(secret).verify(hit.body, hit.headers)
    assert doc["type"] == "alert.failed" and doc["data"]["details"]["run_id"] == failed
    assert "boom: the task raised" in doc["data"]["title"] and doc["data"]["rule"] == "failures"
    assert hit.id == doc["data"]["alert_id"]  # the idempotency key is the alert id
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(hit.body.replace(b"boom", b"fine"), hit.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(hit.body, hit.headers)
    [row] = service.list_deliveries(instance, instance.context(), "default")
    assert row.status == "delivered" and row.alert_id == hit.id
    assert [(a.ok, a.status_code) for a in row.attempts] == [(True, 200)]
    assert service.list_deliveries(instance, instance.context(), "default", failed=True) == []


def test_secrets_are_stored_encrypted_and_never_in_the_log(
        instance: Instance, receiver: Receiver, failing_task: str, caplog: pytest.LogCaptureFixture) -> None:
    url = receiver.url + "?token=s3cr3t-url-part"
    secret = webhook_channel(instance, url)
    service.add_rule(instance, instance.context(), "default", "failures", "failed", "hook")
    run(instance, failing_task)
    with caplog.at_level(logging.DEBUG):
        drain(instance)
    receiver.wait_for(1)
    assert "HTTP Request: POST http://127.0.0.1" in caplog.text  # httpx logged the request, redacted
    assert "s3cr3t" not in caplog.text and secret not in caplog.text
    with instance.db.transaction() as s:
        [channel] = s.scalars(select(AlertChannel))
        assert channel.secret is not None and secret not in channel.secret and "s3cr3t" not in channel.target
        bodies = " ".join(s.scalars(select(AuditEvent.body)))
    assert secret not in bodies and secret.removeprefix("whsec_") not in bodies and "s3cr3t" not in bodies
    shown = service.list_channels(instance, instance.context(), "default")[0]
    assert shown.target == f"http://127.0.0.1:{receiver.server.server_address[1]}/…"
    assert "s3cr3t" not in shown.model_dump_json()


def test_rotation_signs_with_both_secrets_during_the_grace_period(instance: Instance, receiver: Receiver,
                                                                  failing_task: str) -> None:
    old = webhook_channel(instance, receiver.url)
    service.add_rule(instance, instance.context(), "default", "failures", "failed", "hook")
    rotated = service.rotate_secret(instance, instance.context(), "default", "hook", "yearly rotation")
    assert rotated.secret != old and rotated.channel.previous_secret_valid_until is not None
    run(instance, failing_task)
    drain(instance)
    [hit] = receiver.wait_for(1)
    Webhook(old).verify(hit.body, hit.headers)
    Webhook(rotated.secret).verify(hit.body, hit.headers)
    service.rotate_secret(instance, instance.context(), "default", "hook", "leaked", grace_s=0)
    newest = service.rotate_secret(instance, instance.context(), "default", "hook", "again", grace_s=0)
    run(instance, failing_task)
    drain(instance)
    hit = receiver.wait_for(2)[1]
    Webhook(newest.secret).verify(hit.body, hit.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(hit.body, hit.headers)


def test_a_500_then_200_is_delivered_once_more_never_twice_after_success(instance: Instance,
                                                                          failing_task: str) -> None:
    receiver = Receiver(statuses=[500])
    try:
        configure(instance, alerts_backoff_s=0.05)
        webhook_channel(instance, receiver.url)
        service.add_rule(instance, instance.context(), "default", "failures", "failed", "hook")
        run(instance, failing_task)
        drain(instance)
        hits = receiver.wait_for(2)
        assert hits[0].id == hits[1].id
        drain(instance)
        time.sleep(0.3)
        assert len(receiver.hits) == 2
        [row] = service.list_deliveries(instance, instance.context(), "default")
        assert row.status == "delivered"
        assert [(a.attempt, a.ok, a.status_code) for a in row.attempts] == [(1, False, 500), (2, True, 200)]
        assert row.attempts[0].error is not None and row.attempts[0].error.startswith("HTTP 500 from")
    finally:
        receiver.close()


def test_email_arrives_with_subject_and_body(instance: Instance, smtp: tuple[Controller, _Inbox]) -> None:
    controller, inbox = smtp
    configure(instance, smtp={"host": "127.0.0.1", "port": controller.port, "from_address": "alerts@example.org",
                              "security": "none"})
    service.add_channel(instance, instance.context(), "default", "ops", email="ops@example.org, qa@example.org")
    service.add_rule(instance, instance.context(), "default", "security", "security", "ops")
    create_user(instance, instance.context(), username="mallory", printed_name="Mallory", password=PASSWORD)
    with pytest.raises(PermissionDeniedError):
        service.list_rules(instance, instance.context("mallory"), "default")
    drain(instance)
    [mail] = inbox.messages
    assert mail["Subject"].startswith("[NextStat Pro alert] security: security: access.denied by Mallory")
    assert mail["To"] == "ops@example.org, qa@example.org" and mail["From"] == "alerts@example.org"
    body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "alerts.read" in body and "Rule:     security (security)" in body


def test_bad_url_and_unreachable_smtp_fail_readably_and_nothing_else_stalls(instance: Instance, receiver: Receiver,
                                                                            failing_task: str) -> None:
    configure(instance, alerts_backoff_s=0.05, alerts_max_attempts=2,
              smtp={"host": "127.0.0.1", "port": free_port(), "from_address": "alerts@example.org",
                    "security": "none"})
    webhook_channel(instance, f"http://127.0.0.1:{free_port()}/nobody-listens", name="dead-hook")
    webhook_channel(instance, "http://no-such-host.invalid/hook", name="bad-host")
    service.add_channel(instance, instance.context(), "default", "mail", email="ops@example.org")
    webhook_channel(instance, receiver.url, name="good")
    for name, channel in (("r1", "dead-hook"), ("r2", "bad-host"), ("r3", "mail"), ("r4", "good")):
        service.add_rule(instance, instance.context(), "default", name, "failed", channel)
    run(instance, failing_task)
    drain(instance)
    assert len(receiver.wait_for(1)) == 1
    rows = {r.rule: r for r in service.list_deliveries(instance, instance.context(), "default")}
    assert rows["r4"].status == "delivered"
    failed = {r.rule: r for r in service.list_deliveries(instance, instance.context(), "default", failed=True)}
    assert set(failed) == {"r1", "r2", "r3"}
    for row in failed.values():
        assert row.status == "dead" and len(row.attempts) == 2 and row.last_error
        assert "\n" not in row.last_error
    assert "Connection refused" in (failed["r1"].last_error or "")
    assert "no-such-host.invalid" in (failed["r2"].last_error or "")
    assert (failed["r3"].last_error or "").startswith("could not send through SMTP 127.0.0.1:")


def test_a_storm_of_shard_failures_is_one_alert_that_counts_them(instance: Instance, receiver: Receiver) -> None:
    webhook_channel(instance, receiver.url)
    service.add_rule(instance, instance.context(), "default", "failures", "failed", "hook")
    ctx = instance.context()
    run_id = run(instance, "fit")
    with instance.db.transaction() as s:
        for i in range(1000):
            # A retried shard is no alert (its job may still succeed); one out of retries is.
            append_event(s, ctx, action="job.shard_failed", target=("run", run_id), project="default",
                         after={"shard": i, "attempt": 1, "error": "killed", "retry": True})
            append_event(s, ctx, action="job.shard_failed", target=("run", run_id), project="default",
                         after={"shard": i, "attempt": 3, "error": "killed", "retry": False})
    drain(instance)
    time.sleep(0.2)
    assert len(receiver.hits) == 1
    with instance.db.transaction() as s:
        [alert] = s.scalars(select(Alert))
        assert alert.count == 1000


def test_rules_fire_only_for_their_kind_project_and_after_they_were_added(instance: Instance, receiver: Receiver,
                                                                          failing_task: str) -> None:
    from nextstat_pro.projects.service import create

    ctx = instance.context()
    create(instance, ctx, "other")
    run(instance, failing_task)  # before any rule: never alerted
    webhook_channel(instance, receiver.url)
    service.add_rule(instance, ctx, "default", "quality", "fit-quality", "hook")
    run(instance, failing_task)  # a failure is not a fit-quality alert
    run(instance, "fit")  # a good fit: nothing
    bad = run(instance, "fit", {"grad_tol": 1e-300})  # no fit's gradient is that small
    other = run_task(instance, ctx, RunRequest("fit", "other", {"grad_tol": 1e-300}, None, [workspace()]))
    assert other.status == "succeeded"
    drain(instance)
    [hit] = receiver.wait_for(1)
    time.sleep(0.2)
    assert len(receiver.hits) == 1
    data = hit.json()["data"]
    assert data["details"]["run_id"] == bad and "projected gradient norm" in data["title"]
    service.disable_rule(instance, ctx, "default", "quality", "too noisy")
    run(instance, "fit", {"grad_tol": 1e-300})
    drain(instance)
    time.sleep(0.2)
    assert len(receiver.hits) == 1


def test_security_events_alert_an_instance_wide_rule(instance: Instance, receiver: Receiver) -> None:
    from nextstat_pro.errors import AuthenticationError
    from nextstat_pro.identity.auth import authenticate, revoke_token, sign_in

    ctx = instance.context()
    webhook_channel(instance, receiver.url)
    service.add_rule(instance, ctx, "default", "security", "security", "hook")
    create_user(instance, ctx, username="bob", printed_name="Bob", password=PASSWORD)
    cred = sign_in(instance, "bob", PASSWORD, "cli")
    revoke_token(instance, ctx, cred.token_id, "left the group")
    with pytest.raises(AuthenticationError):
        authenticate(instance, cred.token, "cli")  # a token used after its revocation
    for _ in range(instance.config.auth.lockout_attempts):
        with pytest.raises(AuthenticationError):
            sign_in(instance, "bob", "wrong-password-123", "cli")
    drain(instance)
    time.sleep(0.2)
    actions = sorted(h.json()["data"]["details"]["action"] for h in receiver.hits)
    assert "auth.refused" in actions and "user.locked" in actions
    revoked = [h.json()["data"] for h in receiver.hits if h.json()["data"]["details"]["after"].get("reason")
               == "revoked"]
    assert len(revoked) == 1


def test_integrity_rule_alerts_on_a_tampered_log(instance: Instance, receiver: Receiver) -> None:
    from .test_audit_tamper import disable_guards

    ctx = instance.context()
    webhook_channel(instance, receiver.url)
    service.add_rule(instance, ctx, "default", "tamper", "integrity", "hook")
    drain(instance)  # verified: nothing wrong yet
    assert receiver.hits == []
    other = Instance.open(instance.home)  # another process changes the configuration, audited
    try:
        configure(other, alerts_integrity_interval_s=1)
    finally:
        other.close()
    drain(instance)  # the dispatcher reads the new configuration: a legitimate change is no finding
    assert instance.config.alerts_integrity_interval_s == 1
    time.sleep(1.1)
    drain(instance)
    assert receiver.hits == []
    with instance.db.transaction() as s:
        disable_guards(s)
        s.execute(text("UPDATE audit_events SET body = REPLACE(body, 'Default project', 'Changed project') "
                       "WHERE action = 'project.created'"))
    time.sleep(1.1)
    drain(instance)
    [hit] = receiver.wait_for(1)
    data = hit.json()["data"]
    assert data["kind"] == "integrity" and data["title"].startswith("audit verify failed")
    time.sleep(1.1)
    drain(instance)  # the same finding again: not a second alert
    time.sleep(0.2)
    assert len(receiver.hits) == 1


def test_a_slack_channel_gets_a_text_body(instance: Instance, receiver: Receiver, failing_task: str) -> None:
    webhook_channel(instance, receiver.url, slack=True)
    service.add_rule(instance, instance.context(), "default", "failures", "failed", "hook")
    run(instance, failing_task)
    drain(instance)
    [hit] = receiver.wait_for(1)
    body = hit.json()
    assert set(body) == {"text"} and "failures" in body["text"] and "boom" in body["text"]


def test_alerts_test_sends_now_and_bad_input_changes_nothing(instance: Instance, receiver: Receiver) -> None:
    ctx = instance.context()
    webhook_channel(instance, receiver.url)
    service.add_rule(instance, ctx, "default", "failures", "failed", "hook")
    row = service.test_rule(instance, ctx, "default", "failures")
    assert row.status == "delivered"
    [hit] = receiver.wait_for(1)
    assert hit.id == row.alert_id and "test notification" in hit.json()["data"]["title"]
    before = _event_count(instance)
    with pytest.raises(UsageError, match="unknown alert kind"):
        service.add_rule(instance, ctx, "default", "x", "nope", "hook")
    with pytest.raises(UsageError, match="baseline must be"):
        service.add_rule(instance, ctx, "default", "x", "regression", "hook", {"baseline": "yesterday"})
    with pytest.raises(UsageError, match="Extra inputs"):
        service.add_rule(instance, ctx, "default", "x", "failed", "hook", {"after_s": 3})
    with pytest.raises(ConflictError):
        service.add_rule(instance, ctx, "default", "failures", "failed", "hook")
    with pytest.raises(UsageError, match="http:// or https://"):
        service.add_channel(instance, ctx, "default", "ftp", webhook="ftp://example.org/x")
    with pytest.raises(UsageError, match="not an address"):
        service.add_channel(instance, ctx, "default", "mail", email="nobody")
    assert _event_count(instance) == before


def test_editors_read_admins_manage_instance_admins_add_instance_wide_rules(instance: Instance,
                                                                           receiver: Receiver) -> None:
    ctx = instance.context()
    webhook_channel(instance, receiver.url)
    for name, role in (("eve", "editor"), ("pat", "admin")):
        create_user(instance, ctx, username=name, printed_name=name.title(), password=PASSWORD)
        grant_role(instance, ctx, name, "default", role, "test")
    editor, project_admin = instance.context("eve"), instance.context("pat")
    assert service.list_channels(instance, editor, "default")[0].name == "hook"
    with pytest.raises(PermissionDeniedError):
        service.add_rule(instance, editor, "default", "f", "failed", "hook")
    service.add_rule(instance, project_admin, "default", "f", "failed", "hook")
    with pytest.raises(PermissionDeniedError):
        service.add_rule(instance, project_admin, "default", "s", "security", "hook")
    assert [r.name for r in service.list_rules(instance, editor, "default")] == ["f"]


def _event_count(instance: Instance) -> int:
    with instance.db.transaction() as s:
        return len(list(s.scalars(select(AuditEvent.seq))))


def test_the_cli_prints_the_secret_once_and_lists_without_it(cli, home, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    from .conftest import one_line_error

    h = ("--home", str(home))
    r = cli(*h, "alerts", "channel", "add", "hook", "--webhook", receiver.url)
    assert r.code == 0, r.err
    secret = r.out.split("signing secret (shown once): ")[1].strip()
    assert secret.startswith("whsec_")
    listed = cli(*h, "alerts", "channel", "list", "--json")
    assert listed.code == 0 and secret not in listed.out and json.loads(listed.out)[0]["kind"] == "webhook"
    assert cli(*h, "alerts", "rule", "add", "f", "--when", "failed", "--channel", "hook").code == 0
    rules = json.loads(cli(*h, "alerts", "rule", "list", "--json").out)
    assert [(r["name"], r["kind"], r["channel"], r["enabled"]) for r in rules] == [("f", "failed", "hook", True)]
    sent = cli(*h, "alerts", "test", "f", "--json")
    assert sent.code == 0, sent.err
    [hit] = receiver.wait_for(1)
    Webhook(secret).verify(hit.body, hit.headers)
    deliveries = json.loads(cli(*h, "alerts", "deliveries", "--json").out)
    assert deliveries[0]["status"] == "delivered" and deliveries[0]["alert_id"] == hit.id
    assert json.loads(cli(*h, "alerts", "deliveries", "--failed", "--json").out) == []
    both = cli(*h, "alerts", "channel", "add", "x", "--webhook", receiver.url, "--email", "a@example.org")
    assert both.code != 0 and "either --webhook URL or --email" in one_line_error(both)
    bad = cli(*h, "alerts", "rule", "add", "g", "--when", "sometimes", "--channel", "hook")
    assert bad.code != 0 and "unknown alert kind 'sometimes'" in one_line_error(bad)
    assert cli(*h, "alerts", "rule", "disable", "f", "--reason", "done").code == 0
    assert json.loads(cli(*h, "alerts", "rule", "list", "--json").out)[0]["enabled"] is False


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), made here: the SMTP server's, trusted by the client
    through SSL_CERT_FILE as a CA's would be."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "smtp.crt", folder / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_email_over_starttls_with_login_from_the_config(sqlite_instance: Instance, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from aiosmtpd.smtp import AuthResult, LoginPassword

    instance = sqlite_instance
    cert_file, key_file = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the client's default context trusts it
    monkeypatch.setenv("NSP_TEST_SMTP_PASSWORD", "mail-password-1")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"mail-password-1")

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=server_tls,
                            require_starttls=True, auth_required=True, authenticator=authenticator)
    controller.start()
    try:
        configure(instance, smtp={"host": "127.0.0.1", "port": controller.port, "from_address": "alerts@example.org",
                                  "security": "starttls", "username": "alerts",
                                  "password_env": "NSP_TEST_SMTP_PASSWORD"})
        service.add_channel(instance, instance.context(), "default", "ops", email="ops@example.org")
        service.add_rule(instance, instance.context(), "default", "r", "failed", "ops")
        row = service.test_rule(instance, instance.context(), "default", "r")
        assert row.status == "delivered", row.last_error
        assert logins == [(b"alerts", b"mail-password-1")]
        [mail] = inbox.messages
        assert mail["Subject"].startswith("[NextStat Pro alert] failed: test notification of rule r")
    finally:
        controller.stop()
