"""Test support: the contracts deployed once per session (``ledger_stack`` fixture in conftest.py) and
helpers that drive the real anchoring pipeline (accept records, run the anchorer until settled, check
exactly-once on chain)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import rfc8785
from eth_account import Account
from eth_utils.crypto import keccak

from secureflow.ledger.anchoring import Anchorer, AnchoringConfig, batch_id_for
from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.contracts import AuditLedgerClient, hex32
from secureflow.ledger.deploy import Deployment, connect
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS
from secureflow.ledger.indexer import EventIndexer
from secureflow.ledger.merkle import MerkleTree
from secureflow.ledger.nonces import ChainNonceSource, StoreNonceSource
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.records import PartyDigests, StepRecord, params_hash
from secureflow.ledger.store import SqlLedgerStore
from secureflow.ledger.store.schemas import NewJob


@dataclass(frozen=True)
class LedgerStack:
    """The contracts deployed once per session: admin key 0, members keys 1 and 2, anchoring service key 3."""

    deployment: Deployment
    rpc_url: str

    def client(self, **config: Any) -> ChainClient:
        return ChainClient(ChainConfig(rpc_url=self.rpc_url, expected_chain_id=DEV_CHAIN_ID, **config))

    def ledger(self, client: ChainClient, sender: TransactionSender | None = None) -> AuditLedgerClient:
        return AuditLedgerClient(connect(client, self.deployment, "AuditLedger"), sender)


ANCHOR_KEY = DEV_PRIVATE_KEYS[3]
ALICE = Account.from_key(DEV_PRIVATE_KEYS[1]).address
BOB = Account.from_key(DEV_PRIVATE_KEYS[2]).address


def manifest_of(tag: int) -> dict[str, object]:
    return {"parties": [ALICE, BOB], "steps": ["psi"], "tag": tag}


def new_job(store: SqlLedgerStore, tag: int) -> str:
    """A job in the store whose manifest hash is that of `manifest_of(tag)`."""
    job_id = "0x" + f"{tag:064x}"
    manifest_hash = "0x" + keccak(rfc8785.dumps(manifest_of(tag))).hex()
    store.create_job(NewJob(job_id=job_id, manifest_hash=manifest_hash, creator=ALICE, parties=[ALICE, BOB]))
    return job_id


def step(job_id: str, seq: int) -> StepRecord:
    digest = "0x" + f"{seq:064x}"
    return StepRecord(
        job_id=job_id,
        seq=seq,
        algorithm="psi",
        params_hash=params_hash({"seq": seq}),
        code_version="test",
        parties=(
            PartyDigests(party=ALICE, inputs={"t": digest}),
            PartyDigests(party=BOB, outputs={"t": digest}),
        ),
        status="succeeded",
        started_at_ms=1,
        finished_at_ms=2,
    )


def accept(store: SqlLedgerStore, job_id: str, count: int, start: int = 0) -> None:
    store.accept_records([to_outbox(step(job_id, seq)) for seq in range(start, start + count)])


def make_anchorer(
    stack: LedgerStack, store: SqlLedgerStore, client: ChainClient | None = None, **config: object
) -> Anchorer:
    client = client or stack.client(receipt_timeout=10)
    sender = TransactionSender(client, ANCHOR_KEY, StoreNonceSource(store, client.w3, client.chain_id))
    settings = AnchoringConfig(
        **{"max_batch_delay": 0.0, "from_block": stack.deployment.deploy_block, **config}
    )
    return Anchorer(store, stack.ledger(client, sender), sender, settings)


def run_until_settled(anchorer: Anchorer, indexer: EventIndexer | None = None, passes: int = 200) -> None:
    for _ in range(passes):
        if indexer is not None:
            indexer.poll()
        anchorer.run_once()
        counts = anchorer.store.count_records_by_status()
        if counts["pending"] == counts["submitted"] == 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"records did not settle: {anchorer.store.count_records_by_status()}")


def anchor_and_index(stack: LedgerStack, store: SqlLedgerStore) -> None:
    """Run a fresh anchoring worker and event indexer until every accepted record is confirmed."""
    client = stack.client()
    indexer = EventIndexer(
        store,
        client,
        connect(client, stack.deployment, "AuditLedger"),
        from_block=stack.deployment.deploy_block,
    )
    run_until_settled(make_anchorer(stack, store, client), indexer)


def assert_exactly_once(stack: LedgerStack, store: SqlLedgerStore, job_ids: list[str], total: int) -> None:
    """Every record confirmed in one batch; every batch anchored once on chain; proofs verify on chain."""
    reader = stack.ledger(stack.client())
    events = reader.batch_anchored_events(stack.deployment.deploy_block)
    per_batch = Counter(e.batch_id for e in events)
    assert all(n == 1 for n in per_batch.values()), f"a batch was anchored twice: {per_batch}"
    records = [r for job in job_ids for r in store.records_for_job(job)]
    assert len(records) == total
    assert {r.status for r in records} == {"confirmed"}
    by_batch: dict[str, list[str]] = {}
    for r in records:
        assert r.batch_id is not None
        by_batch.setdefault(r.batch_id, []).append(r.leaf)
    on_chain = {e.batch_id: e for e in events}
    assert sum(on_chain[b].record_count for b in by_batch) == total
    for batch_id, leaves in by_batch.items():
        tree = MerkleTree(bytes.fromhex(leaf[2:]) for leaf in leaves)
        assert hex32(tree.root) == on_chain[batch_id].root
        assert batch_id == hex32(batch_id_for(tree.root))
        leaf = bytes.fromhex(leaves[0][2:])
        assert reader.verify(leaf, tree.proof(leaf), tree.root)


def open_job_on_chain(stack: LedgerStack, job_id: str, tag: int) -> None:
    """Create the job `new_job` stored on the audit ledger, sent by Alice."""
    client = stack.client()
    sender = TransactionSender(client, DEV_PRIVATE_KEYS[1], ChainNonceSource(client.w3))
    manifest_hash = keccak(rfc8785.dumps(manifest_of(tag)))
    stack.ledger(client, sender).create_job(bytes.fromhex(job_id[2:]), manifest_hash, [ALICE, BOB])
