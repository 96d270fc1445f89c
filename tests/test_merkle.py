"""RFC 9162 verification against the transparency-dev test vectors, and our proof builder."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from nextstat_pro.audit.merkle import MemoryTree, consistency_proof, inclusion_proof
from nextstat_pro.errors import UsageError
from nextstat_pro.verify.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion

from .conftest import shared


def b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def vectors(kind: str) -> list[Path]:
    files = sorted(shared("testdata", "rfc9162", kind).rglob("*.json"))
    assert len(files) > 20
    return files


@pytest.mark.parametrize("path", vectors("inclusion"), ids=lambda p: "/".join(p.parts[-2:]))
def test_inclusion_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [b64(p) for p in v["proof"] or []]

    def check() -> None:
        verify_inclusion(v["leafIdx"], v["treeSize"], b64(v["leafHash"]), proof, b64(v["root"]))

    if v["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


@pytest.mark.parametrize("path", vectors("consistency"), ids=lambda p: "/".join(p.parts[-2:]))
def test_consistency_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [b64(p) for p in v["proof"] or []]

    def check() -> None:
        verify_consistency(v["size1"], v["size2"], proof, b64(v["root1"]), b64(v["root2"]))

    if v["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


def test_builder_proofs_verify_for_every_size_and_index() -> None:
    leaves = [leaf_hash(f"event {i}".encode()) for i in range(70)]
    tree = MemoryTree()
    roots = []
    for leaf in leaves:
        tree.append(leaf)
        roots.append(tree.root())
    for size in range(1, 71):
        for index in range(size):
            verify_inclusion(index, size, leaves[index], inclusion_proof(tree.node, index, size), roots[size - 1])
        for size1 in range(1, size + 1):
            proof = consistency_proof(tree.node, size1, size)
            verify_consistency(size1, size, proof, roots[size1 - 1], roots[size - 1])


def test_tampered_proofs_fail() -> None:
    rng = random.Random(1)
    leaves = [leaf_hash(bytes([i])) for i in range(37)]
    tree = MemoryTree(leaves)
    proof = inclusion_proof(tree.node, 13, 37)
    bad = list(proof)
    bad[rng.randrange(len(bad))] = bytes(32)
    with pytest.raises(ProofError):
        verify_inclusion(13, 37, leaves[13], bad, tree.root())
    with pytest.raises(ProofError):
        verify_inclusion(14, 37, leaves[13], proof, tree.root())


def test_builder_refuses_impossible_proofs() -> None:
    """Asking the builder for a proof outside the tree is a usage error, not a failed verification."""
    tree = MemoryTree([leaf_hash(b"a"), leaf_hash(b"b")])
    with pytest.raises(UsageError, match="outside a tree of size 2"):
        inclusion_proof(tree.node, 2, 2)
    with pytest.raises(UsageError, match="no consistency proof"):
        consistency_proof(tree.node, 3, 2)
