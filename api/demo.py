"""The demo: a two-party job anchored end to end on the embedded default, with its audit trail read back.

It starts a dev chain (anvil, Berlin, gas price 0), opens a fresh SQLite
ledger store, deploys the contracts, registers two members and an anchoring
service, creates a job whose manifest both parties co-sign (EIP-712), records
the job's steps into the outbox, lets the anchoring worker (with the event
indexer) batch and anchor them, closes the job on chain, reads the trail back
*from the chain*, writes the audit bundle (manifest, records, receipts) and
verifies every receipt against the node without the database.
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

from ledger.anchoring import Anchorer, AnchoringConfig, AnchoringWorker
from ledger.chain import ChainClient, ChainConfig, TransactionSender
from ledger.consent import sign_consent
from ledger.contracts import AuditLedgerClient, RegistryClient, hex32
from ledger.deploy import connect, deploy_contracts, write_deployment
from ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
from ledger.errors import LedgerError
from ledger.indexer import EventIndexer
from ledger.nonces import StoreNonceSource
from ledger.receipts import build_bundle, load_bundle, write_bundle
from ledger.recorder import OutboxRecorder
from ledger.records import PartyDigests, StepRecord, params_hash
from ledger.store.base import LedgerStore
from ledger.store.sql import open_store
from ledger.verify import verify_bundle

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
    recorder = OutboxRecorder(store)
    recorder.open_job(hex32(job_id), hex32(manifest_hash), alice, [alice, bob])
    store.update_job(
        hex32(job_id), chain_status="confirmed", created_tx_hash=hex32(receipt["transactionHash"])
    )

    worker = AnchoringWorker(
        Anchorer(
            store,
            AuditLedgerClient(ledger_contract, anchor_sender),
            anchor_sender,
            AnchoringConfig(from_block=deployment.deploy_block),
        ),
        EventIndexer(store, client, ledger_contract, from_block=deployment.deploy_block),
    ).start()
    try:
        salts = {party: secrets.token_bytes(32) for party in (alice, bob)}
        records = _step_records(hex32(job_id), [alice, bob], salts)
        console.print(f"[bold]5.[/] recording {len(records)} step records into the outbox (pending)")
        for record in records:
            recorder.record_step(record)
        console.print("[bold]6.[/] the anchoring worker batches them into a Merkle tree and anchors the root")
        if not worker.drain(timeout=60):
            raise LedgerError(f"records not anchored within 60 s: {store.count_records_by_status()}")
    finally:
        worker.stop()
    rows = store.records_for_job(hex32(job_id))
    batch = store.get_batch(rows[-1].batch_id or "")
    assert batch is not None
    alice_ledger.close_job(job_id, len(rows), bytes.fromhex(batch.root[2:]), True)
    recorder.close_job(hex32(job_id), succeeded=True)

    console.print("[bold]7.[/] reading the audit trail back from the chain")
    on_chain_job = reader.get_job(job_id)
    console.print(
        f"   job status {on_chain_job.status.name}, {on_chain_job.step_count} steps, parties "
        f"{', '.join(p[:10] + '…' for p in on_chain_job.parties)}, consent: "
        f"{all(reader.has_consented(job_id, p) for p in on_chain_job.parties)}"
    )
    for event in reader.batch_anchored_events(deployment.deploy_block):
        console.print(
            f"   BatchAnchored batch {event.batch_id[:18]}… root {event.root[:18]}… "
            f"{event.record_count} records in block {event.block_number}"
        )

    bundle_path = write_bundle(
        build_bundle(store, client.chain_id, reader.address, hex32(job_id), manifest=manifest),
        workdir / "audit_bundle.json",
    )
    console.print(f"[bold]8.[/] audit bundle (manifest, records, receipts) written to {bundle_path}")
    verdict = verify_bundle(load_bundle(bundle_path), chain.rpc_url)
    table = Table(title="Receipts verified against the chain (secureflow verify), without the DB")
    for column in ("seq", "algorithm", "record hash", "leaf", "block", "checks", "verdict"):
        table.add_column(column)
    by_seq = {json.loads(row.record_json)["seq"]: row for row in rows}
    for receipt_verdict, receipt_ in zip(verdict.receipts, load_bundle(bundle_path).receipts, strict=True):
        passed = sum(c.status == "passed" for c in receipt_verdict.checks)
        table.add_row(
            str(receipt_.seq),
            str(receipt_.record["algorithm"]),
            by_seq[receipt_.seq].record_hash[:14] + "…",
            receipt_.leaf[:14] + "…",
            str(receipt_.block_number),
            f"{passed}/{len(receipt_verdict.checks)}",
            "[green]✓ valid[/]" if receipt_verdict.ok else "[red]✗ INVALID[/]",
        )
    console.print(table)
    console.print(f"   {verdict.summary()}")
    console.print(
        f"   check it yourself against any node of the chain: secureflow verify {bundle_path} --rpc URL "
        "(the demo's anvil stops with the demo unless --keep-chain)"
    )
    verified = sum(v.ok for v in verdict.receipts) if verdict.ok else 0
    return DemoResult(hex32(job_id), len(rows), verified, workdir)
