"""The approval policies on the dashboard's administration page (web/policy.py): members read
their project's policy, an instance admin replaces one with an audited reason; bad values, a
missing CSRF token and other users are refused, changing nothing."""

from __future__ import annotations

import html
import json

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from nextstat_pro.config import ApprovalPolicy
from nextstat_pro.config_service import approval_policy, set_approval_policy, set_config
from nextstat_pro.db.models import AuditEvent
from nextstat_pro.errors import NotFoundError, PermissionDeniedError, UsageError
from nextstat_pro.instance import Instance

from .conftest import PASSWORD
from .identity_helpers import add_user
from .test_web_reports import client_for, error_of, sign_in


def changes(inst: Instance) -> list[dict[str, object]]:
    with inst.db.read() as s:
        return [json.loads(b) for b in s.scalars(select(AuditEvent.body).where(AuditEvent.action == "config.changed")
                                                 .order_by(AuditEvent.seq))]


def test_admin_replaces_a_projects_policy_in_the_dashboard(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    add_user(inst, "quinn", "admin", PASSWORD)
    add_user(inst, "vera", "viewer", PASSWORD)
    with client_for(inst) as c:
        csrf = sign_in(c, "admin")
        page = c.get("/admin").text
        assert "Approval policies" in page and "Replace approval policy" in page
        assert "review → approval" in page  # the default policy, as the table shows it
        form = {"csrf_token": csrf, "project": "default", "sequence": "review, approval", "min_approvals": "2",
                "approver_role": "editor", "approvers": "quinn admin", "distinct_people": "true",
                "reason": "SOP-12 rev 3: two approvers"}
        r = c.post("/admin/approval", data=form, follow_redirects=False)
        assert r.status_code == 303, r.text[:300]
        assert approval_policy(inst, inst.context(), "default") == ApprovalPolicy(
            sequence=["review", "approval"], min_approvals=2, approver_role="editor", approvers=["quinn", "admin"],
            distinct_people=True, author_may_approve=False)
        last = changes(inst)[-1]
        assert last["reason"] == "SOP-12 rev 3: two approvers" and last["target"] == {"type": "config",
                                                                                       "id": "approval"}
        assert "quinn, admin" in c.get("/admin").text
        # Bad values: a clear message on the page, nothing changed, no event.
        before = len(changes(inst))
        for bad, message in (({"sequence": "review sign-off"}, "unknown meaning 'sign-off'"),
                             ({"approvers": "nobody"}, "no user 'nobody'"),
                             ({"approver_role": "owner"}, "approver_role"),
                             ({"project": "nope"}, "no project named 'nope'")):
            r = c.post("/admin/approval", data={**form, **bad})
            assert r.status_code in (400, 404), (bad, r.status_code)
            assert message in html.unescape(error_of(r)), (bad, error_of(r))
        r = c.post("/admin/approval", data={k: v for k, v in form.items() if k != "csrf_token"})
        assert r.status_code == 403  # no CSRF token
        assert len(changes(inst)) == before
    with client_for(inst) as c:  # a viewer reads the policy but has no form, and a post is refused
        csrf = sign_in(c, "vera")
        page = c.get("/admin").text
        assert "Approval policies" in page and "Replace approval policy" not in page
        r = c.post("/admin/approval", data={**form, "csrf_token": csrf})
        assert r.status_code == 403
        assert len(changes(inst)) == before


def test_policy_operations_authorize(sqlite_instance: Instance) -> None:
    from .identity_helpers import session_for

    inst = sqlite_instance
    add_user(inst, "vera", "viewer", PASSWORD)
    vera = session_for(inst, "vera", PASSWORD)
    assert approval_policy(inst, vera, "default") == ApprovalPolicy()  # members read it
    with pytest.raises(PermissionDeniedError):
        set_approval_policy(inst, vera, "default", ApprovalPolicy(min_approvals=3), "mine")
    with pytest.raises(PermissionDeniedError):  # refused before the lookup: tells nothing of what exists
        set_approval_policy(inst, vera, "secret-project", ApprovalPolicy(), "probe")
    with pytest.raises((NotFoundError, PermissionDeniedError)):
        approval_policy(inst, vera, "nope")
    with pytest.raises(ValidationError, match="unknown meaning 'stamp'"):
        ApprovalPolicy(sequence=["stamp"])
    # The model refuses it on every path, `config set approval` included: a typo would make every run
    # of the project impossible to approve.
    with pytest.raises(UsageError, match="unknown meaning 'reveiw'"):
        set_config(inst, inst.context(), "approval", '{"default": {"sequence": ["reveiw"]}}', "typo")
    with pytest.raises(UsageError, match="no user 'nobody'"):
        set_approval_policy(inst, inst.context(), "default", ApprovalPolicy(approvers=["nobody"]), "typo")
    assert inst.config.approval_policy("default") == ApprovalPolicy()
