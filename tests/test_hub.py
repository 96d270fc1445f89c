"""NS-Hub: content-addressed versions, references, aliases, metadata, runs by reference,
diff, retention, and the bad inputs — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from nextstat_pro.db.models import AuditEvent, HubVersion
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    SchemaValidationError,
    UsageError,
)
from nextstat_pro.examples import histfactory_workspace, pk_dataset, signal_patchset
from nextstat_pro.hub import parse_ref, service
from nextstat_pro.hub import retention as hub_retention
from nextstat_pro.hub.service import diff_models
from nextstat_pro.instance import Instance
from nextstat_pro.runs import RunRequest, run_task
from nextstat_pro.runs.references import resolve_inputs

from .audit_helpers import actions_after, last_seq
from .identity_helpers import add_user, session_for


def ws_file(doc: dict | None = None, name: str = "ws.json") -> InputFile:  # type: ignore[type-arg]
    return InputFile.from_bytes("workspace", name, json.dumps(doc or histfactory_workspace(), indent=1).encode())


def push_model(inst: Instance, semver: str | None = "1.0.0", doc: dict | None = None, **kw):  # type: ignore[no-untyped-def]
    return service.push(inst, inst.context(), "default", "model", "example", ws_file(doc), semver, **kw)


def counts(inst: Instance) -> tuple[int, int]:
    with inst.db.transaction() as s:
        return (s.scalar(select(func.count()).select_from(HubVersion)) or 0,
                s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_identity_is_the_content(instance: Instance) -> None:
    v1, created = push_model(instance, tags=["analysis=susy"])
    assert created and v1.version.digest.startswith("sha256:")
    # The same content, formatted differently: the existing version, no new event.
    reformatted = InputFile.from_bytes("workspace", "x.json", json.dumps(histfactory_workspace()).encode())
    before = last_seq(instance)
    again, created = service.push(instance, instance.context(), "default", "model", "example", reformatted)
    assert not created and again.version.id == v1.version.id
    assert last_seq(instance) == before
    assert instance.store.get(v1.version.digest)  # stored under its identity, digest-checked


def test_semver_is_unique_and_immutable(instance: Instance) -> None:
    push_model(instance)
    doc = histfactory_workspace()
    doc["observations"][0]["data"][0] += 1
    before = counts(instance)
    with pytest.raises(ConflictError, match="exists with other content"):
        push_model(instance, "1.0.0", doc)
    with pytest.raises(ConflictError, match="labels are immutable"):
        push_model(instance, "2.0.0")  # the 1.0.0 content under another label
    assert counts(instance) == before
    push_model(instance, "1.1.0", doc)
    with pytest.raises(DBAPIError, match="immutable"), instance.db.transaction() as s:
        s.execute(text("UPDATE hub_versions SET digest = 'sha256:00' WHERE semver = '1.1.0'"))
    with pytest.raises(DBAPIError, match="immutable"), instance.db.transaction() as s:
        s.execute(text("UPDATE hub_versions SET semver = '9.9.9' WHERE semver = '1.1.0'"))


def test_references_resolve_to_exactly_one_version(instance: Instance) -> None:
    v1, _ = push_model(instance, "1.0.0")
    doc = histfactory_workspace()
    doc["observations"][1]["data"][0] += 2
    v2, _ = push_model(instance, "1.1.0", doc)
    ctx = instance.context()
    r = lambda ref: service.resolve(instance, ctx, "default", "model", ref).version.id  # noqa: E731
    assert r("example@1.0.0") == v1.version.id
    assert r("example@latest") == r("example") == v2.version.id
    assert r(f"example@{v1.version.digest[:19]}") == v1.version.id
    service.set_alias(instance, ctx, "default", "model", "example@1.0.0", "candidate", "first look")
    assert r("example@candidate") == v1.version.id
    for bad, error, message in [
        ("example@sha256:abc", UsageError, "at least 12"),
        ("Example@1.0.0", UsageError, "malformed reference"),
        ("example@", UsageError, "malformed"),
        ("example@9.9.9", NotFoundError, "no version"),
        ("example@nosuchalias", NotFoundError, "no version"),
        ("nothere@1.0.0", NotFoundError, "no model named"),
        ("example@1.0.0#p", UsageError, "only patchsets"),
    ]:
        with pytest.raises(error, match=message):
            r(bad)
    assert str(parse_ref("a@sha256:0123456789abcdef#p1")) == "a@sha256:0123456789abcdef#p1"


def test_ambiguous_digest_prefix(instance: Instance) -> None:
    push_model(instance, "1.0.0")
    with instance.db.transaction() as s:  # two versions whose digests share 12 hex digits
        v = s.scalar(select(HubVersion))
        clash = "sha256:" + v.digest[7:19] + "f" * 52
        s.execute(text("INSERT INTO hub_versions (id, item_id, digest, semver, size, media_type, meta, description,"
                       " created_at, created_by) SELECT 'x', item_id, :d, NULL, size, media_type, meta, description,"
                       " created_at, created_by FROM hub_versions WHERE id = :i"), {"d": clash, "i": v.id})
    with pytest.raises(UsageError, match="ambiguous"):
        service.resolve(instance, instance.context(), "default", "model", "example@" + clash[:19])


def test_documents_carry_their_own_tags_and_aliases(instance: Instance) -> None:
    """Documents read the tags and aliases of all their versions at once: each must get its own."""
    ctx = instance.context()
    doc = histfactory_workspace()
    push_model(instance, "1.0.0", doc, tags=["analysis=a", "status=draft"])
    doc["observations"][0]["data"][0] += 1
    push_model(instance, "2.0.0", doc, tags=["analysis=a", "campaign=c2"])
    service.set_alias(instance, ctx, "default", "model", "example@1.0.0", "candidate", "first look")
    service.set_alias(instance, ctx, "default", "model", "example@1.0.0", "production", "validated")
    docs = {d.semver: d for d in service.versions(instance, ctx, "default", "model", "example")}
    assert docs["1.0.0"].tags == {"analysis": "a", "status": "draft"}
    assert docs["1.0.0"].aliases == ["candidate", "production"]
    assert docs["2.0.0"].tags == {"analysis": "a", "campaign": "c2"} and docs["2.0.0"].aliases == []
    found = service.list_items(instance, ctx, "default", "model", ["analysis=a"])
    assert [(d.semver, d.tags, d.aliases) for d in found] == [
        ("1.0.0", docs["1.0.0"].tags, ["candidate", "production"]), ("2.0.0", docs["2.0.0"].tags, [])]
    assert service.show(instance, ctx, "default", "model", "example@production").semver == "1.0.0"


def test_aliases_and_metadata_edits_are_audited(instance: Instance) -> None:
    push_model(instance, "1.0.0", tags=["status=draft"])
    ctx = instance.context()
    before = last_seq(instance)
    moved = service.set_alias(instance, ctx, "default", "model", "example@1.0.0", "production", "validated in review")
    edited = service.edit(instance, ctx, "default", "model", "example@1.0.0", "QA done", tags=["status=validated"],
                          description="four-channel example")
    assert actions_after(instance, before) == ["hub.alias.moved", "hub.model.edited"]
    # Each change returns the version's document as changed (the HTTP response, `--json`).
    assert (moved.semver, moved.aliases, moved.tags) == ("1.0.0", ["production"], {"status": "draft"})
    assert (edited.tags, edited.description, edited.aliases) == ({"status": "validated"}, "four-channel example",
                                                                 ["production"])
    shown = service.show(instance, ctx, "default", "model", "example@1.0.0").model_dump(exclude={"runs"})
    assert edited.model_dump() == shown
    with instance.db.transaction() as s:
        ev = s.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()
        body = json.loads(ev.body)
    assert body["before"]["tags"] == {"status": "draft"} and body["after"]["tags"] == {"status": "validated"}
    with pytest.raises(UsageError, match="reason is required"):
        service.set_alias(instance, ctx, "default", "model", "example@1.0.0", "other", "")


def test_rbac_viewer_reads_editor_pushes_admin_protects(instance: Instance) -> None:
    push_model(instance)
    add_user(instance, "vi", "viewer", "viewer-password-1")
    add_user(instance, "ed", "editor", "editor-password-1")
    vi, ed = session_for(instance, "vi", "viewer-password-1"), session_for(instance, "ed", "editor-password-1")
    assert service.resolve(instance, vi, "default", "model", "example@1.0.0")
    before = counts(instance)
    with pytest.raises(PermissionDeniedError, match="hub.push"):
        service.push(instance, vi, "default", "model", "other", ws_file())
    with pytest.raises(PermissionDeniedError, match="hub.alias_protected"):
        service.set_alias(instance, ed, "default", "model", "example@1.0.0", "production", "r")
    service.set_alias(instance, ed, "default", "model", "example@1.0.0", "candidate", "r")
    assert counts(instance)[0] == before[0]


def test_bad_inputs_store_nothing(instance: Instance) -> None:
    push_model(instance)
    before = counts(instance)
    bad_ws = histfactory_workspace()
    bad_ws["channels"][1]["samples"][0]["modifiers"][0]["type"] = "nonsense"
    with pytest.raises(SchemaValidationError, match=r"\$\.channels\[1\]\.samples\[0\]\.modifiers\[0\]"):
        service.push(instance, instance.context(), "default", "model", "bad", ws_file(bad_ws))
    other_ws = histfactory_workspace()
    other_ws["observations"][0]["data"][0] += 1
    foreign = signal_patchset(other_ws, 2)  # made for another workspace
    with pytest.raises(InputError, match="made for another workspace"):
        service.push(instance, instance.context(), "default", "patchset", "sig",
                     InputFile.from_bytes("patchset", "p.json", json.dumps(foreign).encode()), base_ref="example@1.0.0")
    with pytest.raises(NotFoundError, match="no project named 'nope'"):
        service.push(instance, instance.context(), "nope", "model", "x", ws_file())
    with pytest.raises(UsageError, match="invalid version"):
        push_model(instance, "v1")
    with pytest.raises(InputError, match="line 3 has"):
        service.push(instance, instance.context(), "default", "dataset", "d",
                     InputFile.from_bytes("dataset", "d.csv", b"a,b\n1,2\n3\n"))
    assert counts(instance) == before


def test_runs_reference_exact_versions(instance: Instance) -> None:
    ws = histfactory_workspace()
    push_model(instance, "1.0.0", ws)
    ps = signal_patchset(ws, 5)
    ctx = instance.context()
    service.push(instance, ctx, "default", "patchset", "signals",
                 InputFile.from_bytes("patchset", "s.json", json.dumps(ps).encode()), "1.0.0", base_ref="example@1.0.0")
    service.push(instance, ctx, "default", "dataset", "pk", InputFile.from_bytes("dataset", "pk.csv",
                                                                                   pk_dataset().encode()), "0.1.0")
    files, uses, patch = resolve_inputs(instance, ctx, "default", [("patchset", "signals@1.0.0#sig_1000_100")])
    assert patch == "sig_1000_100" and [u.role for u in uses] == ["workspace", "patchset"]
    out = run_task(instance, ctx, RunRequest("upper-limit", "default", {}, None, files, patch, uses))
    manifest = json.loads(instance.store.get(out.manifest_digest))
    assert [(v["name"], v["semver"]) for v in manifest["versions"]] == [("example", "1.0.0"), ("signals", "1.0.0")]
    shown = service.show(instance, ctx, "default", "model", "example@1.0.0", with_runs=True)
    assert shown.runs is not None and [r.run_id for r in shown.runs] == [out.run_id]
    files, uses, _ = resolve_inputs(instance, ctx, "default", [("dataset", "pk@0.1.0")])
    assert run_task(instance, ctx, RunRequest("pk-nlme", "default", {}, None, files, None, uses)).status == "succeeded"


def test_diff_is_semantic(instance: Instance) -> None:
    ws = histfactory_workspace()
    push_model(instance, "1.0.0", ws)
    doc = json.loads(json.dumps(ws))
    doc["channels"][0]["samples"][1]["data"][2] *= 1.5
    doc["channels"][2]["samples"][0]["modifiers"].append({"name": "new_np", "type": "normsys",
                                                          "data": {"hi": 1.1, "lo": 0.9}})
    doc["observations"][3]["data"][0] += 5
    push_model(instance, "1.1.0", doc)
    out = diff_models(instance, instance.context(), "default", "example@1.0.0", "example@1.1.0")
    paths = [(c.path, c.change) for c in out.changes]
    assert ("SR_low/ttbar/data", "1 bin(s) changed") in paths
    assert ("CR_ttbar/ttbar/modifier normsys:new_np", "added") in paths
    assert ("observations CR_wjets", "data changed") in paths
    assert len(paths) == 3


def test_archive_and_purge_follow_the_policy(instance: Instance) -> None:
    v, _ = push_model(instance, "1.0.0")
    ctx = instance.context()
    assert hub_retention.archive(instance, ctx, "default", "model", "example@1.0.0", "cold storage").archived
    assert not instance.store.exists(v.version.digest)
    assert service.resolve(instance, ctx, "default", "model", "example@1.0.0").version.archived_at is not None
    files, _, _ = resolve_inputs(instance, ctx, "default", [("model", "example@1.0.0")])
    assert json.loads(files[0].data)["channels"]  # still readable and verified, from the archive
    with pytest.raises(ConflictError, match="kept 10 years"):
        hub_retention.purge(instance, ctx, "default", "model", "example@1.0.0", "too early")
    from nextstat_pro.config_service import set_config

    set_config(instance, ctx, "hub_min_years", "0", "test")
    service.set_alias(instance, ctx, "default", "model", "example@1.0.0", "candidate", "x")
    with pytest.raises(ConflictError, match="alias 'candidate' points at it"):
        hub_retention.purge(instance, ctx, "default", "model", "example@1.0.0", "r")
    v2, _ = push_model(instance, "2.0.0", {**histfactory_workspace(), "version": "1.0.0"} | {"observations": [
        {"name": o["name"], "data": [x + 1 for x in o["data"]]} for o in histfactory_workspace()["observations"]]})
    run_task(instance, ctx, RunRequest("fit", "default", {}, None,
                                       *resolve_inputs(instance, ctx, "default", [("model", "example@2.0.0")])[:1],
                                       None, resolve_inputs(instance, ctx, "default", [("model", "example@2.0.0")])[1]))
    with pytest.raises(ConflictError, match="uses it"):
        hub_retention.purge(instance, ctx, "default", "model", "example@2.0.0", "r")
    service.set_alias(instance, ctx, "default", "model", "example@2.0.0", "candidate", "move")
    before = last_seq(instance)
    purged = hub_retention.purge(instance, ctx, "default", "model", "example@1.0.0", "superseded")
    assert purged.purged and purged.archived and purged.version_id == v.version.id
    assert actions_after(instance, before) == ["hub.model.purged"]
    with pytest.raises(NotFoundError, match="purged"):
        resolve_inputs(instance, ctx, "default", [("model", "example@1.0.0")])
    from nextstat_pro.audit.service import verify

    assert verify(instance, instance.context()).ok


def test_dataset_formats_record_columns_and_rows(sqlite_instance: Instance, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ctx = sqlite_instance.context()
    table = pa.table({"subject": ["a", "b", "c"], "time": [1.0, 2.0, 3.0]})
    pq.write_table(table, tmp_path / "d.parquet")
    cases = {
        "csv": InputFile.from_bytes("dataset", "d.csv", b"subject,time\na,1\nb,2\n"),
        "json": InputFile.from_bytes("dataset", "d.json", b'[{"subject": "a", "time": 1}, {"subject": "b"}]'),
        "parquet": InputFile.read("dataset", tmp_path / "d.parquet"),
    }
    for name, inp in cases.items():
        resolved, created = service.push(sqlite_instance, ctx, "default", "dataset", f"d-{name}", inp)
        assert created
    meta = {n: service.resolve(sqlite_instance, ctx, "default", "dataset", f"d-{n}").version.meta for n in cases}
    assert (meta["csv"]["columns"], meta["csv"]["rows"]) == (["subject", "time"], 2)
    assert (meta["json"]["columns"], meta["json"]["rows"]) == (["subject", "time"], 2)
    assert (meta["parquet"]["columns"], meta["parquet"]["rows"]) == (["subject", "time"], 3)
    for bad, message in ((InputFile.from_bytes("dataset", "x.parquet", b"not parquet"), "is not Parquet"),
                         (InputFile.from_bytes("dataset", "x.json", b'{"a": 1}'), "JSON array of records"),
                         (InputFile.from_bytes("dataset", "x.txt", b"hi"), "use .csv, .json or .parquet")):
        with pytest.raises(InputError, match=message):
            service.push(sqlite_instance, ctx, "default", "dataset", "bad", bad)


def test_tag_search_needs_every_tag(instance: Instance) -> None:
    ctx = instance.context()
    for i, tags in enumerate((["a=1", "b=2", "c=3"], ["a=1", "b=2", "c=4"], ["a=1", "b=9", "c=3"])):
        doc = histfactory_workspace()
        doc["observations"][0]["data"][0] += i + 1
        service.push(instance, ctx, "default", "model", f"m{i}", ws_file(doc), "1.0.0", tags=tags)
    found = service.list_items(instance, ctx, "default", "model", ["a=1", "b=2", "c=3"])
    assert [r.name for r in found] == ["m0"]
    assert [r.name for r in service.list_items(instance, ctx, "default", "model", ["a=1"])] == ["m0", "m1", "m2"]
    assert service.list_items(instance, ctx, "default", "model", ["a=2"]) == []
