"""OpenZeppelin ``StandardMerkleTree``-compatible Merkle trees over step-record leaves.

A leaf is the standard double-hashed ABI encoding of
``(bytes32 jobId, uint64 seq, bytes32 recordHash)``:
``keccak256(bytes.concat(keccak256(abi.encode(jobId, seq, recordHash))))``.
The tree is OpenZeppelin's: leaves sorted by hash and stored with the root at
index 0 (a complete binary tree in an array), inner nodes hashed as
``keccak256(sorted(a, b))``. Roots and proofs are byte-identical to
``StandardMerkleTree.of(values, ["bytes32", "uint64", "bytes32"])`` of
``@openzeppelin/merkle-tree`` and verify with ``MerkleProof.verify`` on-chain.

Hashing is Ethereum's keccak256 through safe-pysha3's C implementation
(``sha3.keccak_256``): about 1.5 µs a hash against about 11 µs through
eth-hash's pycryptodome backend, which matters when the batcher builds a tree
of thousands of leaves per anchor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sha3 import keccak_256

from secureflow.ledger.errors import LedgerError

LEAF_ENCODING = ("bytes32", "uint64", "bytes32")
_UINT64_MAX = 2**64 - 1


class MerkleTreeError(LedgerError):
    """A Merkle tree was asked for something it cannot do (no leaves, unknown leaf, bad node)."""

    hint = "build the tree from at least one 32-byte leaf and ask only for leaves it contains"


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak256 (the original Keccak padding, not NIST SHA3-256) of ``data``."""
    digest: bytes = keccak_256(data).digest()
    return digest


def _check_node(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise MerkleTreeError(f"{what} must be 32 bytes")
    return bytes(value)


def leaf_hash(job_id: bytes, seq: int, record_hash: bytes) -> bytes:
    """The standard leaf of one step record.

    ``abi.encode`` of two ``bytes32`` and one ``uint64`` is three 32-byte words
    (the integer left-padded), so it is built directly: identical to
    ``eth_abi.encode(["bytes32", "uint64", "bytes32"], ...)`` and much faster.
    """
    _check_node(job_id, "job_id")
    _check_node(record_hash, "record_hash")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= _UINT64_MAX:
        raise MerkleTreeError("seq must be an integer in the uint64 range")
    encoded = bytes(job_id) + seq.to_bytes(32, "big") + bytes(record_hash)
    return keccak256(keccak256(encoded))


def node_hash(a: bytes, b: bytes) -> bytes:
    """Hash of two sibling nodes, in sorted order (OpenZeppelin ``_hashPair``)."""
    return keccak256(a + b) if a <= b else keccak256(b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` (OpenZeppelin ``MerkleProof.processProof``)."""
    computed = _check_node(leaf, "leaf")
    for sibling in proof:
        computed = node_hash(computed, _check_node(sibling, "proof element"))
    return computed


def verify_proof(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` proves ``leaf`` against ``root``; malformed input gives ``False``."""
    try:
        return process_proof(leaf, proof) == _check_node(root, "root")
    except MerkleTreeError:
        return False


class MerkleTree:
    """A Merkle tree over 32-byte leaves, laid out exactly as OpenZeppelin's ``StandardMerkleTree``."""

    __slots__ = ("_index", "_leaves", "_tree")

    def __init__(self, leaves: Iterable[bytes]) -> None:
        ordered = sorted(_check_node(leaf, "leaf") for leaf in leaves)
        if not ordered:
            raise MerkleTreeError("a Merkle tree needs at least one leaf")
        count = len(ordered)
        size = 2 * count - 1
        tree: list[bytes] = [b""] * size
        index: dict[bytes, int] = {}
        for i, leaf in enumerate(ordered):
            position = size - 1 - i
            tree[position] = leaf
            index.setdefault(leaf, position)
        hash_ = keccak_256  # inlined node_hash: this loop runs once per leaf of every batch
        for i in range(size - 1 - count, -1, -1):
            a, b = tree[2 * i + 1], tree[2 * i + 2]
            tree[i] = hash_(a + b).digest() if a <= b else hash_(b + a).digest()
        self._tree = tree
        self._leaves = tuple(ordered)
        self._index = index

    @classmethod
    def of(cls, values: Iterable[tuple[bytes, int, bytes]]) -> MerkleTree:
        """The tree of ``(job_id, seq, record_hash)`` values (``StandardMerkleTree.of``)."""
        return cls(leaf_hash(job_id, seq, record_hash) for job_id, seq, record_hash in values)

    @property
    def root(self) -> bytes:
        """The 32-byte root (the only leaf, for a one-leaf tree)."""
        return self._tree[0]

    @property
    def leaves(self) -> tuple[bytes, ...]:
        """The leaves in tree order (sorted ascending)."""
        return self._leaves

    def __len__(self) -> int:
        return len(self._leaves)

    def __contains__(self, leaf: object) -> bool:
        return leaf in self._index

    def proof(self, leaf: bytes) -> list[bytes]:
        """The sibling path from ``leaf`` to the root (empty for a one-leaf tree)."""
        position = self._index.get(bytes(leaf))
        if position is None:
            raise MerkleTreeError("leaf is not in this tree")
        path: list[bytes] = []
        while position > 0:
            sibling = position - 1 if position % 2 == 0 else position + 1
            path.append(self._tree[sibling])
            position = (position - 1) // 2
        return path
