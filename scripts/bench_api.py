"""API load benchmark: a job's paginated audit trail and receipt fetches at concurrency 32, vs eth_getLogs.

Sets up anvil, the contracts, a SQLite ledger with one job of ``--steps`` step
records anchored and confirmed, and the API on a loopback port. A separate
client process (aiohttp, ``--concurrency`` connections, ``--seconds`` long)
mixes ``GET /v1/jobs/{id}/steps?limit=100&cursor=..`` pages and
``GET /v1/jobs/{id}/steps/{seq}/receipt`` fetches and reports requests/s,
p50/p99 and errors. Baseline: the same audit-trail question answered from the
chain by scanning the ledger's ``BatchAnchored`` logs with ``eth_getLogs`` and
decoding them; the ratio is baseline time per query / API p50.

    .venv/bin/python scripts/bench_api.py [--steps 10000] [--seconds 30] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _client(url: str, key: str, job_id: str, steps: int, seconds: float, concurrency: int, out: Any) -> None:
    import aiohttp

    async def main() -> dict[str, Any]:
        latencies: dict[str, list[float]] = {"page": [], "receipt": []}
        errors = 0
        deadline = time.monotonic() + seconds
        headers = {"Authorization": f"Bearer {key}"}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:

            async def worker(n: int) -> None:
                nonlocal errors
                rng = random.Random(n)
                while time.monotonic() < deadline:
                    if rng.random() < 0.5:
                        kind, cursor = "page", rng.randrange(-1, steps - 100)
                        path = f"/v1/jobs/{job_id}/steps?limit=100" + (
                            f"&cursor={cursor}" if cursor >= 0 else ""
                        )
                    else:
                        kind, path = "receipt", f"/v1/jobs/{job_id}/steps/{rng.randrange(steps)}/receipt"
                    started = time.perf_counter()
                    try:
                        async with session.get(path) as response:
                            await response.read()
                            ok = response.status == 200
                    except aiohttp.ClientError:
                        ok = False
                    latencies[kind].append(time.perf_counter() - started)
                    errors += not ok

            await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return {"latencies": latencies, "errors": errors, "seconds": seconds}

    out.put(asyncio.run(main()))


@contextlib.contextmanager
def _serve(
    app: Any, workers: int, workdir: Path, db_url: str, rpc_url: str, deployment: Any
) -> Iterator[str]:
    """The API on a loopback port: in this process (one worker) or as `secureflow api` with N processes."""
    from api.testing import LiveServer
    from ledger.deploy import write_deployment
    from ledger.devchain import free_port

    if workers == 1:
        with LiveServer(app) as server:
            yield server.url
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
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--api-workers",
        type=int,
        default=1,
        help="API processes; >1 serves `secureflow api` with SECUREFLOW_API_WORKERS from a subprocess",
    )
    args = parser.parse_args()

    from eth_account import Account

    from api.app import create_app
    from api.serve import ensure_admin_key
    from api.settings import ApiSettings
    from ledger.anchoring import Anchorer, AnchoringConfig
    from ledger.chain import ChainClient, ChainConfig, TransactionSender
    from ledger.contracts import AuditLedgerClient, RegistryClient
    from ledger.deploy import connect, deploy_contracts
    from ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
    from ledger.indexer import EventIndexer
    from ledger.nonces import StoreNonceSource
    from ledger.recorder import to_outbox
    from ledger.records import PartyDigests, StepRecord, params_hash
    from ledger.store.schemas import NewJob
    from ledger.store.sql import open_store

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    with DevChain(log_path=workdir / "anvil.log") as chain:
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
            for seq in range(args.steps)
        ]
        store.accept_records([to_outbox(r) for r in records])
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

        settings = ApiSettings(
            _env_file=None, rpc_url=chain.rpc_url, chain_id=DEV_CHAIN_ID, database_url=db_url
        )  # type: ignore[call-arg]
        app = create_app(settings, store=store, client=client, deployment=deployment)
        key = ensure_admin_key(app.state.api_db, Account.from_key(DEV_PRIVATE_KEYS[0]).address)
        assert key is not None
        app.state.api_db.sync_record_index()
        with _serve(app, args.api_workers, workdir, db_url, chain.rpc_url, deployment) as url:
            queue: Any = mp.get_context("spawn").Queue()
            proc = mp.get_context("spawn").Process(
                target=_client,
                args=(url, key, job_id, args.steps, args.seconds, args.concurrency, queue),
            )
            proc.start()
            result = queue.get(timeout=args.seconds + 120)
            proc.join()

        # Baseline: the chain-only answer: scan and decode the ledger's BatchAnchored logs.
        reader = AuditLedgerClient(ledger_contract)
        scans = []
        for _ in range(5):
            started = time.perf_counter()
            events = reader.batch_anchored_events(deployment.deploy_block)
            scans.append(time.perf_counter() - started)
        baseline = statistics.median(scans)
        store.close()

    all_lat = result["latencies"]["page"] + result["latencies"]["receipt"]
    total = len(all_lat)
    print(
        f"\nAPI, {args.concurrency} concurrent clients (separate process), "
        f"{args.seconds:.0f} s, {args.steps} steps:"
    )
    print(f"  requests: {total}  ({total / result['seconds']:.0f} req/s), errors: {result['errors']}")
    for kind, lat in result["latencies"].items():
        print(
            f"  {kind:<8} n={len(lat):6d}  p50 {_pct(lat, 0.5) * 1000:7.1f} ms  "
            f"p99 {_pct(lat, 0.99) * 1000:7.1f} ms"
        )
    p50 = _pct(all_lat, 0.5)
    print(f"  all      p50 {p50 * 1000:.1f} ms  p99 {_pct(all_lat, 0.99) * 1000:.1f} ms")
    print(
        f"baseline: eth_getLogs scan + decode of {len(events)} BatchAnchored events: "
        f"{baseline * 1000:.1f} ms/query"
    )
    print(f"ratio (baseline per query / API p50): {baseline / p50:.1f}x")


if __name__ == "__main__":
    main()
