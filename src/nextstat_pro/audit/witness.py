"""The witness location: signed checkpoints written outside the database (a folder or an
S3 prefix), write-once, so that rewriting the database cannot rewrite them too.

Beside the write-once ``checkpoint-<size>.note`` files, ``latest.note`` holds the newest
checkpoint (replaced, never shrunk: ``tree.checkpoint`` checks the log against it before it
signs the next), so that signing reads one small object instead of listing them all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ConfigError, IntegrityError
from ..files import atomic_write

PREFIX = "checkpoint-"
SUFFIX = ".note"
LATEST = "latest.note"


def checkpoint_name(size: int) -> str:
    return f"{PREFIX}{size:015d}{SUFFIX}"


class Witness(Protocol):
    url: str

    def write(self, name: str, data: bytes) -> None: ...

    def read(self, name: str) -> bytes: ...

    def names(self) -> list[str]: ...

    def write_latest(self, data: bytes) -> None: ...

    def read_latest(self) -> bytes | None: ...


def _check_same(name: str, old: bytes, new: bytes) -> None:
    if old != new:
        raise IntegrityError(f"witness already holds a different {name}: refusing to overwrite it")


class FolderWitness:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = str(folder)

    def write(self, name: str, data: bytes) -> None:
        path = self.folder / name
        try:
            if path.exists():
                _check_same(name, path.read_bytes(), data)
                return
            atomic_write(path, data)
        except OSError as exc:
            raise ConfigError(f"cannot write to witness {self.url}: {exc}") from None

    def read(self, name: str) -> bytes:
        try:
            return (self.folder / name).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read witness {self.url}: {exc}") from None

    def write_latest(self, data: bytes) -> None:
        try:
            atomic_write(self.folder / LATEST, data)
        except OSError as exc:
            raise ConfigError(f"cannot write to witness {self.url}: {exc}") from None

    def read_latest(self) -> bytes | None:
        try:
            return (self.folder / LATEST).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read witness {self.url}: {exc}") from None

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if not p.name.startswith("."))


class S3Witness:
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.url, self.bucket, self.prefix = url, parsed.netloc, parsed.path.strip("/")
        self.client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def write(self, name: str, data: bytes) -> None:
        try:
            try:
                old = self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
                _check_same(name, old, data)
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(f"cannot write to witness {self.url}: {exc}") from None

    def read(self, name: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        return data

    def write_latest(self, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(LATEST), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(f"cannot write to witness {self.url}: {exc}") from None

    def read_latest(self) -> bytes | None:
        try:
            return self.read(LATEST)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise ConfigError(f"cannot read witness {self.url}: {exc}") from None
        except BotoCoreError as exc:
            raise ConfigError(f"cannot read witness {self.url}: {exc}") from None

    def names(self) -> list[str]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(o["Key"][len(prefix):] for o in page.get("Contents", []))
        return sorted(out)


def open_witness(url: str) -> Witness:
    if url.startswith("s3://"):
        return S3Witness(url)
    return FolderWitness(Path(url))
