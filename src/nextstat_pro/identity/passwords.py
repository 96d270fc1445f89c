"""Password hashing (argon2id) and the policy every new password must meet.

Passwords are Unicode NFC-normalised before they are checked, hashed or verified (RFC 8265's
OpaqueString profile does the same), so an "é" typed as one code point or as "e" plus a
combining accent is one password. ASCII is unchanged by NFC: hashes made before normalisation
verify as they did.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import UsageError
from .strength import weakness

MIN_PASSWORD_LENGTH = 12
MIN_PASSWORD_SCORE = 3
# NIST SP 800-63B allows a verifier's maximum from 64 characters up; this one only stops a
# file pasted by mistake (argon2 itself takes any length).
MAX_PASSWORD_LENGTH = 1024
_hasher = PasswordHasher()


class WeakPasswordError(UsageError):
    """A new password refused by the policy; the message says why and never quotes it."""


def normalize(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def check_policy(password: str, min_length: int = MIN_PASSWORD_LENGTH, *, min_score: int = MIN_PASSWORD_SCORE,
                 context: Iterable[str] = ()) -> None:
    """Refuse a new password that is too short, too long or too easy to guess (a breached
    value, or a zxcvbn score below ``min_score``), with ``context`` (the account's names) as
    words a guesser tries first. No composition rules: any characters, any mix."""
    text = normalize(password)
    if len(text) < min_length:
        raise WeakPasswordError(f"password too short: at least {min_length} characters are required")
    if len(text) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password too long: at most {MAX_PASSWORD_LENGTH} characters are accepted")
    reason = weakness(text, min_score, list(context))
    if reason is not None:
        message = f"password refused: {reason}"
        if text in message or password in message:  # never echo it, whatever a reason says
            message = "password refused: it is too easy to guess"
        raise WeakPasswordError(message)


def hash_password(password: str) -> str:
    return _hasher.hash(normalize(password))


def verify_password(password_hash: str, password: str) -> bool:
    text = normalize(password)
    if _verify(password_hash, text):
        return True
    # A hash made before passwords were normalised, from a password typed in another form.
    return text != password and _verify(password_hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
