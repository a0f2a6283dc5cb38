"""API load benchmark: a job's paginated audit trail and receipt fetches at concurrency 32, vs eth_getLogs.

Sets up anvil, the contracts, a SQLite ledger with one job of ``--steps`` step
records anchored and confirmed, and the API on a loopback port (in this process,
or ``--api-workers N`` processes of ``secureflow api``). A separate client
process (aiohttp) first sends ``--sequential`` requests one at a time (unloaded
latency), then runs ``--concurrency`` connections for ``--seconds`` mixing
``GET /v1/jobs/{id}/steps?limit=100&cursor=..`` pages and
``GET /v1/jobs/{id}/steps/{seq}/receipt`` fetches, and reports requests/s,
p50/p99, errors, and the API processes' CPU time per request.

Baseline, the same question answered from the chain alone. Our ledger anchors
Merkle roots of batches, so its ``BatchAnchored`` logs hold roots, not steps:
scanning them cannot produce a job's audit trail (its figure is printed, for
reference only). The baseline is therefore a log-only ledger
(``contracts/bench/NaiveStepLog.sol``, one ``StepLogged`` event per step carrying
the page's fields) holding the same steps: a page is produced by
``eth_getLogs`` filtered by the job's topic, decoding every event of the job
(``eth_abi``), sorting by seq and reading the page's block timestamps; and,
more favourable to the chain, by also filtering on the page's 100 ``seq``
topics. Each baseline page is checked equal (seq, hashes, leaf, algorithm,
times) to the API's page for the same cursor.

    .venv/bin/python scripts/bench_api.py [--steps 10000] [--seconds 30] [--concurrency 32] [--api-workers 1]

``--verify-only``: instead, ``GET /v1/audit/records?verify=true&limit=100`` on a job of ``--steps`` signed
records (default 1,000 then) created on chain with both consents: the same 100 receipts verified in this
process one ``eth_call`` per receipt (the way before batching) and with the batched ``verify`` calls, each
from a cold signature cache, in the same run; the route's latency one page at a time; and ``/healthz``'s
latency while ``--verify-clients`` clients ask for verified pages back to back.

    .venv/bin/python scripts/bench_api.py --verify-only [--steps 1000] [--verify-rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _client(
    url: str,
    key: str,
    job_id: str,
    steps: int,
    seconds: float,
    concurrency: int,
    sequential: int,
    out: Any,
) -> None:
    import aiohttp

    def pick(rng: random.Random) -> tuple[str, str]:
        if rng.random() < 0.5:
            cursor = rng.randrange(-1, steps - 100)
            return "page", f"/v1/jobs/{job_id}/steps?limit=100" + (f"&cursor={cursor}" if cursor >= 0 else "")
        return "receipt", f"/v1/jobs/{job_id}/steps/{rng.randrange(steps)}/receipt"

    async def main() -> dict[str, Any]:
        latencies: dict[str, list[float]] = {"page": [], "receipt": []}
        unloaded: dict[str, list[float]] = {"page": [], "receipt": []}
        errors = 0
        headers = {"Authorization": f"Bearer {key}"}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:

            async def get(path: str) -> bool:
                try:
                    async with session.get(path) as response:
                        await response.read()
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            rng = random.Random(-1)
            for _ in range(sequential):  # one request at a time: latency without queueing
                kind, path = pick(rng)
                started = time.perf_counter()
                ok = await get(path)
                unloaded[kind].append(time.perf_counter() - started)
                errors += not ok
            out.put({"phase": "loaded"})
            deadline = time.monotonic() + seconds

            async def worker(n: int) -> None:
                nonlocal errors
                rng = random.Random(n)
                while time.monotonic() < deadline:
                    kind, path = pick(rng)
                    started = time.perf_counter()
                    ok = await get(path)
                    latencies[kind].append(time.perf_counter() - started)
                    errors += not ok

            await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return {"latencies": latencies, "unloaded": unloaded, "errors": errors, "seconds": seconds}

    out.put(asyncio.run(main()))


def _cpu_seconds_of_group(pgid: int) -> float:
    """User + system CPU seconds of the live processes in a process group (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state: pgrp is the 5th field of stat, here [2]
            total += int(fields[11]) + int(fields[12])
    return total / tick


@contextlib.contextmanager
def _serve(
    app: Any, workers: int, workdir: Path, db_url: str, rpc_url: str, deployment: Any
) -> Iterator[tuple[str, Callable[[], float]]]:
    """The API on a loopback port, and a clock of its CPU seconds: in this process (one API process; the
    client runs in another, so this process's CPU time is the server's) or `secureflow api` with N."""
    from secureflow.ledger.deploy import write_deployment
    from secureflow.ledger.devchain import free_port
    from tools.live_server import LiveServer

    if workers == 1:
        from secureflow.api.server.serve import freeze_startup_objects

        freeze_startup_objects()  # as `secureflow api` does before serving
        with LiveServer(app) as live:
            yield live.url, time.process_time
        return
    deployment_file = workdir / "deployment.json"
    write_deployment(deployment, deployment_file)
    port = free_port()
    env = {
        **os.environ,
        "SECUREFLOW_DATABASE_URL": db_url,
        "SECUREFLOW_RPC_URL": rpc_url,
        "SECUREFLOW_CHAIN_ID": "1337",
        "SECUREFLOW_DEPLOYMENT": str(deployment_file),
        "SECUREFLOW_API_PORT": str(port),
        "SECUREFLOW_API_WORKERS": str(workers),
        "SECUREFLOW_LOG_LEVEL": "WARNING",
    }
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [str(root / ".venv" / "bin" / "secureflow"), "api"],
        env=env,
        stdout=(workdir / "api.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the API did not start; see {workdir / 'api.log'}")
            time.sleep(0.2)
        time.sleep(2 * workers)  # let every process finish starting
        yield url, lambda: _cpu_seconds_of_group(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


STEP_LOGGED = ["bytes32", "bytes32", "string", "uint64", "uint64"]
"""The non-indexed fields of NaiveStepLog's StepLogged event."""


def _log_steps(client: Any, sender: Any, contract: Any, job_id: str, records: list[Any], per_tx: int) -> None:
    """Write the job's steps into the log-only ledger, ``per_tx`` events per transaction."""
    job = bytes.fromhex(job_id[2:])
    sent = []
    for start in range(0, len(records), per_tx):
        chunk = [
            (
                r.seq,
                bytes.fromhex(r.record_hash[2:]),
                bytes.fromhex(r.leaf[2:]),
                r.algorithm,
                r.started_at_ms,
                r.finished_at_ms,
            )
            for r in records[start : start + per_tx]
        ]
        sent.append(sender.send(contract.functions.logSteps(job, chunk)))
    for tx in sent:
        sender.wait(tx)


def _scan_page(
    w3: Any, address: str, topic0: str, job_id: str, after: int, limit: int, from_block: int, *, by_seq: bool
) -> list[dict[str, Any]]:
    """A page of the audit trail from the chain alone: eth_getLogs, decode, order by seq, block times."""
    from eth_abi.abi import decode

    topics: list[Any] = [topic0, job_id]
    if by_seq:  # the node filters on the page's seq topics too
        topics.append(["0x" + f"{seq:064x}" for seq in range(after + 1, after + 1 + limit)])
    logs = w3.provider.make_request(
        "eth_getLogs",
        [{"address": address, "fromBlock": hex(from_block), "toBlock": "latest", "topics": topics}],
    )["result"]
    steps = []
    for log in logs:
        record_hash, leaf, algorithm, started, finished = decode(STEP_LOGGED, bytes.fromhex(log["data"][2:]))
        steps.append(
            {
                "seq": int(log["topics"][2], 16),
                "record_hash": "0x" + record_hash.hex(),
                "leaf": "0x" + leaf.hex(),
                "algorithm": algorithm,
                "started_at_ms": started,
                "finished_at_ms": finished,
                "tx_hash": log["transactionHash"],
                "block_number": int(log["blockNumber"], 16),
            }
        )
    steps.sort(key=lambda step: step["seq"])
    page = [step for step in steps if step["seq"] > after][:limit]
    times: dict[int, int] = {}
    for step in page:  # the time a step was put on chain: its block's timestamp
        block = step["block_number"]
        if block not in times:
            header = w3.provider.make_request("eth_getBlockByNumber", [hex(block), False])["result"]
            times[block] = int(header["timestamp"], 16)
        step["block_timestamp"] = times[block]
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=200, help="unloaded requests before the load")
    parser.add_argument("--scans", type=int, default=5, help="baseline queries per kind (median reported)")
    parser.add_argument(
        "--api-workers",
        type=int,
        default=1,
        help="API processes; >1 serves `secureflow api` with SECUREFLOW_API_WORKERS from a subprocess",
    )
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="ledger/API database: a SQLite file, or a fresh schema on the local PostgreSQL (dropped after)",
    )
    parser.add_argument("--verify-only", action="store_true", help="the ?verify=true figures only")
    parser.add_argument("--verify-rounds", type=int, default=5, help="verified pages per figure (median)")
    parser.add_argument("--verify-clients", type=int, default=8, help="clients asking for verified pages")
    args = parser.parse_args()
    if args.verify_only:
        if "--steps" not in sys.argv:
            args.steps = 1000
        verify_bench(args)
        return

    from eth_account import Account
    from web3 import Web3

    from secureflow.api.server.app import create_app
    from secureflow.api.server.serve import ensure_admin_key
    from secureflow.api.server.settings import ApiSettings
    from secureflow.ledger.anchoring import Anchorer, AnchoringConfig
    from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
    from secureflow.ledger.compiler import compile_contracts
    from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient
    from secureflow.ledger.deploy import connect, deploy_contracts
    from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
    from secureflow.ledger.indexer import EventIndexer
    from secureflow.ledger.nonces import StoreNonceSource
    from secureflow.ledger.recorder import to_outbox
    from secureflow.ledger.records import PartyDigests, StepRecord, params_hash
    from secureflow.ledger.store.schemas import NewJob
    from secureflow.ledger.store.sql import open_store

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    with DevChain(log_path=workdir / "anvil.log") as chain:
        schema = None
        if args.backend == "postgresql":
            from bench_anchoring import postgres_url

            found = postgres_url()
            if found is None:
                raise SystemExit("PostgreSQL is not reachable at 127.0.0.1:5432 (database test)")
            db_url, schema = found
        else:
            db_url = f"sqlite:///{workdir / 'ledger.db'}"
        store = open_store(db_url)
        client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
        nonces = StoreNonceSource(store, client.w3, client.chain_id)
        admin = TransactionSender(client, DEV_PRIVATE_KEYS[0], nonces)
        deployment = deploy_contracts(client, admin)
        alice, bob, anchor = (Account.from_key(k).address for k in DEV_PRIVATE_KEYS[1:4])
        registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
        registry.register_member(alice)
        registry.register_member(bob)
        registry.grant_anchor_service(anchor)

        job_id = "0x" + "42" * 32
        store.create_job(
            NewJob(job_id=job_id, manifest_hash="0x" + "11" * 32, creator=alice, parties=[alice, bob])
        )
        print(f"accepting {args.steps} step records and anchoring them on anvil ...", flush=True)
        records = [
            StepRecord(
                job_id=job_id,
                seq=seq,
                algorithm="psi",
                params_hash=params_hash({"seq": seq}, None),
                code_version="bench",
                parties=(
                    PartyDigests(party=alice, inputs={"t": "0x" + f"{seq:064x}"}),
                    PartyDigests(party=bob, outputs={"t": "0x" + f"{seq + 1:064x}"}),
                ),
                status="succeeded",
                started_at_ms=seq,
                finished_at_ms=seq + 1,
            )
            for seq in range(args.steps)
        ]
        outbox = [to_outbox(r) for r in records]
        store.accept_records(outbox)
        ledger_contract = connect(client, deployment, "AuditLedger")
        sender = TransactionSender(client, DEV_PRIVATE_KEYS[3], nonces)
        anchorer = Anchorer(
            store,
            AuditLedgerClient(ledger_contract, sender),
            sender,
            AnchoringConfig(max_batch_delay=0.0, from_block=deployment.deploy_block),
        )
        indexer = EventIndexer(store, client, ledger_contract, from_block=deployment.deploy_block)
        while True:
            indexer.poll()
            anchorer.run_once()
            counts = store.count_records_by_status()
            if counts["pending"] == counts["submitted"] == 0:
                break
        print(f"records: {store.count_records_by_status()}", flush=True)

        print("writing the same steps to the log-only baseline ledger (NaiveStepLog) ...", flush=True)
        naive = compile_contracts(Path(__file__).resolve().parents[1] / "contracts" / "bench")["NaiveStepLog"]
        logger = TransactionSender(
            client, DEV_PRIVATE_KEYS[4], StoreNonceSource(store, client.w3, client.chain_id)
        )
        naive_address = str(logger.deploy(naive.abi, naive.bytecode)["contractAddress"])
        naive_block = client.w3.eth.block_number
        naive_contract = client.w3.eth.contract(
            address=Web3.to_checksum_address(naive_address), abi=naive.abi
        )
        by_seq = {r.seq: r for r in records}
        steps_for_log = [
            argparse.Namespace(
                seq=o.seq,
                record_hash=o.record_hash,
                leaf=o.leaf,
                algorithm=by_seq[o.seq].algorithm,
                started_at_ms=by_seq[o.seq].started_at_ms,
                finished_at_ms=by_seq[o.seq].finished_at_ms,
            )
            for o in outbox
        ]
        _log_steps(client, logger, naive_contract, job_id, steps_for_log, per_tx=250)
        topic0 = client.w3.keccak(
            text="StepLogged(bytes32,uint64,bytes32,bytes32,string,uint64,uint64)"
        ).to_0x_hex()

        settings = ApiSettings(
            _env_file=None, rpc_url=chain.rpc_url, chain_id=DEV_CHAIN_ID, database_url=db_url
        )  # type: ignore[call-arg]
        app = create_app(settings, store=store, client=client, deployment=deployment)
        key = ensure_admin_key(app.state.api_db, Account.from_key(DEV_PRIVATE_KEYS[0]).address)
        assert key is not None
        app.state.api_db.sync_record_index()
        load_before = os.getloadavg()
        with _serve(app, args.api_workers, workdir, db_url, chain.rpc_url, deployment) as (url, cpu):
            queue: Any = mp.get_context("spawn").Queue()
            proc = mp.get_context("spawn").Process(
                target=_client,
                args=(url, key, job_id, args.steps, args.seconds, args.concurrency, args.sequential, queue),
            )
            proc.start()
            queue.get(timeout=300)  # the unloaded phase is over
            print(f"load phase: {args.seconds:.0f} s", flush=True)
            cpu_started = cpu()
            result = queue.get(timeout=args.seconds + 300)
            cpu_used = cpu() - cpu_started
            proc.join()
            load_after = os.getloadavg()

            # Baselines, each page checked against the API's page for the same cursor.
            rng = random.Random(7)
            full_scans: list[float] = []
            seq_scans: list[float] = []
            for _ in range(args.scans):
                after = rng.randrange(-1, args.steps - 100)
                request = urllib.request.Request(
                    f"{url}/v1/jobs/{job_id}/steps?limit=100" + (f"&cursor={after}" if after >= 0 else ""),
                    headers={"Authorization": f"Bearer {key}"},
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    api_page = json.loads(response.read())["items"]
                fields = ("seq", "record_hash", "leaf", "algorithm", "started_at_ms", "finished_at_ms")
                expected = [{f: item[f] for f in fields} for item in api_page]
                for by_seq_topic, timings in ((False, full_scans), (True, seq_scans)):
                    started = time.perf_counter()
                    page = _scan_page(
                        client.w3, naive_address, topic0, job_id, after, 100, naive_block, by_seq=by_seq_topic
                    )
                    timings.append(time.perf_counter() - started)
                    got = [{f: step[f] for f in fields} for step in page]
                    if got != expected:
                        raise SystemExit(f"the log scan's page after {after} differs from the API's page")

        reader = AuditLedgerClient(ledger_contract)
        anchored_scans = []
        for _ in range(args.scans):
            started = time.perf_counter()
            events = reader.batch_anchored_events(deployment.deploy_block)
            anchored_scans.append(time.perf_counter() - started)
        store.close()
        if schema is not None:
            from bench_anchoring import drop_schema

            drop_schema(schema)

    lat = result["latencies"]
    all_lat = lat["page"] + lat["receipt"]
    total = len(all_lat)
    print(
        f"\nAPI ({args.api_workers} process{'es' if args.api_workers > 1 else ''}, {args.backend}), "
        f"{args.concurrency} "
        f"concurrent clients (separate process), {args.seconds:.0f} s, {args.steps} steps; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min, {os.cpu_count()} CPUs)"
    )
    print(f"  requests: {total}  ({total / result['seconds']:.0f} req/s), errors: {result['errors']}")
    for kind, values in lat.items():
        print(
            f"  {kind:<8} n={len(values):6d}  p50 {_pct(values, 0.5) * 1000:7.1f} ms  "
            f"p99 {_pct(values, 0.99) * 1000:7.1f} ms"
        )
    p50, p99 = _pct(all_lat, 0.5), _pct(all_lat, 0.99)
    print(f"  all      p50 {p50 * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms")
    print(f"  API CPU per request: {cpu_used / max(total, 1) * 1000:.2f} ms (all API processes, under load)")
    unloaded = result["unloaded"]
    for kind, values in unloaded.items():
        print(f"  unloaded {kind:<8} n={len(values):4d}  p50 {_pct(values, 0.5) * 1000:6.2f} ms")
    target = p99 <= 0.100 and result["errors"] == 0
    print(f"  target p99 <= 100 ms and zero errors: {'met' if target else 'NOT met'}")

    full, by_seq_scan = statistics.median(full_scans), statistics.median(seq_scans)
    page_p50 = _pct(lat["page"], 0.5)
    page_unloaded = _pct(unloaded["page"], 0.5)
    print(
        "\nbaseline, the same page (100 steps after a cursor) from the chain alone "
        f"(log-only ledger, one StepLogged event per step, {args.steps} events):"
    )
    print(f"  eth_getLogs by job topic + decode all + sort + block times: {full * 1000:8.1f} ms/page")
    print(f"  eth_getLogs by job and the page's 100 seq topics:           {by_seq_scan * 1000:8.1f} ms/page")
    print(
        f"  ratio, job-topic scan / API page:  {full / page_p50:7.1f}x vs p50 under load, "
        f"{full / page_unloaded:7.1f}x vs unloaded p50"
    )
    api_rate = total / result["seconds"]
    print(
        f"  ratio, throughput: API {api_rate:.0f} req/s at {args.concurrency} clients vs "
        f"job-topic scans back to back {1 / full:.1f} pages/s: {api_rate * full:7.1f}x"
    )
    print(
        f"  ratio, seq-topic scan / API page:  {by_seq_scan / page_p50:7.1f}x vs p50 under load, "
        f"{by_seq_scan / page_unloaded:7.1f}x vs unloaded p50"
    )
    print(
        f"  for reference: scanning our ledger's {len(events)} BatchAnchored events takes "
        f"{statistics.median(anchored_scans) * 1000:.1f} ms, but yields batch roots, not the job's steps "
        "(it cannot answer the audit-trail query)"
    )


def verify_bench(args: argparse.Namespace) -> None:
    """``?verify=true`` pages: per-receipt chain calls vs batched, in the same run (see the docstring)."""
    import threading

    import requests
    from eth_account import Account
    from eth_utils.crypto import keccak

    from secureflow.api.server.app import create_app
    from secureflow.api.server.serve import ensure_admin_key
    from secureflow.api.server.settings import ApiSettings
    from secureflow.ledger.anchoring import Anchorer, AnchoringConfig
    from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
    from secureflow.ledger.consent import sign_consent
    from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient
    from secureflow.ledger.deploy import connect, deploy_contracts
    from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
    from secureflow.ledger.indexer import EventIndexer
    from secureflow.ledger.nonces import StoreNonceSource
    from secureflow.ledger.recorder import to_outbox
    from secureflow.ledger.records import PartyDigests, StepRecord, job_id_for, params_hash
    from secureflow.ledger.signing import sign_party
    from secureflow.ledger.store.schemas import NewJob
    from secureflow.ledger.store.sql import open_store
    from secureflow.ledger.verify import forget_signers, verify_receipts
    from tools.live_server import LiveServer

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-verify-"))
    with DevChain(log_path=workdir / "anvil.log") as chain:
        db_url = f"sqlite:///{workdir / 'ledger.db'}"
        store = open_store(db_url)
        client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
        nonces = StoreNonceSource(store, client.w3, client.chain_id)
        admin = TransactionSender(client, DEV_PRIVATE_KEYS[0], nonces)
        deployment = deploy_contracts(client, admin)
        keys = dict(zip(("alice", "bob", "anchor"), DEV_PRIVATE_KEYS[1:4], strict=True))
        alice, bob, anchor = (Account.from_key(k).address for k in keys.values())
        registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
        registry.register_member(alice)
        registry.register_member(bob)
        registry.grant_anchor_service(anchor)
        ledger_contract = connect(client, deployment, "AuditLedger")
        manifest_hash, salt = keccak(text="bench verify manifest"), keccak(text="bench verify salt")
        job_id = job_id_for(alice, "0x" + manifest_hash.hex(), "0x" + salt.hex())
        consents = [
            sign_consent(
                keys[p], DEV_CHAIN_ID, ledger_contract.address, bytes.fromhex(job_id[2:]), manifest_hash
            )
            for p in ("alice", "bob")
        ]
        AuditLedgerClient(ledger_contract, TransactionSender(client, keys["alice"], nonces)).create_job(
            manifest_hash=manifest_hash, salt=salt, parties=[alice, bob], consents=consents
        )
        store.create_job(
            NewJob(
                job_id=job_id,
                manifest_hash="0x" + manifest_hash.hex(),
                creator=alice,
                parties=[alice, bob],
                salt="0x" + salt.hex(),
            )
        )
        print(f"signing and anchoring {args.steps} step records of a job open on chain ...", flush=True)
        outbox = []
        for seq in range(args.steps):
            record = StepRecord(
                job_id=job_id,
                seq=seq,
                algorithm="psi",
                params_hash=params_hash({"seq": seq}),
                code_version="bench",
                parties=(
                    PartyDigests(party=alice, inputs={"t": "0x" + f"{seq:064x}"}),
                    PartyDigests(party=bob, outputs={"t": "0x" + f"{seq + 1:064x}"}),
                ),
                status="succeeded",
                started_at_ms=seq,
                finished_at_ms=seq + 1,
            )
            signed = tuple(
                p.model_copy(update={"signature": sign_party(record, p, bytes.fromhex(k[2:]))})
                for p, k in zip(record.parties, (keys["alice"], keys["bob"]), strict=True)
            )
            outbox.append(to_outbox(record.model_copy(update={"parties": signed})))
        store.accept_records(outbox)
        sender = TransactionSender(client, keys["anchor"], nonces)
        anchorer = Anchorer(
            store,
            AuditLedgerClient(ledger_contract, sender),
            sender,
            AnchoringConfig(max_batch_delay=0.0, from_block=deployment.deploy_block),
        )
        indexer = EventIndexer(store, client, ledger_contract, from_block=deployment.deploy_block)
        while True:
            indexer.poll()
            anchorer.run_once()
            counts = store.count_records_by_status()
            if counts["pending"] == counts["submitted"] == 0:
                break
        print(f"records: {store.count_records_by_status()}", flush=True)

        settings = ApiSettings(
            _env_file=None, rpc_url=chain.rpc_url, chain_id=DEV_CHAIN_ID, database_url=db_url
        )  # type: ignore[call-arg]
        app = create_app(settings, store=store, client=client, deployment=deployment)
        key = ensure_admin_key(app.state.api_db, Account.from_key(DEV_PRIVATE_KEYS[0]).address)
        assert key is not None
        app.state.api_db.sync_record_index()
        svc = app.state.services
        rng = random.Random(11)
        starts = [rng.randrange(0, max(1, args.steps - 100)) for _ in range(args.verify_rounds)]
        load = os.getloadavg()

        # the same 100 receipts, verified in this process both ways, each from a cold signature cache
        figures: dict[str, list[float]] = {"per receipt (before)": [], "batched (after)": []}
        for start in starts:
            receipts = [svc.receipts.receipt(job_id, seq) for seq in range(start, start + 100)]
            for name, batch in (("per receipt (before)", False), ("batched (after)", True)):
                forget_signers()
                began = time.perf_counter()
                verdicts = verify_receipts(receipts, svc.w3, svc.pin, batch=batch)
                figures[name].append(time.perf_counter() - began)
                if not all(v.ok for v in verdicts):
                    raise SystemExit(f"a receipt failed verification ({name})")

        headers = {"Authorization": f"Bearer {key}"}
        with LiveServer(app) as live:

            def page(cursor: int) -> float:
                began = time.perf_counter()
                response = requests.get(
                    f"{live.url}/v1/audit/records",
                    params={"job_id": job_id, "verify": "true", "limit": 100, "cursor": cursor},
                    headers=headers,
                    timeout=120,
                )
                response.raise_for_status()
                if not all(item["verification"]["ok"] for item in response.json()["items"]):
                    raise SystemExit("a verified page has a failing item")
                return time.perf_counter() - began

            cursors = starts  # the audit cursor is a record id: 1..steps, in acceptance order
            forget_signers()
            cold = [page(c) for c in cursors]
            warm = [page(c) for c in cursors]

            stop = threading.Event()
            busy: list[float] = []

            def hammer(n: int) -> None:
                local = random.Random(n)
                while not stop.is_set():
                    busy.append(page(local.randrange(0, max(1, args.steps - 100))))

            health: list[float] = []
            threads = [threading.Thread(target=hammer, args=(n,)) for n in range(args.verify_clients)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + max(10.0, args.seconds / 3)
            while time.monotonic() < deadline:
                began = time.perf_counter()
                requests.get(f"{live.url}/healthz", timeout=60).raise_for_status()
                health.append(time.perf_counter() - began)
            stop.set()
            for thread in threads:
                thread.join()
            load_after = os.getloadavg()
        store.close()

    print(
        f"\n?verify=true, 100 signed receipts of one job ({args.steps} records anchored), SQLite, anvil; "
        f"load average {load[0]:.2f} before, {load_after[0]:.2f} after (1 min, {os.cpu_count()} CPUs)"
    )
    for name, values in figures.items():
        print(f"  in process, {name:<22} median {statistics.median(values) * 1000:7.1f} ms (cold signatures)")
    before, after = (statistics.median(v) for v in figures.values())
    print(f"  ratio before / after: {before / after:.1f}x")
    print(
        f"  GET /v1/audit/records?verify=true&limit=100: median {statistics.median(cold) * 1000:.1f} ms "
        f"(cold signatures), {statistics.median(warm) * 1000:.1f} ms (again)"
    )
    print(
        f"  with {args.verify_clients} clients asking for verified pages back to back "
        f"({len(busy)} pages, p50 {_pct(busy, 0.5) * 1000:.0f} ms): /healthz p50 "
        f"{_pct(health, 0.5) * 1000:.1f} ms, p99 {_pct(health, 0.99) * 1000:.1f} ms, "
        f"max {max(health) * 1000:.1f} ms over {len(health)} requests"
    )


if __name__ == "__main__":
    main()
