"""Sending a password-reset token to a user over the instance's SMTP (``config.smtp``).

The token goes to the user's own address and nowhere else: not to the administrator who asked
for the reset, not into the audit log (which records that it was sent, and to which address).
"""

from __future__ import annotations

import os
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage

from ..config import SmtpConfig
from ..errors import ConfigError


def send_reset_token(smtp: SmtpConfig, to: str, username: str, token: str, expires_at: datetime,
                     requested_by: str) -> None:
    """Send ``token`` to ``to``; a ConfigError names what failed (nothing is retried: the
    caller's transaction rolls back, so the reset is not recorded as sent)."""
    password = smtp_password(smtp)
    msg = EmailMessage()
    msg["Subject"] = "NextStat Pro: reset your password"
    msg["From"] = smtp.from_address
    msg["To"] = to
    msg.set_content(
        f"An administrator ({requested_by}) asked for a reset of the password of {username}.\n\n"
        f"Your one-time reset token (valid until {expires_at:%Y-%m-%d %H:%M} UTC, usable once):\n\n"
        f"    {token}\n\n"
        f"Set a new password with it:\n\n"
        f"    nextstat-pro passwd --username {username} --reset-token <token>\n\n"
        "Nobody else has seen this token; do not pass it on. Your new password makes you a new signing key.\n"
        "If you did not expect this, tell your QA or security contact.\n")
    try:
        deliver(smtp, password, msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise ConfigError(f"could not send the reset e-mail through {smtp.host}:{smtp.port}: {exc}") from None


def smtp_password(smtp: SmtpConfig) -> str | None:
    """The SMTP password from the environment variable ``smtp.password_env`` names (never in
    config.json); ConfigError when it names one that is not set."""
    if not smtp.password_env:
        return None
    password = os.environ.get(smtp.password_env)
    if password is None:
        raise ConfigError(f"smtp.password_env names ${smtp.password_env}, which is not set")
    return password


def deliver(smtp: SmtpConfig, password: str | None, msg: EmailMessage) -> None:
    """Send ``msg`` through the instance's SMTP server (implicit TLS, STARTTLS or plain, and a login
    when configured); smtplib's errors and OSError pass to the caller, who words them."""
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
    with client:
        if smtp.security == "starttls":
            client.starttls(context=ssl.create_default_context())
        if smtp.username:
            client.login(smtp.username, password or "")
        client.send_message(msg)
