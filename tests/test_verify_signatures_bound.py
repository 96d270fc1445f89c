"""E-signatures bound to the sealed log, checked offline (issue #14, attack 1).

An insider with the database forges signer keys and signature rows with raw SQL (triggers
dropped); someone holding an export deletes a signature or its event and rewrites SHA256SUMS;
an insider with the application's code appends events in an order the log must not accept.
Offline ``verify`` takes each signer's key from the sealed ``user.key_created`` event and each
signature's facts from its sealed ``run.signed`` event, so every one of these fails, naming the
signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from nextstat_pro.access.context import RequestContext
from nextstat_pro.audit.events import append_event
from nextstat_pro.canonical import canonical_json
from nextstat_pro.db.models import Signature, User, UserKey
from nextstat_pro.db.types import UTCDateTime, utcnow
from nextstat_pro.engine import InputFile
from nextstat_pro.identity.userkeys import create_key, decrypt_private, key_id_of, retire
from nextstat_pro.identity.users import actor_for
from nextstat_pro.ids import new_id
from nextstat_pro.instance import Instance
from nextstat_pro.runs import RunRequest, export_run, run_task
from nextstat_pro.runs.esignatures import sign_run
from nextstat_pro.signing.keys import KeyPair
from nextstat_pro.verify import VerificationError, verify_run_folder

from .conftest import shared
from .identity_helpers import add_user, session_for

ED, RITA, ALAN = "ed-password-12", "rita-password-1", "alan-password-1"
KEYS = "audit/signer-keys.jsonl"


def guards_off(s: Session) -> None:
    """As an insider who owns the tables: the append-only and immutability triggers out of the way."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        for name in s.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all():
            s.execute(text(f"DROP TRIGGER {name}"))


def team_of(inst: Instance) -> Instance:
    for name, pw, role in (("ed", ED, "editor"), ("rita", RITA, "editor"), ("alan", ALAN, "admin")):
        add_user(inst, name, role, pw)
    return inst


@pytest.fixture
def team(instance: Instance) -> Instance:
    return team_of(instance)


@pytest.fixture
def sqlite_team(sqlite_instance: Instance) -> Instance:
    return team_of(sqlite_instance)


def reviewed_run(inst: Instance, approve: bool = False) -> str:
    ed = session_for(inst, "ed", ED)
    req = RunRequest("fit", "default", {}, None,
                     [InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))])
    run_id = run_task(inst, ed, req).run_id
    sign_run(inst, session_for(inst, "rita", RITA), run_id, "review", "inputs checked", RITA, "rita")
    if approve:
        sign_run(inst, session_for(inst, "alan", ALAN), run_id, "approval", "fit is sound", ALAN, "alan")
    return run_id


def user_id(inst: Instance, username: str) -> str:
    with inst.db.transaction() as s:
        return str(s.scalar(select(User.id).where(User.username == username)))


def lines(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


def resum(folder: Path) -> None:
    """Rewrite SHA256SUMS after an edit, as someone hiding the edit would."""
    names = [line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines()]
    (folder / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names if (folder / n).exists()))


def signed(private: Ed25519PrivateKey, payload: dict[str, Any]) -> str:
    return base64.b64encode(private.sign(canonical_json(payload))).decode()


def forge_key(s: Session, uid: str) -> tuple[Ed25519PrivateKey, str]:
    """A key of the insider's own in user_keys for another user (raw SQL, no event)."""
    private = Ed25519PrivateKey.generate()
    raw = KeyPair(private).public_raw
    kid = key_id_of(raw)
    s.execute(text("INSERT INTO user_keys (key_id, user_id, public_key, encrypted_private, created_at, "
                   "retired_at, after_admin_reset) VALUES (:kid, :uid, :pub, '{}', :at, :at, :no)")
              .bindparams(bindparam("at", type_=UTCDateTime())),
              {"kid": kid, "uid": uid, "pub": raw.hex(), "at": utcnow(), "no": False})
    return private, kid


def payload_of(s: Session, run_id: str, meaning: str) -> tuple[str, dict[str, Any]]:
    sig = s.scalars(select(Signature).where(Signature.run_id == run_id, Signature.meaning == meaning)).one()
    return sig.id, json.loads(sig.payload)


def test_a_clean_signed_export_verifies_with_keys_from_the_log(sqlite_team: Instance, tmp_path: Path) -> None:
    inst = sqlite_team
    run_id = reviewed_run(inst, approve=True)
    dest = export_run(inst, inst.context(), run_id, tmp_path / "export")
    result = verify_run_folder(dest)
    assert [(p["signer"]["username"], p["meaning"]) for p in result.signatures] == [
        ("rita", "review"), ("alan", "approval")]
    keys = lines(dest, KEYS)
    # The registration of each signer's key, and nobody else's (the admin who ran the fit signed nothing).
    assert {e["event"]["target"]["id"] for e in keys} == {user_id(inst, "rita"), user_id(inst, "alan")}
    records = json.loads((dest / "signatures.json").read_text())
    assert {e["event"]["after"]["key_id"]: e["event"]["after"]["public_key"] for e in keys} == {
        r["key_id"]: r["public_key"] for r in records}


@pytest.mark.parametrize("over", ["approval", "review"])
def test_a_forged_key_row_and_signature_row_fail_offline(team: Instance, tmp_path: Path, over: str) -> None:
    """The issue's attack: an Ed25519 key of the insider's own in user_keys for Alan and a
    matching signatures row (an approval), both by raw SQL; exported, then verified."""
    inst = team
    run_id = reviewed_run(inst)
    alan = user_id(inst, "alan")
    with inst.db.transaction() as s:
        guards_off(s)
        private, kid = forge_key(s, alan)
        _, review = payload_of(s, run_id, "review")
        payload = {**review, "signer": {"user_id": alan, "username": "alan", "printed_name": "Alan"},
                   "meaning": over, "decision": "approve", "reason": "looks fine"}
        sid = new_id()
        s.execute(text("INSERT INTO signatures (id, run_id, user_id, meaning, decision, payload, key_id, signature, "
                       "signed_at) VALUES (:id, :run, :uid, :meaning, 'approve', :payload, :kid, :sig, :at)")
                  .bindparams(bindparam("at", type_=UTCDateTime())),
                  {"id": sid, "run": run_id, "uid": alan, "meaning": over, "payload": canonical_json(payload).decode(),
                   "kid": kid, "sig": signed(private, payload), "at": utcnow()})
    dest = export_run(inst, inst.context(), run_id, tmp_path / "export")
    with pytest.raises(VerificationError, match=rf"^signature {sid} by Alan \(alan\): key {kid[:16]}… was registered "
                                                r"by no sealed user\.key_created event"):
        verify_run_folder(dest)


@pytest.mark.parametrize("forged", [True, False], ids=["forged-key", "alans-own-key"])
def test_an_approval_replaced_by_a_rejection_fails_offline(sqlite_team: Instance, tmp_path: Path,
                                                           forged: bool) -> None:
    """Alan's approval row rewritten as a rejection: signed by a forged key, the key is not the
    log's; signed with Alan's own key (an insider who also had his password), the sealed
    run.signed event still records an approval."""
    inst = sqlite_team
    run_id = reviewed_run(inst, approve=True)
    alan = user_id(inst, "alan")
    with inst.db.transaction() as s:
        guards_off(s)
        sid, approval = payload_of(s, run_id, "approval")
        if forged:
            private, kid = forge_key(s, alan)
        else:
            key = s.scalars(select(UserKey).where(UserKey.user_id == alan)).one()
            private, kid = decrypt_private(key.encrypted_private, ALAN), key.key_id
        payload = {**approval, "decision": "reject", "reason": "not sound"}
        s.execute(text("UPDATE signatures SET decision = 'reject', payload = :payload, key_id = :kid, signature = :sig "
                       "WHERE id = :id"),
                  {"payload": canonical_json(payload).decode(), "kid": kid, "sig": signed(private, payload), "id": sid})
    dest = export_run(inst, inst.context(), run_id, tmp_path / "export")
    message = (r"key \S+ was registered by no sealed user\.key_created event" if forged
               else r"its sealed run\.signed event \d+ records another decision")
    with pytest.raises(VerificationError, match=rf"^signature {sid} by Alan \(alan\): {message}"):
        verify_run_folder(dest)


def _drop_signature(folder: Path) -> str:
    records = json.loads((folder / "signatures.json").read_text())
    gone = records.pop()
    (folder / "signatures.json").write_text(json.dumps(records, indent=2) + "\n")
    return f"^signature {gone['id']}: the sealed run.signed event \\d+ records it, but signatures.json does not hold it"


def _drop_signed_event(folder: Path) -> str:
    events = lines(folder, "audit/events.jsonl")
    gone = next(e for e in events if e["action"] == "run.signed")
    (folder / "audit/events.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events if e is not gone))
    return f"^signature {gone['after']['signature_id']}: its run.signed audit event is missing from the export"


def _drop_key_event(folder: Path) -> str:
    keys = lines(folder, KEYS)
    gone = keys.pop(0)
    (folder / KEYS).write_text("".join(json.dumps(k, ensure_ascii=False) + "\n" for k in keys))
    return f"key {gone['event']['after']['key_id'][:16]}… was registered by no sealed user.key_created event"


def _swap_public_key(folder: Path) -> str:
    """The public key a key event registered, replaced by another: its inclusion proof fails."""
    keys = lines(folder, KEYS)
    keys[0]["event"]["after"]["public_key"] = KeyPair(Ed25519PrivateKey.generate()).public_raw.hex()
    (folder / KEYS).write_text("".join(json.dumps(k, ensure_ascii=False) + "\n" for k in keys))
    return f"^audit event {keys[0]['event']['seq']}: "


def _old_export(folder: Path) -> str:
    (folder / KEYS).unlink()
    return r"^signature \S+: its signer's key is not bound to the log \(exported before"


@pytest.mark.parametrize("tamper", [_drop_signature, _drop_signed_event, _drop_key_event, _swap_public_key,
                                    _old_export],
                         ids=["signature", "run.signed", "key-event", "public-key", "old-export"])
def test_an_edited_export_fails_offline(sqlite_team: Instance, tmp_path: Path,
                                        tamper: Callable[[Path], str]) -> None:
    inst = sqlite_team
    run_id = reviewed_run(inst, approve=True)
    dest = export_run(inst, inst.context(), run_id, tmp_path / "export")
    folder = Path(shutil.copytree(dest, tmp_path / "copy"))
    message = tamper(folder)
    resum(folder)
    with pytest.raises(VerificationError, match=message):
        verify_run_folder(folder)


def _sign_as_insider(inst: Instance, run_id: str, username: str, private: Ed25519PrivateKey) -> str:
    """A signature row and its run.signed event written with the application's own code, with a
    key of the insider's choosing: what the log's order must then refuse."""
    with inst.db.transaction() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        _, review = payload_of(s, run_id, "review")
        kid = key_id_of(KeyPair(private).public_raw)
        payload = {**review, "signer": {"user_id": user.id, "username": user.username,
                                        "printed_name": user.printed_name},
                   "meaning": "approval", "decision": "approve", "reason": "backdated",
                   "signed_at": review["signed_at"]}
        sid = new_id()
        s.add(Signature(id=sid, run_id=run_id, user_id=user.id, meaning="approval", decision="approve",
                        payload=canonical_json(payload).decode(), key_id=kid, signature=signed(private, payload),
                        signed_at=utcnow()))
        append_event(s, RequestContext(actor_for(user)), action="run.signed", target=("run", run_id),
                     project="default", after={"signature_id": sid, "meaning": "approval", "decision": "approve",
                                               "signer": user.printed_name, "signer_username": user.username,
                                               "manifest_digest": payload["manifest_digest"], "key_id": kid})
        return sid


def test_a_key_registered_after_the_signing_fails_offline(sqlite_team: Instance, tmp_path: Path) -> None:
    inst = sqlite_team
    run_id = reviewed_run(inst)
    private = Ed25519PrivateKey.generate()
    sid = _sign_as_insider(inst, run_id, "alan", private)
    # ...and only then the key is registered, in the log's own way (the old key retired).
    with inst.db.transaction() as s:
        user = s.scalars(select(User).where(User.username == "alan")).one()
        old = retire(s, user)
        raw = KeyPair(private).public_raw
        s.add(UserKey(key_id=key_id_of(raw), user_id=user.id, public_key=raw.hex(), encrypted_private="{}",
                      created_at=utcnow(), after_admin_reset=False))
        append_event(s, RequestContext(actor_for(user)), action="user.key_created", target=("user", user.id),
                     before={"key_id": old.key_id if old else None},
                     after={"key_id": key_id_of(raw), "public_key": raw.hex(), "username": "alan",
                            "after_admin_reset": False})
    dest = export_run(inst, inst.context(), run_id, tmp_path / "export")
    with pytest.raises(VerificationError, match=rf"^signature {sid} by Alan \(alan\): key \S+ was registered "
                                                r"after the signing \(audit event \d+ > run\.signed \d+\)"):
        verify_run_folder(dest)


def test_a_key_retired_before_the_signing_fails_offline(sqlite_team: Instance, tmp_path: Path) -> None:
    inst = sqlite_team
    run_id = reviewed_run(inst)
    with inst.db.transaction() as s:
        user = s.scalars(select(User).where(User.username == "alan")).one()
        old = retire(s, user)
        assert old is not None
        private = decrypt_private(old.encrypted_private, ALAN)
        create_key(s, RequestContext(actor_for(user)), user, ALAN + "-new", replaces=old)
    sid = _sign_as_insider(inst, run_id, "alan", private)
    dest = export_run(inst, inst.context(), run_id, tmp_path / "export")
    with pytest.raises(VerificationError, match=rf"^signature {sid} by Alan \(alan\): key \S+ was no longer the "
                                                r"user's active key at the signing \(replaced by audit event \d+\)"):
        verify_run_folder(dest)


def test_a_key_after_an_admin_reset_is_shown_from_its_sealed_event(sqlite_team: Instance, tmp_path: Path) -> None:
    """What verify shows about a key made after an administrator's reset agrees with the key's
    sealed event (which it reads the mark from, for payloads signed before the mark was signed)."""
    inst = sqlite_team
    with inst.db.transaction() as s:
        user = s.scalars(select(User).where(User.username == "rita")).one()
        create_key(s, RequestContext(actor_for(user)), user, RITA, after_admin_reset=True, replaces=retire(s, user))
    run_id = reviewed_run(inst)
    dest = export_run(inst, inst.context(), run_id, tmp_path / "export")
    [review] = verify_run_folder(dest).signatures
    assert review["signer"]["key_after_admin_reset"] is True
