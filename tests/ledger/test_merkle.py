"""ledger.merkle: byte-identical to @openzeppelin/merkle-tree, and proofs behave as proofs should."""

from __future__ import annotations

import json
import subprocess

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from secureflow.ledger._internal.toolchain import node_executable, node_modules
from secureflow.ledger.errors import LedgerError
from secureflow.ledger.merkle import (
    MerkleTree,
    MerkleTreeError,
    leaf_hash,
    node_hash,
    process_proof,
    verify_proof,
)

_JS = """
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const values = JSON.parse(input);
  const tree = StandardMerkleTree.of(values, ['bytes32', 'uint64', 'bytes32']);
  const proofs = values.map((_, i) => tree.getProof(i));
  const leaves = values.map((v) => tree.leafHash(v));
  process.stdout.write(JSON.stringify({ root: tree.root, proofs, leaves }));
});
"""

bytes32 = st.binary(min_size=32, max_size=32)
uint64 = st.integers(min_value=0, max_value=2**64 - 1)
record = st.tuples(bytes32, uint64, bytes32)


def _values(count: int) -> list[tuple[bytes, int, bytes]]:
    job = keccak(b"job-" + str(count).encode())
    return [(job, seq, keccak(f"record-{count}-{seq}".encode())) for seq in range(count)]


def _openzeppelin(values: list[tuple[bytes, int, bytes]]) -> dict[str, object]:
    payload = json.dumps([["0x" + j.hex(), str(s), "0x" + r.hex()] for j, s, r in values])
    result = subprocess.run(
        [node_executable(), "-e", _JS],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
        cwd=node_modules().parent,
        timeout=60,
    )
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 50])
def test_matches_openzeppelin_merkle_tree(count: int) -> None:
    values = _values(count)
    expected = _openzeppelin(values)
    leaves = [leaf_hash(*value) for value in values]
    tree = MerkleTree(leaves)
    assert "0x" + tree.root.hex() == expected["root"]
    assert ["0x" + leaf.hex() for leaf in leaves] == expected["leaves"]
    proofs = [["0x" + node.hex() for node in tree.proof(leaf)] for leaf in leaves]
    assert proofs == expected["proofs"]


def test_matches_openzeppelin_with_extreme_values() -> None:
    values = [
        (b"\x00" * 32, 0, b"\x00" * 32),
        (b"\xff" * 32, 2**64 - 1, b"\xff" * 32),
        (b"\x01" * 32, 1, b"\x02" * 32),
    ]
    expected = _openzeppelin(values)
    tree = MerkleTree.of(values)
    assert "0x" + tree.root.hex() == expected["root"]


def test_leaf_hash_is_double_hashed_abi_encoding() -> None:
    job, record_hash = keccak(b"j"), keccak(b"r")
    encoded = encode(["bytes32", "uint64", "bytes32"], [job, 42, record_hash])
    assert leaf_hash(job, 42, record_hash) == keccak(keccak(encoded))


@given(bytes32, uint64, bytes32)
@settings(max_examples=50)
def test_leaf_hash_equals_eth_abi_encoding(job: bytes, seq: int, record_hash: bytes) -> None:
    encoded = encode(["bytes32", "uint64", "bytes32"], [job, seq, record_hash])
    assert leaf_hash(job, seq, record_hash) == keccak(keccak(encoded))


@pytest.mark.parametrize(
    ("job", "seq", "record_hash"),
    [(b"\x00" * 31, 0, b"\x00" * 32), (b"\x00" * 32, -1, b"\x00" * 32), (b"\x00" * 32, 2**64, b"\x00" * 32)],
)
def test_leaf_hash_rejects_bad_input(job: bytes, seq: int, record_hash: bytes) -> None:
    with pytest.raises(MerkleTreeError):
        leaf_hash(job, seq, record_hash)


def test_single_leaf_tree() -> None:
    leaf = leaf_hash(keccak(b"j"), 0, keccak(b"r"))
    tree = MerkleTree([leaf])
    assert tree.root == leaf
    assert tree.proof(leaf) == []
    assert verify_proof(leaf, [], tree.root)


def test_empty_tree_is_rejected() -> None:
    with pytest.raises(MerkleTreeError, match="at least one leaf") as info:
        MerkleTree([])
    assert isinstance(info.value, LedgerError)


def test_unknown_leaf_and_malformed_nodes() -> None:
    tree = MerkleTree.of(_values(3))
    with pytest.raises(MerkleTreeError):
        tree.proof(keccak(b"not a leaf"))
    with pytest.raises(MerkleTreeError):
        MerkleTree([b"short"])
    assert not verify_proof(b"short", [], tree.root)
    assert not verify_proof(tree.leaves[0], [b"short"], tree.root)


def test_node_hash_is_commutative() -> None:
    a, b = keccak(b"a"), keccak(b"b")
    assert node_hash(a, b) == node_hash(b, a) == keccak(min(a, b) + max(a, b))


def test_twenty_thousand_leaves_prove_with_logarithmic_proofs() -> None:
    """The time this takes is a figure of scripts/bench_proofs.py, not an assertion here."""
    leaves = [keccak(i.to_bytes(4, "big")) for i in range(20_000)]
    tree = MerkleTree(leaves)
    proofs = [tree.proof(leaf) for leaf in leaves]
    assert all(len(proof) <= 15 for proof in proofs)
    assert verify_proof(leaves[12345], proofs[12345], tree.root)


@given(st.lists(record, min_size=1, max_size=40))
@settings(max_examples=60, deadline=None)
def test_every_proof_verifies(values: list[tuple[bytes, int, bytes]]) -> None:
    leaves = [leaf_hash(*value) for value in values]
    tree = MerkleTree(leaves)
    assert len(tree) == len(leaves)
    for leaf in leaves:
        proof = tree.proof(leaf)
        assert process_proof(leaf, proof) == tree.root
        assert verify_proof(leaf, proof, tree.root)


@given(st.lists(record, min_size=2, max_size=40, unique_by=lambda v: v), st.data())
@settings(max_examples=60, deadline=None)
def test_tampering_breaks_proofs(values: list[tuple[bytes, int, bytes]], data: st.DataObject) -> None:
    leaves = [leaf_hash(*value) for value in values]
    tree = MerkleTree(leaves)
    leaf = data.draw(st.sampled_from(leaves))
    proof = tree.proof(leaf)
    flip = data.draw(st.integers(min_value=0, max_value=255))
    tampered_leaf = bytes([leaf[0] ^ 0x01]) + leaf[1:]
    assert not verify_proof(tampered_leaf, proof, tree.root)
    position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    node = proof[position]
    tampered_proof = [*proof[:position], bytes([node[0] ^ (flip or 1)]) + node[1:], *proof[position + 1 :]]
    assert not verify_proof(leaf, tampered_proof, tree.root)
    other = data.draw(st.sampled_from([candidate for candidate in leaves if candidate != leaf]))
    if tree.proof(other) != proof:
        assert not verify_proof(leaf, tree.proof(other), tree.root)
    assert not verify_proof(leaf, proof, keccak(tree.root))
