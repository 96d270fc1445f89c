"""Each user's Ed25519 signing key. The private half is encrypted (AES-256-GCM) under a key
derived from the user's password with argon2id (a single sign-on user's signature passphrase:
``identity.sso_passphrase``), so nobody — an administrator included — can sign as another user.
Old public keys are kept forever: old signatures stay verifiable."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import unicodedata

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..access.context import RequestContext
from ..audit.events import append_event
from ..db.models import User, UserKey
from ..db.types import utcnow
from ..errors import AuthenticationError, ConflictError
from ..signing.keys import KeyPair

# OWASP's argon2id minimum (19 MiB, 2 passes): a signing must stay interactive.
KDF: dict[str, int | str] = {"kdf": "argon2id", "t": 2, "m": 19456, "p": 1}


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()


def _derive(password: str, salt: bytes, params: dict[str, int | str], normalise: bool = True) -> bytes:
    # NFC, as the login hash takes it (identity/passwords.py): the same password typed in
    # another Unicode form must open the signing key too.
    text = unicodedata.normalize("NFC", password) if normalise else password
    return hash_secret_raw(text.encode(), salt, time_cost=int(params["t"]), memory_cost=int(params["m"]),
                           parallelism=int(params["p"]), hash_len=32, type=Type.ID)


def encrypt_private(private: Ed25519PrivateKey, password: str) -> str:
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    salt, nonce = os.urandom(16), os.urandom(12)
    ct = AESGCM(_derive(password, salt, KDF)).encrypt(nonce, raw, b"nextstat-pro user signing key")
    return json.dumps({**KDF, "salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode(),
                       "ct": base64.b64encode(ct).decode()})


def decrypt_private(blob: str, password: str) -> Ed25519PrivateKey:
    doc = json.loads(blob)
    salt, nonce, ct = (base64.b64decode(doc[k]) for k in ("salt", "nonce", "ct"))
    # Keys encrypted before passwords were normalised took the password as typed.
    forms = [True] if unicodedata.normalize("NFC", password) == password else [True, False]
    for normalise in forms:
        try:
            raw = AESGCM(_derive(password, salt, doc, normalise)).decrypt(nonce, ct, b"nextstat-pro user signing key")
        except InvalidTag:
            continue
        return Ed25519PrivateKey.from_private_bytes(raw)
    raise AuthenticationError("wrong password for the signing key")


def active_key(session: Session, user: User) -> UserKey | None:
    return session.scalar(select(UserKey).where(UserKey.user_id == user.id, UserKey.retired_at.is_(None)))


def create_key(session: Session, ctx: RequestContext, user: User, password: str, *,
               after_admin_reset: bool = False, replaces: UserKey | None = None) -> UserKey:
    """A new key pair for ``user``, its private half under ``password``, registered by a
    ``user.key_created`` event (the public key, and whether an administrator could have known
    the password it was made under: ``after_admin_reset``). ``replaces``: the key just retired."""
    if active_key(session, user) is not None:
        raise ConflictError(f"user {user.username} has an active signing key already")
    private = Ed25519PrivateKey.generate()
    public_raw = KeyPair(private).public_raw
    key = UserKey(key_id=key_id_of(public_raw), user_id=user.id, public_key=public_raw.hex(),
                  encrypted_private=encrypt_private(private, password), created_at=utcnow(),
                  after_admin_reset=after_admin_reset)
    session.add(key)
    append_event(session, ctx, action="user.key_created", target=("user", user.id),
                 before={"key_id": replaces.key_id if replaces is not None else None},
                 after={"key_id": key.key_id, "public_key": key.public_key, "username": user.username,
                        "after_admin_reset": after_admin_reset})
    return key


def reencrypt(session: Session, user: User, old_password: str, new_password: str) -> None:
    key = active_key(session, user)
    if key is not None:
        key.encrypted_private = encrypt_private(decrypt_private(key.encrypted_private, old_password), new_password)


def retire(session: Session, user: User) -> UserKey | None:
    """Retire the user's active key (kept forever: old signatures stay verifiable); return it."""
    key = active_key(session, user)
    if key is not None:
        key.retired_at = utcnow()
    return key


def unlock(session: Session, user: User, password: str) -> tuple[UserKey, KeyPair]:
    key = active_key(session, user)
    if key is None:
        raise AuthenticationError(f"user {user.username} has no signing key: set a new password first (a single "
                                  "sign-on account: a signature passphrase)")
    return key, KeyPair(decrypt_private(key.encrypted_private, password))
