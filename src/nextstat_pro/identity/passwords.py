"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import UsageError

MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()


def check_policy(password: str, min_length: int = MIN_PASSWORD_LENGTH) -> None:
    if len(password) < min_length:
        raise UsageError(f"password too short: at least {min_length} characters are required")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
