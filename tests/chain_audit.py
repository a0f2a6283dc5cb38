"""The on-chain ledger audit every fault test ends with: what the chain anchored against what was accepted.

`audit_ledger` reads **every** ``BatchAnchored`` log of the ledger contract from
block 0 to the head, straight from the node (``eth_getLogs`` filtered by the
event topic; no database, no indexer), keeps only logs of canonical blocks, and
works out which leaves each anchored root commits to. It then asserts:

* every accepted leaf is anchored exactly once across all on-chain batches;
* no on-chain batch holds a leaf that was not accepted, and every on-chain
  batch is accounted for: its root is recomputed (OpenZeppelin tree,
  `ledger.merkle.MerkleTree`) from accepted leaves and equals the event's root,
  with as many leaves as the event's ``recordCount``;
* the sum of the on-chain ``recordCount`` s equals the number of accepted leaves;
* (for the anchoring worker) each batch id is ``batch_id_for(root)``.

Attributing a root to leaves: a root cannot be opened, so the audit is given
candidate leaf sets and *checks* them. A candidate is believed only when the
OpenZeppelin root of its leaves equals an on-chain root, so a candidate may come
from anywhere, the database included, without being trusted. Candidates tried
for each on-chain batch, in order: what ``candidates(batch_id)`` returns (the
store's records of that batch id), the leaf itself for a one-record batch,
then every run of consecutive accepted leaves (in acceptance order) of the
batch's ``recordCount``: the worker claims records oldest first, so a batch
anchored before a crash and forgotten by the store is usually found this way
and reported as the leaves it anchored a second time. An on-chain batch that no
candidate explains fails the audit.

The accepted leaves are computed by the test from the records it fed in, with
the leaf rule of docs/formats.md, not read back from the store
(`design_leaf`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from web3 import Web3

from secureflow.ledger.anchoring import batch_id_for
from secureflow.ledger.merkle import MerkleTree

BATCH_ANCHORED_SIGNATURE = "BatchAnchored(bytes32,bytes32,uint32,address)"
BATCH_ANCHORED_TOPIC = keccak(text=BATCH_ANCHORED_SIGNATURE)
_MAX_WINDOW_HASHES = 4_000_000
"""Bound on the leaves hashed while searching runs of accepted leaves for one recordCount."""
_SHOWN = 8
"""Problems of one kind listed in a failure message (the rest are counted)."""


def design_leaf(job_id: str, seq: int, record: Mapping[str, Any]) -> bytes:
    """The leaf of a step record by docs/formats.md, computed independently of `ledger.records`.

    ``keccak256(bytes.concat(keccak256(abi.encode(jobId, seq, keccak256(rfc8785(record))))))``.
    """
    record_hash = keccak(bytes(rfc8785.dumps(dict(record))))
    encoded = abi_encode(["bytes32", "uint64", "bytes32"], [bytes.fromhex(job_id[2:]), seq, record_hash])
    return bytes(keccak(keccak(encoded)))


def h(value: bytes) -> str:
    return "0x" + bytes(value).hex()


@dataclass(frozen=True)
class AnchorEvent:
    """One canonical ``BatchAnchored`` log, decoded by hand from its topics and data."""

    batch_id: bytes
    root: bytes
    record_count: int
    anchorer: str
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int

    def describe(self) -> str:
        return (
            f"batch {h(self.batch_id)[:18]}… (root {h(self.root)[:18]}…, recordCount {self.record_count}, "
            f"block {self.block_number}, tx {h(self.tx_hash)[:18]}…)"
        )


def _decode(log: Mapping[str, Any]) -> AnchorEvent:
    topics = [bytes(t) for t in log["topics"]]
    data = bytes(log["data"])
    assert len(topics) == 4 and topics[0] == BATCH_ANCHORED_TOPIC, f"not a BatchAnchored log: {log}"
    assert len(data) == 32 and int.from_bytes(data, "big") < 2**32, f"malformed BatchAnchored data: {log}"
    return AnchorEvent(
        batch_id=topics[1],
        root=topics[2],
        record_count=int.from_bytes(data, "big"),
        anchorer=Web3.to_checksum_address(topics[3][12:]),
        block_number=int(log["blockNumber"]),
        block_hash=bytes(log["blockHash"]),
        tx_hash=bytes(log["transactionHash"]),
        log_index=int(log["logIndex"]),
    )


def anchored_batches(w3: Web3, ledger: str, attempts: int = 3) -> list[AnchorEvent]:
    """Every ``BatchAnchored`` log of ``ledger`` from block 0 to the head, on the canonical chain only.

    The logs are read up to a fixed head; each log's block hash must be the canonical hash at its height
    and the head must be unchanged afterwards (else the chain moved under the read: read again).
    """
    address = Web3.to_checksum_address(ledger)
    for _ in range(attempts):
        head = w3.eth.get_block("latest")
        logs = w3.eth.get_logs(
            {
                "address": address,
                "fromBlock": 0,
                "toBlock": int(head["number"]),
                "topics": [h(BATCH_ANCHORED_TOPIC)],
            }
        )
        events = [_decode(log) for log in logs if not log.get("removed", False)]
        canonical = {n: bytes(w3.eth.get_block(n)["hash"]) for n in sorted({e.block_number for e in events})}
        if bytes(w3.eth.get_block(int(head["number"]))["hash"]) != bytes(head["hash"]):
            continue
        stale = [e for e in events if canonical[e.block_number] != e.block_hash]
        assert not stale, "eth_getLogs returned logs of non-canonical blocks: " + "; ".join(
            e.describe() for e in stale
        )
        return sorted(events, key=lambda e: (e.block_number, e.log_index))
    raise AssertionError(f"the chain kept reorganising while the audit read it ({attempts} attempts)")


@dataclass(frozen=True)
class LedgerAudit:
    """What the chain anchored, each batch with the accepted leaves its root was rebuilt from."""

    batches: tuple[AnchorEvent, ...]
    leaves_of: Mapping[bytes, tuple[bytes, ...]]
    """On-chain batch id -> the leaves whose OpenZeppelin root is that batch's root."""
    _batch_of_leaf: dict[bytes, AnchorEvent] = field(repr=False)

    def batch_of(self, leaf: bytes) -> AnchorEvent:
        """The one on-chain batch that anchors ``leaf``."""
        return self._batch_of_leaf[leaf]


def _candidate_roots(
    events: Sequence[AnchorEvent],
    order: Sequence[bytes],
    candidates: Callable[[bytes], Iterable[bytes]] | None,
) -> dict[bytes, tuple[bytes, ...]]:
    """On-chain root -> leaves whose tree has that root, for each root a candidate explains."""
    wanted = {e.root: e for e in events}
    found: dict[bytes, tuple[bytes, ...]] = {}
    accepted = set(order)
    for event in events:
        hinted = tuple(candidates(event.batch_id)) if candidates is not None else ()
        if hinted and MerkleTree(hinted).root == event.root:
            found[event.root] = hinted
        elif event.root in accepted:
            found[event.root] = (event.root,)  # a one-leaf tree's root is its leaf
    # Runs of consecutive accepted leaves, for each recordCount still unexplained.
    missing_sizes = {e.record_count for e in events if e.root not in found}
    for size in sorted(missing_sizes):
        if not 1 <= size <= len(order) or (len(order) - size + 1) * size > _MAX_WINDOW_HASHES:
            continue
        for start in range(len(order) - size + 1):
            window = tuple(order[start : start + size])
            root = MerkleTree(window).root
            if root in wanted and root not in found:
                found[root] = window
    return found


def audit_ledger(
    w3: Web3,
    ledger: str,
    accepted: Mapping[bytes, str] | Sequence[bytes],
    *,
    candidates: Callable[[bytes], Iterable[bytes]] | None = None,
    deterministic_ids: bool = True,
) -> LedgerAudit:
    """Assert that the chain anchored exactly the ``accepted`` leaves, each exactly once (module docstring).

    ``accepted`` maps each accepted leaf to a label for messages (e.g. ``job 0x…01 seq 3``), in the order
    the records were accepted; a plain sequence of leaves is labelled by its hex. ``candidates(batch_id)``
    may propose the leaves of an on-chain batch (e.g. the store's records of that batch id): a proposal
    counts only if its root is the on-chain root. ``deterministic_ids`` checks the anchoring worker's
    ``batchId = batch_id_for(root)``; tests that anchor hand-made ids pass ``False``.
    """
    labels = dict(accepted) if isinstance(accepted, Mapping) else {leaf: h(leaf) for leaf in accepted}
    order = list(accepted)
    assert len(labels) == len(order), "the test accepted the same leaf twice: fix the test"
    events = anchored_batches(w3, ledger)
    found = _candidate_roots(events, order, candidates)

    problems: dict[str, list[str]] = {}

    def problem(kind: str, text: str) -> None:
        problems.setdefault(kind, []).append(text)

    for kind, key in (("batch id", "batch_id"), ("root", "root")):
        repeated = [v for v, n in Counter(getattr(e, key) for e in events).items() if n > 1]
        for value in repeated:
            problem(f"{kind} anchored more than once", h(value))

    leaves_of: dict[bytes, tuple[bytes, ...]] = {}
    anchorings: dict[bytes, list[AnchorEvent]] = {}
    for event in events:
        if deterministic_ids and event.batch_id != batch_id_for(event.root):
            problem("batch id is not batch_id_for(root)", event.describe())
        leaves = found.get(event.root)
        if leaves is None:
            problem(
                "on-chain batch not accounted for by accepted leaves",
                f"{event.describe()}: no candidate set has its root (it holds a leaf never accepted, "
                "or accepted leaves in a set nobody proposed)",
            )
            continue
        if len(leaves) != event.record_count:
            problem("recordCount differs from the leaves of the root", f"{event.describe()}: {len(leaves)}")
        leaves_of[event.batch_id] = leaves
        for leaf in leaves:
            anchorings.setdefault(leaf, []).append(event)
            if leaf not in labels:
                problem("anchored leaf that was never accepted", f"{h(leaf)} in {event.describe()}")

    for leaf, label in labels.items():
        times = anchorings.get(leaf, [])
        if not times:
            problem("accepted record never anchored", label)
        elif len(times) > 1:
            problem(
                "accepted record anchored more than once",
                f"{label}: anchored {len(times)} times, in " + "; ".join(e.describe() for e in times),
            )

    total = sum(e.record_count for e in events)
    if total != len(labels):
        problem(
            "sum of on-chain recordCount differs from the accepted records",
            f"{total} on chain in {len(events)} batches, {len(labels)} accepted",
        )

    if problems:
        lines = [f"ledger audit of {ledger} failed ({len(events)} BatchAnchored events on chain):"]
        for kind, items in problems.items():
            lines.append(f"- {kind} ({len(items)}):")
            lines += [f"    {item}" for item in items[:_SHOWN]]
            if len(items) > _SHOWN:
                lines.append(f"    … and {len(items) - _SHOWN} more")
        raise AssertionError("\n".join(lines))

    batch_of_leaf = {leaf: times[0] for leaf, times in anchorings.items()}
    return LedgerAudit(tuple(events), leaves_of, batch_of_leaf)
