"""``POST /verify`` of an uploaded run export and ``GET /audit/export``, on SQLite and PostgreSQL:
an export verifies as the CLI's ``verify`` says, a changed one fails with the CLI's exit code,
an unsafe zip (traversal, absolute names, links, bombs) is refused whole and audited, and the
audit bundle streamed as a zip verifies offline."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from nextstat_pro.engine import InputFile
from nextstat_pro.instance import Instance
from nextstat_pro.runs import RunRequest, run_task
from nextstat_pro.verify import verify_bundle

from .conftest import shared
from .server_api_helpers import API, api_client, bearer, events, problem, refusal_reasons, user_with_role, zip_bytes


def a_run(inst: Instance) -> str:
    inputs = [InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))]
    out = run_task(inst, inst.context(), RunRequest(task="fit", project="default", params={}, seed=None,
                                                    inputs=inputs))
    assert out.status == "succeeded"
    return out.run_id


def exported(client, headers: dict[str, str], run_id: str) -> bytes:  # type: ignore[no-untyped-def]
    r = client.get(f"{API}/runs/{run_id}/export", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    return bytes(r.content)


def post_export(client, headers: dict[str, str], data: bytes, **form: str):  # type: ignore[no-untyped-def]
    return client.post(f"{API}/verify", headers=headers, data=form,
                       files={"export": ("run.zip", data, "application/zip")})


def rewrite(data: bytes, change: dict[str, bytes]) -> bytes:
    """The zip ``data`` with the members whose names end with a key of ``change`` replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = next((v for k, v in change.items() if info.filename.endswith(k)), None)
            dst.writestr(info, body if body is not None else src.read(info))
    return out.getvalue()


def test_an_uploaded_export_verifies_and_a_changed_one_fails(instance: Instance) -> None:
    run_id = a_run(instance)
    client, admin = api_client(instance), bearer(instance)
    vera = user_with_role(instance, "vera", "viewer")  # verifying needs no role: the verifier reads files only
    data = exported(client, admin, run_id)
    r = post_export(client, vera, data)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["run_id"] == run_id and report["status"] == "succeeded"
    assert report["files"] > 0 and report["events"] > 0 and not report["run_key_pinned"]
    # The instance's run-signing key, pinned.
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pem = next(zf.read(n) for n in zf.namelist() if n.endswith("keys/run-signing.pub"))
    assert post_export(client, vera, data, key=pem.decode()).json()["run_key_pinned"]

    changed = rewrite(data, {"/manifest.json": b"{}"})
    assert "verification FAILED" in problem(post_export(client, vera, changed), 422, 7)["detail"]
    problem(post_export(client, vera, data, key="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            422, 7)
    problem(post_export(client, vera, b"not a zip at all"), 422, 3)
    problem(post_export(client, vera, data, digest="sha256:" + "0" * 64), 422, 3)
    assert "digest_mismatch" in refusal_reasons(instance)
    problem(client.post(f"{API}/verify", files={"export": ("run.zip", data, "application/zip")}), 401, 10)
    problem(client.post(f"{API}/verify", headers=vera, json={"export": "x"}), 400, 2)


@pytest.mark.parametrize("members", [
    {"../escape.txt": b"x"},
    {"run/../../escape.txt": b"x"},
    {"/tmp/escape.txt": b"x"},
    {"C:\\escape.txt": b"x"},
    [("run/a.txt", b"x"), ("run/a.txt", b"y")],
    {"run/a": b"x", "run/a/b": b"y"},
])
def test_unsafe_zips_are_refused_whole_and_audited(sqlite_instance: Instance,
                                                   members: dict[str, bytes] | list[tuple[str, bytes]],
                                                   tmp_path: Path) -> None:
    inst = sqlite_instance
    client, admin = api_client(inst), bearer(inst)
    r = post_export(client, admin, zip_bytes(members))
    problem(r, 422, 3)
    assert refusal_reasons(inst) == ["unsafe_archive"]
    assert not Path("/tmp/escape.txt").exists()


def test_links_and_bombs_are_refused(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    client, admin = api_client(inst), bearer(inst)
    problem(post_export(client, admin, zip_bytes({"run/SHA256SUMS": b""}, symlinks={"run/manifest.json": "/etc"})),
            422, 3)
    client.put(f"{API}/config", headers=admin, json={"key": "server.max_body_bytes", "value": 1 << 20,
                                                     "reason": "test"})
    bomb = zip_bytes({"run/zeros": bytes(8 << 20)})
    assert len(bomb) < 64 << 10
    assert "once decompressed" in problem(post_export(client, admin, bomb), 422, 3)["detail"]
    assert refusal_reasons(inst) == ["unsafe_archive", "unsafe_archive"]


def test_the_audit_export_streams_a_bundle_that_verifies(instance: Instance, tmp_path: Path) -> None:
    a_run(instance)
    client, admin = api_client(instance), bearer(instance)
    before = events(instance, "audit.exported")
    r = client.get(f"{API}/audit/export", headers=admin, params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert events(instance, "audit.exported") == before + 1
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = zf.namelist()
        top = names[0].split("/")[0]
        assert {n.split("/", 1)[1] for n in names} >= {"events.jsonl", "events.csv", "checkpoint.note", "proofs.jsonl",
                                                        "log.pub", "bundle.json"}
        zf.extractall(tmp_path)
    assert int(r.headers["x-nsp-events"]) > 0
    assert verify_bundle(tmp_path / top, str(instance.log_verifier()))

    since = client.get(f"{API}/audit/export", headers=admin, params={"since": "2999-01-01"})
    assert since.status_code == 200 and since.headers["x-nsp-events"] == "0"

    vera = user_with_role(instance, "vera", "viewer")
    denied = events(instance, "access.denied", "audit.export")
    problem(client.get(f"{API}/audit/export", headers=vera), 403, 6)
    assert events(instance, "access.denied", "audit.export") == denied + 1
    problem(client.get(f"{API}/audit/export", headers=admin, params={"format": "xml"}), 400, 2)
    problem(client.get(f"{API}/audit/export", headers=admin, params={"since": "x' OR '1'='1"}), 400, 2)
    problem(client.get(f"{API}/audit/export"), 401, 10)
