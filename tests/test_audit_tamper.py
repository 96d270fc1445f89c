"""Tamper evidence: mutations made as an insider with full database rights (guards off).

Each mutation runs inside one transaction that is rolled back afterwards, with the
append-only triggers switched off for it: SQLite drops them (DDL is transactional there),
PostgreSQL sets ``session_replication_role = replica`` (which superusers may). The
witnessed checkpoints live outside the database and are left alone, as the threat model
says. `audit verify` must detect every single mutation.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from nextstat_pro.audit.events import seal_with
from nextstat_pro.audit.service import make_checkpoint
from nextstat_pro.audit.verify import verify_log
from nextstat_pro.canonical import canonical_json, sha256_hex
from nextstat_pro.instance import Instance
from nextstat_pro.projects import create_project

N_EVENTS = 60
MUTATIONS = 1000
TRIGGERS = {
    "audit_events": ("audit_events_no_update", "audit_events_no_delete"),
}


def disable_guards(s: Session) -> None:
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        for name in TRIGGERS["audit_events"]:
            s.execute(text(f"DROP TRIGGER {name}"))


def rows(s: Session) -> list[tuple[int, str, str, str]]:
    return [tuple(r) for r in s.execute(text("SELECT seq, body, hash, mac FROM audit_events ORDER BY seq"))]  # type: ignore[misc]


def write_event(s: Session, seq: int, body: dict, prev: str, mac: str | None = None) -> str:  # type: ignore[type-arg]
    body = {**body, "seq": seq, "prev_hash": prev}
    data = canonical_json(body).decode()
    digest = sha256_hex(data.encode())
    s.execute(
        text("UPDATE audit_events SET body = :b, hash = :h, prev_hash = :p, mac = :m, action = :a WHERE seq = :s"),
        {"b": data, "h": digest, "p": prev, "m": mac or "0" * 64, "a": body["action"], "s": seq},
    )
    return digest


def mutate(s: Session, kind: str, rng: random.Random, n: int) -> None:
    events = rows(s)
    i = rng.randrange(n)
    seq, body, digest, mac = events[i]
    if kind == "flip-byte":
        raw = bytearray(body.encode())
        pos = rng.randrange(len(raw))
        raw[pos] ^= 1 << rng.randrange(7)
        s.execute(text("UPDATE audit_events SET body = :b WHERE seq = :s"),
                  {"b": raw.decode("utf-8", "replace"), "s": seq})
    elif kind == "edit-and-rehash":
        # Change a field, then recompute this hash and every later hash: a consistent chain.
        doc = json.loads(body)
        doc["after"] = {"tampered": rng.random()}
        prev = events[i - 1][2] if i else "0" * 64
        for j in range(i, n):
            doc_j = doc if j == i else json.loads(events[j][1])
            prev = write_event(s, events[j][0], doc_j, prev)
    elif kind == "delete":
        s.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": seq})
    elif kind == "swap":
        j = rng.randrange(n)
        while j == i:
            j = rng.randrange(n)
        # Exchange the positions of two events (their rows keep their own content).
        for old, new in ((seq, -1), (events[j][0], seq), (-1, events[j][0])):
            s.execute(text("UPDATE audit_events SET seq = :n WHERE seq = :o"), {"n": new, "o": old})
    elif kind == "forge-append":
        doc = json.loads(events[-1][1])
        doc.update(action="run.succeeded", reason="forged")
        data = {**doc, "seq": n + 1, "prev_hash": events[-1][2], "event_id": "00000000-0000-7000-8000-000000000000"}
        body_s = canonical_json(data).decode()
        s.execute(text(
            "INSERT INTO audit_events (seq, event_id, ts, actor_id, action, target_type, target_id, project, body,"
            " prev_hash, hash, mac) VALUES (:seq, :eid, :ts, :actor, :action, :tt, :tid, :p, :body, :prev, :h, :m)"),
            {"seq": n + 1, "eid": data["event_id"], "ts": data["ts"], "actor": data["actor"]["id"],
             "action": data["action"], "tt": data["target"]["type"], "tid": data["target"]["id"],
             "p": data["project"], "body": body_s, "prev": events[-1][2], "h": sha256_hex(body_s.encode()),
             "m": seal_with(b"guessed-key-guessed-key-guessed-", sha256_hex(body_s.encode()))})
    elif kind == "truncate":
        k = rng.randrange(1, 6)
        s.execute(text("DELETE FROM audit_events WHERE seq > :s"), {"s": n - k})
    elif kind == "edit-column":
        s.execute(text("UPDATE audit_events SET action = 'run.cancelled' WHERE seq = :s"), {"s": seq})
    else:  # pragma: no cover
        raise AssertionError(kind)


KINDS = ("flip-byte", "edit-and-rehash", "delete", "swap", "forge-append", "truncate", "edit-column")


@pytest.fixture
def populated(instance: Instance) -> Instance:
    ctx = instance.context()
    for i in range(N_EVENTS - 4):  # init wrote 4: user.created, user.key_created, instance, project
        with instance.db.transaction() as s:
            create_project(s, ctx, f"x{i}", f"description {i}")
    make_checkpoint(instance, instance.context())
    return instance


def test_every_mutation_is_detected(populated: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    inst = populated
    rng = random.Random(20261127)
    verifier, origin, key, witness = inst.log_verifier(), inst.config.log_origin, inst.db.seal_key, inst.witness()
    assert key is not None
    with inst.db.transaction() as s:
        assert verify_log(s, verifier, origin, key, witness).ok
    detected: Counter[str] = Counter()
    tried: Counter[str] = Counter()
    for _ in range(MUTATIONS):
        kind = rng.choice(KINDS)
        tried[kind] += 1
        with inst.db.engine.connect() as conn:
            trans = conn.begin()
            s = Session(bind=conn)
            disable_guards(s)
            mutate(s, kind, rng, N_EVENTS)
            s.flush()
            report = verify_log(s, verifier, origin, key, witness)
            if not report.ok:
                detected[kind] += 1
            s.close()
            trans.rollback()
    rate = sum(detected.values()) / MUTATIONS
    with capsys.disabled():  # the detection rate belongs in every test log
        print(f"\ntamper fuzz ({inst.db.dialect}): {sum(detected.values())}/{MUTATIONS} detected ({rate:.1%}); "
              + ", ".join(f"{k} {detected[k]}/{tried[k]}" for k in KINDS))
    assert detected == tried
    with inst.db.transaction() as s:  # every mutation was rolled back
        assert verify_log(s, verifier, origin, key, witness).ok
