"""A run's approval state, derived from its signatures and the project's approval policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..access.rbac import RANK
from ..config import ApprovalPolicy

MEANINGS = ("authorship", "review", "approval", "responsibility")
DECISIONS = ("approve", "reject")


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
