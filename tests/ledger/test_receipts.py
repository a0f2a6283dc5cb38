"""Receipts and audit bundles from the ledger store (SQLite and PostgreSQL), verified against a real anvil.

The helpers here (`LedgerEnv`, `deploy_env`, `anchor_pending`, ...) are also
used by test_verify.py and test_reconcile.py: they follow api/dev/demo.py (deploy,
register members, grant the anchoring service, createJob on chain, accept
records into the outbox, build one Merkle batch, anchorBatch, mark confirmed).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from eth_account import Account
from eth_typing import HexStr
from eth_utils.crypto import keccak
from pydantic import ValidationError
from sqlalchemy import insert, update

from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.consent import sign_consent
from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient, hex32
from secureflow.ledger.deploy import Deployment, connect, deploy_contracts
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
from secureflow.ledger.errors import LedgerError, UnknownRecordError
from secureflow.ledger.merkle import MerkleTree, leaf_hash, verify_proof
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.receipts import (
    AuditBundle,
    InconsistentBatchError,
    InvalidReceiptFileError,
    Receipt,
    RecordNotAnchoredError,
    build_bundle,
    build_job_receipts,
    build_receipt,
    load_bundle,
    load_receipt,
    write_bundle,
    write_receipt,
)
from secureflow.ledger.records import PartyDigests, StepRecord, job_id_for, params_hash
from secureflow.ledger.signing import sign_party
from secureflow.ledger.store import SqlLedgerStore
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.models import StepRecordOrm
from secureflow.ledger.store.schemas import Batch, NewJob, NewStepRecord
from secureflow.ledger.verify import PinnedDeployment, verify_bundle, verify_receipt

RECEIPT_FIELDS = {
    "version",
    "chain_id",
    "contract",
    "job_id",
    "seq",
    "record",
    "record_hash",
    "leaf",
    "proof",
    "batch_root",
    "batch_id",
    "tx_hash",
    "block_number",
    "block_hash",
    "anchorer",
    "status",
}


# -- shared helpers (imported by test_verify.py and test_reconcile.py) ---------------------------------


@dataclass
class LedgerEnv:
    """Contracts deployed on the session anvil: alice/bob are members, ``anchor`` is the anchoring service."""

    rpc_url: str
    client: ChainClient
    chain_id: int
    contract: str
    creator: AuditLedgerClient
    anchorer: AuditLedgerClient
    anchor_sender: TransactionSender
    reader: AuditLedgerClient
    alice: str
    bob: str
    deployment: Deployment
    registry: RegistryClient
    admin: TransactionSender


def deploy_env(devchain: DevChain) -> LedgerEnv:
    client = ChainClient(ChainConfig(rpc_url=devchain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
    nonces = ChainNonceSource(client.w3)
    admin_key, alice_key, bob_key, anchor_key = DEV_PRIVATE_KEYS[:4]
    admin = TransactionSender(client, admin_key, nonces)
    deployment = deploy_contracts(client, admin)
    registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
    alice, bob, anchor = (Account.from_key(k).address for k in (alice_key, bob_key, anchor_key))
    registry.register_member(alice, keccak(text="alice"))
    registry.register_member(bob, keccak(text="bob"))
    registry.grant_anchor_service(anchor)
    contract = connect(client, deployment, "AuditLedger")
    anchor_sender = TransactionSender(client, anchor_key, nonces)
    return LedgerEnv(
        rpc_url=devchain.rpc_url,
        client=client,
        chain_id=client.chain_id,
        contract=str(contract.address),
        creator=AuditLedgerClient(contract, TransactionSender(client, alice_key, nonces)),
        anchorer=AuditLedgerClient(contract, anchor_sender),
        anchor_sender=anchor_sender,
        reader=AuditLedgerClient(contract),
        alice=alice,
        bob=bob,
        deployment=deployment,
        registry=registry,
        admin=admin,
    )


def step_records(
    job_id: str, parties: list[str], count: int, start: int = 0, *, job_secret: str | None = None
) -> list[StepRecord]:
    """Records whose step ``seq`` has the parameters ``{"seq": seq}`` (committed under ``job_secret``)."""
    salt = secrets.token_bytes(16)
    records = []
    for seq in range(start, start + count):
        records.append(
            StepRecord(
                job_id=job_id,
                seq=seq,
                algorithm="ss_lr" if seq % 2 else "psi",
                params_hash=params_hash({"seq": seq}, job_secret),
                code_version="secureflow-0.1.0",
                parties=tuple(
                    PartyDigests(
                        party=party,
                        inputs={"table": hex32(keccak(salt + f"{party}:{seq}:in".encode()))},
                        outputs={"table": hex32(keccak(salt + f"{party}:{seq}:out".encode()))},
                    )
                    for party in parties
                ),
                status="succeeded",
                started_at_ms=1_700_000_000_000 + seq,
                finished_at_ms=1_700_000_000_001 + seq,
            )
        )
    return records


def sign_records(records: list[StepRecord], keys: dict[str, str]) -> list[StepRecord]:
    """Each party's slice of each record signed with that party's key (``keys``: address -> private key)."""
    signed = []
    for record in records:
        parties = tuple(
            party.model_copy(
                update={"signature": sign_party(record, party, bytes.fromhex(keys[party.party][2:]))}
            )
            for party in record.parties
        )
        signed.append(record.model_copy(update={"parties": parties}))
    return signed


def outbox_row(record: StepRecord) -> NewStepRecord:
    canonical = record.canonical_json()
    record_hash = keccak(canonical)
    return NewStepRecord(
        job_id=record.job_id,
        seq=record.seq,
        record_json=canonical.decode(),
        record_hash=hex32(record_hash),
        leaf=hex32(leaf_hash(bytes.fromhex(record.job_id[2:]), record.seq, record_hash)),
    )


def new_job(
    store: LedgerStore, env: LedgerEnv, steps: int, *, on_chain: bool = True
) -> tuple[str, dict[str, Any], list[StepRecord]]:
    """Create a job (in the store, and Open on chain by createJob with both consents) and accept ``steps``
    records signed by both parties (pending)."""
    manifest: dict[str, Any] = {"parties": [env.alice, env.bob], "nonce": secrets.token_hex(16)}
    manifest_hash = keccak(rfc8785.dumps(manifest))
    salt = secrets.token_bytes(32)
    job_id = bytes.fromhex(job_id_for(env.alice, manifest_hash, salt)[2:])
    if on_chain:  # both parties consent (dev keys 1 and 2): the job is Open
        consents = [
            sign_consent(key, env.chain_id, env.contract, job_id, manifest_hash)
            for key in DEV_PRIVATE_KEYS[1:3]
        ]
        env.creator.create_job(
            manifest_hash=manifest_hash, salt=salt, parties=[env.alice, env.bob], consents=consents
        )
    store.create_job(
        NewJob(
            job_id=hex32(job_id),
            manifest_hash=hex32(manifest_hash),
            creator=env.alice,
            parties=[env.alice, env.bob],
            salt=hex32(salt),
        )
    )
    records = sign_records(step_records(hex32(job_id), [env.alice, env.bob], steps), dev_keys(env))
    for record in records:
        store.accept_record(outbox_row(record))
    return hex32(job_id), manifest, records


def dev_keys(env: LedgerEnv) -> dict[str, str]:
    """The members' keys (anvil's public dev keys 1 and 2), by address."""
    return {env.alice: DEV_PRIVATE_KEYS[1], env.bob: DEV_PRIVATE_KEYS[2]}


def pin_of(env: LedgerEnv) -> PinnedDeployment:
    """What an auditor of ``env`` pins: its deployment."""
    return PinnedDeployment.of_deployment(env.deployment)


def build_pending_batch(store: LedgerStore, limit: int = 100_000) -> tuple[Batch, MerkleTree]:
    pending = store.claim_pending(limit)
    tree = MerkleTree(bytes.fromhex(row.leaf[2:]) for row in pending)
    batch_id = keccak(b"secureflow-batch" + tree.root)
    batch = store.create_batch(hex32(batch_id), hex32(tree.root), [row.id for row in pending])
    return batch, tree


def anchor_pending(
    store: LedgerStore, env: LedgerEnv, limit: int = 100_000, *, confirm: bool = True
) -> Batch:
    """Batch the pending records, anchor the root, mark the batch submitted and (by default) confirmed."""
    batch, tree = build_pending_batch(store, limit)
    sent = env.anchorer.send_anchor_batch(bytes.fromhex(batch.batch_id[2:]), tree.root, batch.record_count)
    store.mark_batch_submitted(batch.batch_id, sent.tx_hash, env.anchor_sender.address, sent.nonce)
    mined = env.anchor_sender.wait(sent)
    if confirm:
        return store.mark_batch_confirmed(
            batch.batch_id, int(mined["blockNumber"]), hex32(mined["blockHash"])
        )
    updated = store.get_batch(batch.batch_id)
    assert updated is not None
    return updated


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(devchain: DevChain) -> LedgerEnv:
    return deploy_env(devchain)


# -- tests ----------------------------------------------------------------------------------------------


def test_receipt_has_exactly_the_design_fields() -> None:
    assert set(Receipt.model_fields) == RECEIPT_FIELDS


def test_receipt_of_a_confirmed_record_verifies_against_anvil(store: LedgerStore, env: LedgerEnv) -> None:
    job_id, _, records = new_job(store, env, 5)
    batch = anchor_pending(store, env)
    receipt = build_receipt(store, env.chain_id, env.contract, job_id, 3)

    assert receipt.status == "confirmed"
    assert (receipt.job_id, receipt.seq, receipt.contract) == (job_id, 3, env.contract)
    assert receipt.record == json.loads(records[3].canonical_json())
    assert receipt.record_hash == hex32(records[3].record_hash())
    assert receipt.leaf == hex32(records[3].leaf())
    assert (receipt.batch_root, receipt.tx_hash) == (batch.root, batch.tx_hash)
    assert (receipt.block_number, receipt.block_hash) == (batch.block_number, batch.block_hash)
    assert verify_proof(
        bytes.fromhex(receipt.leaf[2:]),
        [bytes.fromhex(p[2:]) for p in receipt.proof],
        bytes.fromhex(receipt.batch_root[2:]),
    )

    assert (receipt.version, receipt.batch_id, receipt.anchorer) == (
        2,
        batch.batch_id,
        env.anchor_sender.address,
    )

    verdict = verify_receipt(receipt, env.rpc_url, pin_of(env))
    assert verdict.ok, verdict.checks
    assert [c.status for c in verdict.checks] == ["passed"] * 12
    assert verdict.summary().endswith("VALID (12 checks passed)")


def test_receipt_file_round_trip(store: LedgerStore, env: LedgerEnv, tmp_path: Path) -> None:
    job_id, _, _ = new_job(store, env, 1)
    anchor_pending(store, env)
    receipt = build_receipt(store, env.chain_id, env.contract, job_id, 0)
    assert receipt.proof == []  # a one-record batch: the leaf is the root
    path = write_receipt(receipt, tmp_path / "receipt.json")
    assert set(json.loads(path.read_text())) == RECEIPT_FIELDS
    assert load_receipt(path) == receipt
    assert verify_receipt(json.loads(path.read_text()), env.rpc_url, pin_of(env)).ok

    version_1 = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("batch_id", "anchorer")}
    (tmp_path / "v1.json").write_text(json.dumps({**version_1, "version": 1}))
    old = load_receipt(tmp_path / "v1.json")
    assert (old.version, old.batch_id, old.anchorer) == (1, None, None)
    assert set(json.loads(old.to_json())) == RECEIPT_FIELDS - {"batch_id", "anchorer"}  # written as it was
    with pytest.raises(ValidationError, match="a version-2 receipt states its batch_id and anchorer"):
        Receipt.model_validate({**version_1, "version": 2})

    (tmp_path / "bad.json").write_text('{"version": 1}')
    with pytest.raises(InvalidReceiptFileError, match="is not a receipt"):
        load_receipt(tmp_path / "bad.json")
    with pytest.raises(InvalidReceiptFileError, match="does not exist"):
        load_receipt(tmp_path / "nope.json")


def test_no_receipt_before_the_batch_is_mined(store: LedgerStore, env: LedgerEnv) -> None:
    job_id, _, _ = new_job(store, env, 3, on_chain=False)
    with pytest.raises(RecordNotAnchoredError, match="still pending") as pending:
        build_receipt(store, env.chain_id, env.contract, job_id, 0)
    assert isinstance(pending.value, LedgerError) and "anchoring worker" in str(pending.value)

    batch, _ = build_pending_batch(store)
    with pytest.raises(RecordNotAnchoredError, match=r"submitted in batch .* not mined yet"):
        build_receipt(store, env.chain_id, env.contract, job_id, 1)
    store.mark_batch_failed(batch.batch_id, "test: the node refused the transaction")
    row = store.get_record(job_id, 2)
    assert row is not None
    store.mark_record_failed(row.id, "test: gave up")
    with pytest.raises(RecordNotAnchoredError, match="failed to anchor"):
        build_receipt(store, env.chain_id, env.contract, job_id, 2)
    with pytest.raises(UnknownRecordError):
        build_receipt(store, env.chain_id, env.contract, job_id, 99)

    assert build_job_receipts(store, env.chain_id, env.contract, job_id) == []
    with pytest.raises(RecordNotAnchoredError):
        build_job_receipts(store, env.chain_id, env.contract, job_id, strict=True)


def test_job_receipts_across_batches_and_bundle(store: LedgerStore, env: LedgerEnv, tmp_path: Path) -> None:
    job_id, manifest, _ = new_job(store, env, 4)
    first = anchor_pending(store, env)
    for record in sign_records(step_records(job_id, [env.alice, env.bob], 3, start=4), dev_keys(env)):
        store.accept_record(outbox_row(record))
    second = anchor_pending(store, env, confirm=False)  # sent and mined, but the store has no block yet
    assert [r.seq for r in build_job_receipts(store, env.chain_id, env.contract, job_id)] == [0, 1, 2, 3]
    mined = env.client.w3.eth.get_transaction_receipt(HexStr(second.tx_hash or ""))
    second = store.mark_batch_confirmed(second.batch_id, mined["blockNumber"], hex32(mined["blockHash"]))
    for record in sign_records(step_records(job_id, [env.alice, env.bob], 1, start=7), dev_keys(env)):
        store.accept_record(outbox_row(record))  # stays pending

    receipts = build_job_receipts(store, env.chain_id, env.contract, job_id)
    assert [r.seq for r in receipts] == list(range(7))
    assert {r.batch_root for r in receipts[:4]} == {first.root}
    assert {r.batch_root for r in receipts[4:]} == {second.root}
    assert [r.status for r in receipts] == ["confirmed"] * 7
    assert all(verify_receipt(r, env.client.w3, pin_of(env)).ok for r in receipts)

    bundle = build_bundle(store, env.chain_id, env.contract, job_id, manifest=manifest)
    assert len(bundle.records) == 8 and len(bundle.receipts) == 7
    path = write_bundle(bundle, tmp_path / "bundle.json")
    assert load_bundle(path) == bundle

    verdict = verify_bundle(load_bundle(path), env.rpc_url, pin_of(env))
    assert all(v.ok for v in verdict.receipts)
    assert verdict.check("manifest_commitment").ok and verdict.check("job_header").ok
    assert verdict.check("records_covered").status == "failed"
    assert "1 record(s) without a receipt" in verdict.check("records_covered").detail
    assert not verdict.ok

    anchor_pending(store, env)
    complete = build_bundle(store, env.chain_id, env.contract, job_id, manifest=manifest)
    anchored = verify_bundle(complete, env.rpc_url, pin_of(env))
    assert all(v.ok for v in anchored.receipts) and anchored.check("records_covered").ok
    # Every record is anchored (both parties consented at createJob), but the job is still open on chain.
    assert anchored.failed_checks == ["final_record", "job_closed", "step_count"]
    tampered_manifest = complete.model_copy(update={"manifest": {**manifest, "nonce": "0"}})
    assert (
        verify_bundle(tampered_manifest, env.rpc_url, pin_of(env)).check("manifest_commitment").status
        == "failed"
    )


def test_receipt_refused_when_stored_leaves_no_longer_give_the_root(
    store: SqlLedgerStore, env: LedgerEnv
) -> None:
    job_id, _, _ = new_job(store, env, 3, on_chain=False)
    anchor_pending(store, env)
    with store.engine.begin() as conn:
        conn.execute(
            update(StepRecordOrm)
            .where(StepRecordOrm.job_id == job_id, StepRecordOrm.seq == 1)
            .values(leaf="0x" + "11" * 32)
        )
    with pytest.raises(InconsistentBatchError, match="audit reconcile"):
        build_receipt(store, env.chain_id, env.contract, job_id, 0)


def test_a_10000_record_job_bundles_from_one_tree(store: SqlLedgerStore, env: LedgerEnv) -> None:
    """Every record of a 10,000-record batch gets its proof (rows are bulk-inserted); how long it takes is
    a figure of scripts/bench_proofs.py, not an assertion here."""
    job_id = hex32(keccak(secrets.token_bytes(32)))
    store.create_job(
        NewJob(job_id=job_id, manifest_hash=hex32(keccak(b"m")), creator=env.alice, parties=[env.alice])
    )
    now = datetime.now(timezone.utc)
    rows = []
    for record in step_records(job_id, [env.alice], 10_000):
        new = outbox_row(record)
        rows.append({**new.model_dump(), "status": "pending", "accepted_at": now, "updated_at": now})
    with store.engine.begin() as conn:
        conn.execute(insert(StepRecordOrm), rows)
    ids = [row.id for row in store.records_for_job(job_id)]
    leaves = [bytes.fromhex(str(row["leaf"])[2:]) for row in rows]
    tree = MerkleTree(leaves)
    batch_id = hex32(keccak(tree.root))
    store.create_batch(batch_id, hex32(tree.root), ids)
    store.mark_batch_submitted(batch_id, hex32(keccak(b"tx")), env.alice, 0)
    store.mark_batch_confirmed(batch_id, 1, hex32(keccak(b"block")))

    bundle = build_bundle(store, env.chain_id, env.contract, job_id)
    assert [r.seq for r in bundle.receipts] == list(range(10_000))
    for receipt in bundle.receipts[::997]:
        assert verify_proof(
            bytes.fromhex(receipt.leaf[2:]),
            [bytes.fromhex(p[2:]) for p in receipt.proof],
            tree.root,
        )
        assert len(receipt.proof) in (13, 14)


def test_bundle_model_round_trips_through_json() -> None:
    bundle_json: dict[str, Any] = {
        "version": 1,
        "manifest": None,
        "job": {
            "job_id": "0x" + "AB" * 32,
            "manifest_hash": "0x" + "cd" * 32,
            "creator": Account.from_key(DEV_PRIVATE_KEYS[1]).address.lower(),
            "parties": [Account.from_key(DEV_PRIVATE_KEYS[1]).address],
            "status": "running",
            "chain_status": "pending",
        },
        "records": [],
        "receipts": [],
    }
    bundle = AuditBundle.model_validate(bundle_json)
    assert bundle.job.job_id == "0x" + "ab" * 32  # normalised to lower case
    assert bundle.job.creator == Account.from_key(DEV_PRIVATE_KEYS[1]).address  # checksummed
    assert AuditBundle.model_validate_json(bundle.model_dump_json()) == bundle
