"""``hub import-likelihood``: HEPData likelihood archives as linked registry versions, on SQLite and
PostgreSQL. A good archive (whatever its names and folders) gives a model and its patchset(s) linked
to it, with the archive's sha256; every bad one is refused in one line and leaves the registry as it
was (versions and audit events counted before and after)."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from nextstat_pro.db.models import AuditEvent
from nextstat_pro.engine import InputFile
from nextstat_pro.engine.inputs import pyhf_digest
from nextstat_pro.errors import ConflictError, InputError, NSPError, PermissionDeniedError
from nextstat_pro.hub import likelihood, service
from nextstat_pro.hub.likelihood import MAX_BYTES, import_likelihood
from nextstat_pro.hub.views import LikelihoodImport
from nextstat_pro.instance import Instance
from nextstat_pro.projects import get_project

from .audit_helpers import last_seq
from .conftest import PASSWORD, shared
from .identity_helpers import add_user, session_for
from .test_hub import counts

BKG = shared("workspaces", "example_bkgonly.json").read_bytes()
PATCHSET = shared("workspaces", "example_patchset.json").read_bytes()
# pyhf's own patchset for another workspace (its md5 digest is md5("test")).
FOREIGN_PATCHSET = shared("workspaces", "example_patchset_2_patches.json").read_bytes()
PATCH = "patch_channel1_signal_syst1"


def second_patchset() -> bytes:
    """Another patchset for example_bkgonly.json: the example patch under another name."""
    doc = json.loads(PATCHSET)
    doc["patches"][0]["metadata"]["name"] = "patch_doubled"
    return json.dumps(doc).encode()


Entry = tuple[str, bytes] | tarfile.TarInfo


def make_tar(path: Path, entries: list[Entry], mode: str = "w:gz") -> Path:
    """A tar archive of (name, bytes) files and raw headers (links, devices, odd names)."""
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
                continue
            name, data = entry
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    """A symbolic link as Info-ZIP stores one: Unix mode S_IFLNK, the target as the data."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def header(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def imported(instance: Instance, archive: Path, max_bytes: int = MAX_BYTES) -> LikelihoodImport:
    return import_likelihood(instance, instance.context(), "default", archive, "sbottom", "1.0.0", max_bytes=max_bytes)


GOOD_LAYOUTS: dict[str, Callable[[Path], Path]] = {
    "tar.gz, one top-level folder, HEPData names": lambda d: make_tar(d / "likelihood.tar.gz", [
        ("HEPData_ins1234567/BkgOnly.json", BKG), ("HEPData_ins1234567/patchset.json", PATCHSET),
        ("HEPData_ins1234567/README.md", b"# how to use\n")]),
    "plain tar, other names, no folder": lambda d: make_tar(d / "lh.tar", [
        ("signal_patches.json", PATCHSET), ("bkg_only_ws.json", BKG)], mode="w"),
    "tgz, deeper folders, a non-pyhf JSON beside": lambda d: make_tar(d / "lh.tgz", [
        ("./ana/SR/workspace.json", BKG), ("./ana/SR/sig/ps.json", PATCHSET), ("./ana/info.json", b'{"a": 1}')]),
    "an xz tar named .tar.bz2: recognised by its bytes": lambda d: make_tar(d / "lh.tar.bz2", [
        ("BkgOnly.json", BKG), ("patchset.json", PATCHSET)], mode="w:xz"),
    "zip": lambda d: make_zip(d / "lh.zip", [("HEPData/Region-A/BkgOnly.json", BKG),
                                             ("HEPData/Region-A/patchset.json", PATCHSET)]),
}


@pytest.mark.parametrize("layout", list(GOOD_LAYOUTS))
def test_an_archive_gives_a_model_and_its_linked_patchset(instance: Instance, tmp_path: Path, layout: str) -> None:
    archive = GOOD_LAYOUTS[layout](tmp_path)
    seq = last_seq(instance)
    out = imported(instance, archive)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert out.archive_sha256 == sha and out.model.created and [p.created for p in out.patchsets] == [True]
    ctx = instance.context()
    model = service.show(instance, ctx, "default", "model", "sbottom@1.0.0")
    patchset = service.show(instance, ctx, "default", "patchset", "sbottom@1.0.0")
    assert patchset.meta["base_digest"] == model.digest and patchset.meta["patches"] == [PATCH]
    assert model.tags["hepdata_archive"] == patchset.tags["hepdata_archive"] == sha
    assert archive.name in model.description and out.model.file in model.description
    assert model.meta["pyhf_sha256"] == json.loads(PATCHSET)["metadata"]["digests"]["sha256"]
    # The files as they were in the archive are what runs read: byte for byte.
    version = service.resolve(instance, ctx, "default", "model", "sbottom@1.0.0").version
    assert service.read_source(instance, version) == BKG
    assert actions(instance, seq) == ["hub.model.pushed", "hub.patchset.pushed"]
    # A patch reference brings its base model: the link a run follows.
    with instance.db.transaction() as session:
        project = get_project(session, "default")
        _, files = service.materialize(instance, session, project, "patchset", f"sbottom@1.0.0#{PATCH}")
    assert [f.data for _, f in files] == [BKG, PATCHSET]


def actions(instance: Instance, seq: int) -> list[str]:
    with instance.db.transaction() as s:
        return list(s.scalars(select(AuditEvent.action).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)))


def test_importing_the_same_archive_again_changes_nothing(instance: Instance, tmp_path: Path) -> None:
    archive = GOOD_LAYOUTS["plain tar, other names, no folder"](tmp_path)
    imported(instance, archive)
    before = counts(instance)
    again = imported(instance, archive)
    assert not again.model.created and not again.patchsets[0].created
    assert counts(instance) == before


def test_several_patchsets_are_named_after_their_files(instance: Instance, tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "lh.tar.gz", [("a/BkgOnly.json", BKG), ("a/patchset_SR-A.json", PATCHSET),
                                                ("a/patchset_SR-B.json", second_patchset())])
    out = imported(instance, archive)
    assert [(p.name, p.semver) for p in out.patchsets] == [
        ("sbottom-patchset_sr-a", "1.0.0"), ("sbottom-patchset_sr-b", "1.0.0")]
    ref = service.resolve(instance, instance.context(), "default", "patchset",
                          "sbottom-patchset_sr-b@1.0.0#patch_doubled")
    assert ref.version.meta["base_digest"] == out.model.digest


BAD_ARCHIVES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "path traversal": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG), ("patchset.json", PATCHSET),
                                                           ("../../evil.json", b"{}")]), "path traversal"),
    "traversal inside a folder": (lambda d: make_tar(d / "x.tgz", [("a/BkgOnly.json", BKG),
                                                                   ("a/../../patchset.json", PATCHSET)]),
                                  "path traversal"),
    "absolute path": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG), ("/tmp/patchset.json", PATCHSET)]),
                      "absolute path"),
    "symlink": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG), ("patchset.json", PATCHSET),
                                                    header("link.json", tarfile.SYMTYPE, "/etc/passwd")]),
                "symbolic link"),
    "hardlink": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG), ("patchset.json", PATCHSET),
                                                     header("hard.json", tarfile.LNKTYPE, "BkgOnly.json")]),
                 "hard link"),
    "device file": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG), ("patchset.json", PATCHSET),
                                                        header("dev/null", tarfile.CHRTYPE)]), "device file"),
    "fifo": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG), ("patchset.json", PATCHSET),
                                                 header("pipe", tarfile.FIFOTYPE)]), "FIFO"),
    "zip with traversal": (lambda d: make_zip(d / "x.zip", [("BkgOnly.json", BKG), ("../patchset.json", PATCHSET)]),
                           "path traversal"),
    "zip with a symlink": (lambda d: make_zip(d / "x.zip", [("BkgOnly.json", BKG), ("patchset.json", PATCHSET),
                                                            zip_symlink("link.json", "/etc/passwd")]),
                           "symbolic link"),
    "a member twice": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG), ("patchset.json", PATCHSET),
                                                           ("./BkgOnly.json", BKG)]), "appears twice"),
    "no workspace": (lambda d: make_tar(d / "x.tar.gz", [("patchset.json", PATCHSET), ("README", b"text")]),
                     "has no pyhf workspace"),
    "an invalid workspace": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", b'{"channels": 1}'),
                                                                 ("patchset.json", PATCHSET)]),
                             r"BkgOnly.json: workspace is invalid at \$"),
    "two workspaces": (lambda d: make_tar(d / "x.tar.gz", [("SR/BkgOnly.json", BKG), ("CR/BkgOnly.json", BKG),
                                                           ("patchset.json", PATCHSET)]), "has 2 pyhf workspace"),
    "no patchset": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG)]), "has no pyhf patchset"),
    "not a tar": (lambda d: _write(d / "x.tar.gz", b"this is not an archive at all" * 30), "not a readable tar"),
    "gzip of a JSON file": (lambda d: _write(d / "x.tar.gz", _gzip(BKG)), "not a readable tar"),
    "empty file": (lambda d: _write(d / "x.tar", b""), "not a readable tar"),
    "patchset for another workspace": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG),
                                                                           ("patchset.json", FOREIGN_PATCHSET)]),
                                       "made for another workspace"),
    "a patchset for another workspace beside a good one": (
        lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG), ("a.json", PATCHSET), ("b.json", FOREIGN_PATCHSET)]),
        "b.json was made for another workspace"),
    "decompression bomb (tar.gz)": (lambda d: make_tar(d / "x.tar.gz", [("BkgOnly.json", BKG),
                                                                        ("patchset.json", PATCHSET),
                                                                        ("zeros.bin", bytes(3 << 20))]),
                                    "more than 2 MiB once decompressed"),
    "decompression bomb (zip)": (lambda d: make_zip(d / "x.zip", [("BkgOnly.json", BKG), ("patchset.json", PATCHSET),
                                                                  ("zeros.bin", bytes(3 << 20))]),
                                 "more than 2 MiB once decompressed"),
    "oversized plain tar": (lambda d: make_tar(d / "x.tar", [("BkgOnly.json", BKG), ("patchset.json", PATCHSET),
                                                             ("zeros.bin", bytes(3 << 20))], mode="w"),
                            "larger than 2 MiB"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_a_bad_archive_is_refused_in_one_line_and_stores_nothing(instance: Instance, tmp_path: Path,
                                                                 case: str) -> None:
    build, message = BAD_ARCHIVES[case]
    archive = build(tmp_path)
    before = counts(instance)
    with pytest.raises(InputError, match=message) as caught:
        imported(instance, archive, max_bytes=2 << 20)
    assert "\n" not in caught.value.message and caught.value.exit_code == 3
    assert counts(instance) == before


def test_a_bomb_is_refused_before_it_is_decompressed_whole(instance: Instance, tmp_path: Path) -> None:
    """64 MiB of zeros in a gzip of ~64 kB: memory stays near the 1 MiB bound, nothing is stored."""
    import gzip
    import tracemalloc

    archive = tmp_path / "bomb.tar.gz"
    with archive.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as gz:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 64 << 20
        gz.write(info.tobuf())
        for _ in range(64):
            gz.write(bytes(1 << 20))
    assert archive.stat().st_size < 1 << 20
    before = counts(instance)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="more than 1 MiB once decompressed"):
            imported(instance, archive, max_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20 and counts(instance) == before


def test_too_many_members(instance: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(likelihood, "MAX_MEMBERS", 3)
    archive = make_tar(tmp_path / "x.tar.bz2", [("BkgOnly.json", BKG), ("patchset.json", PATCHSET),
                                                ("a", b""), ("b", b"")], mode="w:bz2")
    before = counts(instance)
    with pytest.raises(InputError, match="more than 3 members"):
        imported(instance, archive)
    assert counts(instance) == before


def test_a_label_taken_by_the_patchset_refuses_the_model_too(instance: Instance, tmp_path: Path) -> None:
    """One transaction: when the patchset cannot be stored, neither is the (new) model."""
    ctx = instance.context()
    other = json.loads(BKG)
    other["observations"][0]["data"][0] += 1
    other_bytes = json.dumps(other).encode()
    service.push(instance, ctx, "default", "model", "other", InputFile.from_bytes("workspace", "o.json", other_bytes),
                 "1.0.0")
    foreign = json.loads(PATCHSET)
    foreign["metadata"]["digests"] = {"sha256": pyhf_digest(other, "sha256")}
    service.push(instance, ctx, "default", "patchset", "sbottom",
                 InputFile.from_bytes("patchset", "p.json", json.dumps(foreign).encode()), "1.0.0",
                 base_ref="other@1.0.0")
    before = counts(instance)
    archive = GOOD_LAYOUTS["tar.gz, one top-level folder, HEPData names"](tmp_path)
    with pytest.raises(ConflictError, match="sbottom@1.0.0 exists with other content"):
        imported(instance, archive)
    assert counts(instance) == before
    with pytest.raises(NSPError, match="no model named 'sbottom'"):
        service.resolve(instance, ctx, "default", "model", "sbottom@1.0.0")


def test_a_model_pushed_from_another_file_with_the_same_content_is_checked_as_stored(instance: Instance,
                                                                                      tmp_path: Path) -> None:
    """Canonical identity reads 20.0 and 20 alike, pyhf's digest does not: the patchset must
    match the file runs will read, which is the one stored first."""
    as_ints = json.loads(BKG, parse_float=lambda s: int(float(s)) if float(s).is_integer() else float(s))
    service.push(instance, instance.context(), "default", "model", "sbottom",
                 InputFile.from_bytes("workspace", "ints.json", json.dumps(as_ints).encode()), "1.0.0")
    before = counts(instance)
    archive = GOOD_LAYOUTS["tar.gz, one top-level folder, HEPData names"](tmp_path)
    with pytest.raises(InputError, match="made for another workspace.*holds this workspace already"):
        imported(instance, archive)
    assert counts(instance) == before


def test_a_viewer_cannot_import(instance: Instance, tmp_path: Path) -> None:
    add_user(instance, "vera", "viewer", PASSWORD)
    archive = GOOD_LAYOUTS["zip"](tmp_path)
    versions_before = counts(instance)[0]
    with pytest.raises(PermissionDeniedError):
        import_likelihood(instance, session_for(instance, "vera", PASSWORD), "default", archive, "sbottom", "1.0.0")
    assert counts(instance)[0] == versions_before


def test_cli_imports_and_refuses_in_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    assert cli("--home", str(home), "init", "--admin", "admin", env={"NSP_PASSWORD": PASSWORD}).code == 0
    good = GOOD_LAYOUTS["tar.gz, one top-level folder, HEPData names"](tmp_path)
    r = cli("--home", str(home), "hub", "import-likelihood", str(good), "--name", "sbottom", "--version", "1.0.0",
            "--tag", "analysis=sbottom", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["archive_sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    assert (out["model"]["name"], out["model"]["file"]) == ("sbottom", "HEPData_ins1234567/BkgOnly.json")
    assert out["patchsets"][0]["patches"] == [PATCH] and out["patchsets"][0]["created"]
    shown = json.loads(cli("--home", str(home), "hub", "patchset", "show", "sbottom@1.0.0").out)
    assert shown["tags"] == {"analysis": "sbottom", "hepdata_archive": out["archive_sha256"]}
    listed = cli("--home", str(home), "hub", "model", "versions", "sbottom", "--json")
    bomb = BAD_ARCHIVES["decompression bomb (tar.gz)"][0](tmp_path)
    for archive, extra, code in ((BAD_ARCHIVES["symlink"][0](tmp_path), [], 3), (bomb, ["--max-mb", "2"], 3),
                                 (good, ["--max-mb", "0"], 2), (tmp_path / "missing.tgz", [], 3)):
        r = cli("--home", str(home), "hub", "import-likelihood", str(archive), "--name", "x", "--version", "1.0.0",
                *extra)
        lines = r.err.strip().splitlines()
        assert r.code == code and len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert cli("--home", str(home), "hub", "model", "versions", "sbottom", "--json").out == listed.out
    assert cli("--home", str(home), "hub", "model", "versions", "x").code == 4
