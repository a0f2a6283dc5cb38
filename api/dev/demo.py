"""The demo: a two-party SecretFlow job end to end on the embedded default, with its audit trail verified.

It starts a dev chain (anvil, Berlin, gas price 0), opens a fresh SQLite ledger
store, deploys the contracts, registers two members (alice, bob) and an
anchoring service, and starts one SecretFlow party worker process per member
on 127.0.0.1, each with its own data directory. Alice holds features and the
label, Bob more features, for overlapping customers. Both co-sign the job
manifest (EIP-712) and the job is created on chain. The job runs for real:
PSI → Fillna → StandardScaler → SS-LR → secure prediction (to alice only) →
BiClassificationEval. Every step's record (salted per-party digests, signed by
each party) goes to the outbox; the anchoring worker and event indexer anchor
them as Merkle batches; the anchoring service records the model hash and closes
the job on chain (step count and the Merkle proof of its last record).
Finally the audit bundle (manifest, records, receipts) is written and verified
as an auditor would, without the database: ``secureflow verify BUNDLE --rpc-url
URL --deployment DEPLOYMENT`` pinned to the demo's deployment file (every
receipt against the pinned ledger, and the job complete: closed on chain with
its step count, every party's consent and signature, the final record proven).

The members' keys are anvil's public dev keys, provisioned into each party's
secrets folder: fine for a local demo, never for a real network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from secureflow.api.dev.devstack import PARTIES, dev_consortium, provision_party
from secureflow.compute.consents import request_consents
from secureflow.compute.manifest import JobManifest
from secureflow.compute.runner import JobResult, run_job
from secureflow.ledger.chain import ChainClient
from secureflow.ledger.contracts import AuditLedgerClient, hex32
from secureflow.ledger.devchain import DEV_CHAIN_ID, DevChain
from secureflow.ledger.errors import LedgerError
from secureflow.ledger.receipts import build_bundle, load_bundle, write_bundle
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import job_id_for, new_job_salt, new_job_secret
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.verify import pin_from_options, verify_file

FEATURES = ("a0", "a1", "a2", "b0", "b1", "b2")


@dataclass(frozen=True)
class DemoResult:
    job_id: str
    records: int
    verified: int
    workdir: Path


def demo_data(rows: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic vertically partitioned customers: alice (id, a0..a2, y), bob (id, b0..b2), ~85% overlap."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6)) * [1.0, 2.0, 0.5, 3.0, 1.0, 1.0] + [0.0, 5.0, -1.0, 2.0, 0.0, 10.0]
    logits = x @ np.array([0.8, -0.4, 1.2, 0.3, -0.9, 0.5]) - 3.6
    y = (logits + rng.logistic(size=rows) > 0).astype(int)
    ids = rng.permutation(rows * 3)[:rows] + 100_000
    alice = pd.DataFrame({"id": ids, "a0": x[:, 0], "a1": x[:, 1], "a2": x[:, 2], "y": y})
    alice.loc[alice.sample(frac=0.02, random_state=seed).index, "a1"] = np.nan  # for Fillna
    shared = rng.random(rows) < 0.85
    bob = pd.DataFrame({"id": ids[shared], "b0": x[shared, 3], "b1": x[shared, 4], "b2": x[shared, 5]})
    return alice, bob.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def demo_manifest(addresses: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "credit-scoring-demo",
        "parties": [{"name": p, "address": addresses[p]} for p in PARTIES],
        "datasets": {"customers": {"alice": "customers.csv", "bob": "customers.csv"}},
        "models": {},
        "steps": [
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "customers"},
                "outputs": {"table": "joined"},
            },
            {
                "algorithm": "fillna",
                "params": {"strategy": "mean", "columns": ["a1"]},
                "inputs": {"table": "joined"},
                "outputs": {"table": "filled"},
            },
            {
                "algorithm": "standard_scaler",
                "params": {"columns": list(FEATURES)},
                "inputs": {"table": "filled"},
                "outputs": {"table": "scaled"},
            },
            {
                "algorithm": "ss_lr",
                "params": {"label": "y", "features": list(FEATURES), "epochs": 3, "batch_size": 128},
                "inputs": {"table": "scaled"},
                "outputs": {"model": "credit_lr"},
            },
            {
                "algorithm": "secure_predict",
                "params": {"receiver": "alice"},
                "inputs": {"table": "scaled", "model": "credit_lr"},
                "outputs": {"table": "scores"},
                "save": {"table": "out/scores.csv"},
            },
            {
                "algorithm": "biclassification_eval",
                "params": {"label": "y", "reveal_to": ["alice", "bob"]},
                "inputs": {"labels": "scaled", "scores": "scores"},
                "outputs": {"report": "evaluation"},
            },
        ],
    }


def run_demo(console: Console, workdir: Path, *, keep_chain: bool = False, rows: int = 2_000) -> DemoResult:
    workdir.mkdir(parents=True, exist_ok=True)
    chain = DevChain(log_path=workdir / "anvil.log")
    console.print(f"[bold]1.[/] starting anvil (Berlin, gas price 0, chain id {DEV_CHAIN_ID})")
    chain.start()
    try:
        result = _run(console, workdir, chain, rows)
        if keep_chain:  # only after the demo finished: Ctrl-C or SIGTERM mid-demo stops everything
            try:  # the line below is what a caller waits for: a SIGTERM right after it lands in here
                console.print(f"anvil keeps running at {chain.rpc_url} (Ctrl-C or SIGTERM stops it)")
                while chain.running:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return result
    finally:
        chain.stop()


def _run(console: Console, workdir: Path, chain: DevChain, rows: int) -> DemoResult:
    numbers = iter((2, 3))

    def stage(line: str) -> None:  # stage lines are numbered; detail lines come indented
        console.print(line if line.startswith(" ") else f"[bold]{next(numbers)}.[/] {line}")

    dev = dev_consortium(workdir, chain, stage)
    store, client, engine, worker = dev.store, dev.client, dev.engine, dev.worker
    alice, bob = dev.address("alice"), dev.address("bob")
    alice_ledger = AuditLedgerClient(dev.ledger_contract, dev.sender("alice"))
    reader = AuditLedgerClient(dev.ledger_contract)
    deployment = dev.deployment

    alice_table, bob_table = demo_data(rows)
    provision_party(engine, "alice", dev.keys["alice"], alice_table)
    provision_party(engine, "bob", dev.keys["bob"], bob_table)
    console.print(
        f"[bold]4.[/] starting one SecretFlow worker process per party on 127.0.0.1 "
        f"(alice: {len(alice_table)} rows with label, bob: {len(bob_table)} rows)"
    )
    with console.status("importing SecretFlow and linking the parties (cold start, ~10-30 s) …"):
        engine.start()
    console.print(
        f"   workers ready in {engine.last_start_s:.1f}s; salts and keys stay in each party's folder"
    )
    try:
        parsed = JobManifest.parse(demo_manifest(engine.addresses))
        manifest = parsed.model_dump(mode="json")  # the normalised form is what is hashed and audited
        job_secret = new_job_secret()  # salts the manifest and parameter commitments; in the bundle
        manifest_hash = bytes.fromhex(parsed.manifest_hash(job_secret)[2:])
        salt = new_job_salt()
        job_id = bytes.fromhex(job_id_for(alice, manifest_hash, salt)[2:])
        consents = request_consents(  # each party's worker checks its policy and signs with its own key
            engine,
            manifest,
            job_id=hex32(job_id),
            creator=alice,
            salt=salt,
            job_secret=job_secret,
            parties=[alice, bob],
            chain_id=client.chain_id,
            ledger=alice_ledger.address,
        )
        console.print(
            f"[bold]5.[/] creating job {hex32(job_id)[:18]}… with each party's consent (EIP-712), signed by "
            "its own worker after checking its policy.json"
        )
        created = alice_ledger.create_job(
            manifest_hash=manifest_hash, salt=bytes.fromhex(salt[2:]), parties=[alice, bob], consents=consents
        )
        recorder = OutboxRecorder(store)
        recorder.open_job(hex32(job_id), hex32(manifest_hash), alice, [alice, bob], salt=salt)
        store.update_job(
            hex32(job_id), chain_status="confirmed", created_tx_hash=hex32(created["transactionHash"])
        )
        worker.start()
        console.print("[bold]6.[/] running the job on SecretFlow; each step is recorded and anchored")
        with console.status("PSI → Fillna → StandardScaler → SS-LR → secure prediction → evaluation …"):
            result = run_job(
                engine,
                manifest,
                recorder,
                job_id=hex32(job_id),
                salt=salt,
                creator=alice,
                job_secret=job_secret,
            )
        _print_steps(console, result)
        if not result.succeeded:
            raise LedgerError(f"the job failed at {result.error_class}: {result.error_message}")
        # The anchoring service anchors the records, records the model, then closes the job on chain
        # with the step count and the Merkle proof of the last record (the only account allowed to).
        if not worker.drain(timeout=120):
            raise LedgerError(f"records not anchored within 120 s: {store.count_records_by_status()}")
    finally:
        worker.stop()
        engine.shutdown()

    for model in store.models(job_id=hex32(job_id)):
        console.print(
            f"   model {model.model_id} v{model.version} hash {model.model_hash[:18]}… "
            f"recordModel {model.status} in block {model.block_number}"
        )
    stored = store.get_job(hex32(job_id))
    assert stored is not None  # noqa: S101 - invariant for the type checker, not input validation
    if stored.close_status != "confirmed":
        raise LedgerError(
            f"the job was not closed on chain: {stored.close_status} {stored.close_reason or ''}"
        )
    console.print(
        f"   closeJob {stored.close_status} in block {stored.close_block}, sent by the anchoring service "
        "with the Merkle proof of the last record"
    )

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
    return _bundle_and_verify(console, store, client, reader, chain, job_id, manifest, job_secret, workdir)


def _print_steps(console: Console, result: JobResult) -> None:
    table = Table(
        title=f"Job steps on SecretFlow ({result.seconds:.1f}s, anchoring {result.anchoring_seconds:.3f}s)"
    )
    for column in ("seq", "algorithm", "status", "seconds", "signed by"):
        table.add_column(column)
    for step in result.steps:
        record = step.record
        signed = sum(1 for p in record.parties if p.signature)
        table.add_row(
            str(record.seq),
            record.algorithm,
            record.status
            if record.status == "succeeded"
            else f"[red]{record.status}: {record.error_class}[/]",
            f"{step.seconds:.2f}",
            f"{signed}/{len(record.parties)} parties",
        )
    console.print(table)
    report = result.report("evaluation", "alice")
    if report is not None and "auc" in report:
        console.print(f"   evaluation revealed to both parties: AUC {float(report['auc']):.4f}")


def _bundle_and_verify(
    console: Console,
    store: LedgerStore,
    client: ChainClient,
    reader: AuditLedgerClient,
    chain: DevChain,
    job_id: bytes,
    manifest: dict[str, Any],
    job_secret: str,
    workdir: Path,
) -> DemoResult:
    bundle_path = write_bundle(
        build_bundle(
            store, client.chain_id, reader.address, hex32(job_id), manifest=manifest, job_secret=job_secret
        ),
        workdir / "audit_bundle.json",
    )
    console.print(
        f"[bold]8.[/] audit bundle (manifest, job secret, records, receipts) written to {bundle_path}"
    )
    bundle = load_bundle(bundle_path)
    deployment_path = workdir / "deployment.json"  # written by dev_consortium, as `secureflow deploy` does
    command = f"secureflow verify {bundle_path} --rpc-url {chain.rpc_url} --deployment {deployment_path}"
    console.print(f"   verifying as an auditor, pinned to the deployment file: {command}")
    checked = verify_file(bundle_path, chain.rpc_url, pin_from_options(deployment=deployment_path))
    verdict = checked.bundle
    assert verdict is not None  # noqa: S101 - invariant for the type checker: the file is a bundle
    for check in verdict.checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        console.print(f"   {mark} {check.name:<16} {escape(check.detail)}")
    table = Table(title="Receipts verified against the chain (secureflow verify), without the DB")
    for column in ("seq", "algorithm", "record hash", "leaf", "block", "checks", "verdict"):
        table.add_column(column)
    for receipt_verdict, receipt in zip(verdict.receipts, bundle.receipts, strict=True):
        passed = sum(c.status == "passed" for c in receipt_verdict.checks)
        table.add_row(
            str(receipt.seq),
            str(receipt.record["algorithm"]),
            receipt.record_hash[:14] + "…",
            receipt.leaf[:14] + "…",
            str(receipt.block_number),
            f"{passed}/{len(receipt_verdict.checks)}",
            "[green]✓ valid[/]" if receipt_verdict.ok else "[red]✗ INVALID[/]",
        )
    console.print(table)
    for warning in verdict.warnings:
        console.print(f"   [yellow]warning:[/] {escape(warning)}")
    console.print(f"   {verdict.summary()}")
    console.print(
        f"   check it yourself against any node of the chain: secureflow verify {bundle_path} --rpc-url URL "
        f"--deployment {deployment_path} (the demo's anvil stops with the demo unless --keep-chain)"
    )
    verified = sum(v.ok for v in verdict.receipts) if verdict.ok else 0
    return DemoResult(hex32(job_id), len(bundle.receipts), verified, workdir)
