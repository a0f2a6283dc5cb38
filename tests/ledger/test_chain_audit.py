"""The ledger audit every fault test ends with (``tests/chain_audit.py``), shown failing on the chain alone.

Each test anchors by hand, with the anchoring service's key, what a broken worker could leave on chain,
and checks the audit names the failure. No store: the audit reads the chain and the test's own leaves.
(``test_anchoring.py``'s last test shows it catching a broken worker end to end.)
"""

from __future__ import annotations

import pytest
from chain_audit import audit_ledger, design_leaf
from stack import ANCHOR_KEY, LedgerStack, step

from secureflow.ledger.anchoring import batch_id_for
from secureflow.ledger.chain import TransactionSender
from secureflow.ledger.merkle import MerkleTree
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.records import StepRecord

JOB = "0x" + "ab" * 32


def leaves(records: list[StepRecord]) -> list[bytes]:
    return [design_leaf(r.job_id, r.seq, r.model_dump(mode="json")) for r in records]


def anchor(stack: LedgerStack, batch: list[bytes], record_count: int | None = None) -> None:
    """Anchor the OpenZeppelin tree of ``batch`` as the worker would (deterministic batch id)."""
    client = stack.client()
    sender = TransactionSender(client, ANCHOR_KEY, ChainNonceSource(client.w3))
    root = MerkleTree(batch).root
    count = len(batch) if record_count is None else record_count
    stack.ledger(client, sender).anchor_batch(batch_id_for(root), root, count)


def audit(stack: LedgerStack, accepted: list[bytes], **kwargs: object) -> None:
    audit_ledger(stack.client().w3, stack.deployment.address_of("AuditLedger"), accepted, **kwargs)  # type: ignore[arg-type]


def test_the_leaf_rule_of_the_audit_is_the_ledger_s() -> None:
    record = step(JOB, 7)
    assert design_leaf(JOB, 7, record.model_dump(mode="json")) == record.leaf()


def test_a_clean_ledger_passes(ledger_stack: LedgerStack, chain_snapshot: None) -> None:
    accepted = leaves([step(JOB, seq) for seq in range(5)])
    anchor(ledger_stack, accepted[:3])
    anchor(ledger_stack, accepted[3:])
    audit(ledger_stack, accepted)  # found as runs of consecutive accepted leaves, no store needed


def test_a_batch_holding_a_leaf_never_accepted_fails(ledger_stack: LedgerStack, chain_snapshot: None) -> None:
    accepted = leaves([step(JOB, seq) for seq in range(3)])
    foreign = leaves([step(JOB, 99)])
    anchor(ledger_stack, [*accepted, *foreign])
    with pytest.raises(AssertionError) as caught:
        # Even a candidate naming the foreign leaf does not make it accepted.
        audit(ledger_stack, accepted, candidates=lambda _batch_id: [*accepted, *foreign])
    message = str(caught.value)
    assert "anchored leaf that was never accepted (1)" in message
    assert "sum of on-chain recordCount differs from the accepted records" in message
    assert "4 on chain in 1 batches, 3 accepted" in message


def test_a_root_no_candidate_explains_fails(ledger_stack: LedgerStack, chain_snapshot: None) -> None:
    a, x, b = leaves([step(JOB, seq) for seq in range(3)])
    anchor(ledger_stack, [a, b])  # not a run of consecutive accepted leaves
    with pytest.raises(AssertionError) as caught:  # a wrong proposal is not believed
        audit(ledger_stack, [a, x, b], candidates=lambda _batch_id: [a, x])
    message = str(caught.value)
    assert "on-chain batch not accounted for by accepted leaves (1)" in message
    assert "accepted record never anchored (3)" in message


def test_an_accepted_record_never_anchored_fails(ledger_stack: LedgerStack, chain_snapshot: None) -> None:
    accepted = leaves([step(JOB, seq) for seq in range(4)])
    anchor(ledger_stack, accepted[:3])
    with pytest.raises(AssertionError) as caught:
        audit(ledger_stack, accepted)
    message = str(caught.value)
    assert "accepted record never anchored (1)" in message
    assert "3 on chain in 1 batches, 4 accepted" in message


def test_a_record_count_that_is_not_the_tree_s_fails(ledger_stack: LedgerStack, chain_snapshot: None) -> None:
    accepted = leaves([step(JOB, seq) for seq in range(2)])
    anchor(ledger_stack, accepted, record_count=3)
    with pytest.raises(AssertionError) as caught:
        audit(ledger_stack, accepted, candidates=lambda _batch_id: accepted)
    message = str(caught.value)
    assert "recordCount differs from the leaves of the root (1)" in message
    assert "3 on chain in 1 batches, 2 accepted" in message
