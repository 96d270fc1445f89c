"""Operational qualification of the controls, on the scratch instance (``scratch.py``): access
refusals, re-authentication and the signing sequence, electronic signatures and DSSE envelopes
verified offline (and a forged or edited one refused), and bad input refused with nothing written.

Each check provokes the refusal through the same service operation an adapter calls and records the
error class and message it got, and what the log and the tables hold afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from ...audit.export import export_bundle
from ...audit.service import history
from ...db.models import AuditEvent, Run
from ...engine import InputFile
from ...errors import (
    AuthenticationError,
    ConflictError,
    InputError,
    NSPError,
    PermissionDeniedError,
    SchemaValidationError,
    TextError,
    UnknownTaskError,
    UsageError,
)
from ...identity import auth
from ...identity.users import create_user
from ...ids import new_id
from ...projects import service as projects
from ...runs import RunRequest, run_task
from ...runs.esignatures import sign_run
from ...runs.export import export_run
from ...signing.dsse import sign_statement
from ...signing.keys import KeyPair
from ...verify import VerificationError, verify_bundle, verify_run_folder
from ...verify.dsse import PAYLOAD_TYPE
from .models import Check, make_check
from .reference import shipped_inputs
from .scratch import ADMIN, APPROVER, REVIEWER, Scratch

REASON = "operational qualification"


def attempt(fn: Callable[[], Any]) -> tuple[str | None, str]:
    """Run ``fn``; (error class name, message) of the NSPError it raised, or (None, "") when it did not."""
    try:
        fn()
    except NSPError as exc:
        return type(exc).__name__, exc.message
    return None, ""


def _counts(scratch: Scratch) -> dict[str, int]:
    with scratch.instance.db.read() as s:
        rows = s.execute(select(AuditEvent.action, func.count()).group_by(AuditEvent.action)).all()
        runs = s.scalar(select(func.count()).select_from(Run)) or 0
    return {"runs": runs, **{str(a): int(n) for a, n in rows}}


def _case(name: str, fn: Callable[[], Any], expect: type[NSPError], matches: str = "") -> dict[str, Any]:
    got, message = attempt(fn)
    classes = {c.__name__ for c in expect.__mro__}
    ok = got is not None and (got in classes or _subclass(got, expect)) and matches in message
    return {"case": name, "expected": expect.__name__, "raised": got, "message": message, "passed": ok}


def _subclass(name: str, expect: type[NSPError]) -> bool:
    return any(c.__name__ == name for c in _all_subclasses(expect))


def _all_subclasses(cls: type[NSPError]) -> list[type[NSPError]]:
    out: list[type[NSPError]] = []
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out


def _summary(cases: list[dict[str, Any]]) -> str:
    bad = [c["case"] for c in cases if not c["passed"]]
    return f"{len(cases) - len(bad)}/{len(cases)} refused as expected" + (f"; NOT: {', '.join(bad)}" if bad else "")


def check_rbac(scratch: Scratch) -> Check:
    started = time.perf_counter()
    inst = scratch.instance
    before = _counts(scratch)
    small = shipped_inputs()["small-workspace"]
    cases = [
        _case("a viewer records a run (run.create needs editor)",
              lambda: run_task(inst, scratch.reviewer, RunRequest("fit", "default", {}, None, [small])),
              PermissionDeniedError, "may not run.create"),
        _case("a viewer creates a user (needs instance admin)",
              lambda: create_user(inst, scratch.reviewer, username="intruder", printed_name="Intruder",
                                  password="a-long-password-for-the-intruder-1"),
              PermissionDeniedError, "may not user.create"),
        _case("a project admin creates a project (needs instance admin)",
              lambda: projects.create(inst, scratch.approver, "oq-denied", "should not exist"),
              PermissionDeniedError, "may not project.create"),
    ]
    after = _counts(scratch)
    denied = after.get("access.denied", 0) - before.get("access.denied", 0)
    nothing_written = after["runs"] == before["runs"] and after.get("user.created") == before.get("user.created")
    evidence = {"cases": cases, "access_denied_events_added": denied, "runs_before": before["runs"],
                "runs_after": after["runs"]}
    ok = all(c["passed"] for c in cases) and denied == len(cases) and nothing_written
    return make_check("OQ-RBAC-DENIED", "OQ", "Operations beyond a user's role are refused, nothing of them is "
                      "written, and each refusal is recorded in the audit trail (access.denied).",
                      f"{len(cases)} refusals (PermissionDeniedError), {len(cases)} access.denied events, no run "
                      "or user created", f"{_summary(cases)}; {denied} access.denied event(s) added; "
                      f"runs {before['runs']} → {after['runs']}", ok, evidence, time.perf_counter() - started)


def check_authentication(scratch: Scratch) -> Check:
    started = time.perf_counter()
    inst = scratch.instance
    before = _counts(scratch)
    cases = [
        _case("sign in with a wrong password", lambda: auth.sign_in(inst, REVIEWER, "not-the-password-0"),
              AuthenticationError),
        _case("sign in as an unknown user", lambda: auth.sign_in(inst, "nobody-here", "not-the-password-0"),
              AuthenticationError),
        _case("a forged session token", lambda: auth.authenticate(inst, f"nsp_{new_id()}.{'x' * 43}"),
              AuthenticationError),
    ]
    after = _counts(scratch)
    failed = after.get("auth.failed", 0) - before.get("auth.failed", 0)
    evidence = {"cases": cases, "auth_failed_events_added": failed}
    ok = all(c["passed"] for c in cases) and failed >= 2
    return make_check("OQ-AUTH-REFUSED", "OQ", "Sign-in needs a valid username and password; failures and forged "
                      "credentials are refused and failed sign-ins recorded (auth.failed).",
                      "every attempt refused (AuthenticationError); both failed sign-ins recorded",
                      f"{_summary(cases)}; {failed} auth.failed event(s) added", ok, evidence,
                      time.perf_counter() - started)


def check_signing_controls(scratch: Scratch) -> Check:
    """Re-authentication (11.200(a)(1)), the signing sequence (11.10(f)), and separation of duties."""
    started = time.perf_counter()
    inst, run, pw = scratch.instance, scratch.run_id, scratch.passwords
    before = _counts(scratch)
    cases = [
        _case("the first signing of a session without the username",
              lambda: sign_run(inst, scratch.reviewer, run, "review", REASON, pw[REVIEWER]),
              AuthenticationError, "username and password"),
        _case("a signing with a wrong password",
              lambda: sign_run(inst, scratch.reviewer, run, "review", REASON, "wrong-password-000", username=REVIEWER),
              AuthenticationError),
        _case("approval before review (sequence review → approval)",
              lambda: sign_run(inst, scratch.approver, run, "approval", REASON, pw[APPROVER], username=APPROVER),
              ConflictError, "needs review first"),
        _case("the run's author approves their own run",
              lambda: sign_run(inst, scratch.admin, run, "approval", REASON, pw[ADMIN], username=ADMIN),
              ConflictError, "author cannot"),
        _case("a reason with a hidden bidirectional control character",
              lambda: sign_run(inst, scratch.admin, run, "authorship", "approved\u202egnirts", pw[ADMIN],
                               username=ADMIN), TextError),
    ]
    after = _counts(scratch)
    refused = after.get("signature.refused", 0) - before.get("signature.refused", 0)
    signed = after.get("run.signed", 0) - before.get("run.signed", 0)
    evidence = {"cases": cases, "signature_refused_events_added": refused, "signatures_added": signed}
    ok = all(c["passed"] for c in cases) and signed == 0 and refused >= 3
    return make_check("OQ-ESIG-CONTROLS", "OQ", "Signing controls: re-authentication with username and password at "
                      "the first signing of a session, the review → approval sequence, no self-approval, clean "
                      "reason text; each refusal recorded (signature.refused).",
                      "every attempt refused, no signature recorded",
                      f"{_summary(cases)}; {refused} signature.refused event(s); {signed} signature(s) recorded",
                      ok, evidence, time.perf_counter() - started)


def sign_in_sequence(scratch: Scratch) -> list[dict[str, Any]]:
    """Authorship, review and approval by three people, as the default approval policy asks."""
    inst, run, pw = scratch.instance, scratch.run_id, scratch.passwords
    results = [
        sign_run(inst, scratch.admin, run, "authorship", "I ran this reference fit", pw[ADMIN], username=ADMIN),
        sign_run(inst, scratch.reviewer, run, "review", "Reviewed against the golden values", pw[REVIEWER],
                 username=REVIEWER),
        sign_run(inst, scratch.approver, run, "approval", "Approved for the qualification record", pw[APPROVER],
                 username=APPROVER),
    ]
    return [{"meaning": r.payload["meaning"], "approval_state": r.approval_state,
             "signer": r.payload["signer"]["printed_name"], "signed_at": r.payload["signed_at"],
             "reason": r.payload["reason"]} for r in results]


def _rewrite_sums(folder: Path) -> None:
    """An attacker who edits a file also fixes SHA256SUMS, so only the signatures can catch it."""
    lines = []
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        _, _, name = line.partition("  ")
        lines.append(f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}")
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def _verify(folder: Path, scratch: Scratch) -> tuple[str | None, str]:
    try:
        verify_run_folder(folder, scratch.run_key_pem, scratch.log_key)
    except VerificationError as exc:
        return type(exc).__name__, exc.message
    return None, ""


def _tampered(export: Path, name: str, edit: Callable[[Path], None], scratch: Scratch) -> dict[str, Any]:
    copy = export.parent / f"tampered-{name}"
    shutil.copytree(export, copy)
    edit(copy)
    _rewrite_sums(copy)
    got, message = _verify(copy, scratch)
    return {"case": name, "raised": got, "message": message, "passed": got == "VerificationError"}


def _edit_result(folder: Path) -> None:
    path = folder / "outputs" / "result.json"
    doc = json.loads(path.read_bytes())
    doc["poi"]["value"] = float(doc["poi"]["value"]) + 0.5
    path.write_text(json.dumps(doc))


def _foreign_envelope(folder: Path) -> None:
    """Re-sign the attestation of an edited result with another key (the export's key file kept)."""
    _edit_result(folder)
    envelope = json.loads((folder / "run.intoto.jsonl").read_text().splitlines()[0])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    result_digest = hashlib.sha256((folder / "outputs" / "result.json").read_bytes()).hexdigest()
    for subject in statement["subject"]:
        if subject["name"] == "outputs/result.json":
            subject["digest"]["sha256"] = result_digest
    keys = KeyPair(Ed25519PrivateKey.generate())
    forged = sign_statement(statement, keys)
    # Claim the instance key's id, so that only the signature itself can tell the forgery.
    forged["signatures"][0]["keyid"] = envelope["signatures"][0]["keyid"]
    assert forged["payloadType"] == PAYLOAD_TYPE
    (folder / "run.intoto.jsonl").write_text(json.dumps(forged) + "\n")


def _edit_signature(folder: Path) -> None:
    path = folder / "signatures.json"
    records = json.loads(path.read_text())
    records[-1]["payload"]["reason"] = "Approved without review"
    path.write_text(json.dumps(records, indent=2) + "\n")


def check_signed_records(scratch: Scratch, workdir: Path) -> list[Check]:
    """Sign the scratch run three times, export it, verify it offline, then tamper with copies."""
    started = time.perf_counter()
    signatures = sign_in_sequence(scratch)
    export = export_run(scratch.instance, scratch.admin, scratch.run_id, workdir / "export")
    got, message = _verify(export, scratch)
    verified = verify_run_folder(export, scratch.run_key_pem, scratch.log_key) if got is None else None
    shown = [{"printed_name": s["signer"]["printed_name"], "meaning": s["meaning"], "signed_at": s["signed_at"],
              "reason": s["reason"]} for s in (verified.signatures if verified else [])]
    ok = verified is not None and len(shown) == 3 and signatures[-1]["approval_state"] == "approved"
    sign_check = make_check(
        "OQ-ESIG-VERIFY", "OQ", "Electronic signatures (authorship, review, approval by three people) are recorded "
        "with printed name, UTC time, meaning and reason, bound to the run's manifest, and verify offline from an "
        "export (DSSE envelope pinned to the run key, events proven against a signed checkpoint).",
        "the export verifies; 3 signatures with their manifestations; approval state approved",
        (f"export verified: {len(shown)} signature(s), state {signatures[-1]['approval_state']}" if verified else
         f"export did not verify: {message}"), ok,
        {"signing": signatures, "verified_signatures": shown, "files": verified.files if verified else None,
         "events": verified.events if verified else None,
         "checkpoint_size": verified.checkpoint_size if verified else None, "error": message or None},
        time.perf_counter() - started)
    checks = [sign_check]
    for check_id, what, name, edit in (
        ("OQ-DSSE-TAMPER", "A result edited after signing (SHA256SUMS rewritten to match) is refused by offline "
         "verification: the DSSE attestation names the original digest.", "edited-result", _edit_result),
        ("OQ-DSSE-FOREIGN-KEY", "An edited result with its attestation re-signed by another key is refused: the "
         "DSSE signature does not verify under the instance's run-signing key.", "foreign-key", _foreign_envelope),
        ("OQ-ESIG-TAMPER", "A signature record edited after signing (its reason changed) is refused: the signed "
         "payload no longer verifies under the signer's key.", "edited-signature", _edit_signature),
    ):
        t = time.perf_counter()
        case = _tampered(export, name, edit, scratch)
        checks.append(make_check(check_id, "OQ", what, "VerificationError naming what failed",
                                 f"{case['raised'] or 'accepted (NOT refused)'}: {case['message']}", case["passed"],
                                 case, time.perf_counter() - t))
    return checks


def check_bad_input(scratch: Scratch) -> Check:
    started = time.perf_counter()
    inst, admin = scratch.instance, scratch.admin
    before = _counts(scratch)
    objects_before = _objects(scratch)
    small = shipped_inputs()["small-workspace"]
    no_obs = json.loads(small.data)
    del no_obs["observations"]

    def run(task: str, params: dict[str, Any], inputs: list[InputFile]) -> Callable[[], Any]:
        return lambda: run_task(inst, admin, RunRequest(task, "default", params, None, inputs))

    cases = [
        _case("a workspace that is not JSON",
              run("fit", {}, [InputFile.from_bytes("workspace", "broken.json", b'{"channels": [')]), InputError),
        _case("a workspace without observations (schema)",
              run("fit", {}, [InputFile.from_bytes("workspace", "no-obs.json", json.dumps(no_obs).encode())]),
              SchemaValidationError, "observations"),
        _case("an unknown task", run("fitt", {}, [small]), UnknownTaskError),
        _case("an unknown parameter", run("fit", {"tolerance_typo": 1}, [small]), UsageError),
        _case("a parameter out of range", run("upper-limit", {"alpha": 2.0}, [small]), UsageError),
        _case("a PK task given a workspace", run("pk-nlme", {}, [small]), UsageError),
        _case("a run in a project that does not exist",
              lambda: run_task(inst, admin, RunRequest("fit", "no-such-project", {}, None, [small])), NSPError),
    ]
    after = _counts(scratch)
    objects_after = _objects(scratch)
    unchanged = after == before and objects_after == objects_before
    evidence = {"cases": cases, "events_and_runs_before": before, "events_and_runs_after": after,
                "store_objects_before": objects_before, "store_objects_after": objects_after}
    return make_check("OQ-INPUT-REFUSED", "OQ", "Bad input is refused with a one-line error naming what is wrong, "
                      "and nothing is written: no run, no audit event, no stored object.",
                      "every case refused with its error class; runs, events and store objects unchanged",
                      f"{_summary(cases)}; records {'unchanged' if unchanged else 'CHANGED'}",
                      all(c["passed"] for c in cases) and unchanged, evidence, time.perf_counter() - started)


def _objects(scratch: Scratch) -> int | None:
    root = Path(scratch.instance.store.url)
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.is_dir() else None


def check_audit_trail(scratch: Scratch, workdir: Path) -> Check:
    """The run's history names who did what and when, with each before and after value, and the
    whole trail exports as a human-readable CSV bundle that verifies offline."""
    started = time.perf_counter()
    inst, admin = scratch.instance, scratch.admin
    events = history(inst, admin, "run", scratch.run_id)
    actions = [e.action for e in events]
    signed = [e for e in events if e.action == "run.signed"]
    complete = all(e.actor and e.ts and e.event_id for e in events)
    states = [(e.before or {}).get("approval_state") for e in signed] + \
        [(signed[-1].after or {}).get("approval_state") if signed else None]
    summary = export_bundle(inst, admin, workdir / "audit-bundle", "csv")
    error = None
    try:
        verified = verify_bundle(workdir / "audit-bundle", scratch.log_key)
    except (VerificationError, InputError) as exc:
        verified, error = "", exc.message
    expected_actions = {"run.created", "run.started", "run.succeeded", "run.signed"}
    ok = expected_actions <= set(actions) and complete and len(signed) == 3 and \
        states == ["draft", "draft", "in review", "approved"] and error is None and summary.events > 0
    evidence = {"actions": actions, "approval_states": states, "events_complete": complete,
                "bundle": summary.model_dump(mode="json"), "bundle_verified": verified, "error": error}
    return make_check("OQ-AUDIT-TRAIL", "OQ", "The audit trail of a record names the actor, UTC time, action, reason "
                      "and before/after values of each change (earlier values kept), and the trail exports as a "
                      "readable CSV bundle that verifies offline against the log key.",
                      "run.created, run.started, run.succeeded and 3 run.signed events with approval state "
                      "draft → draft → in review → approved; the CSV bundle verifies",
                      f"{len(events)} events ({', '.join(sorted(set(actions)))}); states "
                      f"{' → '.join(map(str, states))}; bundle of {summary.events} events "
                      + ("verified" if error is None else f"FAILED: {error}"),
                      ok, evidence, time.perf_counter() - started)


def control_checks(scratch: Scratch, workdir: Path) -> list[Check]:
    return [check_rbac(scratch), check_authentication(scratch), check_signing_controls(scratch),
            *check_signed_records(scratch, workdir), check_audit_trail(scratch, workdir), check_bad_input(scratch)]
