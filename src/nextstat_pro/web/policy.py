"""The approval policies on the administration page: each project's policy as its members read it,
and, for an instance admin, a form that replaces one (the audited ``config.changed`` of
``config set approval``). The form posts carry the session's CSRF token (the ``Page``
dependency checks it); the service operations authorize."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from ..config import ApprovalPolicy
from ..config_service import approval_policy, set_approval_policy
from ..errors import NSPError, PermissionDeniedError, UsageError
from .guard import Page, Visitor
from .pages import error_page

router = APIRouter(include_in_schema=False)


def policies_for(inst: Any, visitor: Visitor) -> dict[str, ApprovalPolicy]:
    """The policy of each project the visitor has a role in."""
    out: dict[str, ApprovalPolicy] = {}
    for project in visitor.me.roles:
        try:
            out[project] = approval_policy(inst, visitor.ctx, project)
        except PermissionDeniedError:
            continue
    return out


def _words(value: str) -> list[str]:
    return [w.strip() for w in value.replace(",", " ").split() if w.strip()]


@router.post("/admin/approval")
def set_policy(
    request: Request, visitor: Page,
    project: Annotated[str, Form(min_length=1, max_length=100)],
    reason: Annotated[str, Form(min_length=1, max_length=500)],
    sequence: Annotated[str, Form(max_length=200)] = "review approval",
    min_approvals: Annotated[int, Form(ge=1, le=20)] = 1,
    approver_role: Annotated[str, Form(max_length=10)] = "admin",
    approvers: Annotated[str, Form(max_length=2000)] = "",
    author_may_approve: Annotated[bool, Form()] = False,
    distinct_people: Annotated[bool, Form()] = False,
) -> Response:
    """Replace a project's approval policy (instance admins: ``instance.configure``)."""
    try:
        try:
            policy = ApprovalPolicy(sequence=_words(sequence), min_approvals=min_approvals,
                                    approver_role=approver_role,  # type: ignore[arg-type]  # validated here
                                    approvers=_words(approvers), author_may_approve=author_may_approve,
                                    distinct_people=distinct_people)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise UsageError(f"approval policy: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        set_approval_policy(request.app.state.instance, visitor.ctx, project.strip(), policy, reason)
    except NSPError as exc:
        return error_page(request, visitor, exc)
    return RedirectResponse("/admin#h-approval", status_code=303)
