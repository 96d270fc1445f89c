"""Recorded runs on SQLite and PostgreSQL: lifecycle, manifest, artifacts, export, failures."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nextstat_pro.canonical import canonical_json, digest_of
from nextstat_pro.db.models import AuditEvent, Run, RunArtifact
from nextstat_pro.db.types import utcnow
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import (
    ConflictError,
    DigestMismatchError,
    FieldError,
    InputError,
    NotFoundError,
    ParamError,
)
from nextstat_pro.instance import Instance
from nextstat_pro.runs import (
    RunInputs,
    RunRequest,
    export_run,
    get_run,
    list_run_rows,
    run_artifacts,
    run_task,
    show_run,
)
from nextstat_pro.runs.manifest import FileEntry
from nextstat_pro.runs.records import finish
from nextstat_pro.store import object_key

from .conftest import shared


def request(task: str = "fit", name: str = "simple_workspace.json", **kw: object) -> RunRequest:
    inputs = [InputFile.read("workspace", shared("workspaces", name))]
    return RunRequest(task=task, project="default", params=kw.pop("params", {}), seed=kw.pop("seed", None),  # type: ignore[arg-type]
                      inputs=inputs, **kw)  # type: ignore[arg-type]


def counts(inst: Instance) -> tuple[int, int]:
    with inst.db.transaction() as s:
        return (s.scalar(select(func.count()).select_from(Run)) or 0,
                s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_succeeded_run_is_fully_recorded(instance: Instance) -> None:
    ctx = instance.context()
    out = run_task(instance, ctx, request())
    assert out.status == "succeeded" and out.error is None
    manifest_bytes = instance.store.get(out.manifest_digest)
    assert digest_of(manifest_bytes) == out.manifest_digest
    manifest = json.loads(manifest_bytes)
    assert canonical_json(manifest) == manifest_bytes  # stored in RFC 8785 form
    assert manifest["run_id"] == out.run_id and manifest["status"] == "succeeded"
    assert manifest["engine"]["version"] == "0.10.1"
    assert [o["name"] for o in manifest["outputs"]] == ["result.json", "run.log"]
    result = json.loads(instance.store.get(manifest["outputs"][0]["digest"]))
    assert result == json.loads(canonical_json(out.result))
    assert manifest["inputs"][0]["digest"] == digest_of(shared("workspaces", "simple_workspace.json").read_bytes())
    log = instance.store.get(manifest["outputs"][1]["digest"]).decode()
    assert out.run_id in log and "fit quality ok" in log
    with instance.db.transaction() as s:
        run = get_run(s, out.run_id)
        assert run.status == "succeeded" and run.fit_ok is True and run.manifest_digest == out.manifest_digest
        assert run.created_at <= run.started_at <= run.finished_at  # type: ignore[operator]
        assert [a.name for a in run.artifacts] == ["result.json", "run.log"]
        events = list(s.scalars(select(AuditEvent.action).where(AuditEvent.target_id == out.run_id)
                                .order_by(AuditEvent.seq)))
        assert events == ["run.created", "run.started", "run.succeeded"]
        stored = list(s.scalars(select(AuditEvent.action).where(AuditEvent.action == "artifact.stored")))
        assert len(stored) == 2


def test_failed_task_is_a_failed_run_with_error_and_log(instance: Instance) -> None:
    out = run_task(instance, instance.context(), request("upper-limit", "tHu_workspace.json"))
    assert out.status == "failed" and "CLs(0)=0" in (out.error or "")
    manifest = json.loads(instance.store.get(out.manifest_digest))
    assert manifest["status"] == "failed" and manifest["error"] == out.error
    assert [o["name"] for o in manifest["outputs"]] == ["run.log"]
    assert "task failed" in instance.store.get(manifest["outputs"][0]["digest"]).decode()
    with instance.db.transaction() as s:
        run = get_run(s, out.run_id)
        assert run.status == "failed" and run.error == out.error


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: RunRequest("fit", "default", {}, None, [InputFile.from_bytes("workspace", "w.json", b"{")]),
         InputError),
        (lambda: RunRequest("fit", "default", {"x": "1"}, None, request().inputs), ParamError),
        (lambda: RunRequest("fit", "nope", {}, None, request().inputs), NotFoundError),
        (lambda: RunRequest("fit", "default", {}, None, request().inputs, patch="p"), Exception),
    ],
)
def test_bad_input_writes_nothing(instance: Instance, make, error) -> None:  # type: ignore[no-untyped-def]
    before = counts(instance)
    with pytest.raises(error):
        run_task(instance, instance.context(), make())
    assert counts(instance) == before


def test_list_filters(instance: Instance) -> None:
    ctx = instance.context()
    run_task(instance, ctx, request("fit"))
    run_task(instance, ctx, request("hypotest"))
    run_task(instance, ctx, request("upper-limit", "tHu_workspace.json"))
    from datetime import UTC, datetime, timedelta

    assert len(list_run_rows(instance, ctx, "default")) == 3
    assert [r.task for r in list_run_rows(instance, ctx, "default", status="failed")] == ["upper-limit"]
    assert [r.task for r in list_run_rows(instance, ctx, "default", task="hypotest")] == ["hypotest"]
    assert list_run_rows(instance, ctx, "default", since=datetime.now(UTC) + timedelta(hours=1)) == []


def test_the_service_reads_files_resolves_references_and_chooses_the_patch(sqlite_instance: Instance,
                                                                           tmp_path: Path) -> None:
    """A run's inputs as a caller names them (paths, REF#PATCH, a patch name): read and resolved by the
    service, and a contradictory request refused in the request's words, with nothing written."""
    from nextstat_pro.examples import write_examples
    from nextstat_pro.hub import service as hub

    inst, ctx = sqlite_instance, sqlite_instance.context()
    path = shared("workspaces", "simple_workspace.json")
    out = run_task(inst, ctx, RunRequest("fit", "default", {}, None, given=RunInputs(workspace=path)))
    assert out.status == "succeeded"
    detail = show_run(inst, ctx, out.run_id)
    assert [(i.role, i.name, i.digest) for i in detail.inputs] == [
        ("workspace", path.name, digest_of(path.read_bytes()))]
    assert detail.manifest is not None and detail.manifest["run_id"] == out.run_id and detail.versions == []
    ex = write_examples(tmp_path / "ex", 3)
    hub.push_file(inst, ctx, "default", "model", "example", ex["workspace"], "1.0.0")
    hub.push_file(inst, ctx, "default", "patchset", "signals", ex["patchset"], "1.0.0", base_ref="example@1.0.0")
    patch = json.loads(ex["patchset"].read_text())["patches"][1]["metadata"]["name"]
    by_ref = run_task(inst, ctx, RunRequest("hypotest", "default", {}, None,
                                            given=RunInputs(model=f"signals@1.0.0#{patch}", patch=patch)))
    shown = show_run(inst, ctx, by_ref.run_id)
    assert (shown.patch, shown.versions) == (patch, ["example@1.0.0", "signals@1.0.0"])
    files = run_task(inst, ctx, RunRequest("hypotest", "default", {}, None, given=RunInputs(
        workspace=ex["workspace"], patchset=ex["patchset"], patch=patch)))
    assert show_run(inst, ctx, files.run_id).patch == patch
    before = counts(inst)
    for given, fields in ((RunInputs(model="example@1.0.0", workspace=path), ("model", "workspace")),
                          (RunInputs(model=f"signals@1.0.0#{patch}", patch="another"), ("model", "patch"))):
        with pytest.raises(FieldError) as refused:
            run_task(inst, ctx, RunRequest("fit", "default", {}, None, given=given))
        assert refused.value.fields == fields and "--" not in refused.value.message
    assert counts(inst) == before
    rows = list_run_rows(inst, ctx, "default")
    assert [r.run_id for r in rows] == [files.run_id, by_ref.run_id, out.run_id]
    assert [a.name for a in run_artifacts(inst, ctx, out.run_id)] == ["result.json", "run.log", "manifest.json"]


def test_export_checks_with_sha256sum(instance: Instance, tmp_path: Path) -> None:
    out = run_task(instance, instance.context(), request())
    dest = export_run(instance, instance.context(), out.run_id[:13], tmp_path / "export")
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dest, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert hashlib.sha256((dest / "manifest.json").read_bytes()).hexdigest() == out.manifest_digest[7:]
    assert (dest / "inputs/workspace/simple_workspace.json").read_bytes() == \
        shared("workspaces", "simple_workspace.json").read_bytes()
    with instance.db.transaction() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.action == "run.exported")) == 1
    with pytest.raises(ConflictError, match="not empty"):
        export_run(instance, instance.context(), out.run_id, dest)


def test_export_of_tampered_object_fails_and_leaves_nothing(sqlite_instance: Instance, tmp_path: Path) -> None:
    inst = sqlite_instance
    out = run_task(inst, inst.context(), request())
    manifest = json.loads(inst.store.get(out.manifest_digest))
    path = inst.home / "objects" / object_key(manifest["outputs"][0]["digest"])
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes().replace(b'"fit"', b'"fat"'))
    before = counts(inst)
    with pytest.raises(DigestMismatchError):
        export_run(inst, inst.context(), out.run_id, tmp_path / "export")
    assert not (tmp_path / "export").exists()
    assert list(tmp_path.glob(".export*")) == []
    assert counts(inst) == before


def test_patched_run_records_patch_and_both_inputs(sqlite_instance: Instance, tmp_path: Path) -> None:
    from nextstat_pro.examples import write_examples

    paths = write_examples(tmp_path / "ex", 5)
    inputs = [InputFile.read("workspace", paths["workspace"]), InputFile.read("patchset", paths["patchset"])]
    out = run_task(sqlite_instance, sqlite_instance.context(),
                   RunRequest("upper-limit", "default", {}, None, inputs, patch="sig_1000_100"))
    manifest = json.loads(sqlite_instance.store.get(out.manifest_digest))
    assert manifest["patch"] == "sig_1000_100"
    assert [i["role"] for i in manifest["inputs"]] == ["workspace", "patchset"]
    with sqlite_instance.db.transaction() as s:
        assert get_run(s, out.run_id).patch == "sig_1000_100"


def test_a_run_finishes_once(instance: Instance) -> None:
    """The final status is set by an UPDATE guarded by status = 'running': a second finish
    (or a finish after a cancel) is refused and adds no artifact row and no event."""
    ctx = instance.context()
    out = run_task(instance, ctx, request())
    before = counts(instance)
    extra = FileEntry("late.json", "sha256:" + "0" * 64, 2, media_type="application/json")
    with pytest.raises(ConflictError, match="is succeeded; it cannot become failed"), \
            instance.db.transaction() as s:
        finish(s, ctx, out.run_id, "default", "failed", at=utcnow(), error="late", outputs=[extra],
               digests={}, fit_ok=None)
    with pytest.raises(NotFoundError), instance.db.transaction() as s:
        finish(s, ctx, "0" * 36, "default", "failed", at=utcnow(), error="x", outputs=[], digests={}, fit_ok=None)
    assert counts(instance) == before
    with instance.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(RunArtifact).where(RunArtifact.run_id == out.run_id)) == 2
        assert get_run(s, out.run_id).error is None
