"""``audit verify``'s state part: the tables that authorizations, signatures, registry
references and manifests depend on, re-derived from the sealed events and compared row by row.

The log is the source of truth and these tables are its projection: whoever rewrites a table
with plain SQL (triggers dropped) but cannot forge a sealed event leaves a row that differs
from what the events say, or a row no event created. Run only after ``verify_log`` has passed,
so every body read here is one the instance wrote.

Checked, in this order (the first difference is reported): users (exist, username, printed
name, instance admin, auditor, disabled), role bindings, projects (name, creator), runs (project, author,
final status, manifest digest), run artifacts (name and digest per run), hub items, hub
versions (item, digest, semver), aliases, signatures (one per ``run.signed`` event: run,
signer, key, meaning, decision), user keys (owner, public key, the after-admin-reset mark, and
retired unless the user's newest key, from ``user.key_created``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..db.models import (
    AuditEvent,
    HubAlias,
    HubItem,
    HubVersion,
    Project,
    RoleBinding,
    Run,
    RunArtifact,
    Signature,
    User,
    UserKey,
)

# A value the events cannot tell (they predate the field that carries it): not compared.
UNKNOWN: Any = object()
_RUN_STATUS_ACTIONS = frozenset({"run.created", "run.started", "run.resumed", "run.queued", "run.running",
                                 "run.succeeded", "run.failed", "run.cancelled"})
_ACTIONS = frozenset({"user.created", "user.disabled", "auditor.granted", "auditor.revoked", "role.granted",
                      "role.changed", "role.revoked", "project.created", "artifact.stored", "run.signed",
                      "user.key_created", "hub.alias.moved"}) | _RUN_STATUS_ACTIONS
TABLES = ("users", "role_bindings", "projects", "runs", "run_artifacts", "hub_items", "hub_versions",
          "hub_aliases", "signatures", "user_keys")


@dataclass(frozen=True)
class StateFinding:
    """The first row whose table disagrees with the log."""

    table: str
    key: str
    column: str
    expected: str
    found: str

    def line(self) -> str:
        return (f"{self.table} row {self.key}: {self.column} is {self.found}, the sealed events say "
                f"{self.expected}")


@dataclass
class StateReport:
    rows: dict[str, int] = field(default_factory=dict)  # rows checked per table
    events: int = 0  # events the state was derived from
    finding: StateFinding | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.finding is None


Rows = dict[Any, dict[str, Any]]


@dataclass
class _Derived:
    users: Rows = field(default_factory=dict)
    bindings: Rows = field(default_factory=dict)
    projects: Rows = field(default_factory=dict)
    project_ids: dict[str, str] = field(default_factory=dict)  # name -> id (names are never reused)
    runs: Rows = field(default_factory=dict)
    artifacts: Rows = field(default_factory=dict)  # (run_id, name) -> digest
    items: Rows = field(default_factory=dict)  # (project_id, kind, name) -> {}
    versions: Rows = field(default_factory=dict)
    aliases: Rows = field(default_factory=dict)  # (project_id, kind, item name, alias) -> version_id
    signatures: Rows = field(default_factory=dict)
    keys: Rows = field(default_factory=dict)
    active_key: dict[str, str] = field(default_factory=dict)  # user id -> their newest key's id
    missing: dict[str, int] = field(default_factory=dict)  # event fields absent from old events

    def lacking(self, what: str) -> Any:
        self.missing[what] = self.missing.get(what, 0) + 1
        return UNKNOWN


def _get(d: _Derived, data: Mapping[str, Any] | None, key: str, what: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        return d.lacking(what)
    return data[key]


def _apply(d: _Derived, body: dict[str, Any]) -> None:
    action: str = body["action"]
    target_type, target_id = body["target"]["type"], body["target"]["id"]
    actor, project = body["actor"]["id"], body.get("project")
    before, after = body.get("before") or {}, body.get("after") or {}
    if action == "user.created":
        d.users[target_id] = {"username": _get(d, after, "username", "user.created username"),
                              "printed_name": _get(d, after, "printed_name", "user.created printed_name"),
                              "is_instance_admin": bool(after.get("instance_admin", False)),
                              "is_auditor": bool(after.get("auditor", False)), "disabled": False}
    elif action == "user.disabled" and target_id in d.users:
        d.users[target_id]["disabled"] = True
    elif action in ("auditor.granted", "auditor.revoked") and target_id in d.users:
        d.users[target_id]["is_auditor"] = action == "auditor.granted"
    elif action == "project.created":
        name = after.get("name") or project or ""
        d.projects[target_id] = {"name": name, "created_by": actor}
        d.project_ids[name] = target_id
    elif action in ("role.granted", "role.changed", "role.revoked"):
        user_id = (after if action != "role.revoked" else before).get("user_id")
        project_id = d.project_ids.get(project or "")
        if user_id is None or project_id is None:
            d.lacking(f"{action} user_id")
            return
        if action == "role.revoked":
            d.bindings.pop((user_id, project_id), None)
        else:
            d.bindings[(user_id, project_id)] = {"role": after.get("role")}
    elif action in _RUN_STATUS_ACTIONS and target_type == "run":
        if action == "run.created":
            d.runs[target_id] = {"project_id": d.project_ids.get(project or "", UNKNOWN), "created_by": actor,
                                 "status": after.get("status", "queued"), "manifest_digest": None}
        elif target_id in d.runs and "status" in after:
            run = d.runs[target_id]
            run["status"] = after["status"]
            if "manifest_digest" in after:
                run["manifest_digest"] = after["manifest_digest"]
    elif action == "artifact.stored":
        run_id, name = after.get("run_id"), after.get("name")
        if run_id is None or name is None:
            d.lacking("artifact.stored run_id/name")
            return
        d.artifacts[(run_id, name)] = {"digest": after.get("digest", target_id)}
    elif action.startswith("hub.") and action.endswith(".pushed"):
        kind = action.split(".")[1]
        item = (d.project_ids.get(project or "", UNKNOWN), kind, after.get("name"))
        d.items.setdefault(item, {})
        d.versions[target_id] = {"item": item, "digest": _get(d, after, "digest", "hub push digest"),
                                 "semver": after.get("semver")}
    elif action == "hub.alias.moved":
        kind = target_type.removeprefix("hub_").removesuffix("_alias")
        name, _, alias = target_id.rpartition("@")
        d.aliases[(d.project_ids.get(project or "", UNKNOWN), kind, name, alias)] = {
            "version_id": _get(d, after, "version_id", "hub.alias.moved version_id")}
    elif action == "run.signed":
        sig_id = after.get("signature_id")
        if sig_id is None:
            d.lacking("run.signed signature_id")
            return
        d.signatures[sig_id] = {"run_id": target_id, "user_id": actor,
                                "key_id": _get(d, after, "key_id", "run.signed key_id"),
                                "meaning": _get(d, after, "meaning", "run.signed meaning"),
                                "decision": _get(d, after, "decision", "run.signed decision")}
    elif action == "user.key_created":
        key_id = after.get("key_id")
        if key_id is None:
            d.lacking("user.key_created key_id")
            return
        # A user's newer key retires the one before (a reset is the only path that retires one,
        # and it makes the next key in the same transaction): only the newest is active.
        previous = d.active_key.get(target_id)
        if previous is not None:
            d.keys[previous]["retired"] = True
        d.active_key[target_id] = key_id
        d.keys[key_id] = {"user_id": target_id,
                          "public_key": _get(d, after, "public_key", "user.key_created public_key"),
                          "after_admin_reset": _get(d, after, "after_admin_reset",
                                                    "user.key_created after_admin_reset"),
                          "retired": False}


def derive(session: Session, batch: int = 5_000) -> tuple[_Derived, int]:
    """The state the sealed events describe, and how many events it was derived from. Only the
    actions that shape these tables are read (the ``action`` column agrees with the hashed body:
    verify_log checked it)."""
    d = _Derived()
    t = AuditEvent.__table__.c
    rows = session.execute(
        select(t.body).where(or_(t.action.in_(_ACTIONS), t.action.like("hub.%.pushed")))
        .order_by(t.seq).execution_options(yield_per=batch)
    )
    n = 0
    try:
        for (body,) in rows:
            _apply(d, json.loads(body))
            n += 1
    finally:
        rows.close()
    return d, n


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, tuple):
        return "/".join(_show(v) for v in value)
    return json.dumps(value) if isinstance(value, str | bool) else str(value)


def _compare(table: str, expected: Rows, found: Iterable[tuple[Any, dict[str, Any]]], report: StateReport,
             key_names: str) -> StateFinding | None:
    """The first row of ``found`` that differs from ``expected`` (in key order), else the first
    expected row that is missing."""
    seen: set[Any] = set()
    n = 0
    for key, row in sorted(found, key=lambda kv: _show(kv[0])):
        n += 1
        shown = f"{key_names}={_show(key)}"
        if key in seen:
            return StateFinding(table, shown, "(row)", "one row", "a second row")
        seen.add(key)
        want = expected.get(key)
        if want is None:
            return StateFinding(table, shown, "(row)", "no such row (no event created it)", "present")
        for column, value in want.items():
            if value is not UNKNOWN and row.get(column) != value:
                return StateFinding(table, shown, column, _show(value), _show(row.get(column)))
    report.rows[table] = n
    for key in sorted(expected, key=_show):
        if key not in seen:
            return StateFinding(table, f"{key_names}={_show(key)}", "(row)", "a row (its event is sealed)", "missing")
    return None


def check_state(session: Session) -> StateReport:
    """Compare the tables with the state the sealed events describe; the first difference, by
    table in the order of ``TABLES``, then by primary key."""
    report = StateReport()
    d, report.events = derive(session)
    for what, count in sorted(d.missing.items()):
        report.warnings.append(f"state: {count} event(s) predate the field {what}: not compared for those rows")

    def table(*columns: Any) -> list[Any]:
        return list(session.execute(select(*columns)).all())

    items_by_id = {i: (p, k, n) for i, p, k, n in table(HubItem.id, HubItem.project_id, HubItem.kind, HubItem.name)}
    checks: list[tuple[str, Rows, list[tuple[Any, dict[str, Any]]], str]] = [
        ("users", d.users, [(r[0], {"username": r[1], "is_instance_admin": bool(r[2]), "is_auditor": bool(r[3]),
                                    "disabled": bool(r[4]), "printed_name": r[5]})
                            for r in table(User.id, User.username, User.is_instance_admin, User.is_auditor,
                                           User.disabled, User.printed_name)], "id"),
        ("role_bindings", d.bindings, [((r[0], r[1]), {"role": r[2]}) for r in table(
            RoleBinding.user_id, RoleBinding.project_id, RoleBinding.role)], "user_id/project_id"),
        ("projects", d.projects, [(r[0], {"name": r[1], "created_by": r[2]})
                                  for r in table(Project.id, Project.name, Project.created_by)], "id"),
        ("runs", d.runs, [(r[0], {"project_id": r[1], "created_by": r[2], "status": r[3], "manifest_digest": r[4]})
                          for r in table(Run.id, Run.project_id, Run.created_by, Run.status, Run.manifest_digest)],
         "id"),
        ("run_artifacts", d.artifacts, [((r[0], r[1]), {"digest": r[2]}) for r in table(
            RunArtifact.run_id, RunArtifact.name, RunArtifact.digest)], "run_id/name"),
        ("hub_items", d.items, [(v, {}) for v in items_by_id.values()], "project_id/kind/name"),
        ("hub_versions", d.versions, [(r[0], {"item": items_by_id.get(r[1]), "digest": r[2], "semver": r[3]})
                                      for r in table(HubVersion.id, HubVersion.item_id, HubVersion.digest,
                                                     HubVersion.semver)], "id"),
        ("hub_aliases", d.aliases, [((*items_by_id.get(r[0], (None, None, None)), r[1]), {"version_id": r[2]})
                                    for r in table(HubAlias.item_id, HubAlias.alias, HubAlias.version_id)],
         "project_id/kind/item/alias"),
        ("signatures", d.signatures, [(r[0], {"run_id": r[1], "user_id": r[2], "key_id": r[3], "meaning": r[4],
                                              "decision": r[5]})
                                      for r in table(Signature.id, Signature.run_id, Signature.user_id,
                                                     Signature.key_id, Signature.meaning, Signature.decision)],
         "id"),
        ("user_keys", d.keys, [(r[0], {"user_id": r[1], "public_key": r[2], "after_admin_reset": bool(r[3]),
                                       "retired": r[4] is not None})
                               for r in table(UserKey.key_id, UserKey.user_id, UserKey.public_key,
                                              UserKey.after_admin_reset, UserKey.retired_at)], "key_id"),
    ]
    for name, expected, found, key_names in checks:
        report.finding = _compare(name, expected, found, report, key_names)
        if report.finding is not None:
            break
    return report


def check_config(session: Session, settable: Mapping[str, Any]) -> tuple[StateFinding | None, list[str]]:
    """Compare the instance's settable configuration (``config.settable_values`` of config.json)
    with what ``instance.initialized`` wrote and the ``config.changed`` events after it: a hand
    edit of config.json (a loosened approval policy, a longer lease) is the first differing key.
    An instance initialised before the init event carried its configuration is compared on the
    keys its events changed only (from the first change's ``before``), with a warning."""
    t = AuditEvent.__table__.c
    expected: dict[str, Any] = {}
    known: set[str] = set()  # top-level keys whose expected value the events give
    warnings: list[str] = []
    rows = session.execute(select(t.action, t.target_id, t.body)
                           .where(t.action.in_(("instance.initialized", "config.changed"))).order_by(t.seq))
    for action, key, body in rows:
        after = json.loads(body).get("after") or {}
        if action == "instance.initialized":
            if isinstance(after.get("config"), dict):
                expected.update(after["config"])
                known.update(after["config"])
            else:
                warnings.append("state: the instance was initialised before its configuration was sealed: only "
                                "keys changed since are compared with config.json")
            continue
        section, _, name = str(key).partition(".")
        if section not in known:  # first change of a key the init event did not carry
            before = json.loads(body).get("before") or {}
            expected[section] = _with(settable.get(section), name, before.get(key)) if name else before.get(key)
            known.add(section)
        expected[section] = _with(expected.get(section), name, after.get(key)) if name else after.get(key)
    for section in sorted(known):
        if section in settable and expected.get(section) != settable[section]:
            return StateFinding("config.json", f"key={section!r}", "value", _show(expected.get(section)),
                                _show(settable[section])), warnings
    return None, warnings


def _with(section: Any, name: str, value: Any) -> dict[str, Any]:
    out = dict(section) if isinstance(section, Mapping) else {}
    out[name] = value
    return out
