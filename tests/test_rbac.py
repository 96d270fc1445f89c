"""The permission matrix: code, docs and every authorize() call agree; every operation is
tried with every role."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from nextstat_pro.db.models import Project
from nextstat_pro.identity.actors import Actor, RequestContext
from nextstat_pro.identity.rbac import PERMISSIONS, RANK, allowed
from nextstat_pro.identity.users import create_user, grant_role
from nextstat_pro.instance import Instance
from nextstat_pro.projects import get_project

from .conftest import PASSWORD

SRC = Path(__file__).resolve().parents[1] / "src" / "nextstat_pro"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "rbac.md"
# Service modules: each public function either authorizes or says here why it need not.
SERVICE_MODULES = ["projects/service.py", "runs/service.py", "runs/records.py", "runs/export.py",
                   "runs/retention.py", "audit/service.py", "audit/export.py", "identity/users.py",
                   "identity/auth.py", "runs/esignatures.py", "config_service.py", "hub/service.py",
                   "hub/retention.py", "hub/imports.py", "hub/likelihood.py", "runs/references.py", "runs/lease.py",
                   "scale/service.py"]
EXEMPT = {
    "get_project": "a lookup used inside authorized operations",
    "lease_until": "pure: a lease's end from the instance's lease length",
    "renew": "housekeeping of a run the caller's operation started (run_task authorized it); not audited",
    "run_leased": "runs an operation's own work while renewing its lease (inside run_task)",
    "has_expired_leases": "a read that only tells whether recover_abandoned has work (which authorizes)",
    "push_in": "database function of push_many and import_likelihood (authorized there)",
    "read_likelihood": "pure: reads an archive's members in memory (no database)",
    "patchset_names": "pure: names the versions an archive's patchsets become",
    "authorized_project": "get_project + authorize, counted as an authorize call",
    "create_run": "database function of run_task (authorized there)",
    "abandon_expired": "database function of recover_abandoned (authorized there)",
    "transition": "database function of run_task",
    "finish": "database function of finish_run",
    "version_docs": "pure formatting of versions read after an authorized lookup",
    "add_versions": "database function of run_task, finish_run and submit (authorized there)",
    "get_run": "lookup; read_run is the authorized read",
    "read_manifest": "reads a store object by digest, after an authorized read",
    "assess": "pure policy evaluation",
    "apply": "calls status() and purge(), both authorized",
    "maybe_checkpoint": "housekeeping at the end of an authenticated command",
    "find_event": "lookup inside authorized operations",
    "checkpoint_in": "signs within an operation that authorized (make_checkpoint, prove, exports)",
    "list_checkpoints": "lookup; the CLI authenticates first",
    "query_events": "database function of read_events and exports (authorized there)",
    "verify_bundle": "offline: no database",
    "check_new_user": "input validation",
    "actor_for": "pure",
    "get_user": "lookup inside authorized operations",
    "check_password": "part of login and sign",
    "login": "authentication itself",
    "authenticate": "authentication itself",
    "logout": "acts on the caller's own credential",
    "change_password": "acts on the caller's own account",
    "parse_token": "pure",
    "facts": "lookup inside sign_run",
    "resolve_in": "lookup inside authorized operations",
    "read_bytes": "reads a version's store object, after an authorized lookup",
    "read_source": "reads a version's store object, after an authorized lookup",
    "search": "database function of list_items (authorized there)",
    "version_doc": "pure formatting",
    "materialize": "database function of resolve_inputs (authorized there)",
    "purge_blockers": "pure policy evaluation",
    "versions_of": "lookup after an authorized list or read",
    "finish_run": "final step of run_task and of a job's coordinator (both authorized)",
    "plan_items": "input validation before submit authorizes",
    "spawn_coordinator": "starts `worker coordinate`, which authenticates and authorizes itself",
    "push": "push_many of one request (authorized there)",
    "check_request": "input validation before push_many authorizes",
    "refresh_statistics": "planner statistics after an authorized import; no record changes",
    "parse_manifest": "input validation (fields, names, files) before an import's first batch",
    "import_manifest": "batches of push_many (authorized there, each batch)",
    "set_config": None,
    "make_checkpoint": None,
    "prove": None,
    "consistency": None,
    "verify": None,
}


def operations_called() -> dict[str, set[str]]:
    """Every authorize(..., "op", ...) in the source, by function."""
    out: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("authorize",
                                                                                      "authorized_project"):
                    ops = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                    out.setdefault(f"{path.relative_to(SRC)}:{fn.name}", set()).update(ops)
    return out


def test_every_authorize_call_has_a_matrix_row() -> None:
    used = set().union(*operations_called().values())
    assert used, "no authorize() calls found"
    assert used <= PERMISSIONS.keys(), f"operations without a row: {sorted(used - PERMISSIONS.keys())}"


def test_docs_table_is_the_code_table() -> None:
    block = DOCS.read_text().split("<!-- matrix:start -->")[1].split("<!-- matrix:end -->")[0]
    rows = dict(re.findall(r"^\| ([a-z_]+\.[a-z_.]+) \| ([a-z-]+) \|$", block, re.M))
    assert rows == PERMISSIONS


def test_every_public_service_function_authorizes_or_is_exempt() -> None:
    calls = operations_called()
    missing = []
    for module in SERVICE_MODULES:
        tree = ast.parse((SRC / module).read_text())
        for fn in tree.body:
            if isinstance(fn, ast.FunctionDef) and not fn.name.startswith("_"):
                if f"{module}:{fn.name}" in calls:
                    continue
                if EXEMPT.get(fn.name) is None:
                    # Functions that pass ctx on to an authorizing callee count as authorized.
                    src = ast.unparse(fn)
                    if "ctx" in src and any(f"{name}(" in src for name in ("read_run", "authorize", "read_events")):
                        continue
                    missing.append(f"{module}:{fn.name}")
    assert missing == [], f"public service functions with no authorization: {missing}"


ROLE_CASES = [None, "viewer", "editor", "admin", "instance-admin"]


def expected(need: str, role: str | None) -> bool:
    if role == "instance-admin":
        return True
    if need == "authenticated":
        return True
    if need == "instance-admin" or role is None:
        return False
    return RANK[role] >= RANK[need]


def test_every_operation_with_every_role(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    admin = inst.context()
    contexts: dict[str | None, RequestContext] = {}
    with inst.db.transaction() as s:
        for role in ROLE_CASES:
            name = f"u-{role or 'none'}"
            user = create_user(s, admin, username=name, printed_name=name, password=PASSWORD,
                               instance_admin=role == "instance-admin")
            if role in RANK:
                grant_role(s, admin, name, get_project(s, "default"), role, "test")  # type: ignore[arg-type]
            contexts[role] = RequestContext(Actor(user.id, name, username=name,
                                                  is_instance_admin=role == "instance-admin"))
    wrong = []
    with inst.db.transaction() as s:
        project: Project = get_project(s, "default")
        for operation, need in sorted(PERMISSIONS.items()):
            for role, ctx in contexts.items():
                if allowed(s, ctx, operation, project) is not expected(need, role):
                    wrong.append((operation, role))
    assert wrong == []
    assert len(PERMISSIONS) * len(ROLE_CASES) >= 100


def test_scoped_token_caps_the_role(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    admin = inst.context()
    with inst.db.transaction() as s:
        from nextstat_pro.projects import create_project

        other = create_project(s, admin, "other")
        default = get_project(s, "default")
        capped = RequestContext(admin.actor, token_project_id=default.id, token_role="viewer")
        assert allowed(s, capped, "run.read", default)
        assert not allowed(s, capped, "run.create", default)
        assert not allowed(s, capped, "run.read", other)
        assert not allowed(s, capped, "project.create", None)
