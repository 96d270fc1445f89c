"""The HTTP API's registry routes, on SQLite and PostgreSQL: push with upload, manifest and
likelihood imports, lists and tag searches, versions, resolve, diff, aliases, tags, description,
archive and purge; and the refusals (wrong role, unknown names, traversal in file names, zip
members and manifest paths, digest mismatches, SQL metacharacters in filters), each a problem
document that stores nothing."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from nextstat_pro.db.models import HubVersion
from nextstat_pro.examples import histfactory_workspace
from nextstat_pro.instance import Instance

from .conftest import shared
from .server_api_helpers import (
    API,
    api_client,
    bearer,
    events,
    problem,
    refusal_reasons,
    rows,
    stored_objects,
    user_with_role,
    zip_bytes,
)

HUB = f"{API}/projects/default/hub"
BKG = shared("workspaces", "example_bkgonly.json").read_bytes()
PATCHSET = shared("workspaces", "example_patchset.json").read_bytes()


def workspace(seed: int = 20261127) -> bytes:
    return json.dumps(histfactory_workspace(seed), indent=1).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(client, headers, data: bytes, name: str = "example", version: str | None = "1.0.0",  # type: ignore[no-untyped-def]
         kind: str = "model", filename: str = "ws.json", **form: object):
    fields: dict[str, object] = {"name": name, **form}
    if version is not None:
        fields["version"] = version
    return client.post(f"{HUB}/{kind}/versions", headers=headers, data=fields,
                       files={"file": (filename, data, "application/json")})


def test_push_list_resolve_diff_alias_edit_archive_purge(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    v1 = workspace()
    r = push(client, admin, v1, tag=["analysis=susy", "year=2026"], digest=sha256(v1), description="first")
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["created"] and first["label"] == "example@1.0.0"
    again = push(client, admin, v1, version=None)
    assert again.status_code == 200 and not again.json()["created"]  # identical content: the existing version
    r = push(client, admin, workspace(7), version="2.0.0", tag=["analysis=susy"])
    assert r.status_code == 201

    listed = client.get(f"{HUB}/model", headers=admin).json()
    assert [(d["name"], d["semver"]) for d in listed] == [("example", "2.0.0")]
    tagged = client.get(f"{HUB}/model", headers=admin, params=[("tag", "analysis=susy"), ("tag", "year=2026")]).json()
    assert [d["semver"] for d in tagged] == ["1.0.0"]
    versions = client.get(f"{HUB}/model/items/example/versions", headers=admin).json()
    assert [d["semver"] for d in versions] == ["1.0.0", "2.0.0"]

    shown = client.get(f"{HUB}/model/resolve", headers=admin, params={"ref": "example@1.0.0", "runs": True}).json()
    assert shown["digest"] == first["digest"] and shown["runs"] == [] and shown["description"] == "first"
    assert client.get(f"{HUB}/model/resolve", headers=admin, params={"ref": "example"}).json()["semver"] == "2.0.0"

    diff = client.get(f"{HUB}/model/diff", headers=admin, params={"a": "example@1.0.0", "b": "example@2.0.0"}).json()
    assert diff["a"] == "example@1.0.0" and not diff["identical"] and diff["changes"]

    r = client.put(f"{HUB}/model/aliases/candidate", headers=admin, json={"ref": "example@1.0.0", "reason": "try"})
    assert r.status_code == 200 and r.json()["aliases"] == ["candidate"]
    assert client.get(f"{HUB}/model/resolve", headers=admin,
                      params={"ref": "example@candidate"}).json()["semver"] == "1.0.0"

    r = client.patch(f"{HUB}/model/versions/example@1.0.0", headers=admin,
                     json={"reason": "retag", "tags": ["stage=final"], "remove_tags": ["year"],
                           "description": "the first model"})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == {"analysis": "susy", "stage": "final"}
    assert r.json()["description"] == "the first model"

    r = client.post(f"{HUB}/model/versions/example@1.0.0/archive", headers=admin, json={"reason": "old"})
    assert r.status_code == 200 and r.json()["archived"]
    problem(client.post(f"{HUB}/model/versions/example@1.0.0/purge", headers=admin, json={"reason": "x"}), 409, 5)
    client.put(f"{API}/config", headers=admin, json={"key": "hub_min_years", "value": 0, "reason": "test"})
    assert "alias 'candidate'" in problem(client.post(f"{HUB}/model/versions/example@1.0.0/purge", headers=admin,
                                                      json={"reason": "x"}), 409, 5)["detail"]
    client.put(f"{HUB}/model/aliases/candidate", headers=admin, json={"ref": "example@2.0.0", "reason": "move"})
    r = client.post(f"{HUB}/model/versions/example@1.0.0/purge", headers=admin, json={"reason": "superseded"})
    assert r.status_code == 200 and r.json()["purged"]


def test_import_a_manifest_zip_and_a_likelihood_archive(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    manifest = "\n".join(json.dumps(e) for e in (
        {"name": "alpha", "file": "models/a.json", "version": "1.0.0", "tags": {"source": "zip"}},
        {"name": "beta", "file": "models/b.json", "version": "1.0.0"})) + "\n"
    bundle = zip_bytes({"import/manifest.jsonl": manifest.encode(), "import/models/a.json": workspace(1),
                        "import/models/b.json": workspace(2)})
    r = client.post(f"{HUB}/model/imports", headers=admin, data={"manifest": "import/manifest.jsonl", "batch": 1},
                    files={"bundle": ("bundle.zip", bundle, "application/zip")})
    assert r.status_code == 200, r.text
    assert r.json() == {"entries": 2, "created": 2, "existing": 0, "batches": 2}
    assert client.get(f"{HUB}/model/resolve", headers=admin, params={"ref": "alpha@1.0.0"}).json()["tags"] == {
        "source": "zip"}

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("lhood/BkgOnly.json", BKG), ("lhood/patchset.json", PATCHSET)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = buf.getvalue()
    r = client.post(f"{HUB}/likelihoods", headers=admin,
                    data={"name": "search", "version": "1.0.0", "tag": ["paper=arXiv:1234"], "digest": sha256(archive)},
                    files={"archive": ("likelihood.tar.gz", archive, "application/gzip")})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["archive_sha256"] == hashlib.sha256(archive).hexdigest()
    assert out["model"]["label"] == "search@1.0.0" and len(out["patchsets"]) == 1


def test_wrong_role_unknown_names_and_bad_kinds(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    vera = user_with_role(instance, "vera", "viewer")
    eddie = user_with_role(instance, "eddie", "editor")
    push(client, admin, workspace())
    counts = rows(instance, HubVersion), stored_objects(instance)

    before = events(instance, "access.denied", "hub.push")
    problem(push(client, vera, workspace(3), version="3.0.0"), 403, 6)
    assert events(instance, "access.denied", "hub.push") == before + 1
    before = events(instance, "access.denied", "hub.alias_protected")
    problem(client.put(f"{HUB}/model/aliases/production", headers=eddie, json={"ref": "example", "reason": "x"}),
            403, 6)
    assert events(instance, "access.denied", "hub.alias_protected") == before + 1
    before = events(instance, "access.denied", "hub.retention")
    problem(client.post(f"{HUB}/model/versions/example@1.0.0/archive", headers=eddie, json={"reason": "x"}), 403, 6)
    assert events(instance, "access.denied", "hub.retention") == before + 1
    problem(client.patch(f"{HUB}/model/versions/example@1.0.0", headers=vera, json={"reason": "x", "tags": ["a=b"]}),
            403, 6)
    # A viewer reads.
    assert client.get(f"{HUB}/model", headers=vera).status_code == 200

    problem(client.get(f"{HUB}/model/resolve", headers=admin, params={"ref": "nothing"}), 404, 4)
    problem(client.get(f"{HUB}/model/resolve", headers=admin, params={"ref": "example@9.9.9"}), 404, 4)
    problem(client.get(f"{HUB}/model/items/nothing/versions", headers=admin), 404, 4)
    problem(client.get(f"{API}/projects/nope/hub/model", headers=admin), 404, 4)
    problem(client.get(f"{HUB}/template", headers=admin), 400, 2)
    problem(client.put(f"{HUB}/model/aliases/candidate", headers=admin, json={"ref": "nothing", "reason": "x"}),
            404, 4)
    problem(client.put(f"{HUB}/model/aliases/candidate", headers=admin, json={"ref": "example", "reason": "x",
                                                                             "force": True}), 400, 2)
    problem(client.patch(f"{HUB}/model/versions/example@1.0.0", headers=admin, content=b"{not json",
                         ), 400, 2)
    assert (rows(instance, HubVersion), stored_objects(instance)) == counts


def test_sql_metacharacters_in_filters_are_text(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    push(client, admin, workspace(), tag=["analysis=susy"])
    for text in ("x' OR '1'='1", "susy'; DROP TABLE hub_versions; --", "%", "_"):
        assert client.get(f"{HUB}/model", headers=admin, params={"tag": f"analysis={text}"}).json() == []
        problem(client.get(f"{HUB}/model/items/{text}/versions", headers=admin), 404, 4)
    problem(client.get(f"{HUB}/model/resolve", headers=admin, params={"ref": "example@sha256:%"}), 400, 2)
    assert rows(instance, HubVersion) == 1


def test_upload_refusals_store_nothing(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    data = workspace()
    counts = rows(instance, HubVersion), stored_objects(instance)

    problem(push(client, admin, data, digest=sha256(b"other bytes")), 422, 3)
    assert refusal_reasons(instance) == ["digest_mismatch"]

    for name in ("../../evil.json", "..", "a/b.json", "a\\b.json", "/etc/passwd"):
        problem(push(client, admin, data, filename=name), 400, 2)

    # Zip members that leave the folder, links, duplicates: refused whole, audited.
    good = workspace()
    bad_bundles = [
        zip_bytes({"manifest.jsonl": b'{"name": "m", "file": "m.json"}\n', "../m.json": good}),
        zip_bytes({"manifest.jsonl": b'{"name": "m", "file": "m.json"}\n', "/abs/m.json": good}),
        zip_bytes({"manifest.jsonl": b'{"name": "m", "file": "m.json"}\n'}, symlinks={"m.json": "/etc/passwd"}),
        zip_bytes([("manifest.jsonl", b'{"name": "m", "file": "m.json"}\n'), ("m.json", good), ("m.json", good)]),
    ]
    for bundle in bad_bundles:
        r = client.post(f"{HUB}/model/imports", headers=admin, files={"bundle": ("b.zip", bundle, "application/zip")})
        problem(r, 422, 3)
    assert refusal_reasons(instance).count("unsafe_archive") == len(bad_bundles)

    # A manifest whose entries point outside its folder: refused before anything is read.
    (instance.home / "secret.json").write_bytes(good)
    for target in (str(instance.home / "secret.json"), "../../../../../../" + str(instance.home / "secret.json")):
        manifest = json.dumps({"name": "m", "file": target}).encode() + b"\n"
        r = client.post(f"{HUB}/model/imports", headers=admin,
                        files={"bundle": ("b.zip", zip_bytes({"manifest.jsonl": manifest}), "application/zip")})
        assert "outside the manifest's folder" in problem(r, 422, 3)["detail"]
    for member in ("../manifest.jsonl", "/etc/passwd"):
        r = client.post(f"{HUB}/model/imports", headers=admin, data={"manifest": member},
                        files={"bundle": ("b.zip", zip_bytes({"manifest.jsonl": b""}), "application/zip")})
        problem(r, 400, 2)
    problem(client.post(f"{HUB}/model/imports", headers=admin,
                        files={"bundle": ("b.zip", b"not a zip", "application/zip")}), 422, 3)
    assert (rows(instance, HubVersion), stored_objects(instance)) == counts


@pytest.mark.parametrize("declared", [True, False])
def test_a_zip_bomb_is_refused(sqlite_instance: Instance, declared: bool) -> None:
    """Past server.max_body_bytes once decompressed, whether the zip declares the size or not."""
    inst = sqlite_instance
    client, admin = api_client(inst), bearer(inst)
    client.put(f"{API}/config", headers=admin, json={"key": "server.max_body_bytes", "value": 1 << 20,
                                                     "reason": "test"})
    bomb = zip_bytes({"manifest.jsonl": b"", "zeros.json": bytes(4 << 20)})
    assert len(bomb) < 64 << 10
    if not declared:  # a member whose header understates its size: counted as written
        bomb = _understate(bomb, "zeros.json")
    r = client.post(f"{HUB}/model/imports", headers=admin, files={"bundle": ("b.zip", bomb, "application/zip")})
    body = problem(r, 422, 3)
    assert "once decompressed" in body["detail"] or "zip" in body["detail"]


def _understate(data: bytes, name: str) -> bytes:
    """Rewrite the central directory entry of ``name`` to claim 10 bytes."""
    import struct

    raw = bytearray(data)
    at = raw.rfind(b"PK\x01\x02")
    while at != -1:
        name_len = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46:at + 46 + name_len] == name.encode():
            struct.pack_into("<I", raw, at + 24, 10)
            break
        at = raw.rfind(b"PK\x01\x02", 0, at)
    return bytes(raw)
