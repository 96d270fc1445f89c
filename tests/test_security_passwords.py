"""New passwords are checked against breached values and a strength estimate (issue 21, part 3):
weak ones are refused in one line that never quotes them; any Unicode is accepted, normalised."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from zxcvbn import zxcvbn  # type: ignore[import-untyped]

from nextstat_pro.config import AuthPolicy, load_config, write_config
from nextstat_pro.identity import auth
from nextstat_pro.identity.passwords import (
    MAX_PASSWORD_LENGTH,
    WeakPasswordError,
    check_policy,
    hash_password,
    verify_password,
)
from nextstat_pro.identity.resets import approve_reset, complete_reset, reset_password
from nextstat_pro.identity.strength import common_passwords, context_words
from nextstat_pro.identity.users import create_user
from nextstat_pro.instance import Instance, init_instance

from .conftest import PASSWORD

PASSPHRASE = ("the quiet lantern keeper counts orbits of velvet moons while seventeen herons argue about "
              "tidal clocks near the old salt mill of Vannes")
WEAK = {
    "aaaaaaaaaaaa": ("alice", None, None),
    "123456789012": ("alice", None, None),
    "passwordpassword": ("alice", None, None),
    "alice1234567": ("alice", None, None),  # the username with digits
    "qwertyuiopasdf": ("alice", None, None),  # a keyboard walk
    "ichliebedich": ("alice", None, None),  # breached: on the bundled list (zxcvbn alone scores it 4)
    "NextStat-Pro-2026": ("alice", None, None),  # the product's name
    "alice.smith@example.org": ("alice", "Alice Smith", "alice.smith@example.org"),  # her email address
    "veralynn1234": ("vera", "Vera Lynn", None),  # her name and digits (zxcvbn alone: 3 with the context)
    "vera-lynn-vera-lynn": ("vera", "Vera Lynn", None),
}


@pytest.mark.parametrize("password", list(WEAK))
def test_weak_passwords_are_refused_in_one_line_without_echo(password: str) -> None:
    with pytest.raises(WeakPasswordError) as err:
        check_policy(password, context=context_words(*WEAK[password]))
    message = str(err.value)
    assert message.startswith("password refused: ") and "\n" not in message
    assert password not in message and password.lower() not in message.lower()


def test_the_list_and_the_context_words_each_refuse_what_zxcvbn_alone_accepts() -> None:
    assert "ichliebedich" in common_passwords() and zxcvbn("ichliebedich")["score"] == 4
    assert zxcvbn("NextStat-Pro-2026")["score"] == 4
    with pytest.raises(WeakPasswordError, match="list of commonly used passwords"):
        check_policy("IchLiebeDich")  # case does not matter
    with pytest.raises(WeakPasswordError, match="username, name or email address, or on the product's name"):
        check_policy("NextStat-Pro-2026")
    assert 1000 < len(common_passwords()) < 5000


def test_long_passphrases_and_any_unicode_are_accepted() -> None:
    assert len(PASSPHRASE) >= 128
    check_policy(PASSPHRASE)
    check_policy("ᚠᛇᚻ᛫ᛒᛦᚦ᛫ᚠᚱᚩᚠᚢᚱ᛫ᚠᛁᚱᚪ᛫ᚷᛖᚻᚹᛦᛚᚳᚢᛗ")  # runes: no composition rules, any script
    check_policy("Größenwahn im Flußbett 🦀 rauscht")
    check_policy("x" * 4 + PASSPHRASE * 7)  # beyond zxcvbn's 72 characters: judged by the first 72
    with pytest.raises(WeakPasswordError, match="too long"):
        check_policy(PASSPHRASE * 10)
    assert len(PASSPHRASE * 7) <= MAX_PASSWORD_LENGTH
    with pytest.raises(WeakPasswordError, match="too short"):
        check_policy("Zq8#vL1!")
    with pytest.raises(WeakPasswordError):
        check_policy("a" * 200)  # a weak beginning is not saved by its length


def test_unicode_is_nfc_normalised_before_hashing_and_verifying() -> None:
    composed = "Crème brûlée à la façon de Zoë 1926"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    for typed, checked in ((composed, decomposed), (decomposed, composed)):
        assert verify_password(hash_password(typed), checked)
    assert not verify_password(hash_password(composed), composed + "x")


def test_existing_hashes_still_verify() -> None:
    legacy = PasswordHasher()  # what hash_password did before normalisation
    assert verify_password(legacy.hash(PASSWORD), PASSWORD)
    assert not verify_password(legacy.hash(PASSWORD), PASSWORD + "x")
    decomposed = unicodedata.normalize("NFD", "Crème brûlée à la façon de Zoë 1926")
    assert verify_password(legacy.hash(decomposed), decomposed)  # typed as it was when it was set


def test_the_fixture_passwords_meet_the_default_policy() -> None:
    """The suite's and the demo's passwords pass the default threshold (score 3)."""
    check_policy(PASSWORD, context=context_words("admin", "Ada Admin", None))
    check_policy("admin-0123456789abcdef", context=context_words("admin", "Dana Administrator", None))
    check_policy("a long password", min_length=12, context=context_words("alice", "Alice Smith", None))


def test_threshold_is_instance_configuration(sqlite_instance: Instance) -> None:
    inst, admin = sqlite_instance, sqlite_instance.context()
    assert inst.config.auth.min_password_score == 3
    strict = AuthPolicy(min_password_score=4)
    assert zxcvbn("ed-password-12")["score"] == 3
    lenient = inst.config
    inst.config = inst.config.model_copy(update={"auth": strict})
    with pytest.raises(WeakPasswordError, match="this instance requires 4"):
        create_user(inst, admin, username="ed", printed_name="Ed", password="ed-password-12")
    inst.config = lenient
    create_user(inst, admin, username="ed", printed_name="Ed", password="ed-password-12")
    config = inst.config.model_copy(update={"auth": strict})
    write_config(inst.home, config)
    assert load_config(inst.home).auth.min_password_score == 4


def test_create_reset_change_and_init_refuse_weak_passwords(sqlite_instance: Instance, tmp_path: Path) -> None:
    inst, admin = sqlite_instance, sqlite_instance.context()
    with pytest.raises(WeakPasswordError):
        create_user(inst, admin, username="vera", printed_name="Vera Lynn", password="veralynn1234")
    create_user(inst, admin, username="vera", printed_name="Vera Lynn", password=PASSPHRASE)
    create_user(inst, admin, username="olga", printed_name="Olga Second", password=PASSPHRASE + "-o",
                instance_admin=True)
    reset_password(inst, admin, "vera", "forgotten")
    token = approve_reset(inst, inst.context("olga"), "vera", "she called").token
    with pytest.raises(WeakPasswordError):
        complete_reset(inst, "vera", token, "passwordpassword")
    cred = auth.sign_in(inst, "vera", PASSPHRASE)
    vera = auth.authenticate(inst, cred.token)
    with pytest.raises(WeakPasswordError):
        auth.change_password(inst, vera, PASSPHRASE, "vera-lynn-vera-lynn")
    with pytest.raises(WeakPasswordError):
        init_instance(tmp_path / "weak", admin="admin", password="123456789012")
    assert not (tmp_path / "weak").exists()


def test_nothing_logs_or_echoes_a_refused_password(cli, tmp_path: Path, caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    home = str(tmp_path / "home")
    assert cli("--home", home, "init", "--admin", "admin", env={"NSP_PASSWORD": PASSWORD}).code == 0
    seen = []
    for password, (username, printed_name, email) in WEAK.items():
        extra = ("--email", email) if email else ()
        r = cli("--home", home, "user", "create", username, "--printed-name", printed_name or username.title(),
                *extra, env={"NSP_NEW_PASSWORD": password})
        assert r.code == 2 and r.err.count("\n") == 1 and "password refused" in r.err, r.err
        seen.append(r.out + r.err)
        r = cli("--home", home, "init", "--admin", "bob", env={"NSP_PASSWORD": password})
        assert r.code != 0
        seen.append(r.out + r.err)
    captured = capsys.readouterr()
    everything = "".join(seen) + caplog.text + captured.out + captured.err
    for password in WEAK:
        assert password not in everything
    listed = cli("--home", home, "user", "list").out
    assert "alice" not in listed and "vera" not in listed  # nothing was created


def test_signing_key_opens_with_the_password_in_either_unicode_form() -> None:
    import unicodedata

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from nextstat_pro.errors import AuthenticationError
    from nextstat_pro.identity.userkeys import decrypt_private, encrypt_private

    composed = "Kl\u00e4ger-Passphrase-f\u00fcr-Signaturen"  # NFC
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    key = Ed25519PrivateKey.generate()
    blob = encrypt_private(key, decomposed)
    raw = key.private_bytes_raw()
    assert decrypt_private(blob, composed).private_bytes_raw() == raw
    assert decrypt_private(blob, decomposed).private_bytes_raw() == raw
    with pytest.raises(AuthenticationError, match="wrong password"):
        decrypt_private(blob, composed + "x")


def test_a_signing_key_encrypted_before_normalisation_still_opens() -> None:
    import base64
    import json
    import os
    import unicodedata

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from nextstat_pro.identity.userkeys import KDF, _derive, decrypt_private

    typed = unicodedata.normalize("NFD", "Kl\u00e4ger-Passphrase-f\u00fcr-Signaturen")
    key = Ed25519PrivateKey.generate()
    salt, nonce = os.urandom(16), os.urandom(12)
    # As the code before NFC wrote it: the password's bytes as typed.
    ct = AESGCM(_derive(typed, salt, KDF, normalise=False)).encrypt(nonce, key.private_bytes_raw(),
                                                                     b"nextstat-pro user signing key")
    blob = json.dumps({**KDF, "salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode(),
                       "ct": base64.b64encode(ct).decode()})
    assert decrypt_private(blob, typed).private_bytes_raw() == key.private_bytes_raw()
