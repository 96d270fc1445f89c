"""Cluster backends: SLURM for real (make test starts one), HTCondor submit files against
golden files, Kubernetes manifests against the batch/v1 Job schema (no schedd or API server
can run here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import kubernetes_validate
import pytest

from nextstat_pro.access.context import RequestContext
from nextstat_pro.engine import InputFile
from nextstat_pro.examples import histfactory_workspace, signal_patchset
from nextstat_pro.instance import Instance
from nextstat_pro.scale import SubmitRequest, coordinate, submit
from nextstat_pro.scale.backends.base import Launch
from nextstat_pro.scale.backends.htcondor import submit_description
from nextstat_pro.scale.backends.kubernetes import job_manifest
from nextstat_pro.scale.backends.slurm import sbatch_script

from .conftest import shared
from .test_scale import result_of

GOLDEN = Path(__file__).with_name("golden")
URI = "s3://nsp-bucket/objects#sha256:" + "ab" * 32
RUN = "01a21f34-2c1f-78c8-9daa-1e1d9145bfe8"


def launch(shards: list[int], **options: object) -> Launch:
    return Launch(RUN, URI, shards, Path("/shared/jobs") / RUN, workers=4,
                  options={"executable": "/opt/nextstat-pro/bin/nextstat-pro", **options})


@pytest.mark.parametrize(("name", "shards", "options"), [
    ("htcondor-all.sub", list(range(8)), {}),
    ("htcondor-resume.sub", [1, 4, 6], {"mem": "4GB", "cpus": 2}),
])
def test_htcondor_submit_file_matches_golden(name: str, shards: list[int], options: dict) -> None:  # type: ignore[type-arg]
    text = submit_description(launch(shards, **options))
    golden = GOLDEN / name
    if os.environ.get("NSP_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_sbatch_script_matches_golden() -> None:
    text = sbatch_script(launch([0, 2, 5], partition="short", time="00:30:00"))
    golden = GOLDEN / "slurm-resume.sbatch"
    if os.environ.get("NSP_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("shards", [list(range(5)), [0, 3]])
def test_kubernetes_indexed_job_is_a_valid_batch_v1_job(shards: list[int]) -> None:
    manifest = job_manifest(launch(shards, image="registry.example/nextstat-pro:0.1.0", secret="nsp-s3"))
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    spec = manifest["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == max(shards) + 1
    assert "$(JOB_COMPLETION_INDEX)" in spec["template"]["spec"]["containers"][0]["command"]
    broken = json.loads(json.dumps(manifest))
    broken["spec"]["completionMode"] = 7
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)


def test_slurm_runs_a_grid_byte_identical_to_local(sqlite_instance: Instance) -> None:
    if not os.environ.get("NSP_TEST_SLURM"):
        pytest.fail("SLURM is not running: make test starts munge, slurmctld and slurmd (as root)")
    inst, ctx = sqlite_instance, sqlite_instance.context()
    ws = histfactory_workspace()
    inputs = [InputFile.from_bytes("workspace", "ws.json", json.dumps(ws).encode()),
              InputFile.from_bytes("patchset", "ps.json", json.dumps(signal_patchset(ws, 6)).encode())]
    results = []
    for backend, shards in (("local", 1), ("slurm", 3)):
        run_id = submit(inst, ctx, SubmitRequest("grid", "default", inputs, point_task="hypotest", shards=shards,
                                                 backend=backend, workers=2))
        assert coordinate(inst, ctx, run_id) == "succeeded", backend
        results.append(result_of(inst, run_id))
    assert results[0] == results[1]
    assert list((inst.home / "jobs" / run_id).glob("slurm-*.out"))  # SLURM really ran the array


def test_dask_local_cluster_neither_slows_its_workers_nor_leaks_their_environment() -> None:
    """Dask's nannies set MALLOC_TRIM_THRESHOLD_ (NextStat fits run 2.3x slower under it) and
    write their worker environment into the parent's os.environ, where later Ray or local
    workers would inherit it."""
    import os

    from distributed import Client, LocalCluster

    from nextstat_pro.scale.backends.dask import _local_cluster

    before = dict(os.environ)
    cluster = _local_cluster(LocalCluster, 1)
    try:
        with Client(cluster) as client:
            worker_env = client.submit(lambda: dict(os.environ)).result()
    finally:
        cluster.close()
    assert "MALLOC_TRIM_THRESHOLD_" not in worker_env
    assert worker_env.get("OMP_NUM_THREADS") == "1"  # the rest of Dask's worker settings still apply
    assert dict(os.environ) == before


def test_local_workers_fork_only_from_a_single_threaded_process() -> None:
    """fork copies no thread: once any thread runs (the engine's own pool starts with
    ``fit_toys``), a forked worker could wait forever on a lock it held, so workers spawn."""
    import subprocess
    import sys

    workspace = str(shared("workspaces", "simple_workspace.json"))
    probe = (
        "import threading, time, nextstat as ns\n"
        "from nextstat_pro.scale.backends.local import start_method as m\n"
        "print(m())\n"
        f"model = ns.from_pyhf(open({workspace!r}).read())\n"
        "ns.fit_toys(model, list(ns.fit(model).parameters), n_toys=4, seed=1)\n"
        "print(m())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["fork", "spawn"]
    thread = subprocess.run([sys.executable, "-c", "import threading, time\n"
                             "threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n"
                             "from nextstat_pro.scale.backends.local import start_method\nprint(start_method())"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert thread == ["spawn"]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_forked_and_spawned_workers_merge_the_same_bytes(sqlite_instance: Instance, method: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from nextstat_pro.scale.backends import local

    from .test_scale import grid_inputs

    inst, ctx = sqlite_instance, sqlite_instance.context()
    req = SubmitRequest("grid", "default", grid_inputs(5), point_task="fit", shards=1, backend="local", workers=1)
    reference = result_of(inst, _wait(inst, ctx, submit(inst, ctx, req)))
    monkeypatch.setattr(local, "start_method", lambda: method)
    req = SubmitRequest("grid", "default", grid_inputs(5), point_task="fit", shards=3, backend="local", workers=2)
    run_id = submit(inst, ctx, req)
    assert _wait(inst, ctx, run_id) == run_id
    with inst.db.transaction() as s:
        from nextstat_pro.db.models import ScaleJob

        assert s.get(ScaleJob, run_id).handles == [f"local:2:{method}"]
    assert result_of(inst, run_id) == reference


def _wait(inst: Instance, ctx: RequestContext, run_id: str) -> str:
    assert coordinate(inst, ctx, run_id) == "succeeded"
    return run_id
