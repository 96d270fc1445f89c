"""NS-Scale: deterministic partitioning, byte-identical merges on every backend, shard count and
completion order; refusals of duplicate, missing and foreign shards; failures; resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nextstat_pro.db.models import AuditEvent, HubItem, ScaleJob
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import DigestMismatchError, FieldError, NotFoundError, UsageError
from nextstat_pro.examples import histfactory_workspace, signal_patchset
from nextstat_pro.hub import service as hub
from nextstat_pro.instance import Instance
from nextstat_pro.runs import get_run
from nextstat_pro.runs.listing import versions_of
from nextstat_pro.scale import SubmitRequest, coordinate, submit
from nextstat_pro.scale.collect import CollectError, merge, read_shard
from nextstat_pro.scale.partition import shard_ranges, shard_ref
from nextstat_pro.scale.service import JobInputs, status_of
from nextstat_pro.scale.spec import JobSpec
from nextstat_pro.scale.views import JobProgress
from nextstat_pro.scale.worker import run_shard
from nextstat_pro.store import object_key

from .conftest import PASSWORD, shared


def simple() -> InputFile:
    return InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))


def toys(shards: int, backend: str = "local", n: int = 24, seed: int = 7) -> SubmitRequest:
    return SubmitRequest("toys", "default", [simple()], params={"n_toys": str(n)}, seed=seed, shards=shards,
                         backend=backend, workers=2)


def grid_inputs(n: int = 6) -> list[InputFile]:
    ws = histfactory_workspace()
    return [InputFile.from_bytes("workspace", "ws.json", json.dumps(ws).encode()),
            InputFile.from_bytes("patchset", "ps.json", json.dumps(signal_patchset(ws, n)).encode())]


def result_of(inst: Instance, run_id: str) -> bytes:
    with inst.db.transaction() as s:
        digest = s.get(ScaleJob, run_id).result_digest
    return inst.store.get(digest)


def test_partition_is_pure_balanced_and_complete() -> None:
    for n in (1, 5, 24, 125, 10_000):
        for shards in (1, 3, 7, 64):
            ranges = shard_ranges(n, shards)
            assert [i for r in ranges for i in r] == list(range(n))
            assert max(map(len, ranges)) - min(map(len, ranges)) <= 1
            assert ranges == shard_ranges(n, shards)
    with pytest.raises(ValueError):
        shard_ranges(0, 3)


def test_toys_merge_is_byte_identical_for_1_3_7_shards_and_lands_in_audit_and_hub(sqlite_instance: Instance) -> None:
    inst, ctx = sqlite_instance, sqlite_instance.context()
    results = {}
    for shards in (1, 3, 7):
        run_id = submit(inst, ctx, toys(shards))
        assert coordinate(inst, ctx, run_id) == "succeeded"
        results[shards] = result_of(inst, run_id)
    assert results[1] == results[3] == results[7]
    points = json.loads(results[1])["points"]
    assert [p["result"]["seed"] for p in points] == [7 + k for k in range(24)]
    with inst.db.transaction() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.target_id == run_id)
                                 .order_by(AuditEvent.seq)))
        assert actions == ["run.created", "job.submitted", "run.started", *["job.shard_done"] * 7, "job.collected",
                           "run.succeeded"]
        assert s.scalar(select(func.count()).select_from(HubItem).where(HubItem.name == "toys-results")) == 1
        assert get_run(s, run_id).manifest_digest is not None


def test_grid_completion_order_and_backends_agree(sqlite_instance: Instance) -> None:
    inst, ctx = sqlite_instance, sqlite_instance.context()

    def request(shards: int, backend: str) -> SubmitRequest:
        return SubmitRequest("grid", "default", grid_inputs(6), point_task="hypotest", shards=shards,
                             backend=backend, workers=2)

    run_id = submit(inst, ctx, request(1, "local"))
    coordinate(inst, ctx, run_id)
    reference = result_of(inst, run_id)
    # Completion order: shards computed in reverse, by hand, then collected.
    run_id = submit(inst, ctx, request(3, "local"))
    with inst.db.transaction() as s:
        spec = JobSpec.model_validate_json(inst.store.get(s.get(ScaleJob, run_id).spec_digest))
    for shard in reversed(range(3)):
        run_shard(inst.store, spec.digest, shard)
    assert merge(inst.store, spec).data == reference
    for backend in ("dask", "ray"):
        run_id = submit(inst, ctx, request(3, backend))
        assert coordinate(inst, ctx, run_id) == "succeeded", backend
        assert result_of(inst, run_id) == reference, backend


def test_collect_refuses_missing_duplicate_and_foreign_shards(sqlite_instance: Instance) -> None:
    inst, ctx = sqlite_instance, sqlite_instance.context()
    run_a = submit(inst, ctx, toys(3, n=9, seed=1))
    run_b = submit(inst, ctx, toys(3, n=9, seed=2))
    with inst.db.transaction() as s:
        spec_a = JobSpec.model_validate_json(inst.store.get(s.get(ScaleJob, run_a).spec_digest))
        spec_b = JobSpec.model_validate_json(inst.store.get(s.get(ScaleJob, run_b).spec_digest))
    run_shard(inst.store, spec_a.digest, 0)
    with pytest.raises(CollectError, match=r"missing shard\(s\) \[1, 2\]"):
        merge(inst.store, spec_a)
    # A shard of another spec placed under this job's ref.
    foreign = run_shard(inst.store, spec_b.digest, 1)
    inst.store.put_ref(shard_ref(spec_a.digest, 1), foreign)
    run_shard(inst.store, spec_a.digest, 2)
    with pytest.raises(CollectError, match="belongs to another spec"):
        merge(inst.store, spec_a)
    # A shard whose points repeat an item.
    doc = json.loads(inst.store.get(inst.store.get_ref(shard_ref(spec_a.digest, 0))))
    doc["points"][1] = doc["points"][0]
    from nextstat_pro.canonical import canonical_json

    spec_c = JobSpec.model_validate(spec_a.model_dump(by_alias=True) | {"run_id": "other"})
    inst.store.put(spec_c.canonical())
    doc["spec_digest"] = spec_c.digest
    forged = inst.store.put(canonical_json(doc)).digest
    inst.store.put_ref(shard_ref(spec_c.digest, 0), forged)
    for shard in (1, 2):
        run_shard(inst.store, spec_c.digest, shard)
    with pytest.raises(CollectError, match=r"shard 0 has duplicate items \[0\]"):
        merge(inst.store, spec_c)
    # A shard with the right content in bytes that are not canonical JSON: its points are
    # spliced into the merged result as they are, so it is refused.
    spec_d = JobSpec.model_validate(spec_a.model_dump(by_alias=True) | {"run_id": "another"})
    inst.store.put(spec_d.canonical())
    good = json.loads(inst.store.get(inst.store.get_ref(shard_ref(spec_a.digest, 0))))
    good["spec_digest"] = spec_d.digest
    loose = inst.store.put(json.dumps(good, indent=1).encode()).digest
    inst.store.put_ref(shard_ref(spec_d.digest, 0), loose)
    for shard in (1, 2):
        run_shard(inst.store, spec_d.digest, shard)
    with pytest.raises(CollectError, match="shard 0 .* is not canonical JSON"):
        merge(inst.store, spec_d)
    # A shard object that is not JSON at all.
    spec_e = JobSpec.model_validate(spec_a.model_dump(by_alias=True) | {"run_id": "yet-another"})
    inst.store.put(spec_e.canonical())
    inst.store.put_ref(shard_ref(spec_e.digest, 0), inst.store.put(b"\x00 not json").digest)
    for shard in (1, 2):
        run_shard(inst.store, spec_e.digest, shard)
    with pytest.raises(CollectError, match="shard 0 .* is not JSON"):
        merge(inst.store, spec_e)
    # JSON whose points are not objects, or that names no engine.
    for n, bad in enumerate(({**good, "points": [1, 2, 3]}, {k: v for k, v in good.items() if k != "engine"})):
        spec_f = JobSpec.model_validate(spec_a.model_dump(by_alias=True) | {"run_id": f"malformed-{n}"})
        inst.store.put(spec_f.canonical())
        inst.store.put_ref(shard_ref(spec_f.digest, 0), inst.store.put(canonical_json(bad)).digest)
        with pytest.raises(CollectError, match="shard 0 .* is not a shard result"):
            read_shard(inst.store, spec_f, 0, inst.store.get_ref(shard_ref(spec_f.digest, 0)))


def test_shard_object_with_wrong_digest_fails_the_run_and_publishes_nothing(sqlite_instance: Instance) -> None:
    inst, ctx = sqlite_instance, sqlite_instance.context()
    run_id = submit(inst, ctx, toys(2, n=6))
    with inst.db.transaction() as s:
        spec = JobSpec.model_validate_json(inst.store.get(s.get(ScaleJob, run_id).spec_digest))
    for shard in range(2):
        run_shard(inst.store, spec.digest, shard)
    path = inst.home / "objects" / object_key(inst.store.get_ref(shard_ref(spec.digest, 1)))
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes().replace(b'"converged":true', b'"converged":false', 1))
    with pytest.raises(DigestMismatchError):
        coordinate(inst, ctx, run_id)
    with inst.db.transaction() as s:
        assert s.get(ScaleJob, run_id).result_digest is None
        assert s.scalar(select(HubItem).where(HubItem.name == "toys-results")) is None


def test_bad_requests_write_nothing(sqlite_instance: Instance) -> None:
    inst, ctx = sqlite_instance, sqlite_instance.context()
    with inst.db.transaction() as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(UsageError, match="unknown backend 'pbs'"):
        submit(inst, ctx, toys(2, backend="pbs"))
    with pytest.raises(FieldError, match="toys need a seed") as refused:
        submit(inst, ctx, SubmitRequest("toys", "default", [simple()], seed=None))
    assert refused.value.fields == ("seed",)  # the adapter names its option, the service its field
    with pytest.raises(FieldError, match="workers must be at least 1"):
        submit(inst, ctx, SubmitRequest("toys", "default", [simple()], params={"n_toys": "4"}, seed=1, workers=0))
    with pytest.raises(NotFoundError, match="no patchset named"):
        submit(inst, ctx, SubmitRequest("grid", "default", given=JobInputs(models=["signals@9.9.9"])))
    with pytest.raises(UsageError, match="unknown patch"):
        submit(inst, ctx, SubmitRequest("grid", "default", grid_inputs(3), patches=["nope"]))
    from nextstat_pro.runs.references import resolve_inputs

    with pytest.raises(NotFoundError, match="no patchset named"):
        resolve_inputs(inst, ctx, "default", [("patchset", "signals@9.9.9")])
    with inst.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_submit_reads_files_and_resolves_references_itself(sqlite_instance: Instance) -> None:
    """An adapter hands paths and references as given; the service reads and resolves them, and the
    job's view is what `runs shards` and `submit --json` print."""
    inst, ctx = sqlite_instance, sqlite_instance.context()
    path = shared("workspaces", "simple_workspace.json")
    run_id = submit(inst, ctx, SubmitRequest("toys", "default", params={"n_toys": "5"}, seed=1, shards=2,
                                             given=JobInputs(workspace=path)))
    job = status_of(inst, ctx, run_id)
    assert (job.run_id, job.status, job.task, [s.status for s in job.shards]) == (run_id, "queued", "toys",
                                                                                    ["pending", "pending"])
    assert job.progress == JobProgress(shards_done=0, shards_total=2, points_done=0, points_total=5)
    with inst.db.transaction() as s:
        assert [(i.role, i.digest) for i in get_run(s, run_id).inputs] == [("workspace", simple().digest)]
    ws = histfactory_workspace()
    hub.push(inst, ctx, "default", "model", "bkg", InputFile.from_bytes("workspace", "w.json", json.dumps(ws).encode()),
             "1.0.0")
    hub.push(inst, ctx, "default", "patchset", "signals", InputFile.from_bytes(
        "patchset", "p.json", json.dumps(signal_patchset(ws, 3)).encode()), "1.0.0", base_ref="bkg@1.0.0")
    grid = submit(inst, ctx, SubmitRequest("grid", "default", point_task="hypotest", shards=3,
                                           given=JobInputs(models=["signals@1.0.0"])))
    with inst.db.transaction() as s:
        assert [i.role for i in get_run(s, grid).inputs] == ["workspace", "patchset"]
        assert versions_of(s, [grid]) == {grid: ["bkg@1.0.0", "signals@1.0.0"]}
    assert status_of(inst, ctx, grid).progress.points_total == 3


def test_unreachable_scheduler_and_missing_sbatch_fail_the_run_clearly(sqlite_instance: Instance,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    inst, ctx = sqlite_instance, sqlite_instance.context()
    req = SubmitRequest("toys", "default", [simple()], params={"n_toys": "4"}, seed=1, shards=2, backend="dask",
                        backend_options={"address": "tcp://127.0.0.1:9"})
    run_id = submit(inst, ctx, req)
    assert coordinate(inst, ctx, run_id) == "failed"
    with inst.db.transaction() as s:
        run = get_run(s, run_id)
        assert "cannot reach the Dask scheduler" in run.error and "0:" in run.error
    monkeypatch.setenv("PATH", "/nonexistent")
    run_id = submit(inst, ctx, toys(2, backend="slurm", n=4))
    assert coordinate(inst, ctx, run_id) == "failed"
    with inst.db.transaction() as s:
        assert "sbatch is not on PATH" in get_run(s, run_id).error


def test_crashing_worker_is_retried_then_the_run_fails_with_the_shard(sqlite_instance: Instance) -> None:
    inst, ctx = sqlite_instance, sqlite_instance.context()

    class Crashing:
        """A real backend whose workers die on shard 1 (exit without a result)."""

        name = "local"

        def __init__(self) -> None:
            from nextstat_pro.scale.backends.local import LocalBackend

            self.inner = LocalBackend()
            self.launches: list[list[int]] = []

        def launch(self, job):  # type: ignore[no-untyped-def]
            self.launches.append(list(job.shards))
            ok = [s for s in job.shards if s != 1]
            from dataclasses import replace

            return self.inner.launch(replace(job, shards=ok)) if ok else "none"

        def failures(self):  # type: ignore[no-untyped-def]
            return {1: "worker exited with signal 9"} if self.launches and 1 in self.launches[-1] else {}

        def active(self) -> bool:
            return self.inner.active()

        def wait(self, timeout: float) -> None:
            self.inner.wait(timeout)

        def cancel(self) -> None:
            self.inner.cancel()

        def close(self) -> None:
            self.inner.close()

    run_id = submit(inst, ctx, SubmitRequest("toys", "default", [simple()], params={"n_toys": "6"}, seed=3,
                                             shards=3, max_retries=2))
    backend = Crashing()
    assert coordinate(inst, ctx, run_id, backend=backend) == "failed"
    assert [launch for launch in backend.launches if 1 in launch] == [[0, 1, 2], [1], [1]]  # 1 try + 2 retries
    with inst.db.transaction() as s:
        run = get_run(s, run_id)
        assert "shard(s) failed after retries: 1: worker exited with signal 9" in run.error
        assert s.get(ScaleJob, run_id).result_digest is None


def test_sigkill_coordinator_and_worker_then_resume_is_byte_identical(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("nextstat-pro")
    env = {**os.environ, "NSP_HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "NSP_PASSWORD": PASSWORD}
    subprocess.run([str(exe), "init"], env=env, check=True, capture_output=True)
    ws = str(shared("workspaces", "simple_workspace.json"))

    def submit_cli(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(exe), "submit", "toys", "-w", ws, "--param", "n_toys=16000", "--seed", "11",
                                 "--shards", "8", "--workers", "2", "--wait", *extra], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    # Uninterrupted reference.
    ref = submit_cli()
    out, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, out
    # Interrupted: kill the coordinator and its workers as soon as the first shard is done.
    victim = submit_cli()
    home = tmp_path / "home"
    deadline = time.time() + 300
    from nextstat_pro.instance import Instance as Inst

    inst = Inst.open(home)
    run_id = None
    from nextstat_pro.scale.partition import shard_ref

    def refs_written(spec_digest: str) -> int:
        return sum(inst.store.get_ref(shard_ref(spec_digest, i)) is not None for i in range(8))

    # Kill on the first shard result in the store (what the workers write), not on the
    # coordinator's bookkeeping, which lags behind: the kill then lands mid-run.
    while time.time() < deadline:
        with inst.db.transaction() as s:
            jobs = list(s.scalars(select(ScaleJob)))
        victim_job = next((j for j in jobs if j.result_digest is None), None) if len(jobs) == 2 else None
        if victim_job is not None and refs_written(victim_job.spec_digest) >= 1:
            run_id = victim_job.run_id
            break
        time.sleep(0.02)
    assert run_id is not None
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=60)
    written_at_kill = refs_written(victim_job.spec_digest)
    with inst.db.transaction() as s:
        assert get_run(s, run_id).status == "running"
    assert 1 <= written_at_kill < 8  # killed mid-run: the resume has work to do
    resumed = subprocess.run([str(exe), "runs", "resume", run_id], env=env, text=True, capture_output=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with inst.db.transaction() as s:
        ref_id = next(j.run_id for j in s.scalars(select(ScaleJob)) if j.run_id != run_id)
        shard_events = s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.target_id == run_id, AuditEvent.action == "job.shard_done"))
    assert result_of(inst, run_id) == result_of(inst, ref_id)
    assert shard_events == 8  # each shard counted once, across both coordinators
    inst.close()


def test_submit_cli_wait_and_background(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = str(tmp_path / "home")
    assert cli("--home", home, "init", env={"NSP_PASSWORD": PASSWORD}).code == 0
    ws = str(shared("workspaces", "simple_workspace.json"))
    r = cli("--home", home, "submit", "toys", "-w", ws, "--param", "n_toys=12", "--seed", "4", "--shards", "3",
            "--wait")
    assert r.code == 0 and "succeeded" in r.out and "12 points" in r.out, r.out + r.err
    r = cli("--home", home, "submit", "toys", "-w", ws, "--param", "n_toys=12", "--seed", "4", "--shards", "2")
    assert r.code == 0 and "coordinating in the background" in r.out
    run_id = r.out.split()[2]
    from nextstat_pro.instance import Instance as Inst

    inst = Inst.open(Path(home))
    deadline = time.time() + 120
    while time.time() < deadline:
        with inst.db.transaction() as s:
            if get_run(s, run_id).status in ("succeeded", "failed"):
                break
        time.sleep(0.2)
    with inst.db.transaction() as s:
        assert get_run(s, run_id).status == "succeeded"
        first = s.scalars(select(ScaleJob).order_by(ScaleJob.run_id)).first()
    assert result_of(inst, run_id) == result_of(inst, first.run_id)  # 3 shards vs 2: the same bytes
    inst.close()
    r = cli("--home", home, "submit", "toys", "-w", ws, "--param", "n_toys=2", "--seed", "1", "--backend", "pbs")
    assert r.code == 2 and "unknown backend 'pbs'" in r.err


def test_s3_refs_are_write_once(s3_endpoint: str) -> None:
    import uuid

    from nextstat_pro.store import S3Store

    store = S3Store(f"s3://nsp-refs-{uuid.uuid4().hex[:8]}/p")
    store.ensure_bucket()
    a, b = store.put(b"a").digest, store.put(b"b").digest
    assert store.put_ref("jobs/x/shard-00000", a) is True
    assert store.put_ref("jobs/x/shard-00000", b) is False
    assert store.get_ref("jobs/x/shard-00000") == a
    assert store.list_refs("jobs/x") == ["jobs/x/shard-00000"]
    assert store.get_ref("jobs/x/shard-00001") is None


def test_cancel_stops_the_job_and_needs_a_reason(sqlite_instance: Instance) -> None:
    inst, ctx = sqlite_instance, sqlite_instance.context()
    run_id = submit(inst, ctx, toys(2, n=4))
    from nextstat_pro.scale import cancel

    with pytest.raises(UsageError, match="reason is required"):
        cancel(inst, ctx, run_id, "")
    cancel(inst, ctx, run_id, "wrong grid")
    from nextstat_pro.errors import ConflictError

    with pytest.raises(ConflictError, match="cancelled: nothing to resume"):
        coordinate(inst, ctx, run_id)
    with inst.db.transaction() as s:
        assert get_run(s, run_id).status == "cancelled"
        assert s.get(ScaleJob, run_id).result_digest is None


def test_cancel_a_running_job(sqlite_instance: Instance) -> None:
    import threading

    from nextstat_pro.db.models import ScaleShard
    from nextstat_pro.scale import cancel
    from nextstat_pro.scale.backends.local import LocalBackend

    class Stalled(LocalBackend):
        """Runs shard 0 for real; the others never finish (a busy cluster)."""

        def launch(self, job):  # type: ignore[no-untyped-def]
            from dataclasses import replace

            return super().launch(replace(job, shards=[s for s in job.shards if s == 0]))

        def active(self) -> bool:
            return True

    inst, ctx = sqlite_instance, sqlite_instance.context()
    run_id = submit(inst, ctx, toys(4, n=8))
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(coordinate(inst, ctx, run_id, backend=Stalled())))
    thread.start()
    deadline = time.time() + 120
    while time.time() < deadline:
        with inst.db.transaction() as s:
            if s.scalar(select(func.count()).select_from(ScaleShard).where(
                    ScaleShard.run_id == run_id, ScaleShard.status == "done")):
                break
        time.sleep(0.05)
    cancel(inst, ctx, run_id, "not needed any more")
    thread.join(120)
    assert outcome == ["cancelled"]
    with inst.db.transaction() as s:
        assert s.get(ScaleJob, run_id).result_digest is None
        assert get_run(s, run_id).status == "cancelled"


# --- The coordinator is a service: a function call, never a re-launched CLI ---------------------


def wait_for_end(inst: Instance, run_id: str, timeout: float = 180) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with inst.db.transaction() as s:
            status = get_run(s, run_id).status
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.2)
    return status


def test_submit_without_wait_starts_no_cli_and_hands_over_no_token(cli, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails on the old mechanism (``setsid -f nextstat-pro worker coordinate`` with NSP_TOKEN in
    its environment): every process the command starts is recorded with its argv, environment
    and stdin, and none may be the CLI or carry the caller's credential."""
    from nextstat_pro.cli import credentials
    from nextstat_pro.db.models import User

    home = tmp_path / "home"
    assert cli("--home", str(home), "init", env={"NSP_PASSWORD": PASSWORD}).code == 0
    inst = Instance.open(home)
    token = credentials.load(inst.config.instance_id)
    assert token
    started: list[dict[str, object]] = []
    real = subprocess.Popen

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, args, *a, **kw):  # type: ignore[no-untyped-def]
            started.append({"args": [str(x) for x in args], "env": dict(kw.get("env") or os.environ), "stdin": b""})
            super().__init__(args, *a, **kw)

        def communicate(self, input=None, timeout=None):  # type: ignore[no-untyped-def]  # noqa: A002
            started[-1]["stdin"] = input or b""
            return super().communicate(input, timeout)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:  # the command itself does not fork a coordinator either
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counting_fork)
    # The token in the caller's environment too, as an API token would be: it must not reach the child.
    ws = str(shared("workspaces", "simple_workspace.json"))
    r = cli("--home", str(home), "submit", "toys", "-w", ws, "--param", "n_toys=6", "--seed", "2", "--shards", "2",
            env={"NSP_TOKEN": token})
    assert r.code == 0, r.err
    assert "coordinating in the background" in r.out
    run_id = r.out.split()[2]
    assert started, "no coordinator process was started"
    assert forks == []
    for proc in started:
        argv = " ".join(proc["args"])  # type: ignore[arg-type]
        assert "nextstat-pro" not in argv and "nextstat_pro.cli" not in argv, argv
        assert token not in argv
        env = proc["env"]
        assert isinstance(env, dict) and "NSP_TOKEN" not in env and token not in env.values()
        assert token.encode() not in proc["stdin"]  # type: ignore[operator]
    assert [p["args"][1:] for p in started] == [["-m", "nextstat_pro.scale.runner"]]
    ticket = json.loads(started[0]["stdin"])  # type: ignore[arg-type]
    assert ticket["run_id"] == run_id and set(ticket["context"]) == {"user_id", "interface", "client", "extra",
                                                                     "token_id"}
    # The detached coordinator does the work, as the user who submitted, after the command returned.
    assert wait_for_end(inst, run_id) == "succeeded"
    with inst.db.transaction() as s:
        actors = set(s.scalars(select(AuditEvent.actor_id).where(AuditEvent.target_id == run_id)))
        admin_id = s.scalar(select(User.id).where(User.username == "admin"))
    assert actors == {admin_id}
    log = home / "jobs" / run_id / "coordinator.log"
    deadline = time.time() + 60  # its last line follows the run's end
    while f"run {run_id}: succeeded" not in log.read_text() and time.time() < deadline:
        time.sleep(0.1)
    assert f"coordinating run {run_id} for admin" in log.read_text()
    assert f"run {run_id}: succeeded" in log.read_text()
    inst.close()


def test_coordination_is_a_function_call_with_a_request_context(instance: Instance) -> None:
    """In this process (a call, a thread) and in a managed process, with no CLI and no token;
    the caller is authorized before anything starts."""
    from nextstat_pro.errors import PermissionDeniedError
    from nextstat_pro.identity.users import create_user, grant_role
    from nextstat_pro.scale import start_process, start_thread

    inst, ctx = instance, instance.context()
    create_user(inst, ctx, username="vera", printed_name="Vera Viewer", password=PASSWORD)
    grant_role(inst, ctx, "vera", "default", "viewer", "test")
    viewer = inst.context("vera")
    runs = [submit(inst, ctx, toys(2, n=4, seed=k)) for k in range(3)]
    for start in (coordinate, start_thread, start_process):
        with pytest.raises(PermissionDeniedError, match="vera .*may not run.resume"):
            start(inst, viewer, runs[0])  # type: ignore[operator]
    with inst.db.transaction() as s:
        assert {get_run(s, r).status for r in runs} == {"queued"}
    assert coordinate(inst, ctx, runs[0]) == "succeeded"
    thread = start_thread(inst, ctx, runs[1])
    thread.join(180)
    assert (thread.status, thread.error) == ("succeeded", None)
    proc = start_process(inst, ctx, runs[2], detach=False)
    assert proc.process is not None and proc.process.wait(180) == 0
    assert wait_for_end(inst, runs[2]) == "succeeded"
    assert result_of(inst, runs[2]) != result_of(inst, runs[1])  # seeds differ: three real computations
    from nextstat_pro.errors import ConflictError

    with pytest.raises(ConflictError, match="succeeded: nothing to resume"):
        start_process(inst, ctx, runs[2])


def test_a_coordinator_process_rebuilds_the_context_and_refuses_a_revoked_one(
        cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The ticket names ids; the process reads the user and the credential as they are now."""
    from nextstat_pro.cli import credentials
    from nextstat_pro.db.models import ApiToken, User
    from nextstat_pro.db.types import utcnow
    from nextstat_pro.errors import AuthenticationError
    from nextstat_pro.identity.auth import authenticate
    from nextstat_pro.scale.coordinator import start_process
    from nextstat_pro.scale.runner import context_from

    home = tmp_path / "home"
    assert cli("--home", str(home), "init", env={"NSP_PASSWORD": PASSWORD}).code == 0
    inst = Instance.open(home)
    ctx = authenticate(inst, credentials.load(inst.config.instance_id) or "", "cli")
    assert ctx.token_id is not None
    who = {"user_id": ctx.actor.id, "interface": "cli", "client": None, "extra": {}, "token_id": ctx.token_id}
    with inst.db.transaction() as s:
        assert context_from(s, who) == ctx
        # A ticket cannot claim more than the database says.
        assert not context_from(s, {**who, "token_id": None}).token_id
    run_id = submit(inst, ctx, toys(2, n=4))
    with inst.db.transaction() as s:
        s.get(ApiToken, ctx.token_id).revoked_at = utcnow()
    with inst.db.transaction() as s, pytest.raises(AuthenticationError, match="revoked or expired"):
        context_from(s, who)
    started = start_process(inst, ctx, run_id, detach=False)
    assert started.process is not None and started.process.wait(120) == AuthenticationError.exit_code
    assert "revoked or expired: the job was not coordinated" in started.log.read_text()
    with inst.db.transaction() as s:
        assert get_run(s, run_id).status == "queued"
        s.get(User, ctx.actor.id).disabled = True
    with inst.db.transaction() as s, pytest.raises(AuthenticationError, match="can no longer act"):
        context_from(s, {**who, "token_id": None})
    inst.close()


def _grid_job(n: int, point_task: str = "fit") -> tuple[JobSpec, list[InputFile]]:
    """A grid's spec and inputs, for a worker to compute in this process (no store)."""
    from nextstat_pro.scale.spec import InputRef

    files = grid_inputs(n)
    names = [p["metadata"]["name"] for p in json.loads(files[1].data)["patches"]]
    spec = JobSpec(run_id="r", task="grid", point_task=point_task, shards=1, items=names,
                   inputs=[InputRef(role=f.role, name=f.name, digest=f.digest) for f in files])
    return spec, files


def test_replace_patches_share_the_base_and_give_jsonpatchs_document() -> None:
    import copy
    import random

    import jsonpatch
    import jsonpointer

    from nextstat_pro.scale.worker import _MISSING, _replaced

    base = json.loads(shared("workspaces", "example_bkgonly.json").read_text())
    pristine = copy.deepcopy(base)
    rng = random.Random(5)
    paths = ["/channels/0/samples/0/data", "/channels/0/samples/1/data/1", "/observations/0/data/0",
             "/measurements/0/config/poi", "/measurements/1/config/parameters/0", "/channels/0/samples/0", "/version",
             "/channels/0/samples/0/modifiers/0/data/hi"]
    for _ in range(300):
        ops = [{"op": "replace", "path": rng.choice(paths), "value": rng.choice([1.5, [rng.random(), 2.0], {"x": [1]},
                                                                                  copy.deepcopy(base["channels"][0]["samples"][1])])}
               for _ in range(rng.randrange(1, 4))]
        ops_before = copy.deepcopy(ops)
        try:
            expected = jsonpatch.apply_patch(copy.deepcopy(base), ops)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
            assert _replaced(base, ops) is _MISSING  # a path through a replaced scalar: jsonpatch's error
        else:
            assert _replaced(base, ops) == expected
            assert json.dumps(_replaced(base, ops)) == json.dumps(expected)  # member order too
        assert base == pristine and ops == ops_before  # neither the base nor the patch is changed
    # Left to jsonpatch: other operations, "-", escapes, indices jsonpointer refuses, missing members.
    refused = [[{"op": "add", "path": "/version", "value": "2"}], [{"op": "replace", "path": "/version"}], []]
    refused += [[{"op": "replace", "path": path, "value": 1}]
                for path in ("/channels/-", "/a~1b", "/channels/00", "/channels/0/nope", "/version/0", "/channels/1")]
    for ops in refused:
        assert _replaced(base, ops) is _MISSING, ops


def test_a_grid_shard_is_the_same_whether_points_share_the_base_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from nextstat_pro.canonical import canonical_json
    from nextstat_pro.scale import worker

    job = worker.LoadedJob(*_grid_job(4))
    shared_base = canonical_json(worker.compute(job, range(4)))
    monkeypatch.setattr(worker, "_replaced", lambda base, ops: worker._MISSING)
    assert canonical_json(worker.compute(job, range(4))) == shared_base


def test_pyhf_settings_copies_only_the_measurements_it_rewrites() -> None:
    import copy

    from nextstat_pro.engine.measurement import pyhf_settings

    doc = json.loads(shared("workspaces", "example_bkgonly.json").read_text())
    assert pyhf_settings(doc) is None  # every setting already as pyhf reads it
    lumi = next(p for p in doc["measurements"][0]["config"]["parameters"] if p["name"] == "lumi")
    del lumi["sigmas"]
    before = copy.deepcopy(doc)
    out = pyhf_settings(doc)
    assert out is not None and doc == before
    rewritten = next(p for p in out["measurements"][0]["config"]["parameters"] if p["name"] == "lumi")
    assert rewritten == {**lumi, "sigmas": [1.0]} and list(rewritten)[-1] == "sigmas"
    assert all(a is b for a, b in zip(out["measurements"][1:], doc["measurements"][1:], strict=True))
    assert out["channels"] is doc["channels"]


def test_canonical_orjson_path_is_taken_for_fit_results_and_agrees() -> None:
    import dataclasses
    import enum

    import rfc8785

    from nextstat_pro.canonical import _floats, _floats_orjson, canonical_json
    from nextstat_pro.scale import worker

    points = worker.compute(worker.LoadedJob(*_grid_job(3, "hypotest")), range(3))
    assert _floats_orjson(points) == _floats(points) == rfc8785.dumps(points) == canonical_json(points)
    # Floats written out in full as integers: the C-encoder path gives way to rfc8785 there.
    doc = {"points": points, "first": 0, "x": [1e-7, 1e-6, 1e16, 1e21, -0.0, 5e-324, 2.0**53]}
    assert _floats_orjson(doc) == rfc8785.dumps(doc) == canonical_json(doc)

    @dataclasses.dataclass
    class D:
        x: float

    class E(enum.IntEnum):
        A = 1

    # What orjson cannot be shown to write as the C encoder does is handed over, and
    # canonical_json still gives rfc8785's bytes or refuses as it does.
    for value in ([2**53, 1.5], [-(2**53), 1.5], [float("nan"), 1.5], {1: 1.5}, [D(1.5)], ["\ud800", 1.5],
                  ["\U0001f600", 1.5], {"a:1.0,": 1.5}):
        assert _floats_orjson(value) is None, value
    assert _floats_orjson([E.A, 1.5, "1.0,"]) == rfc8785.dumps([1, 1.5, "1.0,"]) == canonical_json([E.A, 1.5, "1.0,"])
    assert canonical_json([2**53 - 1, 1.5]) == rfc8785.dumps([2**53 - 1, 1.5])
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical_json([2**53, 1.5])
