"""Building RFC 9162 Merkle trees and proofs. Pure functions.

Proof *building* takes a ``node(level, index)`` callback returning the hash of the
complete, aligned subtree covering leaves ``[index * 2**level, (index + 1) * 2**level)``,
so that callers can serve nodes from storage (``audit.tree``) or from memory (``MemoryTree``).
The hashes and the verification of proofs are ``verify.merkle``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import UsageError
from ..verify.merkle import EMPTY_ROOT, node_hash

NodeFn = Callable[[int, int], bytes]


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(node: NodeFn, start: int, end: int) -> bytes:
    """MTH(D[start:end]) from complete aligned subtrees; ``start`` must be aligned to the
    largest power of two not above ``end - start`` (true for every range RFC 9162 asks for)."""
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return node(level, start >> level)
    k = _largest_power_of_two_below(n)
    return node_hash(subtree_hash(node, start, start + k), subtree_hash(node, start + k, end))


def root(node: NodeFn, size: int) -> bytes:
    return subtree_hash(node, 0, size)


def inclusion_proof(node: NodeFn, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < size:
        raise UsageError(f"leaf index {index} is outside a tree of size {size}")
    return _path(node, index, 0, size)


def _path(node: NodeFn, m: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _largest_power_of_two_below(n)
    if m < k:
        return _path(node, m, start, start + k) + [subtree_hash(node, start + k, end)]
    return _path(node, m - k, start + k, end) + [subtree_hash(node, start, start + k)]


def consistency_proof(node: NodeFn, size1: int, size2: int) -> list[bytes]:
    """PROOF(size1, D[0:size2]) (RFC 9162 §2.1.4.1)."""
    if not 0 < size1 <= size2:
        raise UsageError(f"no consistency proof from size {size1} to size {size2}")
    return _subproof(node, size1, 0, size2, True)


def _subproof(node: NodeFn, m: int, start: int, end: int, complete: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if complete else [subtree_hash(node, start, end)]
    k = _largest_power_of_two_below(n)
    if m <= k:
        return _subproof(node, m, start, start + k, complete) + [subtree_hash(node, start + k, end)]
    return _subproof(node, m - k, start + k, end, False) + [subtree_hash(node, start, start + k)]


class MemoryTree:
    """An in-memory tree of leaf hashes keeping every complete subtree (tests, ``audit verify``)."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level, index = 0, self.size - 1
        while index & 1:
            left, right = self.levels[level][index - 1], self.levels[level][index]
            level += 1
            if len(self.levels) == level:
                self.levels.append([])
            self.levels[level].append(node_hash(left, right))
            index >>= 1

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return root(self.node, self.size if size is None else size)
