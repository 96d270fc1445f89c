"""E-mail alerts over the instance's SMTP (``config.smtp``), the way identity/mail.py sends reset
tokens: STARTTLS or implicit TLS and the login from the configuration, the password from the
environment variable it names (never from config.json)."""

from __future__ import annotations

import json
import smtplib
from email.message import EmailMessage

from ...config import SmtpConfig
from ...errors import ConfigError
from ...identity.mail import deliver, smtp_password
from . import Message, Outcome

_SUBJECT_MAX = 180


def subject_of(message: Message) -> str:
    counted = f" ({message.count} events)" if message.count > 1 else ""
    subject = f"[NextStat Pro alert] {message.kind}: {message.title}{counted}"
    subject = " ".join(subject.split())  # one header line
    return subject if len(subject) <= _SUBJECT_MAX else subject[: _SUBJECT_MAX - 1] + "…"


def body_of(message: Message) -> str:
    return (f"{message.text()}\n\n"
            f"Rule:     {message.rule} ({message.kind})\n"
            f"Project:  {message.project or '(instance)'}\n"
            f"Events:   {message.count}\n"
            f"First:    {message.created_at}\n"
            f"Latest:   {message.updated_at}\n"
            f"Alert id: {message.alert_id}\n"
            f"Instance: {message.instance}\n\n"
            "Details:\n" + json.dumps(message.details, indent=2, sort_keys=True, ensure_ascii=False, default=str)
            + "\n")


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def send(smtp: SmtpConfig | None, to: list[str], message: Message) -> Outcome:
    if smtp is None:
        return Outcome(False, None, "no SMTP server configured (config set smtp ...)")
    try:
        password = smtp_password(smtp)
    except ConfigError as exc:
        return Outcome(False, None, exc.message)
    msg = EmailMessage()
    msg["Subject"] = subject_of(message)
    msg["From"] = smtp.from_address
    msg["To"] = ", ".join(to)
    msg["Message-ID"] = f"<{message.alert_id}@nextstat-pro.alerts>"  # the same on every retry
    msg.set_content(body_of(message))
    try:
        deliver(smtp, password, msg)
    except smtplib.SMTPResponseException as exc:
        return Outcome(False, exc.smtp_code, f"SMTP {smtp.host}:{smtp.port} refused: {exc.smtp_code} "
                                            f"{_text(exc.smtp_error)}")
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(False, None, f"could not send through SMTP {smtp.host}:{smtp.port}: "
                                    f"{exc or type(exc).__name__}")
    return Outcome(True, 250)
