"""The ``regression`` and ``stuck`` rules: pure comparisons, baselines found in the registry, and a job
whose coordinator and workers were killed with SIGKILL noticed from its shard rows alone."""

from __future__ import annotations

import copy
import json
import os
import signal
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from nextstat_pro.alerts import service
from nextstat_pro.alerts.regression import compare
from nextstat_pro.db.models import Run
from nextstat_pro.db.types import utcnow
from nextstat_pro.engine import InputFile
from nextstat_pro.hub import service as hub
from nextstat_pro.instance import Instance
from nextstat_pro.projects import get_project
from nextstat_pro.runs import RunInputs, RunRequest, run_task
from nextstat_pro.runs.records import create_run
from nextstat_pro.scale.coordinator import start_process
from nextstat_pro.scale.service import SubmitRequest, submit

from .conftest import shared
from .test_alerts import Receiver, drain, webhook_channel

FIT = {"poi": {"name": "mu", "value": 1.0, "uncertainty": 0.5, "fixed": False},
       "parameters": [{"name": "mu", "value": 1.0, "uncertainty": 0.5, "fixed": False},
                      {"name": "lumi", "value": 1.0, "uncertainty": 0.0, "fixed": True}],
       "observed": 2.0, "expected": {"median": 1.8}, "cls": 0.2, "wall_time_s": 1.0,
       "points": [{"mu": 0.5, "cls": 0.3}, {"mu": 1.5, "cls": 0.04}]}


def changed(**updates: Any) -> dict[str, Any]:
    doc = copy.deepcopy(FIT)
    for key, value in updates.items():
        doc[key] = value
    return doc


def test_compare_inside_tolerance_is_nothing_and_each_kind_of_change_is_named() -> None:
    tol = {"sigmas": 1.0, "limit_pct": 5.0, "wall_pct": 50.0}
    assert compare(FIT, FIT, **tol) == []
    inside = changed(poi={**FIT["poi"], "value": 1.4}, observed=2.08, wall_time_s=1.4)
    inside["parameters"][0]["value"] = 1.4
    assert compare(FIT, inside, **tol) == []  # 0.8 sigma, +4 %, +40 %: all within
    moved = changed(parameters=[{"name": "mu", "value": 1.6, "uncertainty": 0.5, "fixed": False}])
    [diff] = compare(FIT, moved, **tol)
    assert diff["what"] == "parameter mu" and diff["baseline"] == 1.0 and diff["current"] == 1.6
    assert diff["change"] == "1.2 sigma"
    assert [d["what"] for d in compare(FIT, changed(observed=2.2), **tol)] == ["observed upper limit"]
    assert [d["what"] for d in compare(FIT, changed(expected={"median": 1.5}), **tol)] == \
        ["expected upper limit (median)"]
    assert [d["what"] for d in compare(FIT, changed(cls=0.25), **tol)] == ["CLs"]
    flipped = compare(FIT, changed(points=[{"mu": 0.5, "cls": 0.3}, {"mu": 1.5, "cls": 0.06}]), **tol)
    assert [d["change"] for d in flipped] == ["no longer excluded"] and "{'mu': 1.5}" in flipped[0]["what"]
    assert [d["what"] for d in compare(FIT, changed(wall_time_s=1.6), **tol)] == ["wall time (s)"]
    assert compare(FIT, changed(wall_time_s=0.1), **tol) == []  # faster is no regression


def _workspace(observed: list[float]) -> InputFile:
    doc = json.loads(shared("workspaces", "simple_workspace.json").read_text())
    doc["observations"][0]["data"] = observed
    return InputFile.from_bytes("workspace", "ws.json", json.dumps(doc).encode())


def _fit(instance: Instance, ref: str) -> str:
    out = run_task(instance, instance.context(), RunRequest("fit", "default", {}, None, given=RunInputs(model=ref)))
    assert out.status == "succeeded", out.error
    return out.run_id


@pytest.mark.parametrize("mode", ["previous-version", "alias:production"])
def test_regression_names_the_baseline_and_stays_quiet_inside_tolerance(instance: Instance, mode: str) -> None:
    receiver = Receiver()
    try:
        ctx = instance.context()
        webhook_channel(instance, receiver.url)
        # Wall time of a millisecond fit varies by more than 50 % from run to run: not what is tested here.
        service.add_rule(instance, ctx, "default", "reg", "regression", "hook", {"baseline": mode, "wall_pct": 1e6})
        for semver, observed in (("1.0.0", [53.0, 65.0]), ("2.0.0", [80.0, 95.0]), ("3.0.0", [80.0, 95.5])):
            hub.push(instance, ctx, "default", "model", "simple", _workspace(observed), semver)
        v1 = _fit(instance, "simple@1.0.0")
        if mode.startswith("alias:"):
            hub.set_alias(instance, ctx, "default", "model", "simple@1.0.0", "production", "first")
            hub.set_alias(instance, ctx, "default", "model", "simple@2.0.0", "production", "new data")
        v2 = _fit(instance, "simple@2.0.0")
        if mode.startswith("alias:"):
            hub.set_alias(instance, ctx, "default", "model", "simple@3.0.0", "production", "tiny fix")
        _fit(instance, "simple@3.0.0")  # its baseline is the 2.0.0 run: mu moves far less than its error
        drain(instance)
        [hit] = receiver.wait_for(1)
        time.sleep(0.2)
        assert len(receiver.hits) == 1
        data = hit.json()["data"]
        details = data["details"]
        assert details["run_id"] == v2 and details["baseline_run_id"] == v1
        assert details["baseline_version"] == "simple@1.0.0"
        mu = next(d for d in details["differences"] if d["what"] == "parameter mu")
        assert mu["current"] > mu["baseline"]  # both numbers, side by side
        assert f"baseline run {v1[:8]}" in data["title"]
    finally:
        receiver.close()


def test_an_abandoned_in_process_run_is_stuck_once(instance: Instance) -> None:
    receiver = Receiver()
    try:
        ctx = instance.context()
        webhook_channel(instance, receiver.url)
        service.add_rule(instance, ctx, "default", "stuck", "stuck", "hook", {"after_s": 1})
        with instance.db.transaction() as session:
            project = get_project(session, "default")
            live = create_run(session, ctx, project, "fit", {}, None, [], start=True,
                              lease_until=utcnow() + timedelta(seconds=60)).run_id
            dead = create_run(session, ctx, project, "fit", {}, None, [], start=True,
                              lease_until=utcnow() - timedelta(seconds=1)).run_id
        drain(instance)
        drain(instance)
        [hit] = receiver.wait_for(1)
        time.sleep(0.2)
        assert len(receiver.hits) == 1
        assert hit.json()["data"]["details"]["run_id"] == dead != live
    finally:
        receiver.close()


def test_a_job_whose_processes_were_killed_is_stuck(instance: Instance) -> None:
    receiver = Receiver()
    try:
        ctx = instance.context()
        webhook_channel(instance, receiver.url)
        service.add_rule(instance, ctx, "default", "stuck", "stuck", "hook", {"after_s": 1})
        service.add_rule(instance, ctx, "default", "patient", "stuck", "hook", {"after_s": 3600})
        ws = InputFile.read("workspace", shared("workspaces", "tttt-prod_workspace.json"))
        run_id = submit(instance, ctx, SubmitRequest("toys", "default", [ws], params={"n_toys": "400000"}, seed=1,
                                                     shards=2, workers=2))
        started = start_process(instance, ctx, run_id, detach=False)
        assert started.process is not None

        def status() -> str:
            with instance.db.transaction() as s:
                return s.scalar(select(Run.status).where(Run.id == run_id)) or ""

        deadline = time.monotonic() + 30
        while status() != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the workers are computing
        os.killpg(started.pid, signal.SIGKILL)  # the coordinator and its workers: no callback from anyone
        started.process.wait(timeout=10)
        assert status() == "running"
        time.sleep(1.2)
        drain(instance)
        [hit] = receiver.wait_for(1)
        time.sleep(0.2)
        assert len(receiver.hits) == 1  # the patient rule's hour has not passed
        data = hit.json()["data"]
        assert data["rule"] == "stuck" and data["details"]["run_id"] == run_id
        assert "no shard progress" in data["title"] and data["details"]["shards_done"] == 0
        drain(instance)
        time.sleep(0.2)
        assert len(receiver.hits) == 1  # the same stall: not alerted twice
    finally:
        receiver.close()
