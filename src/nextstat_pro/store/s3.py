"""Object store in an S3 bucket (AWS S3, MinIO, Ceph RGW, or moto_server in tests)."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ConfigError, DigestMismatchError
from .base import (
    CHUNK,
    StoredObject,
    check_ref_name,
    checked_digest,
    checked_stream,
    file_digest,
    missing,
    object_key,
    verified,
)


class S3Store:
    """Objects under ``s3://bucket/prefix/sha256/ab/<hex>``.

    A single PUT is atomic in S3, and the request carries the sha256 checksum so the
    server refuses bytes damaged in transit. The endpoint comes from ``AWS_ENDPOINT_URL``
    (standard boto3 configuration) when set.
    """

    def __init__(self, url: str, client: Any | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.client = client or boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))

    def _key(self, digest: str) -> str:
        key = object_key(digest)
        return f"{self.prefix}/{key}" if self.prefix else key

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except (ClientError, BotoCoreError) as exc:
                raise ConfigError(f"cannot reach or create bucket {self.bucket!r}: {exc}") from None
        except BotoCoreError as exc:
            raise ConfigError(f"cannot reach S3 for bucket {self.bucket!r}: {exc}") from None

    def put(self, data: bytes, digest: str | None = None) -> StoredObject:
        if digest is not None and self.exists(digest):
            return StoredObject(digest, len(data), created=False)
        digest = checked_digest(data, digest)
        if self.exists(digest):
            return StoredObject(digest, len(data), created=False)
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(digest), Body=data, ChecksumSHA256=checksum
            )
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(f"S3 write to {self.bucket!r} failed: {exc}") from None
        return StoredObject(digest, len(data), created=True)

    def put_many(self, blobs: list[bytes]) -> list[StoredObject]:
        return [self.put(data) for data in blobs]  # each PUT is durable on its own

    def get(self, digest: str) -> bytes:
        key = self._key(digest)
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise missing(digest, f"s3://{self.bucket}/{key}") from None
            raise ConfigError(f"S3 read from {self.bucket!r} failed: {exc}") from None
        except BotoCoreError as exc:
            raise ConfigError(f"S3 read from {self.bucket!r} failed: {exc}") from None
        return verified(digest, data, f"s3://{self.bucket}/{key}")

    def put_file(self, path: Path, digest: str | None = None) -> StoredObject:
        actual, size = file_digest(path)
        if digest is not None and digest != actual:
            raise DigestMismatchError(digest, actual, str(path))
        if self.exists(actual):
            return StoredObject(actual, size, created=False)
        try:
            # upload_file goes multipart above its threshold; each part carries its checksum.
            self.client.upload_file(str(path), self.bucket, self._key(actual),
                                    ExtraArgs={"ChecksumAlgorithm": "SHA256"})
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(f"S3 write to {self.bucket!r} failed: {exc}") from None
        return StoredObject(actual, size, created=True)

    def _head(self, digest: str) -> dict[str, Any]:
        key = self._key(digest)
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
            return head
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise missing(digest, f"s3://{self.bucket}/{key}") from None
            raise ConfigError(f"S3 lookup in {self.bucket!r} failed: {exc}") from None
        except BotoCoreError as exc:
            raise ConfigError(f"S3 lookup in {self.bucket!r} failed: {exc}") from None

    def size(self, digest: str) -> int:
        return int(self._head(digest)["ContentLength"])

    def read_range(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        key = self._key(digest)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.client.get_object(**args)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise missing(digest, f"s3://{self.bucket}/{key}") from None
            raise ConfigError(f"S3 read from {self.bucket!r} failed: {exc}") from None
        except BotoCoreError as exc:
            raise ConfigError(f"S3 read from {self.bucket!r} failed: {exc}") from None
        chunks: Iterator[bytes] = body.iter_chunks(CHUNK)
        return checked_stream(digest, chunks, f"s3://{self.bucket}/{key}") if args.keys() == {"Bucket", "Key"} \
            else chunks

    def exists(self, digest: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(digest))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise ConfigError(f"S3 lookup in {self.bucket!r} failed: {exc}") from None
        except BotoCoreError as exc:
            raise ConfigError(f"S3 lookup in {self.bucket!r} failed: {exc}") from None

    def delete(self, digest: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(digest))

    def _ref_key(self, name: str) -> str:
        key = f"refs/{check_ref_name(name)}"
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_ref(self, name: str, digest: str) -> bool:
        """Write-once via a conditional PUT (If-None-Match: *), as S3 and MinIO support."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._ref_key(name), Body=digest.encode(), IfNoneMatch="*")
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise ConfigError(f"S3 ref write to {self.bucket!r} failed: {exc}") from None

    def get_ref(self, name: str) -> str | None:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._ref_key(name))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise ConfigError(f"S3 ref read from {self.bucket!r} failed: {exc}") from None
        return body.decode().strip()

    def list_refs(self, prefix: str) -> list[str]:
        base = self._ref_key(prefix) + "/"
        cut = len(base) - len(prefix) - 1
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            out.extend(o["Key"][cut:] for o in page.get("Contents", []))
        return sorted(out)
