"""Benchmark of the anchoring pipeline on anvil (Berlin, gas price 0), with SQLite and PostgreSQL.

For each backend it measures, end to end from ``accept_records`` to
``confirmed`` (the real worker and indexer in a background thread):

* throughput: N step records offered as fast as the producer can write them
  (seconds = from the go signal to the last record's stored ``confirmed_at``);
* latency at an offered load of R steps/s (p50/p99 accept → confirmed);
* gas per step (sum of the anchor transactions' gas / records) and peak RSS;
* what building one record costs the producer (validation, RFC 8785 JSON,
  record hash, leaf), paid before the clock starts as the compute engine pays
  it while a step runs.

In the same run it measures the naive baseline: one transaction per step with
the whole record stored on chain (``contracts/bench/NaiveStepLedger.sol``),
and, for each backend, the cost of every pipeline stage without the chain in
µs per record (wall and this process's CPU; on PostgreSQL the server's share is
the difference), and the load average: the machine has 2 cores, often shared,
so compare figures only within one run.

Durability is the product's: every accepted chunk is committed before
``accept_records`` returns (PostgreSQL with ``synchronous_commit`` on; SQLite in
WAL mode with ``synchronous = FULL``, the store's setting: each commit's WAL is
fsynced, so a commit survives a process crash, an OS crash and power loss).

Run: ``.venv/bin/python scripts/bench_anchoring.py [--records 20000] [--rate 1000]
[--baseline-records 2000] [--stage-records 20000] [--backends sqlite,postgresql]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import psycopg
from eth_account import Account
from eth_utils.crypto import keccak
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url

from secureflow.ledger.anchoring import Anchorer, AnchoringConfig, AnchoringWorker, batch_id_for, check_leaves
from secureflow.ledger.artifacts import Artifact
from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.compiler import compile_contracts
from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient, hex32
from secureflow.ledger.deploy import Deployment, connect, deploy_contracts
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
from secureflow.ledger.indexer import EventIndexer
from secureflow.ledger.merkle import MerkleTree
from secureflow.ledger.nonces import ChainNonceSource, StoreNonceSource
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.records import PartyDigests, StepRecord, new_job_secret, params_hash
from secureflow.ledger.store.schemas import NewJob, NewStepRecord
from secureflow.ledger.store.sql import SqlLedgerStore, open_store

ROOT = Path(__file__).resolve().parents[1]
ALICE = Account.from_key(DEV_PRIVATE_KEYS[1]).address
BOB = Account.from_key(DEV_PRIVATE_KEYS[2]).address
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
console = Console(width=140)


@dataclass
class Result:
    scenario: str
    backend: str
    records: int
    seconds: float
    gas_per_step: float
    p50: float
    p99: float
    peak_rss_mib: float
    build_us: float | None = None
    """Producer's cost to build one record (validate, canonical JSON, hashes), before the clock starts."""

    @property
    def steps_per_second(self) -> float:
        return self.records / self.seconds


def make_records(job_id: str, count: int) -> list[NewStepRecord]:
    records = []
    for seq in range(count):
        digest = "0x" + uuid.uuid4().hex * 2
        record = StepRecord(
            job_id=job_id,
            seq=seq,
            algorithm="ss_lr",
            params_hash=params_hash({"epochs": 3}, new_job_secret()),
            code_version="bench",
            parties=(
                PartyDigests(party=ALICE, inputs={"features": digest}, outputs={"model_share": digest}),
                PartyDigests(party=BOB, inputs={"labels": digest}, outputs={"model_share": digest}),
            ),
            status="succeeded",
            started_at_ms=1_700_000_000_000 + seq,
            finished_at_ms=1_700_000_000_100 + seq,
        )
        records.append(to_outbox(record))
    return records


def produce(
    url: str, job_id: str, count: int, rate: float | None, ready: Any, go: Any, build_us: Any
) -> None:
    """Accept ``count`` records in chunks, as fast as possible or at ``rate`` steps/s.

    The records are built (validated, canonical JSON, hashed) before the clock starts, as the compute
    engine does while a step runs; what that costs per record is reported through ``build_us``.
    """
    store = open_store(url, migrate=False)
    built = time.perf_counter()
    records = make_records(job_id, count)
    build_us.value = (time.perf_counter() - built) * 1e6 / count
    ready.set()
    go.wait()
    started = time.monotonic()
    chunk = 500 if rate is None else max(1, int(rate / 10))  # a tenth of a second of steps per write
    for start in range(0, count, chunk):
        store.accept_records(records[start : start + chunk])
        if rate is not None:
            time.sleep(max(0.0, started + (start + chunk) / rate - time.monotonic()))
    store.close()


def confirmed_in_batches(store: SqlLedgerStore) -> int:
    with store.engine.connect() as conn:
        found = conn.execute(
            text("SELECT COALESCE(SUM(record_count), 0) FROM batches WHERE status = 'confirmed'")
        ).scalar_one()
    return int(found)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def peak_rss_mib(chain: DevChain) -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    anvil = 0.0
    if chain.pid is not None:
        for line in Path(f"/proc/{chain.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                anvil = int(line.split()[1]) / 1024
    return own + anvil


def postgres_url() -> tuple[str, str] | None:
    """A fresh schema on the local PostgreSQL, or None if it is not reachable."""
    schema = f"sf_bench_{uuid.uuid4().hex[:12]}"
    admin = make_url(POSTGRES).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error:
        return None
    url = make_url(POSTGRES).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def drop_schema(schema: str) -> None:
    admin = make_url(POSTGRES).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_pipeline(
    chain: DevChain,
    deployment: Deployment,
    store: SqlLedgerStore,
    backend: str,
    count: int,
    rate: float | None,
) -> Result:
    client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
    sender = TransactionSender(
        client, DEV_PRIVATE_KEYS[3], StoreNonceSource(store, client.w3, client.chain_id)
    )
    ledger_contract = connect(client, deployment, "AuditLedger")
    anchorer = Anchorer(
        store,
        AuditLedgerClient(ledger_contract, sender),
        sender,
        AnchoringConfig(max_batch_size=5_000, max_batch_delay=0.2, from_block=deployment.deploy_block),
    )
    indexer = EventIndexer(store, client, ledger_contract, from_block=deployment.deploy_block)
    worker = AnchoringWorker(anchorer, indexer)
    job_id = "0x" + uuid.uuid4().hex * 2
    store.create_job(
        NewJob(job_id=job_id, manifest_hash="0x" + "ab" * 32, creator=ALICE, parties=[ALICE, BOB])
    )
    # The producer (the compute engine / API accepting steps) is its own process, as in production.
    context = multiprocessing.get_context("fork")
    ready, go, build_us = context.Event(), context.Event(), context.Value("d", 0.0)
    producer = context.Process(target=produce, args=(store.url, job_id, count, rate, ready, go, build_us))
    producer.start()
    ready.wait()
    head_before = client.block_number()
    worker.start()
    go.set()
    started = datetime.now(timezone.utc)
    deadline = time.monotonic() + 600
    # Done when the confirmed batches hold every record: a lookup in the small batches table (counting
    # 20,000 records by status every 20 ms took CPU and the GIL from the worker being measured).
    while confirmed_in_batches(store) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"records not confirmed in time: {store.count_records_by_status()}")
        time.sleep(0.02)
    worker.stop()
    producer.join(10)

    rows = store.records_for_job(job_id)
    latencies = [(r.confirmed_at - r.accepted_at).total_seconds() for r in rows if r.confirmed_at is not None]
    # From the go signal to the last record's confirmation, as stored by the worker.
    elapsed = (max(r.confirmed_at for r in rows if r.confirmed_at is not None) - started).total_seconds()
    batch_ids = {r.batch_id for r in rows}
    gas = 0
    for batch_id in batch_ids:
        batch = store.get_batch(batch_id)  # type: ignore[arg-type]
        assert batch is not None and batch.tx_hash is not None
        gas += int(client.w3.eth.get_transaction_receipt(batch.tx_hash)["gasUsed"])  # type: ignore[arg-type]
    console.print(
        f"  {backend}: {count} records in {len(batch_ids)} batches, "
        f"blocks {head_before}→{client.block_number()}"
    )
    scenario = "max throughput" if rate is None else f"offered {rate:,.0f} steps/s"
    return Result(
        scenario,
        backend,
        count,
        elapsed,
        gas / count,
        quantile(latencies, 0.5),
        quantile(latencies, 0.99),
        peak_rss_mib(chain),
        build_us.value,
    )


STAGES = (
    "build record",
    "accept (chunks of 500)",
    "pending_leaves",
    "leaf check",
    "Merkle tree",
    "create_batch",
    "mark_batch_submitted",
    "mark_batch_confirmed",
)


def stage_costs(store: SqlLedgerStore, count: int, batch_size: int = 5_000) -> dict[str, tuple[float, float]]:
    """Per-record cost of each stage of the pipeline without the chain, in this process, one at a time.

    Returns ``stage -> (wall µs, CPU µs of this process)`` per record. On SQLite the database works
    inside this process, so its CPU counts; on PostgreSQL the server's share is wall minus CPU.
    """
    job_id = "0x" + uuid.uuid4().hex * 2
    store.create_job(
        NewJob(job_id=job_id, manifest_hash="0x" + "cd" * 32, creator=ALICE, parties=[ALICE, BOB])
    )
    totals = dict.fromkeys(STAGES, (0.0, 0.0))

    @contextmanager
    def timed(stage: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        spent = totals[stage]
        totals[stage] = (spent[0] + time.perf_counter() - wall, spent[1] + time.process_time() - cpu)

    with timed("build record"):
        records = make_records(job_id, count)
    for start in range(0, count, 500):
        with timed("accept (chunks of 500)"):
            store.accept_records(records[start : start + 500])
    for block in range(1, count // batch_size + 2):
        with timed("pending_leaves"):
            pending = store.pending_leaves(batch_size)
        if not pending:
            break
        with timed("leaf check"):
            good, _bad = check_leaves(pending)
        with timed("Merkle tree"):
            tree = MerkleTree(raw for _p, raw in good)
        batch_id, root = hex32(batch_id_for(tree.root)), hex32(tree.root)
        with timed("create_batch"):
            store.create_batch(batch_id, root, [p.id for p, _raw in good])
        tx_hash, block_hash = hex32(keccak(root.encode())), hex32(keccak(batch_id.encode()))
        with timed("mark_batch_submitted"):
            store.mark_batch_submitted(batch_id, tx_hash, ALICE, block)
        with timed("mark_batch_confirmed"):
            store.mark_batch_confirmed(batch_id, block, block_hash)
    return {stage: (wall * 1e6 / count, cpu * 1e6 / count) for stage, (wall, cpu) in totals.items()}


def print_stages(stages: dict[str, dict[str, tuple[float, float]]], count: int) -> None:
    table = Table(
        title=f"Per-stage cost without the chain, µs per record ({count:,} records, wall / own CPU)"
    )
    table.add_column("stage")
    for backend in stages:
        table.add_column(backend, justify="right")
    for stage in STAGES:
        table.add_row(stage, *(f"{s[stage][0]:.1f} / {s[stage][1]:.1f}" for s in stages.values()))
    table.add_row(
        "store + tree total (no build)",
        *(
            f"{sum(w for k, (w, _) in s.items() if k != 'build record'):.1f} / "
            f"{sum(c for k, (_, c) in s.items() if k != 'build record'):.1f}"
            for s in stages.values()
        ),
    )
    console.print(table)


def run_baseline(chain: DevChain, naive: Artifact, count: int) -> Result:
    """One transaction per step, the record stored on chain; 64 transactions in flight."""
    client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID, max_in_flight=64))
    sender = TransactionSender(client, DEV_PRIVATE_KEYS[4], ChainNonceSource(client.w3))
    receipt = sender.deploy(naive.abi, naive.bytecode)
    contract = client.w3.eth.contract(address=receipt["contractAddress"], abi=naive.abi)
    job = bytes.fromhex(uuid.uuid4().hex * 2)
    records = make_records("0x" + job.hex(), count)
    latencies: list[float] = []
    gas = 0
    pending: list[tuple[float, object]] = []
    started = time.monotonic()

    def settle(entry: tuple[float, object]) -> None:
        nonlocal gas
        sent_at, sent = entry
        got = sender.wait(sent)  # type: ignore[arg-type]
        latencies.append(time.monotonic() - sent_at)
        gas += int(got["gasUsed"])

    for record in records:
        call = contract.functions.storeStep(job, record.seq, record.record_json.encode())
        if len(pending) >= 64:
            settle(pending.pop(0))
        pending.append((time.monotonic(), sender.send(call, gas=2_000_000)))
    for entry in pending:
        settle(entry)
    elapsed = time.monotonic() - started
    return Result(
        "naive: 1 tx/step, record on chain",
        "-",
        count,
        elapsed,
        gas / count,
        statistics.median(latencies),
        quantile(latencies, 0.99),
        peak_rss_mib(chain),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1_000.0, help="offered load for the latency run")
    parser.add_argument("--baseline-records", type=int, default=2_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--stage-records", type=int, default=20_000, help="records for the per-stage profile (0: skip it)"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()
    naive = compile_contracts(ROOT / "contracts" / "bench")["NaiveStepLedger"]
    results: list[Result] = []
    stages: dict[str, dict[str, tuple[float, float]]] = {}
    with TemporaryDirectory() as tmp, DevChain(log_path=Path(tmp) / "anvil.log") as chain:
        client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
        admin = TransactionSender(client, DEV_PRIVATE_KEYS[0], ChainNonceSource(client.w3))
        deployment = deploy_contracts(client, admin)
        RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin).grant_anchor_service(
            Account.from_key(DEV_PRIVATE_KEYS[3]).address
        )
        for backend in args.backends.split(","):
            for rate in (None, args.rate):
                schema = None
                if backend == "sqlite":
                    url = f"sqlite:///{tmp}/bench-{uuid.uuid4().hex[:8]}.db"
                else:
                    found = postgres_url()
                    if found is None:
                        console.print("[yellow]PostgreSQL not reachable: skipped[/]")
                        break
                    url, schema = found
                store = open_store(url)
                try:
                    console.print(
                        f"[bold]{backend}[/], {'max throughput' if rate is None else f'{rate:.0f}/s'}"
                    )
                    results.append(run_pipeline(chain, deployment, store, backend, args.records, rate))
                    if rate is None and args.stage_records:
                        stages[backend] = stage_costs(store, args.stage_records)
                finally:
                    store.close()
                    if schema:
                        drop_schema(schema)
        console.print(f"[bold]baseline[/]: {args.baseline_records} steps, one transaction each")
        results.append(run_baseline(chain, naive, args.baseline_records))

    table = Table(title="Anchoring: accept → confirmed on anvil (Berlin, gas price 0), 2 cores")
    for column in (
        "scenario",
        "DB",
        "records",
        "seconds",
        "steps/s",
        "gas/step",
        "p50 s",
        "p99 s",
        "peak RSS MiB",
        "build µs/step",
    ):
        table.add_column(column, justify="left" if column in ("scenario", "DB") else "right")
    for r in results:
        table.add_row(
            r.scenario,
            r.backend,
            f"{r.records:,}",
            f"{r.seconds:.2f}",
            f"{r.steps_per_second:,.0f}",
            f"{r.gas_per_step:,.1f}",
            f"{r.p50:.3f}",
            f"{r.p99:.3f}",
            f"{r.peak_rss_mib:,.0f}",
            "-" if r.build_us is None else f"{r.build_us:,.1f}",
        )
    console.print(table)
    console.print(
        "build µs/step: the producer's cost to build a record (validate, RFC 8785 JSON, record hash, leaf), "
        "paid before the clock starts, as the compute engine pays it while a step runs"
    )
    if stages:
        print_stages(stages, args.stage_records)
    console.print(f"load average: {load_before} at start, {os.getloadavg()} at the end (2 cores)")
    base = results[-1]
    best = max(results[:-1], key=lambda r: r.steps_per_second, default=None)
    if best is not None:
        console.print(
            f"pipeline vs naive baseline: {best.steps_per_second / base.steps_per_second:,.0f}x steps/s, "
            f"{base.gas_per_step / best.gas_per_step:,.0f}x less gas per step"
        )


if __name__ == "__main__":
    main()
