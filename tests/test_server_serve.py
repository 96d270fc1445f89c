"""``nextstat-pro serve`` as a real process: one worker on SQLite (more refused with a clear error),
N workers on PostgreSQL, and a 1 GB artifact streamed without the server holding it in memory."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from nextstat_pro.db.models import RunArtifact
from nextstat_pro.engine.inputs import InputFile
from nextstat_pro.instance import Instance, init_instance
from nextstat_pro.runs import RunRequest, run_task

from .conftest import PASSWORD, new_pg_database
from .server_helpers import WORKSPACE

NSP = [sys.executable, "-m", "nextstat_pro.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(home: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen([*NSP, "--home", str(home), "serve", "--port", str(port), "--log-level", "warning", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            err = proc.stderr.read().decode() if proc.stderr is not None else ""
            if proc.stderr is not None:
                proc.stderr.close()
        assert code == 0 and "error" not in err, (code, err)  # SIGTERM is a clean stop


def bearer(url: str) -> dict[str, str]:
    r = httpx.post(url + "/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _init(tmp_path: Path, db_url: str) -> Path:
    inst = init_instance(tmp_path / "home", admin="admin", password=PASSWORD, printed_name="Ada Admin", db_url=db_url)
    inst.close()
    return tmp_path / "home"


def test_sqlite_refuses_several_workers_with_one_line(tmp_path: Path) -> None:
    home = _init(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    r = subprocess.run([*NSP, "--home", str(home), "serve", "--workers", "2", "--port", str(free_port())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: --workers > 1 needs PostgreSQL"), r.stderr


@pytest.mark.postgres
def test_postgresql_serves_with_several_workers(tmp_path: Path) -> None:
    home = _init(tmp_path, new_pg_database())
    with serving(home, "--workers", "2") as (url, proc):
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) >= 2, workers  # uvicorn's supervisor and its worker processes
        assert httpx.get(url + "/readyz").json()["status"] == "ready"
        h = bearer(url)
        for _ in range(3):
            with WORKSPACE.open("rb") as fh:
                r = httpx.post(url + "/api/v1/projects/default/runs", headers=h, data={"task": "fit"},
                               files={"workspace": (WORKSPACE.name, fh, "application/json")}, timeout=60)
            assert r.status_code == 201, r.text
        page = httpx.get(url + "/api/v1/projects/default/runs", headers=h).json()
        assert len(page["items"]) == 3
        assert httpx.post(url + "/api/v1/audit/verify", headers=h, timeout=60).json()["ok"] is True


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_1gb_artifact_streams_through_bounded_server_memory(tmp_path: Path) -> None:
    home = _init(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    big = tmp_path / "big.bin"
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    with big.open("wb") as fh:
        for i in range(1024):
            chunk = block[i % 7:] + block[:i % 7]  # 1 GiB that no block-level dedup flattens
            fh.write(chunk)
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    inst = Instance.open(home)
    try:
        run_id = run_task(inst, inst.context(), RunRequest("fit", "default", {}, None,
                                                           [InputFile.read("workspace", WORKSPACE)])).run_id
        stored = inst.store.put_file(big, digest)
        with inst.db.transaction() as s:  # a large output, as a long task's log would be
            s.add(RunArtifact(run_id=run_id, name="big.bin", digest=stored.digest, size=stored.size,
                              media_type="application/octet-stream"))
    finally:
        inst.close()
    big.unlink()
    t0 = time.monotonic()
    with serving(home) as (url, proc):
        headers = bearer(url)
        baseline = _peak_rss_mb(proc.pid)
        got = hashlib.sha256()
        size = 0
        with httpx.stream("GET", f"{url}/api/v1/runs/{run_id}/artifacts/big.bin", headers=headers, timeout=120) as r:
            assert r.status_code == 200 and int(r.headers["content-length"]) == 1 << 30
            for chunk in r.iter_bytes():
                got.update(chunk)
                size += len(chunk)
        peak = _peak_rss_mb(proc.pid)
    took = time.monotonic() - t0
    assert size == 1 << 30 and "sha256:" + got.hexdigest() == digest
    print(f"server peak RSS {peak:.0f} MB (before the download {baseline:.0f} MB) for a 1024 MB artifact, "
          f"served in {took:.1f} s")
    assert peak - baseline < 128, (baseline, peak)


def test_many_concurrent_clients_are_all_answered(tmp_path: Path) -> None:
    """More clients than request threads: they queue, none fails (each thread keeps a database
    connection; the pools are sized for the threads)."""
    import asyncio

    home = _init(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    with serving(home) as (url, _proc):
        headers = bearer(url)

        async def burst() -> list[int]:
            async with httpx.AsyncClient(headers=headers, timeout=60) as client:
                rs = await asyncio.gather(*(client.get(url + "/api/v1/projects/default/runs",
                                                       params={"status": "succeeded"}) for _ in range(64)))
            return [r.status_code for r in rs]

        assert asyncio.run(burst()) == [200] * 64
