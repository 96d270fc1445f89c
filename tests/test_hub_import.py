"""Many versions at once: ``push_many`` (one transaction, each version validated and audited) and
``hub KIND import MANIFEST`` (batches of it) — on SQLite and PostgreSQL, good paths and bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, text

from nextstat_pro.db.models import AuditEvent, HubTag
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import (
    ConflictError,
    FieldError,
    InputError,
    PermissionDeniedError,
    SchemaValidationError,
    UsageError,
)
from nextstat_pro.examples import histfactory_workspace, signal_patchset
from nextstat_pro.hub import service
from nextstat_pro.hub.imports import ImportFailed, import_manifest, parse_manifest
from nextstat_pro.hub.service import BatchEntryError, PushRequest, push_many
from nextstat_pro.instance import Instance, init_instance

from .audit_helpers import last_seq
from .conftest import PASSWORD, new_pg_database
from .identity_helpers import add_user, session_for
from .test_hub import counts


def workspace(i: int) -> dict:  # type: ignore[type-arg]
    doc = histfactory_workspace()
    doc["observations"][0]["data"][0] = 100.0 + i
    return doc


def request(i: int, name: str = "m", semver: str | None = None, doc: dict | None = None,  # type: ignore[type-arg]
            tags: tuple[str, ...] = ()) -> PushRequest:
    data = json.dumps(doc or workspace(i)).encode()
    return PushRequest(name, InputFile.from_bytes("workspace", f"w{i}.json", data), semver or f"1.0.{i}", tags=tags)


def write_manifest(root: Path, entries: list[dict], docs: dict[str, dict]) -> Path:  # type: ignore[type-arg]
    for name, doc in docs.items():
        (root / name).write_text(json.dumps(doc))
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return manifest


def test_push_many_audits_each_version_and_matches_single_pushes(instance: Instance) -> None:
    before = last_seq(instance)
    out = push_many(instance, instance.context(), "default", "model",
                    [request(i, tags=(f"i=v{i}", "batch=b")) for i in range(5)])
    assert [created for _, created in out] == [True] * 5
    with instance.db.transaction() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.seq > before).order_by(AuditEvent.seq)).all()
        assert [e.action for e in events] == ["hub.model.pushed"] * 5
        assert [e.target_id for e in events] == [r.version.id for r, _ in out]
        fourth = out[3][0].version.id
        assert s.scalar(select(HubTag.value).where(HubTag.version_id == fourth, HubTag.key == "i")) == "v3"
    for i, (resolved, _) in enumerate(out):
        assert instance.store.get(resolved.version.digest)  # every object stored, digest-checked
        found = service.resolve(instance, instance.context(), "default", "model", f"m@1.0.{i}")
        assert found.version.digest == resolved.version.digest
    # The same content pushed alone is the version the batch made: one identity, one code path.
    again, created = service.push(instance, instance.context(), "default", "model", "m", request(2).inp, "1.0.2")
    assert not created and again.version.id == out[2][0].version.id


def test_a_batch_repeating_content_makes_one_version(instance: Instance) -> None:
    out = push_many(instance, instance.context(), "default", "model",
                    [request(1, semver="1.0.0"), request(1, semver="1.0.0"), request(2, semver="1.0.1")])
    assert [created for _, created in out] == [True, False, True]
    assert out[0][0].version.id == out[1][0].version.id


def test_one_refused_entry_stores_nothing_of_its_batch(instance: Instance) -> None:
    service.push(instance, instance.context(), "default", "model", "m", request(0).inp, "1.0.0")
    before, seq = counts(instance), last_seq(instance)
    bad = workspace(9)
    bad["channels"][0]["samples"][0]["modifiers"][0]["type"] = "nonsense"
    cases = [
        ([request(1), request(2, doc=bad)], SchemaValidationError, r"entry 2: .*\$\.channels\[0\]"),
        ([request(1), request(3, semver="1.0.0")], ConflictError, "entry 2: m@1.0.0 exists with other content"),
        # Two entries of the batch claiming one label with different content.
        ([request(4, semver="2.0.0"), request(5, semver="2.0.0")], ConflictError, "entry 2: m@2.0.0 exists"),
        ([request(1), request(2, semver="v2")], UsageError, "entry 2: invalid version"),
        ([request(1), request(2, tags=("nokey",))], UsageError, "entry 2: malformed tag"),
    ]
    for requests, error, message in cases:
        with pytest.raises(BatchEntryError, match=message) as info:
            push_many(instance, instance.context(), "default", "model", requests)
        assert isinstance(info.value.error, error) and info.value.exit_code == info.value.error.exit_code
        assert counts(instance) == before and last_seq(instance) == seq
    # push unwraps the entry's error: the single-version error classes are unchanged.
    with pytest.raises(ConflictError, match="^m@1.0.0 exists with other content"):
        service.push(instance, instance.context(), "default", "model", "m", request(7).inp, "1.0.0")


def test_a_viewer_cannot_push_a_batch(instance: Instance) -> None:
    add_user(instance, "vi", "viewer", "viewer-password-1")
    viewer = session_for(instance, "vi", "viewer-password-1")
    before = counts(instance)[0]
    with pytest.raises(PermissionDeniedError, match="hub.push"):
        push_many(instance, viewer, "default", "model", [request(1), request(2)])
    assert counts(instance)[0] == before


def test_import_commits_batches_and_resumes_after_a_refusal(instance: Instance, tmp_path: Path) -> None:
    docs = {f"w{i}.json": workspace(i) for i in range(7)}
    bad = workspace(99)
    del bad["observations"]
    docs["bad.json"] = bad
    entries = [{"name": "m", "file": f"w{i}.json", "version": f"1.0.{i}", "tags": {"i": str(i)}} for i in range(7)]
    entries[5] = {"name": "m", "file": "bad.json", "version": "1.0.5"}
    manifest = write_manifest(tmp_path, entries, docs)
    before = counts(instance)[0]
    with pytest.raises(ImportFailed, match=r"manifest.jsonl line 6: .*observations.*committed before it: "
                                           r"4 entries in 2 committed batch\(es\): 4 version\(s\) created") as info:
        import_manifest(instance, instance.context(), "default", "model", manifest, batch_size=2)
    assert info.value.exit_code == 3 and isinstance(info.value.error, InputError)
    assert counts(instance)[0] == before + 4  # batches 1-2 committed, batch 3 (entries 5-6) nothing
    # Fixed, the same import again: the committed versions are found, the rest created.
    entries[5] = {"name": "m", "file": "w5.json", "version": "1.0.5", "tags": {"i": "5"}}
    write_manifest(tmp_path, entries, {})
    seen = []
    report = import_manifest(instance, instance.context(), "default", "model", manifest, batch_size=2,
                             progress=lambda r: seen.append(r.entries))
    assert (report.entries, report.created, report.existing, report.batches) == (7, 3, 4, 4)
    assert seen == [2, 4, 6, 7]
    assert counts(instance)[0] == before + 7
    docs_ = service.versions(instance, instance.context(), "default", "model", "m")
    assert sorted(d.tags["i"] for d in docs_) == [str(i) for i in range(7)]


def test_import_checks_the_whole_manifest_before_writing(instance: Instance, tmp_path: Path) -> None:
    docs = {"w0.json": workspace(0), "w1.json": workspace(1)}
    good = {"name": "m", "file": "w0.json", "version": "1.0.0"}
    cases = [
        ({"name": "m", "file": "w1.json", "version": "one"}, UsageError, "line 2: invalid version"),
        ({"name": "M!", "file": "w1.json"}, UsageError, "line 2: invalid name"),
        ({"name": "m", "file": "missing.json"}, InputError, "line 2: file not found"),
        ({"name": "m"}, InputError, "line 2: 'file' is required"),
        ({"name": "m", "file": "w1.json", "tags": ["a=b"]}, InputError, "line 2: 'tags' must be an object"),
        ({"name": "m", "file": "w1.json", "color": "red"}, InputError, "line 2: unknown field"),
        ({"name": "m", "file": "w1.json", "base": "x@1.0.0"}, UsageError, "line 2: 'base' is for patchsets"),
    ]
    before = counts(instance)
    for second, error, message in cases:
        manifest = write_manifest(tmp_path, [good, second], docs)
        with pytest.raises(error, match=message):
            import_manifest(instance, instance.context(), "default", "model", manifest, batch_size=1)
        assert counts(instance) == before  # the first line's batch was not written either
    (tmp_path / "broken.jsonl").write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(InputError, match="broken.jsonl line 2: not JSON"):
        parse_manifest(tmp_path / "broken.jsonl", "model")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="has no entries"):
        parse_manifest(tmp_path / "empty.jsonl", "model")
    with pytest.raises(InputError, match="manifest not found"):
        parse_manifest(tmp_path / "nope.jsonl", "model")
    assert counts(instance) == before


def test_import_patchsets_against_their_base(instance: Instance, tmp_path: Path) -> None:
    ws = histfactory_workspace()
    service.push(instance, instance.context(), "default", "model", "example",
                 InputFile.from_bytes("workspace", "ws.json", json.dumps(ws).encode()), "1.0.0")
    docs = {"p.json": signal_patchset(ws, 3)}
    manifest = write_manifest(tmp_path, [{"name": "sig", "file": "p.json", "version": "1.0.0",
                                          "base": "example@1.0.0"}], docs)
    report = import_manifest(instance, instance.context(), "default", "patchset", manifest)
    assert report.created == 1
    resolved = service.resolve(instance, instance.context(), "default", "patchset", "sig@1.0.0#" +
                               docs["p.json"]["patches"][0]["metadata"]["name"])
    assert resolved.patch is not None
    manifest = write_manifest(tmp_path, [{"name": "sig", "file": "p.json"}], {})
    with pytest.raises(UsageError, match="line 1: a patchset entry needs 'base'"):
        import_manifest(instance, instance.context(), "default", "patchset", manifest)


def test_an_import_refreshes_the_planner_statistics(tmp_path: Path) -> None:
    pg_instance = init_instance(tmp_path / "home", admin="admin", password=PASSWORD, db_url=new_pg_database())

    def analyzed() -> int:  # a manual ANALYZE (autovacuum's would set last_autoanalyze)
        with pg_instance.db.transaction() as s:
            return s.scalar(text("SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'hub_tags' "
                                 "AND last_analyze IS NOT NULL")) or 0
    manifest = write_manifest(tmp_path, [{"name": "m", "file": "w.json", "tags": {"a": "b"}}], {"w.json": workspace(1)})
    try:
        assert analyzed() == 0
        import_manifest(pg_instance, pg_instance.context(), "default", "model", manifest)
        assert analyzed() == 1
    finally:
        pg_instance.close()


def test_an_import_stopped_by_rbac(instance: Instance, tmp_path: Path) -> None:
    """A viewer's import is refused before anything is written; an editor whose role is revoked
    during an import keeps the batches committed before and is told how far it got."""
    from nextstat_pro.identity.users import revoke_role

    add_user(instance, "vi", "viewer", "viewer-password-1")
    add_user(instance, "ed", "editor", "editor-password-1")
    docs = {f"w{i}.json": workspace(i) for i in range(4)}
    manifest = write_manifest(tmp_path, [{"name": "m", "file": f"w{i}.json"} for i in range(4)], docs)
    before = counts(instance)[0]
    with pytest.raises(PermissionDeniedError, match="hub.push"):
        import_manifest(instance, session_for(instance, "vi", "viewer-password-1"), "default", "model", manifest)
    assert counts(instance)[0] == before

    def revoke(_report: object) -> None:
        revoke_role(instance, instance.context(), "ed", "default", "left the analysis")

    editor = session_for(instance, "ed", "editor-password-1")
    with pytest.raises(ImportFailed, match=r"may not hub.push.*committed before it: 2 entries") as info:
        import_manifest(instance, editor, "default", "model", manifest, batch_size=2, progress=revoke)
    assert isinstance(info.value.error, PermissionDeniedError) and info.value.exit_code == 6
    assert counts(instance)[0] == before + 2


def test_a_batch_beyond_one_clash_query_still_sees_every_clash(instance: Instance) -> None:
    """The clashes of a batch are read 500 requests per query: an entry in the second query's
    share must still meet the version that holds its label."""
    def csv(i: int) -> InputFile:
        return InputFile.from_bytes("dataset", f"d{i}.csv", f"a,b\n{i},1\n".encode())

    service.push(instance, instance.context(), "default", "dataset", "m", csv(-1), "1.0.0")
    before = counts(instance)
    requests = [PushRequest(f"d{i}", csv(i), "1.0.0") for i in range(500)] + [PushRequest("m", csv(-2), "1.0.0")]
    with pytest.raises(BatchEntryError, match="entry 501: m@1.0.0 exists with other content"):
        push_many(instance, instance.context(), "default", "dataset", requests)
    assert counts(instance) == before
    requests[-1] = PushRequest("m", csv(-1), "1.0.0")  # the same content: that version, not a new one
    out = push_many(instance, instance.context(), "default", "dataset", requests)
    assert [created for _, created in out] == [True] * 500 + [False]


def test_an_import_batch_holds_at_most_its_bytes(sqlite_instance: Instance, tmp_path: Path) -> None:
    docs = {f"w{i}.json": workspace(i) for i in range(3)}
    manifest = write_manifest(tmp_path, [{"name": "m", "file": f"w{i}.json"} for i in range(3)], docs)
    one = max((tmp_path / name).stat().st_size for name in docs)
    report = import_manifest(sqlite_instance, sqlite_instance.context(), "default", "model", manifest,
                             max_batch_bytes=one + 1)
    assert (report.batches, report.created) == (3, 3)
    with pytest.raises(FieldError, match="a batch holds at least 1 version") as refused:
        import_manifest(sqlite_instance, sqlite_instance.context(), "default", "model", manifest, batch_size=0)
    assert refused.value.fields == ("batch_size",) and "--" not in refused.value.message
