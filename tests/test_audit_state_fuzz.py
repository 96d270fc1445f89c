"""The tamper fuzz, extended to the state tables: 1,000 random insider edits of the rows that
authorizations, signatures, registry references and manifests depend on (raw SQL, guards off), each
in a transaction of its own that is rolled back; the state check must name every one."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from nextstat_pro.audit.state import check_state
from nextstat_pro.instance import Instance

from .test_audit_state import session_of_work
from .test_audit_witnessing import guards_off

MUTATIONS = 1000
# The columns the state check compares, per table (primary key first, for picking a row).
COLUMNS: dict[str, tuple[tuple[str, ...], list[str]]] = {
    "users": (("id",), ["username", "printed_name", "is_instance_admin", "is_auditor", "disabled"]),
    "role_bindings": (("user_id", "project_id"), ["role", "user_id", "project_id"]),
    "projects": (("id",), ["name", "created_by"]),
    "runs": (("id",), ["project_id", "created_by", "status", "manifest_digest"]),
    "run_artifacts": (("id",), ["digest", "name"]),
    "hub_items": (("id",), ["name", "kind"]),
    "hub_versions": (("id",), ["digest", "semver", "item_id"]),
    "hub_aliases": (("item_id", "alias"), ["version_id", "alias"]),
    "signatures": (("id",), ["user_id", "key_id", "meaning", "decision"]),
    "user_keys": (("key_id",), ["public_key", "after_admin_reset", "retired_at", "user_id"]),
}


def _other(s: Session, table: str, column: str, value: Any, rng: random.Random) -> Any:
    """A different value of the column's type: another row's value where one exists (a plausible
    forgery), else an edited copy."""
    if isinstance(value, bool) or column.startswith(("is_", "disabled", "after_")):
        return not bool(value)
    if column == "retired_at":
        return None if value is not None else "2026-01-01 00:00:00"
    others = [v for (v,) in s.execute(text(f"SELECT DISTINCT {column} FROM {table}")) if v != value and v is not None]
    if others and rng.random() < 0.7:
        return rng.choice(others)
    if column in ("role",):
        return rng.choice([r for r in ("viewer", "editor", "admin") if r != value])
    if column in ("status",):
        return rng.choice([r for r in ("queued", "running", "succeeded", "failed", "cancelled") if r != value])
    if column in ("meaning",):
        return rng.choice([m for m in ("authorship", "review", "approval", "responsibility") if m != value])
    if column in ("decision",):
        return "reject" if value == "approve" else "approve"
    return (value or "x") + "x" if isinstance(value, str) or value is None else value


def _mutate(s: Session, rng: random.Random) -> str | None:
    """One edit; its kind, or None when the draw cannot be applied (an empty table, a value with no
    alternative, a constraint the edit would break)."""
    table = rng.choice(sorted(COLUMNS))
    _, columns = COLUMNS[table]
    rows = list(s.execute(text(f"SELECT * FROM {table}")).mappings())
    if not rows:
        return None
    row = rng.choice(rows)
    keys = COLUMNS[table][0]  # by primary key: JSON columns have no equality on PostgreSQL
    where = " AND ".join(f"{k} = :w_{k}" for k in keys)
    params = {f"w_{k}": row[k] for k in keys}
    kind = rng.choice(["update", "update", "update", "delete", "insert"])
    try:
        with s.begin_nested():
            if kind == "delete":
                s.execute(text(f"DELETE FROM {table} WHERE {where}"), params)
            elif kind == "insert":  # a forged copy under another primary key
                key = COLUMNS[table][0][-1]
                copy = dict(row)
                copy[key] = (str(row[key]) + "-forged")
                if table == "role_bindings":  # its key is (user, project): forge for another project
                    others = [v for (v,) in s.execute(text("SELECT id FROM projects")) if v != row["project_id"]]
                    if not others:
                        return None
                    copy["project_id"], copy["user_id"] = rng.choice(others), row["user_id"]
                cols = ", ".join(copy)
                s.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(':' + c for c in copy)})"), copy)
            else:
                column = rng.choice(columns)
                new = _other(s, table, column, row[column], rng)
                if new == row[column]:
                    return None
                s.execute(text(f"UPDATE {table} SET {column} = :new WHERE {where}"), {**params, "new": new})
                kind = f"update {column}"
    except Exception:  # noqa: BLE001 -- a unique or foreign key the edit would break: draw again
        return None
    return f"{table}: {kind}"


class _Undo(Exception):
    pass


def test_every_state_table_mutation_is_detected(instance: Instance) -> None:
    session_of_work(instance)
    rng = random.Random(14)
    with instance.db.transaction() as s:
        assert check_state(s).finding is None
    applied: Counter[str] = Counter()
    missed: list[str] = []
    while sum(applied.values()) < MUTATIONS:
        try:
            with instance.db.transaction() as s:
                guards_off(s)
                kind = _mutate(s, rng)
                if kind is not None:
                    applied[kind.split(":")[0]] += 1
                    if check_state(s).finding is None:
                        missed.append(kind)
                raise _Undo  # every edit is rolled back: the next starts from the clean state
        except _Undo:
            pass
    assert missed == [], Counter(missed)
    assert sum(applied.values()) == MUTATIONS
    assert set(applied) == set(COLUMNS)  # every table was mutated
