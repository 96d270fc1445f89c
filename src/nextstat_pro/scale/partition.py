"""Deterministic partitioning: the shard plan is a pure function of (number of items, shards).

Items keep their index whatever the shard count: toy k is always generated with seed
``seed + k``, grid point and scan point i always compute the same thing, so the merged
result does not depend on the shard count, the backend or the completion order."""

from __future__ import annotations


def shard_ranges(n_items: int, shards: int) -> list[range]:
    """Contiguous, balanced, non-empty blocks of item indices (never more shards than items)."""
    if n_items <= 0:
        raise ValueError("a job needs at least one item")
    shards = max(1, min(shards, n_items))
    base, extra = divmod(n_items, shards)
    out, start = [], 0
    for i in range(shards):
        size = base + (1 if i < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def shard_ref(spec_digest: str, shard: int) -> str:
    return f"jobs/{spec_digest.removeprefix('sha256:')}/shard-{shard:05d}"
