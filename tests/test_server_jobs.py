"""``POST /projects/{project}/jobs`` and ``GET /runs/{run_id}/summary``, on SQLite and PostgreSQL:
a job submitted on an uploaded workspace or on registry references is recorded, coordinated by a
process of the service's and summarised; a wrong role, a digest mismatch, a server-only backend
option and malformed parameters are refused with nothing recorded."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from nextstat_pro.db.models import Run, ScaleJob
from nextstat_pro.instance import Instance

from .conftest import shared
from .server_api_helpers import API, api_client, bearer, events, problem, refusal_reasons, rows, user_with_role

WORKSPACE = shared("workspaces", "simple_workspace.json").read_bytes()
JOBS = f"{API}/projects/default/jobs"


def submit(client: TestClient, headers: dict[str, str], **form: object):  # type: ignore[no-untyped-def]
    files = form.pop("files", {"workspace": ("ws.json", WORKSPACE, "application/json")})
    data = {"task": "toys", "params": json.dumps({"n_toys": 4}), "seed": 7, "shards": 2, "workers": 1, **form}
    return client.post(JOBS, headers=headers, data=data, files=files)  # type: ignore[arg-type]


def wait_for_end(client: TestClient, headers: dict[str, str], run_id: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"{API}/runs/{run_id}/shards", headers=headers).json()["status"]
        if status not in ("queued", "running"):
            return str(status)
        time.sleep(0.3)
    raise AssertionError(f"job {run_id} did not end within {timeout} s")


def test_submit_coordinates_and_summarises(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    r = submit(client, admin)
    assert r.status_code == 202, r.text
    body = r.json()
    run_id = body["job"]["run_id"]
    assert body["coordinator_pid"] > 0 and body["job"]["task"] == "toys"
    assert body["job"]["progress"]["shards_total"] == 2 and body["job"]["progress"]["points_total"] == 4
    assert wait_for_end(client, admin, run_id) == "succeeded"
    summary = client.get(f"{API}/runs/{run_id}/summary", headers=admin).json()
    assert summary["run_id"] == run_id and len(summary["points"]) == 4 and summary["failed"] == 0
    assert events(instance, "job.submitted", run_id) == 1


def test_submit_on_registry_references_without_starting(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    for name in ("one", "two"):
        r = client.post(f"{API}/projects/default/hub/model/versions", headers=admin, data={"name": name},
                        files={"file": ("ws.json", WORKSPACE, "application/json")})
        assert r.status_code in (200, 201), r.text
    r = submit(client, admin, task="fit-many", model=["one", "two"], params="{}", start="false", files={})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["coordinator_pid"] is None and body["job"]["status"] == "queued"
    assert body["job"]["progress"]["points_total"] == 2
    run_id = body["job"]["run_id"]
    assert client.get(f"{API}/runs/{run_id}/summary", headers=admin).json() is None
    # Started later by the runs' resume route, as `runs resume --no-wait`.
    assert client.post(f"{API}/runs/{run_id}/resume", headers=admin).status_code == 202
    assert wait_for_end(client, admin, run_id) == "succeeded"
    assert len(client.get(f"{API}/runs/{run_id}/summary", headers=admin).json()["points"]) == 2


def test_refused_submissions_record_nothing(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    vera = user_with_role(instance, "vera", "viewer")
    counts = rows(instance, Run), rows(instance, ScaleJob)

    denied = events(instance, "access.denied", "run.create")
    problem(submit(client, vera), 403, 6)
    assert events(instance, "access.denied", "run.create") == denied + 1

    problem(submit(client, admin, digests=json.dumps({"workspace": "sha256:" + "0" * 64})), 422, 3)
    assert refusal_reasons(instance) == ["digest_mismatch"]
    assert "executable" in problem(submit(client, admin, backend_options=json.dumps({"executable": "/bin/sh"})),
                                   400, 2)["detail"]
    problem(submit(client, admin, backend="pbs"), 400, 2)
    problem(submit(client, admin, task="grid-search"), 400, 2)
    problem(submit(client, admin, params="{not json"), 400, 2)
    problem(submit(client, admin, params="[1]"), 400, 2)
    problem(submit(client, admin, shards=0), 400, 2)
    problem(submit(client, admin, seed=""), 400, 2)  # toys need a seed
    problem(submit(client, admin, files={"workspace": ("../../ws.json", WORKSPACE, "application/json")}), 400, 2)
    problem(submit(client, admin, task="fit-many", model=["nothing@1.0.0"], files={}), 404, 4)
    problem(submit(client, admin, task="fit-many", model=["x' OR '1'='1"], files={}), 400, 2)
    problem(client.post(f"{API}/projects/nope/jobs", headers=admin, data={"task": "toys"}), 404, 4)
    problem(client.post(JOBS, headers=admin, json={"task": "toys"}), 400, 2)
    assert (rows(instance, Run), rows(instance, ScaleJob)) == counts


def test_summary_of_unknown_and_foreign_runs(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    problem(client.get(f"{API}/runs/nothing/summary", headers=admin), 400, 2)  # too short to be a run id
    problem(client.get(f"{API}/runs/00000000-0000/summary", headers=admin), 404, 4)
    problem(client.get(f"{API}/runs/x' OR '1'='1' --/summary", headers=admin), 404, 4)
    run_id = submit(client, admin, start="false").json()["job"]["run_id"]
    outsider = user_with_role(instance, "olga", None)
    # A run of a project the caller has no role in is not theirs to know of: as unknown.
    problem(client.get(f"{API}/runs/{run_id}/summary", headers=outsider), 404, 4)
    problem(client.get(f"{API}/runs/{run_id}/summary"), 401, 10)
