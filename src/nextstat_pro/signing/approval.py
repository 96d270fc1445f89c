"""A run's approval state, derived from its signatures and the project's approval policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select
from sqlalchemy.orm import QueryableAttribute

from ..access.rbac import RANK
from ..config import SIGNATURE_MEANINGS, ApprovalPolicy
from ..db.models import Signature
from ..errors import UsageError

MEANINGS = SIGNATURE_MEANINGS
DECISIONS = ("approve", "reject")
APPROVAL_STATES = ("draft", "in review", "approved", "rejected")


@dataclass(frozen=True)
class SignatureFact:
    user_id: str
    meaning: str
    decision: str


def approval_state(signatures: Sequence[SignatureFact], policy: ApprovalPolicy) -> str:
    """draft → in review → approved | rejected."""
    if any(s.decision == "reject" for s in signatures):
        return "rejected"
    approvals = [s for s in signatures if s.meaning == "approval"]
    steps_done = all(any(s.meaning == step for s in signatures) for step in policy.sequence)
    if len(approvals) >= policy.min_approvals and steps_done:
        return "approved"
    if any(s.meaning in ("review", "approval") for s in signatures):
        return "in review"
    return "draft"


def approval_condition(state: str, policy: ApprovalPolicy,
                       run_id: ColumnElement[str] | QueryableAttribute[str]) -> ColumnElement[bool]:
    """The SQL condition that holds for a run (``run_id``, an outer query's column) exactly when
    ``approval_state`` of its signatures under ``policy`` is ``state``: the same rules, so a
    listing filters by state without reading every run's signatures (tests/test_runs_filters.py
    checks the two agree). What a run must have is an uncorrelated ``IN`` (one pass over the
    matching signatures: a semi-join on PostgreSQL, a temporary index on SQLite, which runs a
    correlated EXISTS once per run instead); what it must lack is a NOT EXISTS on the signatures'
    run_id index (an anti-join on PostgreSQL, where NOT IN has none)."""
    if state not in APPROVAL_STATES:
        raise UsageError(f"unknown approval state {state!r} (approval states: {', '.join(APPROVAL_STATES)})")

    def has(*conds: ColumnElement[bool]) -> ColumnElement[bool]:
        return run_id.in_(select(Signature.run_id).where(*conds))

    def lacks(*conds: ColumnElement[bool]) -> ColumnElement[bool]:
        return not_(exists().where(Signature.run_id == run_id, *conds))

    if state == "rejected":
        return has(Signature.decision == "reject")
    approval = Signature.meaning == "approval"
    steps = list(dict.fromkeys(policy.sequence))
    if state == "approved":
        enough = has(approval) if policy.min_approvals <= 1 else run_id.in_(
            select(Signature.run_id).where(approval).group_by(Signature.run_id)
            .having(func.count() >= policy.min_approvals))
        return and_(lacks(Signature.decision == "reject"), enough, *(has(Signature.meaning == m) for m in steps))
    short = lacks(approval) if policy.min_approvals <= 1 else \
        select(func.count()).where(Signature.run_id == run_id, approval).scalar_subquery() < policy.min_approvals
    incomplete = or_(short, *(lacks(Signature.meaning == m) for m in steps))
    reviewing = Signature.meaning.in_(("review", "approval"))
    return and_(lacks(Signature.decision == "reject"), incomplete,
                has(reviewing) if state == "in review" else lacks(reviewing))


def may_approve(policy: ApprovalPolicy, signer_role: str | None, signer_username: str) -> str | None:
    """Why this signer may not sign with meaning ``approval`` (None when they may): the policy
    names the least project role and, optionally, the group of usernames who approve."""
    if signer_role is None or RANK[signer_role] < RANK[policy.approver_role]:
        return (f"approval needs the role {policy.approver_role} in the project (the approval policy's "
                f"approver_role); you have {signer_role or 'no role'}")
    if policy.approvers and signer_username not in policy.approvers:
        return "approval is reserved to the approvers the project's approval policy names"
    return None


def check_policy(
    meaning: str, decision: str, signer_id: str, author_id: str, run_status: str,
    existing: Sequence[SignatureFact], policy: ApprovalPolicy, *, signer_role: str | None, signer_username: str,
) -> str | None:
    """Why this signature may not be added (None when it may). ``signer_role`` is the signer's
    effective role in the run's project (capped by a token)."""
    if any(s.user_id == signer_id and s.meaning == meaning for s in existing):
        return f"you have already signed this run with meaning {meaning}"
    if approval_state(existing, policy) in ("approved", "rejected") and meaning in ("review", "approval"):
        return f"the run is {approval_state(existing, policy)} already"
    if meaning in ("review", "approval") and decision == "approve" and run_status != "succeeded":
        return f"a {run_status} run cannot be given {meaning}"
    if meaning == "authorship" and signer_id != author_id:
        return "only the run's author can sign for authorship"
    if meaning in ("review", "approval") and signer_id == author_id and not policy.author_may_approve:
        return f"the run's author cannot give it {meaning}"
    if meaning in policy.sequence:
        for step in policy.sequence[: policy.sequence.index(meaning)]:
            if not any(s.meaning == step and s.decision == "approve" for s in existing):
                return f"{meaning} needs {step} first (policy sequence: {' → '.join(policy.sequence)})"
    if policy.distinct_people and meaning in ("review", "approval"):
        others = {"review": "approval", "approval": "review"}[meaning]
        if any(s.user_id == signer_id and s.meaning == others for s in existing):
            return "the same person cannot give both review and approval"
    if meaning == "approval":
        return may_approve(policy, signer_role, signer_username)
    return None
