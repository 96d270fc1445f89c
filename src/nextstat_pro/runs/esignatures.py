"""Electronic signatures on runs (21 CFR 11.50, 11.70, 11.200).

A signature binds the signer (user id, username, printed name), the UTC time, the meaning and the
reason to one run manifest digest, signed with the signer's own Ed25519 key (unlocked by
their password — or, for a single sign-on account, their signature passphrase — so nobody else
can produce it). Verification (``verify.esignatures``)
recomputes the payload from the record it is attached to: moved to another run, or over a
changed manifest, it fails. Re-authentication: the first signing of a session (or the first
after ``signing_idle_minutes``) needs username and password; later ones the password only.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from .. import text
from ..access.context import RequestContext
from ..access.rbac import effective_role
from ..audit.events import append_event
from ..canonical import canonical_json
from ..db.models import ApiToken, Project, Signature, User
from ..db.types import rfc3339, utcnow
from ..errors import AuthenticationError, ConflictError, UsageError
from ..identity.auth import PendingAuthFailure
from ..identity.sso_passphrase import check_signing_secret
from ..identity.userkeys import unlock
from ..ids import new_id
from ..signing.approval import DECISIONS, MEANINGS, SignatureFact, approval_state, check_policy
from ..signing.records import signature_payload
from .records import read_run

if TYPE_CHECKING:
    from ..instance import Instance


@dataclass(frozen=True)
class SignResult:
    signature_id: str
    approval_state: str
    payload: dict[str, Any]


def facts(session: Any, run_id: str) -> list[SignatureFact]:
    rows = session.scalars(select(Signature).where(Signature.run_id == run_id).order_by(Signature.signed_at))
    return [SignatureFact(r.user_id, r.meaning, r.decision) for r in rows]


def sign_run(instance: Instance, ctx: RequestContext, run_ref: str, meaning: str, reason: str, password: str,
             username: str | None = None, decision: str = "approve") -> SignResult:
    if meaning not in MEANINGS:
        raise UsageError(f"unknown meaning {meaning!r} (meanings: {', '.join(MEANINGS)})")
    if decision not in DECISIONS:
        raise UsageError(f"unknown decision {decision!r} (approve or reject)")
    reason = text.clean("reason", reason)  # signed as stored: NFC, one line, no hidden characters
    if not reason:
        raise UsageError("a reason is required to sign")
    policy = instance.config.auth
    failure: AuthenticationError | None = None
    result: SignResult | None = None
    with instance.db.transaction() as session:
        run = read_run(session, ctx, run_ref, "run.sign")
        project = session.get(Project, run.project_id)
        user = session.get(User, ctx.actor.id)
        assert project is not None and user is not None
        token = session.get(ApiToken, ctx.token_id) if ctx.token_id else None
        fresh = token is None or token.last_signing_at is None or \
            token.last_signing_at < utcnow() - timedelta(minutes=policy.signing_idle_minutes)
        if fresh and username is None:
            err = AuthenticationError("the first signing of a session needs your username and password "
                                      f"(again after {policy.signing_idle_minutes:g} idle minutes)")
            err.security_event = {"ctx": ctx, "action": "signature.refused", "target": ("run", run.id),
                                  "project": project.name, "after": {"meaning": meaning, "why": "re-authentication"}}
            raise err
        if username is not None and username != user.username:
            raise AuthenticationError(f"you are signed in as {user.username}, not {username}")
        try:
            # A local account's password, or a single sign-on account's signature passphrase.
            check_signing_secret(session, user, password, policy, ctx.interface, f"signing run {run.id}")
        except PendingAuthFailure as exc:
            failure = AuthenticationError(exc.message)
        if failure is None:
            if run.manifest_digest is None:
                raise ConflictError(f"run {run.id} is {run.status}: only finished runs can be signed")
            existing = facts(session, run.id)
            why = check_policy(meaning, decision, user.id, run.created_by, run.status, existing,
                               instance.config.approval_policy(project.name),
                               signer_role=effective_role(session, ctx, project), signer_username=user.username)
            if why is not None:
                refused = ConflictError(f"signature refused: {why}")
                refused.security_event = {"ctx": ctx, "action": "signature.refused", "target": ("run", run.id),
                                          "project": project.name, "after": {"meaning": meaning, "why": why}}
                raise refused
            key, keys = unlock(session, user, password)
            signed_at = rfc3339(utcnow())
            payload = signature_payload(run.id, run.manifest_digest, user, meaning, decision, reason, signed_at, key)
            data = canonical_json(payload)
            sig = Signature(id=new_id(), run_id=run.id, user_id=user.id, meaning=meaning, decision=decision,
                            payload=data.decode(), key_id=key.key_id,
                            signature=base64.b64encode(keys.sign(data)).decode(), signed_at=utcnow())
            session.add(sig)
            before = approval_state(existing, instance.config.approval_policy(project.name))
            after = approval_state([*existing, SignatureFact(user.id, meaning, decision)],
                                   instance.config.approval_policy(project.name))
            append_event(session, ctx, action="run.signed", target=("run", run.id), project=project.name,
                         before={"approval_state": before},
                         after={"signature_id": sig.id, "meaning": meaning, "decision": decision,
                                "signer": user.printed_name, "signer_username": user.username,
                                "manifest_digest": run.manifest_digest,
                                "key_id": key.key_id, "key_after_admin_reset": bool(key.after_admin_reset),
                                "approval_state": after},
                         reason=reason)
            if token is not None:
                token.last_signing_at = utcnow()
            result = SignResult(sig.id, after, payload)
    if failure is not None:
        raise failure
    assert result is not None
    return result
