"""The demo: a two-party job anchored end to end on the embedded default, with its audit trail read back.

It starts a dev chain (anvil, Berlin, gas price 0), opens a fresh SQLite
ledger store, deploys the contracts, registers two members and an anchoring
service, creates a job whose manifest both parties co-sign (EIP-712), accepts
step records into the outbox, anchors them as one Merkle batch, closes the
job, and then reads everything back *from the chain*: the job, the batch
events, and an on-chain ``verify`` of every record's proof.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from eth_account import Account
from eth_utils.crypto import keccak
from rich.console import Console
from rich.table import Table

from ledger.chain import ChainClient, ChainConfig, TransactionSender
from ledger.consent import sign_consent
from ledger.contracts import AuditLedgerClient, RegistryClient, hex32
from ledger.deploy import connect, deploy_contracts, write_deployment
from ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
from ledger.merkle import MerkleTree
from ledger.nonces import StoreNonceSource
from ledger.records import PartyDigests, StepRecord, params_hash
from ledger.store.base import LedgerStore
from ledger.store.schemas import NewJob, NewStepRecord
from ledger.store.sql import open_store

CODE_VERSION = "secureflow-0.1.0"
DEMO_STEPS = ("psi", "fillna", "standard_scaler", "ss_lr", "bi_classification_eval")


@dataclass(frozen=True)
class DemoResult:
    job_id: str
    records: int
    verified: int
    workdir: Path


def _salted_digest(salt: bytes, label: str) -> str:
    """What a party worker records for one of its inputs/outputs: keccak(salt || content digest)."""
    return "0x" + keccak(salt + keccak(text=label)).hex()


def _step_records(job_id: str, parties: list[str], salts: dict[str, bytes]) -> list[StepRecord]:
    records = []
    for seq, algorithm in enumerate(DEMO_STEPS):
        started = int(time.time() * 1000)
        records.append(
            StepRecord(
                job_id=job_id,
                seq=seq,
                algorithm=algorithm,
                params_hash=params_hash({"algorithm": algorithm, "seq": seq}),
                code_version=CODE_VERSION,
                parties=tuple(
                    PartyDigests(
                        party=party,
                        inputs={"table": _salted_digest(salts[party], f"{job_id}:{seq}:in")},
                        outputs={"table": _salted_digest(salts[party], f"{job_id}:{seq}:out")},
                    )
                    for party in parties
                ),
                status="succeeded",
                started_at_ms=started,
                finished_at_ms=started + 1,
            )
        )
    return records


def run_demo(console: Console, workdir: Path, *, keep_chain: bool = False) -> DemoResult:
    workdir.mkdir(parents=True, exist_ok=True)
    chain = DevChain(log_path=workdir / "anvil.log")
    console.print(f"[bold]1.[/] starting anvil (Berlin, gas price 0, chain id {DEV_CHAIN_ID})")
    chain.start()
    try:
        return _run(console, workdir, chain)
    finally:
        if keep_chain:
            console.print(f"anvil keeps running at {chain.rpc_url} (Ctrl-C to stop)")
            try:
                while chain.running:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        chain.stop()


def _run(console: Console, workdir: Path, chain: DevChain) -> DemoResult:
    store: LedgerStore = open_store(f"sqlite:///{workdir / 'secureflow.db'}")
    client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
    nonces = StoreNonceSource(store, client.w3, client.chain_id)
    admin_key, alice_key, bob_key, anchor_key = DEV_PRIVATE_KEYS[:4]
    admin = TransactionSender(client, admin_key, nonces)

    console.print("[bold]2.[/] deploying ConsortiumRegistry and AuditLedger")
    deployment = deploy_contracts(client, admin)
    write_deployment(deployment, workdir / "deployment.json")
    for name, entry in deployment.contracts.items():
        console.print(f"   {name:<20} {entry.address}  (block {entry.block_number})")

    registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
    alice, bob, anchor = (Account.from_key(k).address for k in (alice_key, bob_key, anchor_key))
    console.print("[bold]3.[/] registering members alice, bob and the anchoring service")
    registry.register_member(alice, keccak(text="alice"))
    registry.register_member(bob, keccak(text="bob"))
    registry.grant_anchor_service(anchor)

    ledger_contract = connect(client, deployment, "AuditLedger")
    alice_ledger = AuditLedgerClient(ledger_contract, TransactionSender(client, alice_key, nonces))
    anchor_sender = TransactionSender(client, anchor_key, nonces)
    anchor_ledger = AuditLedgerClient(ledger_contract, anchor_sender)
    reader = AuditLedgerClient(ledger_contract)

    manifest: dict[str, Any] = {
        "parties": [alice, bob],
        "datasets": {alice: "alice/credit_features.csv", bob: "bob/credit_labels.csv"},
        "steps": list(DEMO_STEPS),
        "nonce": secrets.token_hex(16),
    }
    manifest_hash = keccak(rfc8785.dumps(manifest))
    job_id = keccak(b"secureflow-job" + manifest_hash)
    consents = [
        sign_consent(key, client.chain_id, alice_ledger.address, job_id, manifest_hash)
        for key in (alice_key, bob_key)
    ]
    console.print(f"[bold]4.[/] creating job {hex32(job_id)[:18]}… co-signed by both parties (EIP-712)")
    receipt = alice_ledger.create_job(job_id, manifest_hash, [alice, bob], consents)
    store.create_job(
        NewJob(job_id=hex32(job_id), manifest_hash=hex32(manifest_hash), creator=alice, parties=[alice, bob])
    )
    store.update_job(
        hex32(job_id), chain_status="confirmed", created_tx_hash=hex32(receipt["transactionHash"])
    )

    salts = {party: secrets.token_bytes(32) for party in (alice, bob)}
    records = _step_records(hex32(job_id), [alice, bob], salts)
    console.print(f"[bold]5.[/] accepting {len(records)} step records into the outbox (pending)")
    for record in records:
        store.accept_record(
            NewStepRecord(
                job_id=record.job_id,
                seq=record.seq,
                record_json=record.canonical_json().decode(),
                record_hash=hex32(record.record_hash()),
                leaf=hex32(record.leaf()),
            )
        )

    pending = store.claim_pending(1000)
    tree = MerkleTree(bytes.fromhex(row.leaf[2:]) for row in pending)
    batch_id = keccak(b"secureflow-batch" + tree.root)
    store.create_batch(hex32(batch_id), hex32(tree.root), [row.id for row in pending])
    console.print(f"[bold]6.[/] anchoring one batch of {len(pending)} records, root {hex32(tree.root)[:18]}…")
    sent = anchor_ledger.send_anchor_batch(batch_id, tree.root, len(pending))
    store.mark_batch_submitted(hex32(batch_id), sent.tx_hash, anchor, sent.nonce)
    anchored = anchor_sender.wait(sent, contract=ledger_contract)
    store.mark_batch_confirmed(hex32(batch_id), int(anchored["blockNumber"]), hex32(anchored["blockHash"]))
    alice_ledger.close_job(job_id, len(records), tree.root, True)
    store.update_job(hex32(job_id), status="completed")

    console.print("[bold]7.[/] reading the audit trail back from the chain")
    on_chain_job = reader.get_job(job_id)
    events = reader.batch_anchored_events(deployment.deploy_block)
    console.print(
        f"   job status {on_chain_job.status.name}, {on_chain_job.step_count} steps, parties "
        f"{', '.join(p[:10] + '…' for p in on_chain_job.parties)}, consent: "
        f"{all(reader.has_consented(job_id, p) for p in on_chain_job.parties)}"
    )
    for event in events:
        console.print(
            f"   BatchAnchored batch {event.batch_id[:18]}… root {event.root[:18]}… "
            f"{event.record_count} records in block {event.block_number}"
        )

    table = Table(title="Step records, verified on chain with AuditLedger.verify(leaf, proof, root)")
    for column in ("seq", "algorithm", "record hash", "leaf", "block", "status", "on-chain verify"):
        table.add_column(column)
    verified = 0
    for row in store.records_for_job(hex32(job_id)):
        record = StepRecord.model_validate_json(row.record_json)
        leaf = record.leaf()
        proof = tree.proof(leaf)
        ok = hex32(leaf) == row.leaf and reader.verify(leaf, proof, tree.root)
        verified += ok
        table.add_row(
            str(record.seq),
            record.algorithm,
            row.record_hash[:14] + "…",
            row.leaf[:14] + "…",
            str(anchored["blockNumber"]),
            row.status,
            "[green]✓ valid[/]" if ok else "[red]✗ INVALID[/]",
        )
    console.print(table)
    trail = workdir / "audit_trail.json"
    trail.write_text(
        json.dumps(
            {
                "deployment": json.loads(deployment.model_dump_json()),
                "manifest": manifest,
                "job": json.loads(on_chain_job.model_dump_json()),
                "records": [json.loads(r.record_json) for r in store.records_for_job(hex32(job_id))],
            },
            indent=2,
        )
    )
    console.print(f"audit trail written to {trail}")
    return DemoResult(hex32(job_id), len(records), verified, workdir)
