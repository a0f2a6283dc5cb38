"""Test support: the contracts deployed once per session (``ledger_stack`` fixture in conftest.py) and
helpers that drive the real anchoring pipeline (accept records, run the anchorer until settled, check
exactly-once on chain with the ledger audit of ``chain_audit.py``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785
from chain_audit import LedgerAudit, audit_ledger, design_leaf, h
from eth_account import Account
from eth_utils.crypto import keccak

from secureflow.ledger.anchoring import Anchorer, AnchoringConfig
from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.consent import sign_consent
from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient, hex32
from secureflow.ledger.deploy import Deployment, connect, deploy_contracts
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS
from secureflow.ledger.indexer import EventIndexer
from secureflow.ledger.merkle import MerkleTree
from secureflow.ledger.nonces import ChainNonceSource, StoreNonceSource
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.records import PartyDigests, StepRecord, job_id_for, params_hash
from secureflow.ledger.signing import sign_party
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

    def registry(self) -> RegistryClient:
        """The registry, sending as its admin (key 0): register, suspend and reinstate members."""
        client = self.client()
        admin = TransactionSender(client, DEV_PRIVATE_KEYS[0], ChainNonceSource(client.w3))
        return RegistryClient(connect(client, self.deployment, "ConsortiumRegistry"), admin)


def deploy_ledger_stack(rpc_url: str) -> LedgerStack:
    """Deploy the contracts on the node at ``rpc_url``: admin key 0, members keys 1 and 2, anchoring key 3."""
    client = ChainClient(ChainConfig(rpc_url=rpc_url, expected_chain_id=DEV_CHAIN_ID))
    admin = TransactionSender(client, DEV_PRIVATE_KEYS[0], ChainNonceSource(client.w3))
    deployment = deploy_contracts(client, admin)
    registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
    for key in DEV_PRIVATE_KEYS[1:3]:
        registry.register_member(Account.from_key(key).address)
    registry.grant_anchor_service(Account.from_key(DEV_PRIVATE_KEYS[3]).address)
    return LedgerStack(deployment, rpc_url)


ANCHOR_KEY = DEV_PRIVATE_KEYS[3]
SERVICE = Account.from_key(ANCHOR_KEY).address  # the anchoring service: ANCHOR role, the API's service key
ALICE = Account.from_key(DEV_PRIVATE_KEYS[1]).address
BOB = Account.from_key(DEV_PRIVATE_KEYS[2]).address
MEMBER_KEYS = {ALICE: DEV_PRIVATE_KEYS[1], BOB: DEV_PRIVATE_KEYS[2]}


def manifest_of(tag: int, steps: int = 1) -> dict[str, object]:
    return {"parties": [ALICE, BOB], "steps": ["psi"] * steps, "tag": tag}


def salt_of(tag: int) -> str:
    return "0x" + keccak(text=f"job salt {tag}").hex()


def new_job(store: SqlLedgerStore, tag: int, steps: int = 1) -> str:
    """Alice's job in the store, manifest hash that of `manifest_of(tag, steps)`, id by the ledger's rule."""
    manifest_hash = "0x" + keccak(rfc8785.dumps(manifest_of(tag, steps))).hex()
    job_id = job_id_for(ALICE, manifest_hash, salt_of(tag))
    store.create_job(
        NewJob(
            job_id=job_id, manifest_hash=manifest_hash, creator=ALICE, parties=[ALICE, BOB], salt=salt_of(tag)
        )
    )
    return job_id


def step(job_id: str, seq: int, *, signed: bool = False) -> StepRecord:
    """Step ``seq`` of a job of Alice and Bob; ``signed``: each party's part signed with its member key."""
    digest = "0x" + f"{seq:064x}"
    record = StepRecord(
        job_id=job_id,
        seq=seq,
        algorithm="psi",
        params_hash=params_hash({"seq": seq}, None),
        code_version="test",
        parties=(
            PartyDigests(party=ALICE, inputs={"t": digest}),
            PartyDigests(party=BOB, outputs={"t": digest}),
        ),
        status="succeeded",
        started_at_ms=1,
        finished_at_ms=2,
    )
    return signed_by_parties(record) if signed else record


def signed_by_parties(record: StepRecord) -> StepRecord:
    """``record`` with each party's part (re)signed by that party's member key (alice and bob)."""
    unsigned = record.model_copy(
        update={"parties": tuple(p.model_copy(update={"signature": None}) for p in record.parties)}
    )
    parties = tuple(
        p.model_copy(update={"signature": sign_party(unsigned, p, bytes.fromhex(MEMBER_KEYS[p.party][2:]))})
        for p in unsigned.parties
    )
    return unsigned.model_copy(update={"parties": parties})


def accept(
    store: SqlLedgerStore, job_id: str, count: int, start: int = 0, *, signed: bool = False
) -> list[StepRecord]:
    """Accept records ``start .. start+count-1`` of the job into the outbox; returns the records accepted."""
    records = [step(job_id, seq, signed=signed) for seq in range(start, start + count)]
    store.accept_records([to_outbox(record) for record in records])
    return records


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


def _label(record: StepRecord) -> str:
    return f"job {record.job_id[:6]}…{record.job_id[-6:]} seq {record.seq}"


def assert_anchored_exactly_once(
    stack: LedgerStack,
    store: SqlLedgerStore,
    records: Sequence[StepRecord],
    *,
    quarantined: Sequence[tuple[str, int]] = (),
) -> LedgerAudit:
    """The on-chain ledger audit of the records the test accepted, then the store must agree with the chain.

    `chain_audit.audit_ledger` checks every ``BatchAnchored`` event of the session's ledger from block 0
    against the leaves of ``records`` (computed here by the DESIGN rule, not read from the store); the
    store only proposes each on-chain batch's leaves, and a proposal counts only if its root is the
    on-chain root. Then each record is in the store unchanged (same leaf), ``confirmed``, in the batch
    whose on-chain event anchors its leaf, and that batch is stored with the event's root, block and tx.
    ``quarantined`` (job id, seq) are records of these jobs the worker had to give up on (a poison row the
    test corrupted): each must be ``failed`` with a ``quarantined:`` reason and in no batch, and, not being
    among ``records``, the audit fails if any on-chain batch holds its leaf (good or corrupted).
    """
    accepted = {design_leaf(r.job_id, r.seq, r.model_dump(mode="json")): _label(r) for r in records}
    assert len(accepted) == len(records), "the same record was passed twice"
    rows = {
        (row.job_id, row.seq): row
        for job in {r.job_id for r in records}
        for row in store.records_for_job(job)
    }
    for key in quarantined:
        poison = rows.pop(key)
        assert poison.status == "failed" and poison.batch_id is None, f"poison record {key}: {poison}"
        assert (poison.failure_reason or "").startswith("quarantined: "), poison.failure_reason
    stored_batches: dict[str | None, list[bytes]] = {}
    for row in rows.values():
        stored_batches.setdefault(row.batch_id, []).append(bytes.fromhex(row.leaf[2:]))

    def stored_leaves(batch_id: bytes) -> list[bytes]:
        """What the store says the batch holds (its records of these jobs; else any it knows)."""
        known = stored_batches.get(h(batch_id))
        return known or [bytes.fromhex(leaf[2:]) for leaf in store.batch_leaves(h(batch_id))]

    audit = audit_ledger(
        stack.client().w3, stack.deployment.address_of("AuditLedger"), accepted, candidates=stored_leaves
    )
    assert len(rows) == len(records), (
        f"the store holds {len(rows)} records of these jobs, {len(records)} accepted"
    )
    for record, leaf in zip(records, accepted, strict=True):
        row = rows[(record.job_id, record.seq)]
        assert (row.leaf, row.status) == (h(leaf), "confirmed"), f"{accepted[leaf]}: {row}"
        assert row.batch_id == h(audit.batch_of(leaf).batch_id), f"{accepted[leaf]}: stored in another batch"
    for event in audit.batches:
        batch = store.get_batch(h(event.batch_id))
        assert batch is not None, f"the store does not know {event.describe()}"
        stored = (
            batch.status,
            batch.root,
            batch.record_count,
            batch.block_number,
            batch.block_hash,
            batch.tx_hash,
        )
        on_chain = (
            "confirmed",
            h(event.root),
            event.record_count,
            event.block_number,
            h(event.block_hash),
            h(event.tx_hash),
        )
        assert stored == on_chain, f"the store's batch {stored} differs from the chain's {event.describe()}"
    return audit


def open_job_on_chain(
    stack: LedgerStack, job_id: str, tag: int, *, steps: int = 1, consenting: int = 2
) -> None:
    """Create the job `new_job` stored on the audit ledger, sent by Alice: with both parties' EIP-712
    consents it is Open (as a job the API submits); with ``consenting=1`` only Alice's, so it stays
    Proposed."""
    manifest_hash = "0x" + keccak(rfc8785.dumps(manifest_of(tag, steps))).hex()
    create_job_on_chain(stack, job_id, manifest_hash, salt_of(tag), consenting=consenting)


def create_job_on_chain(
    stack: LedgerStack,
    job_id: str,
    manifest_hash: str,
    salt: str,
    *,
    consenting: int = 2,
    creator: str = ALICE,
) -> None:
    """``createJob(manifestHash, salt, parties, consents)`` of a job of Alice and Bob, sent by ``creator``
    (the chain derives ``job_id``); with both parties' EIP-712 consents (``consenting=2``) the job is Open."""
    creator = next(m for m in MEMBER_KEYS if m.lower() == creator.lower())
    assert job_id == job_id_for(creator, manifest_hash, salt), "not the id the chain derives for the creator"
    client = stack.client()
    sender = TransactionSender(client, MEMBER_KEYS[creator], ChainNonceSource(client.w3))
    ledger = stack.ledger(client, sender)
    raw_id, raw_hash = bytes.fromhex(job_id[2:]), bytes.fromhex(manifest_hash[2:])
    consents = [
        sign_consent(MEMBER_KEYS[p], DEV_CHAIN_ID, ledger.address, raw_id, raw_hash)
        if i < consenting
        else b""
        for i, p in enumerate((ALICE, BOB))
    ]
    ledger.create_job(
        manifest_hash=raw_hash, salt=bytes.fromhex(salt[2:]), parties=[ALICE, BOB], consents=consents
    )


def close_job_on_chain(
    stack: LedgerStack, store: SqlLedgerStore, job_id: str, *, succeeded: bool = True
) -> None:
    """Close an Open job whose records are all anchored, as the anchoring service does (`closeJob(jobId,
    stepCount, finalRecordHash, finalRoot, proof, succeeded)` sent with the anchoring key, the proof of the
    last record's leaf against its batch root), and mark it completed in the store."""
    rows = store.records_for_job(job_id)
    last = rows[-1]
    batch = store.get_batch(last.batch_id or "")
    assert batch is not None, f"the last record of {job_id} is not in a batch"
    tree = MerkleTree(bytes.fromhex(leaf[2:]) for leaf in store.batch_leaves(batch.batch_id))
    client = stack.client()
    sender = TransactionSender(client, ANCHOR_KEY, ChainNonceSource(client.w3))
    receipt = stack.ledger(client, sender).close_job(
        job_id=bytes.fromhex(job_id[2:]),
        step_count=len(rows),
        final_record_hash=bytes.fromhex(last.record_hash[2:]),
        final_root=bytes.fromhex(batch.root[2:]),
        proof=tree.proof(bytes.fromhex(last.leaf[2:])),
        succeeded=succeeded,
    )
    store.update_job(job_id, status="completed" if succeeded else "failed", chain_status="confirmed")
    store.mark_job_close(
        job_id,
        "confirmed",
        tx_hash=hex32(bytes(receipt["transactionHash"])),
        block=int(receipt["blockNumber"]),
    )
