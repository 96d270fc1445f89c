"""Signed run artifacts and electronic signatures (21 CFR 11.50 / 11.70 / 11.200)."""

from __future__ import annotations

import base64
import copy
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError as SSlibVerificationError
from securesystemslib.signer import SSlibKey
from sqlalchemy import select

from nextstat_pro.db.models import ApiToken, Signature
from nextstat_pro.db.types import utcnow
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import AuthenticationError, ConflictError, UsageError
from nextstat_pro.identity.users import disable_user
from nextstat_pro.instance import Instance
from nextstat_pro.runs import RunRequest, export_run, run_task
from nextstat_pro.runs.esignatures import sign_run
from nextstat_pro.verify import VerificationError, verify_run_folder
from nextstat_pro.verify.dsse import key_id

from .audit_helpers import actions_after, last_seq
from .conftest import shared
from .identity_helpers import add_user, session_for

RITA, ALAN, ED, VERA = "rita-password-1", "alan-password-1", "ed-password-12", "vera-password-1"


def fit(inst: Instance, ctx=None, name: str = "simple_workspace.json", task: str = "fit"):  # type: ignore[no-untyped-def]
    req = RunRequest(task, "default", {}, None, [InputFile.read("workspace", shared("workspaces", name))])
    return run_task(inst, ctx or inst.context(), req)


@pytest.fixture
def team(sqlite_instance: Instance) -> Instance:
    # Approval needs the project's admin role by default (the approval policy's approver_role).
    for name, pw, role in (("rita", RITA, "editor"), ("alan", ALAN, "admin"), ("ed", ED, "editor")):
        add_user(sqlite_instance, name, role, pw)
    return sqlite_instance


def envelope_of(inst: Instance, run_id: str) -> dict:  # type: ignore[type-arg]
    from nextstat_pro.runs import get_run

    with inst.db.transaction() as s:
        digest = get_run(s, run_id).envelope_digest
    return json.loads(inst.store.get(digest))


def test_envelope_verifies_with_securesystemslib(sqlite_instance: Instance) -> None:
    out = fit(sqlite_instance)
    env = envelope_of(sqlite_instance, out.run_id)
    keys = sqlite_instance.run_keys()
    key = SSlibKey.from_crypto(keys.public, keyid=key_id(keys.public_raw))
    # Envelope.from_dict consumes the signatures of the dict it is given: it gets a copy, so that
    # the tampered envelope below still carries its signature.
    verified = Envelope.from_dict(copy.deepcopy(env)).verify([key], 1)
    assert list(verified) == [key_id(keys.public_raw)]
    statement = json.loads(base64.b64decode(env["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert {s["name"] for s in statement["subject"]} == {"outputs/result.json", "outputs/run.log", "manifest.json"}
    assert statement["predicate"]["manifest_digest"] == out.manifest_digest
    tampered = dict(env, payload=base64.b64encode(base64.b64decode(env["payload"]).replace(b"fit", b"fat")).decode())
    with pytest.raises(SSlibVerificationError):
        Envelope.from_dict(copy.deepcopy(tampered)).verify([key], 1)
    from nextstat_pro.verify.dsse import EnvelopeError, open_envelope

    with pytest.raises(EnvelopeError, match="signature does not verify"):
        open_envelope(tampered, keys.public, keys.public_raw)


def test_failed_runs_are_signed_too(sqlite_instance: Instance) -> None:
    out = fit(sqlite_instance, name="tHu_workspace.json", task="upper-limit")
    statement = json.loads(base64.b64decode(envelope_of(sqlite_instance, out.run_id)["payload"]))
    assert statement["predicate"]["status"] == "failed"


def test_review_then_approval_then_export_verifies(team: Instance, tmp_path: Path) -> None:
    inst = team
    ed = session_for(inst, "ed", ED)
    out = fit(inst, ed)
    assert sign_run(inst, ed, out.run_id, "authorship", "my analysis", ED, "ed").approval_state == "draft"
    rita = session_for(inst, "rita", RITA)
    before = last_seq(inst)
    assert sign_run(inst, rita, out.run_id, "review", "inputs checked", RITA, "rita").approval_state == "in review"
    assert actions_after(inst, before) == ["run.signed"]
    alan = session_for(inst, "alan", ALAN)
    assert sign_run(inst, alan, out.run_id, "approval", "fit is sound", ALAN, "alan").approval_state == "approved"
    dest = export_run(inst, inst.context(), out.run_id, tmp_path / "export")
    pem = inst.run_keys().public.public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    result = verify_run_folder(dest, pem)
    assert result.run_key_pinned
    assert [(p["signer"]["printed_name"], p["meaning"]) for p in result.signatures] == [
        ("Ed", "authorship"), ("Rita", "review"), ("Alan", "approval")]
    assert result.events >= 6


@pytest.mark.parametrize(
    ("who", "meaning", "message"),
    [
        ("ed", "approval", "author cannot give it approval"),
        ("alan", "approval", "approval needs review first"),
        ("rita", "authorship", "only the run's author"),
    ],
)
def test_policy_refusals_are_audited(team: Instance, who: str, meaning: str, message: str) -> None:
    inst = team
    ed = session_for(inst, "ed", ED)
    out = fit(inst, ed)
    pw = {"ed": ED, "alan": ALAN, "rita": RITA}[who]
    ctx = ed if who == "ed" else session_for(inst, who, pw)
    before = last_seq(inst)
    with pytest.raises(ConflictError, match=message):
        sign_run(inst, ctx, out.run_id, meaning, "r", pw, who)
    assert actions_after(inst, before) == ["signature.refused"]


def test_twice_same_meaning_and_same_person_both_roles(team: Instance) -> None:
    inst = team
    out = fit(inst, session_for(inst, "ed", ED))
    rita = session_for(inst, "rita", RITA)
    sign_run(inst, rita, out.run_id, "review", "ok", RITA, "rita")
    with pytest.raises(ConflictError, match="already signed"):
        sign_run(inst, rita, out.run_id, "review", "again", RITA)
    with pytest.raises(ConflictError, match="cannot give both review and approval"):
        sign_run(inst, rita, out.run_id, "approval", "me too", RITA)


def test_failed_run_cannot_be_approved(team: Instance) -> None:
    inst = team
    out = fit(inst, session_for(inst, "ed", ED), name="tHu_workspace.json", task="upper-limit")
    with pytest.raises(ConflictError, match="failed run cannot be given review"):
        sign_run(inst, session_for(inst, "rita", RITA), out.run_id, "review", "ok", RITA, "rita")


def test_reauthentication_rules(team: Instance) -> None:
    inst = team
    out1, out2, out3 = (fit(inst, session_for(inst, "ed", ED)) for _ in range(3))
    rita = session_for(inst, "rita", RITA)
    with pytest.raises(AuthenticationError, match="first signing of a session needs your username"):
        sign_run(inst, rita, out1.run_id, "review", "ok", RITA)
    sign_run(inst, rita, out1.run_id, "review", "ok", RITA, "rita")
    sign_run(inst, rita, out2.run_id, "review", "ok", RITA)  # same session: the password is enough
    with inst.db.transaction() as s:  # idle past the timeout
        s.get(ApiToken, rita.token_id).last_signing_at = utcnow() - timedelta(minutes=16)
    with pytest.raises(AuthenticationError, match="username"):
        sign_run(inst, rita, out3.run_id, "review", "ok", RITA)
    before = last_seq(inst)
    with pytest.raises(AuthenticationError, match="wrong password"):
        sign_run(inst, rita, out3.run_id, "review", "ok", "not-her-password", "rita")
    assert actions_after(inst, before) == ["auth.failed"]  # counted towards lockout, no signature
    with pytest.raises(UsageError, match="unknown meaning"):
        sign_run(inst, rita, out3.run_id, "blessing", "ok", RITA, "rita")
    with pytest.raises(UsageError, match="reason is required"):
        sign_run(inst, rita, out3.run_id, "review", " ", RITA, "rita")


def test_disabled_user_cannot_sign(team: Instance) -> None:
    inst = team
    out = fit(inst, session_for(inst, "ed", ED))
    rita = session_for(inst, "rita", RITA)
    disable_user(inst, inst.context(), "rita", "left")
    with pytest.raises(AuthenticationError, match="disabled"):
        sign_run(inst, rita, out.run_id, "review", "ok", RITA, "rita")


def test_nobody_can_sign_with_anothers_key(team: Instance) -> None:
    """The admin resets Rita's password: no password the admin chooses or sees comes of it (a
    one-time token goes to Rita, tests/test_admin_reset.py), so the admin holds nothing to sign
    with, and Rita's key is hers until she uses the token."""
    inst = team
    out = fit(inst, session_for(inst, "ed", ED))
    from nextstat_pro.identity import auth
    from nextstat_pro.identity.resets import reset_password

    reset_password(inst, inst.context(), "rita", "forgotten")
    with pytest.raises(AuthenticationError):
        auth.sign_in(inst, "rita", "admin-knows-this-1")
    sign_run(inst, session_for(inst, "rita", RITA), out.run_id, "review", "ok", RITA, "rita")


def test_signature_is_bound_to_its_run_and_manifest(team: Instance, tmp_path: Path) -> None:
    inst = team
    ed = session_for(inst, "ed", ED)
    out, other = fit(inst, ed), fit(inst, ed)
    rita = session_for(inst, "rita", RITA)
    sign_run(inst, rita, out.run_id, "review", "ok", RITA, "rita")
    a = export_run(inst, inst.context(), out.run_id, tmp_path / "a")
    b = export_run(inst, inst.context(), other.run_id, tmp_path / "b")
    verify_run_folder(a)

    def resum(folder: Path) -> None:
        import hashlib

        lines = []
        for line in (folder / "SHA256SUMS").read_text().splitlines():
            name = line.split("  ", 1)[1]
            lines.append(f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}")
        (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")

    # Move the signature to the other run (and fix the checksums): it no longer verifies.
    shutil.copy(a / "signatures.json", b / "signatures.json")
    resum(b)
    with pytest.raises(VerificationError, match="over another run"):
        verify_run_folder(b)
    # One byte of the manifest changed (checksums fixed): attestation and signature fail.
    manifest = (a / "manifest.json").read_bytes()
    (a / "manifest.json").write_bytes(manifest.replace(b'"task":"fit"', b'"task":"fiT"'))
    resum(a)
    with pytest.raises(VerificationError, match="another run or manifest|not the artifact"):
        verify_run_folder(a)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "outputs/result.json").write_bytes(b"{}"), "digest mismatch"),
        (lambda d: (d / "extra.txt").write_text("x"), "not listed"),
        (lambda d: (d / "run.intoto.jsonl").write_text(
            (d / "run.intoto.jsonl").read_text().replace('"sig":"', '"sig":"A')), "digest mismatch"),
        (lambda d: (d / "audit/events.jsonl").unlink(), "missing"),
    ],
)
def test_verify_names_the_first_failure(sqlite_instance: Instance, tmp_path: Path, damage, message) -> None:  # type: ignore[no-untyped-def]
    out = fit(sqlite_instance)
    dest = export_run(sqlite_instance, sqlite_instance.context(), out.run_id, tmp_path / "e")
    damage(dest)
    with pytest.raises(VerificationError, match=message):
        verify_run_folder(dest)


def test_pinned_keys(sqlite_instance: Instance, tmp_path: Path) -> None:
    out = fit(sqlite_instance)
    dest = export_run(sqlite_instance, sqlite_instance.context(), out.run_id, tmp_path / "e")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(VerificationError):
        verify_run_folder(dest, stranger)
    log_key = (sqlite_instance.home / "witness" / "log.pub").read_text()
    assert verify_run_folder(dest, None, log_key).log_key_pinned
    with sqlite_instance.db.transaction() as s:
        assert s.scalar(select(Signature)) is None


def test_approval_rights_come_from_the_approval_policy(team: Instance) -> None:
    """Viewer access lets one review a run, not approve it: the policy names who approves."""
    from nextstat_pro.config import ApprovalPolicy

    inst = team
    out = fit(inst, session_for(inst, "ed", ED))
    rita, alan = session_for(inst, "rita", RITA), session_for(inst, "alan", ALAN)
    sign_run(inst, rita, out.run_id, "review", "ok", RITA, "rita")
    add_user(inst, "vera", "viewer", VERA)
    vera = session_for(inst, "vera", VERA)
    before = last_seq(inst)
    with pytest.raises(ConflictError, match="approval needs the role admin in the project.*you have viewer"):
        sign_run(inst, vera, out.run_id, "approval", "looks fine", VERA, "vera")
    assert actions_after(inst, before) == ["signature.refused"]
    # A named group (QA): the admin alan is not in it, so he may not approve either.
    inst.config.approval["default"] = ApprovalPolicy(approver_role="viewer", approvers=["vera"])
    with pytest.raises(ConflictError, match="reserved to the approvers the project's approval policy names"):
        sign_run(inst, alan, out.run_id, "approval", "ok", ALAN, "alan")
    assert sign_run(inst, vera, out.run_id, "approval", "QA approves", VERA, "vera").approval_state == "approved"
