"""The permission matrix and its enforcement.

- The matrix in code and the table in docs/rbac.md both equal the table declared here
  (``EXPECTED``: each operation's least role and whether an auditor may perform it), so a change
  of either is a deliberate change of this test too.
- Every public function of a service module takes a ``RequestContext`` (never optional) and
  authorizes it on every path before it can return or yield: a path analysis of its syntax tree,
  tried on synthetic modules to show that it catches what it must.
- Every operation is tried with every role, the auditor included, against ``EXPECTED``.
- One test per hole of issue #12: borrowed permissions, the proof oracle, audit reads without a
  role, a branch that skips ``authorize``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nextstat_pro.access.context import Actor, RequestContext
from nextstat_pro.access.rbac import PERMISSIONS, allowed
from nextstat_pro.db.models import Project
from nextstat_pro.errors import NotFoundError, PermissionDeniedError
from nextstat_pro.identity.users import create_user, grant_role
from nextstat_pro.instance import Instance
from nextstat_pro.projects import get_project

from .conftest import PASSWORD

SRC = Path(__file__).resolve().parents[1] / "src" / "nextstat_pro"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "rbac.md"

# operation -> (least role, may an auditor perform it). Levels: authenticated < viewer < editor <
# admin (project roles); auditor (an auditor or an instance admin); instance-admin.
EXPECTED: dict[str, tuple[str, bool]] = {
    "instance.configure": ("instance-admin", False),
    "config.read": ("auditor", True),
    "user.create": ("instance-admin", False),
    "user.disable": ("instance-admin", False),
    "user.reset_password": ("instance-admin", False),
    "user.approve_reset": ("instance-admin", False),
    "user.set_auditor": ("instance-admin", False),
    "user.list": ("auditor", True),
    "user.whoami": ("authenticated", True),
    "token.list": ("authenticated", True),
    "token.revoke": ("authenticated", True),
    "token.revoke_any": ("instance-admin", False),
    "project.create": ("instance-admin", False),
    "project.list": ("authenticated", True),
    "audit.read": ("auditor", True),
    "audit.export": ("auditor", True),
    "audit.verify": ("auditor", True),
    "audit.prove": ("authenticated", True),
    "audit.consistency": ("authenticated", True),
    "audit.checkpoint": ("auditor", True),
    "run.recover": ("authenticated", True),
    "retention.read": ("auditor", True),
    "retention.purge": ("instance-admin", False),
    "audit.read_project": ("viewer", True),
    "role.list": ("viewer", True),
    "role.grant": ("admin", False),
    "role.revoke": ("admin", False),
    "run.create": ("editor", False),
    "run.cancel": ("editor", False),
    "run.resume": ("editor", False),
    "run.read": ("viewer", True),
    "run.export": ("viewer", True),
    "run.sign": ("viewer", False),
    "hub.read": ("viewer", True),
    "hub.push": ("editor", False),
    "hub.edit": ("editor", False),
    "hub.alias": ("editor", False),
    "hub.alias_protected": ("admin", False),
    "hub.retention": ("admin", False),
    # alerts (NS-Alerts)
    "alerts.manage": ("admin", False),
    "alerts.read": ("editor", False),
    "alerts.manage_instance": ("instance-admin", False),
    # reports (NS-Compliance)
    "report.read": ("viewer", True),
    "report.create": ("editor", False),
    "report.audit": ("admin", False),
    "report.sign": ("viewer", False),
    "report.validation_pack": ("instance-admin", False),
    # server and single sign-on (NS-Server)
    "metrics.read": ("auditor", True),
}

# Service modules: each public function authorizes on every path, or says here why it need not.
SERVICE_MODULES = ["observability/service.py", "projects/service.py", "runs/service.py", "runs/records.py",
                   "runs/listing.py",
                   "runs/export.py", "runs/retention.py", "audit/service.py", "audit/export.py", "identity/users.py",
                   "identity/auth.py", "identity/resets.py", "runs/esignatures.py", "config_service.py",
                   "hub/push.py", "hub/resolve.py", "hub/documents.py", "hub/metadata.py",
                   "hub/retention.py", "hub/imports.py", "hub/likelihood.py", "runs/references.py", "runs/lease.py",
                   "runs/reads.py", "scale/service.py", "scale/coordinator.py",
                   "alerts/service.py", "compliance/validation/pack.py",
                   "identity/sso.py", "identity/sso_oidc.py", "identity/sso_saml.py", "identity/sso_passphrase.py",
                   "compliance/registry.py", "compliance/service.py", "compliance/certificate.py",
                   "compliance/audit_reports.py", "compliance/pack.py",
                   "runs/board.py"]
EXEMPT = {
    # reports (NS-Compliance)
    "template_content": "pure: a packed template as registry content",
    "ensure_builtins_in": "database function of the report operations (authorized there)",
    "template_for": "database function of the report operations (authorized there)",
    "check_kind": "input validation",
    "time_bound": "input parsing: a date filter's bound",
    "written": "pure: a recorded report's view, its files written where the operation was asked to",
    "manifestations": "database function of sign_report (authorized there)",
    "certificate_data": "pure: a certificate's data from a run's export files",
    "risk_group": "pure: an event's risk group",
    "parse_findings": "input validation of a reviewer's findings file",
    "get_project": "a lookup used inside authorized operations",
    "lease_until": "pure: a lease's end from the instance's lease length",
    "renew": "housekeeping of a run the caller's operation started (run_task authorized it); not audited",
    "run_leased": "runs an operation's own work while renewing its lease (inside run_task)",
    "has_expired_leases": "a read that only tells whether recover_abandoned has work (which authorizes)",
    "push_in": "database function of push_many and import_likelihood (authorized there)",
    "read_likelihood": "pure: reads an archive's members in memory (no database)",
    "patchset_names": "pure: names the versions an archive's patchsets become",
    "create_run": "database function of run_task (authorized there)",
    "abandon_expired": "database function of recover_abandoned (authorized there)",
    "transition": "database function of run_task",
    "finish": "database function of finish_run",
    "version_docs": "pure formatting of versions read after an authorized lookup",
    "add_versions": "database function of run_task, finish_run and submit (authorized there)",
    "get_run": "lookup; read_run is the authorized read",
    "read_manifest": "reads a store object by digest, after an authorized read",
    "assess": "pure policy evaluation",
    "check_new_user": "input validation",
    "create_first_admin": "init's first administrator: nobody exists yet who could be authorized",
    "actor_for": "pure",
    "check_password": "part of login and sign",
    "login": "authentication itself (sign_in over a transaction factory and a policy)",
    "sign_in": "authentication itself: it makes the RequestContext it would need",
    "authenticate": "authentication itself: it makes the RequestContext it would need",
    "record_refusal": "audits a request refused before it had a caller (CSRF, rate limit): nobody to authorize",
    "complete_reset": "authentication by a one-time reset token, which makes the user's context (as sign_in)",
    "change_password": "acts on the caller's own account",
    "parse_token": "pure",
    "facts": "lookup inside sign_run",
    "resolve_in": "lookup inside authorized operations",
    "gather_inputs": "reads the files a run or job request names, after its operation's check_allowed; "
                     "registry references resolve through resolve_inputs (authorized there)",
    "read_bytes": "reads a version's store object, after an authorized lookup",
    "read_source": "reads a version's store object, after an authorized lookup",
    "search": "database function of list_items (authorized there)",
    "version_doc": "pure formatting",
    "materialize": "database function of resolve_inputs (authorized there)",
    "purge_blockers": "pure policy evaluation",
    "versions_of": "lookup after an authorized list or read",
    "finish_run": "final step of run_task and of a job's coordinator (both authorized)",
    "plan_items": "input validation before submit authorizes",
    "push": "push_many of one request (authorized there)",
    "check_request": "input validation before push_many authorizes",
    "refresh_statistics": "planner statistics after an authorized import; no record changes",
    "parse_manifest": "input validation (fields, names, files) before an import's first batch",
    "import_manifest": "batches of push_many (authorized there, each batch)",
    # single sign-on (NS-Server)
    "sign_in_federated": "authentication itself: it makes the RequestContext it would need",
    "start_oidc": "authentication itself: begins a sign-in, nobody is signed in yet",
    "finish_oidc": "authentication itself: ends in sign_in_federated",
    "verify_id_token": "authentication itself: a check inside finish_oidc",
    "start_saml": "authentication itself: begins a sign-in, nobody is signed in yet",
    "finish_saml": "authentication itself: ends in sign_in_federated",
    "saml_metadata": "public: the service provider's metadata, for the IdP",
    "sso_config": "pure: the instance's single sign-on section",
    "service_actor": "pure",
    "refused": "audits a refused sign-in (like record_refusal): nobody to authorize",
    "new_state": "pure",
    "open_pending": "authentication itself: a sign-in's state before anyone is signed in",
    "take_pending": "authentication itself: a sign-in's state before anyone is signed in",
    "is_federated": "lookup inside set_signature_passphrase and check_signing_secret",
    "set_signature_passphrase": "acts on the caller's own account (as change_password)",
    "check_signing_secret": "part of sign (as check_password)",
}

# The two primitives: an authorizing call is one of these, or of a function proven to call one.
PRIMITIVES = {("access/rbac.py", "authorize"), ("projects/service.py", "authorized_project")}


# --- the path analysis ---------------------------------------------------------------------

Func = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class Module:
    rel: str
    tree: ast.Module
    functions: dict[str, Func] = field(default_factory=dict)
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # name -> (module, attr)


class Analyser:
    """Which functions authorize their ``RequestContext`` on every path before they return.

    A module is read from ``root`` by its path relative to it; ``sources`` overrides files (the
    synthetic modules of the tests below)."""

    def __init__(self, root: Path, sources: dict[str, str] | None = None) -> None:
        self.root, self.sources = root, sources or {}
        self.modules: dict[str, Module | None] = {}
        self.memo: dict[tuple[str, str], bool] = {}

    def module(self, rel: str) -> Module | None:
        if rel not in self.modules:
            text = self.sources.get(rel)
            if text is None and (self.root / rel).is_file():
                text = (self.root / rel).read_text()
            if text is None:
                self.modules[rel] = None
                return None
            tree = ast.parse(text)
            mod = Module(rel, tree)
            package = rel.split("/")[:-1]
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    mod.functions[node.name] = node
                elif isinstance(node, ast.ImportFrom) and node.level > 0:
                    base = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
                    for alias in node.names:
                        name = alias.asname or alias.name
                        as_module = "/".join([*base, alias.name])
                        if self._exists(as_module + ".py") or self._exists(as_module + "/__init__.py"):
                            mod.imports[name] = (self._file(as_module), None)
                        else:
                            mod.imports[name] = (self._file("/".join(base)), alias.name)
            self.modules[rel] = mod
        return self.modules[rel]

    def _exists(self, rel: str) -> bool:
        return rel in self.sources or (self.root / rel).is_file()

    def _file(self, dotted: str) -> str:
        return dotted + ".py" if self._exists(dotted + ".py") else dotted + "/__init__.py"

    def resolve(self, mod: Module, func: ast.expr, depth: int = 0) -> tuple[str, str] | None:
        """The (module, function) a call's target names, following imports and re-exports."""
        if isinstance(func, ast.Name):
            if func.id in mod.functions:
                return mod.rel, func.id
            if func.id in mod.imports:
                target, attr = mod.imports[func.id]
                return self._follow(target, attr, depth) if attr else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in mod.imports:
            target, attr = mod.imports[func.value.id]
            if attr is None:
                return self._follow(target, func.attr, depth)
        return None

    def _follow(self, rel: str, name: str, depth: int) -> tuple[str, str] | None:
        mod = self.module(rel)
        if mod is None or depth > 5:
            return None
        if name in mod.functions:
            return rel, name
        if name in mod.imports:
            return self.resolve(mod, ast.Name(name), depth + 1)
        return None

    def authorizes(self, rel: str, name: str) -> bool:
        key = (rel, name)
        if key in PRIMITIVES:
            return True
        if key not in self.memo:
            self.memo[key] = False  # recursion counts as not (yet) proven
            mod = self.module(rel)
            fn = mod.functions.get(name) if mod else None
            self.memo[key] = fn is not None and mod is not None and not self.problems(mod, fn)
        return self.memo[key]

    def problems(self, mod: Module, fn: Func) -> list[str]:
        """Why ``fn`` can return or yield without having authorized its context (empty: it cannot)."""
        ctx_names = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
                     if isinstance(a.annotation, ast.Name) and a.annotation.id == "RequestContext"}
        optional = [a.arg for a in [*fn.args.args, *fn.args.kwonlyargs]
                    if a.annotation is not None and "RequestContext" in ast.unparse(a.annotation)
                    and a.arg not in ctx_names]
        if optional:
            return [f"{fn.name}: its context {optional[0]} is optional"]
        if not ctx_names:
            return [f"{fn.name}: takes no RequestContext"]
        found: list[str] = []
        end = _Paths(self, mod, ctx_names, found).block(fn.body, False)
        if end is False:
            found.append(f"falls off its end without authorizing (line {fn.body[-1].end_lineno})")
        return [f"{fn.name}: {p}" for p in found]


class _Paths:
    """Walks statements with the state "authorized on every path to here"; ``block`` returns the
    state at the block's end, or None when no path reaches it (return, raise, break, continue)."""

    def __init__(self, analyser: Analyser, mod: Module, ctx_names: set[str], found: list[str]) -> None:
        self.a, self.mod, self.ctx, self.found = analyser, mod, ctx_names, found

    def call_authorizes(self, call: ast.Call) -> bool:
        target = self.a.resolve(self.mod, call.func)
        if target is None or not self.a.authorizes(*target):
            return False
        passed = [*call.args, *(k.value for k in call.keywords)]
        return any(isinstance(x, ast.Name) and x.id in self.ctx for x in passed)

    def expr(self, node: ast.AST | None) -> bool:
        """Does evaluating ``node`` always make an authorizing call?"""
        if node is None or isinstance(node, ast.Lambda):
            return False
        if isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            return self.expr(node.generators[0].iter)  # the one part always evaluated, at once
        if isinstance(node, ast.BoolOp):
            return self.expr(node.values[0])  # the others may be short-circuited
        if isinstance(node, ast.IfExp):
            return self.expr(node.test) or (self.expr(node.body) and self.expr(node.orelse))
        if isinstance(node, ast.Call) and self.call_authorizes(node):
            return True
        return any(self.expr(child) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))

    def yields(self, node: ast.AST, authorized: bool) -> None:
        for sub in _walk_here(node):
            if isinstance(sub, ast.Yield | ast.YieldFrom) and not authorized:
                self.found.append(f"yields before authorizing (line {sub.lineno})")

    def block(self, stmts: list[ast.stmt], authorized: bool) -> bool | None:
        state: bool | None = authorized
        for stmt in stmts:
            if state is None:
                return None
            state = self.stmt(stmt, state)
        return state

    def stmt(self, s: ast.stmt, auth: bool) -> bool | None:
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return auth
        if isinstance(s, ast.Return):
            self.yields(s, auth)
            if not (auth or self.expr(s.value)):
                self.found.append(f"returns without authorizing (line {s.lineno})")
            return None
        if isinstance(s, ast.Raise | ast.Break | ast.Continue):
            return None
        if isinstance(s, ast.If):
            self.yields(s.test, auth)
            auth = auth or self.expr(s.test)
            return _join(self.block(s.body, auth), self.block(s.orelse, auth))
        if isinstance(s, ast.For | ast.AsyncFor | ast.While):
            head = s.iter if isinstance(s, ast.For | ast.AsyncFor) else s.test
            self.yields(head, auth)
            auth = auth or self.expr(head)
            self.block(s.body, auth)  # may run no time: the state after is the state before
            endless = isinstance(s, ast.While) and isinstance(s.test, ast.Constant) and s.test.value is True \
                and not any(isinstance(n, ast.Break) for n in _walk_loop(s.body))
            after = self.block(s.orelse, auth)
            return None if endless else after
        if isinstance(s, ast.With | ast.AsyncWith):
            for item in s.items:
                self.yields(item.context_expr, auth)
                auth = auth or self.expr(item.context_expr)
            return self.block(s.body, auth)
        if isinstance(s, ast.Try | ast.TryStar):
            body = self.block(s.body, auth)
            ends = [self.block(s.orelse, body) if body is not None else None]
            ends += [self.block(h.body, auth) for h in s.handlers]  # a handler may start before any call
            end = _join(*ends)
            if s.finalbody:
                final = self.block(s.finalbody, auth)
                return None if final is None or end is None else end or final
            return end
        if isinstance(s, ast.Match):
            self.yields(s.subject, auth)
            auth = auth or self.expr(s.subject)
            ends = [self.block(c.body, auth) for c in s.cases]
            return _join(*ends, auth)  # no case may match
        self.yields(s, auth)
        return auth or any(self.expr(child) for child in ast.iter_child_nodes(s) if isinstance(child, ast.expr))


def _join(*states: bool | None) -> bool | None:
    reached = [x for x in states if x is not None]
    return None if not reached else all(reached)


def _walk_here(node: ast.AST) -> list[ast.AST]:
    """The nodes of ``node`` outside nested functions, classes and lambdas."""
    out, todo = [], [node]
    while todo:
        n = todo.pop()
        out.append(n)
        todo += [c for c in ast.iter_child_nodes(n)
                 if not isinstance(c, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)]
    return out


def _walk_loop(body: list[ast.stmt]) -> list[ast.AST]:
    """The nodes of a loop body outside nested loops (whose break is their own)."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = list(body)
    while todo:
        n = todo.pop()
        out.append(n)
        if not isinstance(n, ast.For | ast.AsyncFor | ast.While | ast.FunctionDef | ast.AsyncFunctionDef):
            todo += list(ast.iter_child_nodes(n))
    return out


def unauthorized(analyser: Analyser, modules: list[str], exempt: dict[str, str]) -> list[str]:
    out = []
    for rel in modules:
        mod = analyser.module(rel)
        assert mod is not None, f"no service module {rel}"
        for name, fn in mod.functions.items():
            if not name.startswith("_") and name not in exempt:
                out += [f"{rel}:{p}" for p in analyser.problems(mod, fn)]
    return out


# --- the analysis on synthetic modules: it catches what it must ------------------------------

_HEADER = "from ..access.rbac import authorize\nfrom ..access.context import RequestContext\n"
SYNTHETIC = {
    "skips_on_a_branch": """
def op(session, ctx: RequestContext, fast: bool):
    if fast:
        return 1
    authorize(session, ctx, "run.read")
    return 2
""",
    "authorizes_in_one_branch_only": """
def op(session, ctx: RequestContext, fast: bool):
    if fast:
        authorize(session, ctx, "run.read")
    return 2
""",
    "falls_off_the_end": """
def op(session, ctx: RequestContext, items):
    for i in items:
        authorize(session, ctx, "run.read")
    session.delete(items)
""",
    "yields_first": """
def op(session, ctx: RequestContext):
    yield 1
    authorize(session, ctx, "run.read")
""",
    "someone_elses_context": """
def op(session, ctx: RequestContext, instance):
    authorize(session, instance.context(), "run.read")
    return 1
""",
    "optional_context": """
def op(session, ctx: RequestContext | None):
    if ctx is not None:
        authorize(session, ctx, "run.read")
    return 1
""",
    "only_in_a_handler": """
def op(session, ctx: RequestContext):
    try:
        session.flush()
    except ValueError:
        authorize(session, ctx, "run.read")
    return 1
""",
    "short_circuited": """
def op(session, ctx: RequestContext, cached):
    return cached or authorize(session, ctx, "run.read")
""",
    "a_callee_that_skips": """
def helper(session, ctx: RequestContext, fast):
    if not fast:
        authorize(session, ctx, "run.read")

def op(session, ctx: RequestContext):
    helper(session, ctx, True)
    return 1
""",
}
SOUND = {
    "early_raise": """
def op(session, ctx: RequestContext, ref):
    if not ref:
        raise ValueError(ref)
    authorize(session, ctx, "run.read")
    return ref
""",
    "in_a_transaction": """
def op(instance, ctx: RequestContext):
    with instance.db.transaction() as session:
        authorize(session, ctx, "run.read")
        return 1
""",
    "both_branches": """
def op(session, ctx: RequestContext, project):
    if project is None:
        authorize(session, ctx, "audit.read")
    else:
        authorize(session, ctx, "audit.read_project", project)
    return 1
""",
    "through_an_authorizing_callee": """
def read(session, ctx: RequestContext, ref):
    authorize(session, ctx, "run.read")
    return ref

def op(session, ctx: RequestContext, ref):
    return read(session, ctx, ref)
""",
    "in_the_return_value": """
from ..projects import authorized_project

def op(session, ctx: RequestContext, name):
    return authorized_project(session, ctx, name, "hub.read")
""",
}


@pytest.mark.parametrize("case", sorted(SYNTHETIC))
def test_the_analysis_catches_a_path_without_authorize(case: str) -> None:
    analyser = Analyser(SRC, {"fake/ops.py": _HEADER + SYNTHETIC[case]})
    problems = unauthorized(analyser, ["fake/ops.py"], {"helper": "tested through op"})
    assert problems, f"{case} passed the analysis"


@pytest.mark.parametrize("case", sorted(SOUND))
def test_the_analysis_accepts_authorized_paths(case: str) -> None:
    analyser = Analyser(SRC, {"fake/ops.py": _HEADER + SOUND[case]})
    assert unauthorized(analyser, ["fake/ops.py"], {}) == []


# --- the service modules -----------------------------------------------------------------------

def operations_called() -> dict[str, set[str]]:
    """Every operation named to authorize, authorized_project, read_run (an authorized run lookup) or
    check_allowed in the source, by function."""
    out: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                name = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
                if isinstance(node, ast.Call) and name in ("authorize", "authorized_project", "read_run",
                                                           "check_allowed"):
                    ops = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                    if name == "read_run" and not ops:
                        ops = ["run.read"]  # its default operation
                    out.setdefault(f"{path.relative_to(SRC)}:{fn.name}", set()).update(ops)
    return out


def test_every_public_service_function_authorizes_on_every_path() -> None:
    assert unauthorized(Analyser(SRC), SERVICE_MODULES, EXEMPT) == []


def test_every_exemption_names_a_public_service_function() -> None:
    analyser = Analyser(SRC)
    public = {name for rel in SERVICE_MODULES for name in analyser.module(rel).functions  # type: ignore[union-attr]
              if not name.startswith("_")}
    assert sorted(set(EXEMPT) - public) == []
    assert all(reason.strip() for reason in EXEMPT.values())


def test_every_authorize_call_has_a_matrix_row() -> None:
    used = set().union(*operations_called().values())
    assert used, "no authorize() calls found"
    assert used <= PERMISSIONS.keys(), f"operations without a row: {sorted(used - PERMISSIONS.keys())}"


# --- the matrix ----------------------------------------------------------------------------------

def test_the_code_matrix_is_the_declared_table() -> None:
    assert PERMISSIONS == {op: need for op, (need, _) in EXPECTED.items()}


def test_the_docs_table_is_the_declared_table() -> None:
    block = DOCS.read_text().split("<!-- matrix:start -->")[1].split("<!-- matrix:end -->")[0]
    rows = re.findall(r"^\| `?([a-z_]+\.[a-z_]+)`? \| ([a-z-]+) \| (yes|no) \|", block, re.M)
    assert {op: (need, auditor == "yes") for op, need, auditor in rows} == EXPECTED
    assert len(rows) == len(EXPECTED)  # no row twice


ROLE_CASES = [None, "viewer", "editor", "admin", "auditor", "instance-admin"]
PROJECT_RANK = {"viewer": 1, "editor": 2, "admin": 3}


def expected(operation: str, role: str | None) -> bool:
    need, auditor_may = EXPECTED[operation]
    if role == "instance-admin" or need == "authenticated":
        return True
    if role == "auditor":
        return auditor_may
    if need in ("auditor", "instance-admin") or role is None:
        return False
    return PROJECT_RANK[role] >= PROJECT_RANK[need]


def _users(inst: Instance) -> dict[str | None, RequestContext]:
    admin = inst.context()
    contexts: dict[str | None, RequestContext] = {}
    for role in ROLE_CASES:
        name = f"u-{role or 'none'}"
        create_user(inst, admin, username=name, printed_name=name, password=PASSWORD,
                    instance_admin=role == "instance-admin", auditor=role == "auditor")
        if role in PROJECT_RANK:
            grant_role(inst, admin, name, "default", role, "test")  # type: ignore[arg-type]
        contexts[role] = inst.context(name)
    return contexts


def test_every_operation_with_every_role(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    contexts = _users(inst)
    wrong = []
    with inst.db.transaction() as s:
        project: Project = get_project(s, "default")
        for operation in sorted(PERMISSIONS):
            for role, ctx in contexts.items():
                if allowed(s, ctx, operation, project) is not expected(operation, role):
                    wrong.append((operation, role))
    assert wrong == []
    assert len(PERMISSIONS) * len(ROLE_CASES) >= 200


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
        # An auditor's API token reads its one project, not the whole instance.
        auditor = RequestContext(Actor("a", "a", is_auditor=True), token_project_id=default.id, token_role="viewer")
        assert allowed(s, auditor, "run.read", default)
        assert not allowed(s, auditor, "run.read", other)
        assert not allowed(s, auditor, "audit.read", None)


# --- the holes of issue #12, one test each -------------------------------------------------------

def test_no_operation_borrows_another_ones_permission() -> None:
    """cancel was run.create, resume (the coordinator) run.create, token revoke user.disable, config
    show instance.configure (in the CLI)."""
    calls = operations_called()
    assert calls["scale/service.py:cancel"] == {"run.cancel"}
    for fn in ("coordinate", "start_thread", "start_process"):
        assert calls[f"scale/coordinator.py:{fn}"] == {"run.resume"}
    assert calls["identity/auth.py:revoke_token"] == {"token.revoke", "token.revoke_any"}
    assert calls["config_service.py:show_config"] == {"config.read"}
    assert calls["identity/users.py:whoami"] == {"user.whoami"}
    assert not any(key.startswith("cli/") for key in calls), "an adapter authorizes by itself"


def test_a_user_without_a_role_reads_no_audit_event(sqlite_instance: Instance) -> None:
    """Issue #12's finding: a signed-in user with no role read every event through ``audit prove``."""
    from sqlalchemy import select

    from nextstat_pro.audit.service import EventFilter, prove, read_events
    from nextstat_pro.db.models import AuditEvent

    from .identity_helpers import add_user, session_for

    inst = sqlite_instance
    add_user(inst, "nobody", None, PASSWORD)
    add_user(inst, "vic", "viewer", PASSWORD)
    with inst.db.transaction() as s:
        from nextstat_pro.projects import create_project

        create_project(s, inst.context(), "secret")
    nobody, vic = session_for(inst, "nobody", PASSWORD), session_for(inst, "vic", PASSWORD)
    with inst.db.transaction() as s:
        secret = s.scalar(select(AuditEvent.seq).where(AuditEvent.project == "secret"))
        default = s.scalar(select(AuditEvent.seq).where(AuditEvent.project == "default"))
    for f in (EventFilter(), EventFilter(project="default"), EventFilter(project="secret")):
        with pytest.raises(PermissionDeniedError):
            read_events(inst, nobody, f)
    with pytest.raises(NotFoundError) as missing:
        prove(inst, nobody, "999999")
    for seq in (secret, default):
        with pytest.raises(NotFoundError) as refused:
            prove(inst, nobody, str(seq))
        assert str(refused.value).replace(str(seq), "X") == str(missing.value).replace("999999", "X")
    # A viewer reads their project's trail, and only theirs.
    assert {e.project for e in read_events(inst, vic, EventFilter(project="default"))} == {"default"}
    with pytest.raises(PermissionDeniedError):
        read_events(inst, vic, EventFilter(project="secret"))
    with pytest.raises(PermissionDeniedError):
        read_events(inst, vic, EventFilter())


def test_whoami_reports_the_token_cap_and_config_show_is_a_service(sqlite_instance: Instance) -> None:
    from nextstat_pro.config_service import show_config
    from nextstat_pro.identity import auth
    from nextstat_pro.identity.users import whoami

    from .identity_helpers import add_user, session_for

    inst = sqlite_instance
    add_user(inst, "eddie", "editor", PASSWORD)
    eddie = session_for(inst, "eddie", PASSWORD)
    cred = auth.create_token(inst, eddie, "default", "viewer", "ci", 30)
    me = whoami(inst, auth.authenticate(inst, cred.token))
    assert (me.credential, me.token_id, me.token_project, me.token_role) == ("api", cred.token_id, "default",
                                                                             "viewer")
    assert me.roles == {"default": "viewer"}  # editor, capped by the token
    assert whoami(inst, eddie).roles == {"default": "editor"} and whoami(inst, eddie).token_role is None
    with pytest.raises(PermissionDeniedError, match="may not config.read"):
        show_config(inst, eddie)
    assert show_config(inst, inst.context()).db_url == inst.config.db_url  # no password in a SQLite URL


# --- one service shape (issue #12) ---------------------------------------------------------------

SHAPED = ["identity/users.py", "identity/auth.py", "identity/resets.py", "audit/service.py", "audit/export.py",
          "config_service.py"]


def test_identity_audit_and_config_operations_take_the_instance_not_a_session() -> None:
    """Operations own their transaction: a public function of these modules takes the instance
    first (a database function taking a ``Session`` is private or in a records module)."""
    analyser = Analyser(SRC)
    wrong = []
    for rel in SHAPED:
        mod = analyser.module(rel)
        assert mod is not None
        for name, fn in mod.functions.items():
            if name.startswith("_") or name in ("check_new_user", "create_first_admin", "actor_for", "check_password",
                                                "login", "parse_token"):
                continue
            first = fn.args.args[0].annotation if fn.args.args else None
            if first is None or ast.unparse(first) != "Instance":
                wrong.append(f"{rel}:{name}")
    assert wrong == []


def test_the_identity_and_audit_commands_open_no_transaction() -> None:
    """The adapter only calls operations and renders: no database session in any CLI module but
    common.py's (authentication, which makes the context every operation takes)."""
    for path in sorted((SRC / "cli").glob("*.py")):
        if path.name == "common.py":
            continue
        text = path.read_text()
        assert "db.transaction(" not in text and "db.read(" not in text, path.name


def test_a_run_the_caller_may_not_read_answers_as_a_missing_one(sqlite_instance: Instance, tmp_path: Path) -> None:
    """No existence oracle for runs either: show, result, artifacts, export, cancel, status and sign
    of another project's run answer exactly as for a run that does not exist (and the probe is
    still audited as a denial)."""
    from sqlalchemy import select

    from nextstat_pro.db.models import AuditEvent
    from nextstat_pro.engine import InputFile
    from nextstat_pro.runs import RunRequest, run_task
    from nextstat_pro.runs.export import export_run
    from nextstat_pro.runs.reads import run_artifacts, run_result, show_run
    from nextstat_pro.scale.service import cancel, status_of

    from .conftest import shared
    from .identity_helpers import add_user, session_for

    inst = sqlite_instance
    workspace = InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))
    run_id = run_task(inst, inst.context(), RunRequest("fit", "default", {}, None, [workspace])).run_id
    add_user(inst, "nobody", None, PASSWORD)
    nobody = session_for(inst, "nobody", PASSWORD)
    missing = "0" * 8 + run_id[8:]
    calls = {
        "show": lambda ref: show_run(inst, nobody, ref),
        "result": lambda ref: run_result(inst, nobody, ref),
        "artifacts": lambda ref: run_artifacts(inst, nobody, ref),
        "export": lambda ref: export_run(inst, nobody, ref, tmp_path / ref),
        "cancel": lambda ref: cancel(inst, nobody, ref, "stop"),
        "status": lambda ref: status_of(inst, nobody, ref),
    }
    for name, call in calls.items():
        answers = []
        for ref in (run_id, missing):
            with pytest.raises(NotFoundError) as info:
                call(ref)
            answers.append(str(info.value).replace(ref, "REF"))
        assert answers[0] == answers[1], name
    with inst.db.transaction() as s:
        denied = s.scalars(select(AuditEvent.body).where(AuditEvent.action == "access.denied")).all()
    assert len(denied) == len(calls)


def test_a_push_the_caller_may_not_make_reads_no_file(sqlite_instance: Instance, tmp_path: Path) -> None:
    """A viewer naming a path learns nothing of it: refused before the file is read."""
    from nextstat_pro.hub.push import push_file

    from .identity_helpers import add_user, session_for

    inst = sqlite_instance
    add_user(inst, "vic", "viewer", PASSWORD)
    vic = session_for(inst, "vic", PASSWORD)
    for path in (tmp_path / "does-not-exist.json", Path("/etc/shadow")):
        with pytest.raises(PermissionDeniedError, match="may not hub.push"):
            push_file(inst, vic, "default", "model", "m", path)
