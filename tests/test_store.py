"""The object store: write-once, atomic, verified on read; local folder and S3 (moto_server)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from nextstat_pro.canonical import digest_of
from nextstat_pro.errors import DigestMismatchError, NotFoundError
from nextstat_pro.store import LocalStore, ObjectStore, S3Store, object_key, open_store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "objects")
    request.getfixturevalue("s3_endpoint")
    s3 = S3Store(f"s3://nsp-test-{uuid.uuid4().hex[:10]}/objects")
    s3.ensure_bucket()
    return s3


def test_round_trip_and_write_once(store: ObjectStore) -> None:
    first = store.put(b"hello")
    assert first.digest == digest_of(b"hello") and first.created and first.size == 5
    again = store.put(b"hello")
    assert again.digest == first.digest and not again.created
    assert store.get(first.digest) == b"hello"
    assert store.exists(first.digest)


def test_put_many_stores_every_object_once(store: ObjectStore) -> None:
    store.put(b"old")
    got = store.put_many([b"a", b"old", b"b", b"a"])
    assert [o.digest for o in got] == [digest_of(x) for x in (b"a", b"old", b"b", b"a")]
    assert [o.created for o in got] == [True, False, True, False]
    assert [store.get(o.digest) for o in got] == [b"a", b"old", b"b", b"a"]


def test_crash_during_a_batch_write_leaves_no_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One fsync failing part-way through a batch: no object of the batch appears and no
    temp file is left, so a later write of the same bytes succeeds."""
    store = LocalStore(tmp_path / "objects")
    calls = []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        store.put_many([b"one", b"two", b"three"])
    monkeypatch.undo()
    assert not any(store.exists(digest_of(x)) for x in (b"one", b"two", b"three"))
    assert [p for p in (tmp_path / "objects").rglob("*") if p.is_file()] == []
    assert all(o.created for o in store.put_many([b"one", b"two", b"three"]))


def test_missing_object_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        store.get(digest_of(b"never stored"))
    assert not store.exists(digest_of(b"never stored"))


def test_local_tampered_bytes_fail_the_read(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    digest = store.put(b"original bytes").digest
    path = tmp_path / "objects" / object_key(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"0riginal bytes")
    with pytest.raises(DigestMismatchError, match="is corrupt"):
        store.get(digest)


def test_s3_tampered_bytes_fail_the_read(s3_endpoint: str) -> None:
    store = S3Store(f"s3://nsp-test-{uuid.uuid4().hex[:10]}")
    store.ensure_bucket()
    digest = store.put(b"original bytes").digest
    store.client.put_object(Bucket=store.bucket, Key=store._key(digest), Body=b"tampered")
    with pytest.raises(DigestMismatchError):
        store.get(digest)


def test_crash_during_write_leaves_no_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "objects")

    def crash(*_args: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.put(b"partial?")
    monkeypatch.undo()
    assert not store.exists(digest_of(b"partial?"))
    leftovers = [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]
    assert leftovers == []


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(tmp_path.as_uri()), LocalStore)
    from nextstat_pro.errors import ConfigError

    with pytest.raises(ConfigError):
        open_store("ftp://example/x")


def test_a_claimed_digest_must_be_the_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    with pytest.raises(DigestMismatchError):
        store.put(b"these bytes", digest_of(b"other bytes"))
    assert not store.exists(digest_of(b"these bytes")) and not store.exists(digest_of(b"other bytes"))
    stored = store.put(b"these bytes", digest_of(b"these bytes"))
    assert stored.created and store.get(stored.digest) == b"these bytes"
    assert not store.put(b"these bytes", stored.digest).created  # known object: not hashed or written again
