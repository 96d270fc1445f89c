"""A scratch instance for the operational qualification: created in a temporary folder, used to
exercise refusals, signatures and tampering, and thrown away.

The OQ attacks its own records (it rewrites audit rows, forges envelopes, edits signatures), makes
users and provokes denied accesses, so it must not touch the instance being qualified: a scratch
instance runs the same installed code on an embedded SQLite database, object folder and witness.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from ...access.context import RequestContext
from ...identity import auth
from ...identity.users import create_user, grant_role
from ...runs import RunRequest, run_task
from .reference import shipped_inputs

if TYPE_CHECKING:
    from ...instance import Instance

ADMIN, REVIEWER, APPROVER = "oq-admin", "oq-reviewer", "oq-approver"


@dataclass
class Scratch:
    """The scratch instance, its users' passwords and contexts, and one recorded fit."""

    instance: Instance
    root: Path
    passwords: dict[str, str]
    admin: RequestContext
    reviewer: RequestContext
    approver: RequestContext
    run_id: str

    @property
    def run_key_pem(self) -> bytes:
        return self.instance.run_keys().public.public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def log_key(self) -> str:
        return str(self.instance.log_verifier())

    def close(self) -> None:
        self.instance.close()


def _password() -> str:
    # Random and long: the instance's password policy (length and strength) accepts it.
    return secrets.token_urlsafe(24)


def open_scratch(root: Path) -> Scratch:
    """Initialise the scratch instance under ``root`` with three users (an instance admin who runs
    and authors, a project viewer who reviews, a project admin who approves) and one recorded fit."""
    # The composition root is imported here only: the scratch instance is the one thing in the
    # product's services that creates an instance (tests/test_package_layers.py: no import cycle).
    from ...instance import init_instance

    passwords = {ADMIN: _password(), REVIEWER: _password(), APPROVER: _password()}
    inst = init_instance(root / "home", admin=ADMIN, password=passwords[ADMIN], printed_name="OQ Administrator")
    try:
        admin = inst.context()
        create_user(inst, admin, username=REVIEWER, printed_name="OQ Reviewer", password=passwords[REVIEWER])
        create_user(inst, admin, username=APPROVER, printed_name="OQ Approver", password=passwords[APPROVER])
        grant_role(inst, admin, REVIEWER, "default", "viewer", "operational qualification")
        grant_role(inst, admin, APPROVER, "default", "admin", "operational qualification")
        reviewer = auth.authenticate(inst, auth.sign_in(inst, REVIEWER, passwords[REVIEWER]).token)
        approver = auth.authenticate(inst, auth.sign_in(inst, APPROVER, passwords[APPROVER]).token)
        outcome = run_task(inst, admin, RunRequest("fit", "default", {}, None, [shipped_inputs()["small-workspace"]]))
    except BaseException:
        inst.close()
        raise
    return Scratch(inst, root, passwords, admin, reviewer, approver, outcome.run_id)
