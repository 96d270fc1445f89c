"""Content-addressed object store: local folder by default, S3 for scale."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import ObjectStore, StoredObject, object_key
from .local import LocalStore

if TYPE_CHECKING:
    from .s3 import S3Store

__all__ = ["LocalStore", "ObjectStore", "S3Store", "StoredObject", "object_key", "open_store"]


def open_store(url: str) -> ObjectStore:
    """Open the store named by ``url``: ``file:///path``, a plain path, or ``s3://bucket/prefix``."""
    if url.startswith("s3://"):
        from .s3 import S3Store

        return S3Store(url)
    if url.startswith("file://"):
        return LocalStore(Path(url[len("file://"):]))
    if "://" in url:
        raise ConfigError(f"unsupported store URL {url!r} (use a folder path, file:// or s3://)")
    return LocalStore(Path(url))


def __getattr__(name: str) -> Any:
    # boto3 is imported by S3 instances only: it costs 0.1 s in every shard worker.
    if name == "S3Store":
        from .s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
