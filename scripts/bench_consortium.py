"""Consortium mode vs the embedded engine: one pipeline, its steps, the coordination overhead, throughput.

The pipeline PSI -> StandardScaler -> SS-LR -> secure prediction (to alice) -> BiClassificationEval over
``--rows`` rows (the `secureflow consortium` example data: alice holds the label, each member two features)
with 2 parties (alice, bob) and 3 (and carol), run two ways in the same run:

* **embedded** (the baseline): one warm party worker per party on 127.0.0.1 (the `secureflow up` engine),
  `run_job` with the ledger outbox in SQLite; its cold start is measured once, apart from the job;
* **consortium**: anvil with the contracts, the production API with its anchoring worker (SQLite), one
  ``secureflow coordinator`` (Celery on Redis, 2 jobs at once) and one ``secureflow node`` per member, as
  `secureflow consortium` starts them; the job is submitted over HTTP and followed until closed on chain.

Figures: wall time per step (from the step records' start and finish), submit -> closed latency, and where
the rest of it went, from the coordinator's and the session workers' log stamps (queue: submitted -> the
coordinator's Celery worker received it; party workers start: received -> the first consent (each node
hands the session its warm spare worker, which joins SecretFlow and its links; the measured job waits
until the spares are warm); consents + createJob mined; opened -> the first step starts; between steps;
the last step's end -> ``closeJob`` confirmed (anchoring of the records and the close)); coordination
overhead = queue + consents/createJob + between steps + close, as a share of the job's submit -> closed
time (target < 2%), and the workers' start apart; peak RSS of each node process, of the party workers it
started (sampled from /proc) and of the coordinator; then ``--jobs`` jobs submitted at once to the
coordinator (2 at a time) vs the same jobs one after the other (not waiting for warm spares): jobs per
minute. The load average is printed before and after.

Run: ``.venv/bin/python scripts/bench_consortium.py [--rows 10000] [--parties 2,3] [--epochs 3] [--jobs 4]``;
``--quick``: 1,000 rows, 1 epoch, 2 parties, 2 jobs. Needs Redis at ``--redis-url``. Prints figures only;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import resource
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pandas as pd
import redis
import requests
from eth_account import Account
from eth_utils.crypto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from secureflow.api.dev.consortium import (
    FEATURES,
    PARTY_KEYS,
    Children,
    _fresh_key,
    _node_folder,
    _node_warm,
    consortium_data,
)
from secureflow.api.server.logs import configure_logging
from secureflow.api.server.serve import add_member_key, build_api
from secureflow.api.server.settings import ApiSettings
from secureflow.compute.runner import run_job
from secureflow.compute.worker.engine import Engine
from secureflow.compute.worker.link import node_alive_key
from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.contracts import RegistryClient
from secureflow.ledger.deploy import connect, deploy_contracts, write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import StepRecord
from secureflow.ledger.store import open_store
from tools.live_server import LiveServer

ALL_PARTIES = ("alice", "bob", "carol")
DATASET = "customers.csv"


def pipeline(parties: tuple[str, ...], epochs: int) -> list[dict[str, Any]]:
    feats = [f for p in parties for f in FEATURES[p]]
    return [
        {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}},
        {"algorithm": "standard_scaler", "params": {"columns": feats}, "inputs": {"table": "j"},
         "outputs": {"table": "s"}},
        {"algorithm": "ss_lr", "params": {"label": "y", "features": feats, "epochs": epochs,
                                          "learning_rate": 0.3, "batch_size": 1024},
         "inputs": {"table": "s"}, "outputs": {"model": "lr"}},
        {"algorithm": "secure_predict", "params": {"receiver": "alice"},
         "inputs": {"table": "s", "model": "lr"}, "outputs": {"table": "pred"}},
        {"algorithm": "biclassification_eval", "params": {"label": "y"},
         "inputs": {"labels": "s", "scores": "pred"}, "outputs": {"report": "eval"}},
    ]  # fmt: skip


def manifest(name: str, addresses: dict[str, str], epochs: int) -> dict[str, Any]:
    parties = tuple(addresses)
    return {
        "name": name,
        "parties": [{"name": p, "address": a} for p, a in addresses.items()],
        "datasets": {"raw": dict.fromkeys(parties, DATASET)},
        "steps": pipeline(parties, epochs),
    }


def tables(rows: int) -> dict[str, pd.DataFrame]:
    return consortium_data(rows, seed=17)


# ------------------------------------------------------------------------------------------ /proc


def _status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@dataclass
class RssSampler:
    """Peak RSS (VmHWM) of each node process and of each process it started, sampled every 0.2 s."""

    nodes: dict[str, int]  # party -> node pid
    peaks: dict[tuple[str, int], int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        for party, pid in self.nodes.items():
            for p in (pid, *_children(pid)):
                self.peaks[(party, p)] = max(self.peaks.get((party, p), 0), _status_kib(p, "VmHWM"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def by_node(self) -> dict[str, tuple[float, float]]:
        """party -> (node process peak MiB, largest party worker peak MiB)."""
        out = {}
        for party, pid in self.nodes.items():
            own = self.peaks.get((party, pid), 0)
            workers = [v for (p, q), v in self.peaks.items() if p == party and q != pid]
            out[party] = (own / 1024, max(workers, default=0) / 1024)
        return out


# ------------------------------------------------------------------------------------------ embedded


def run_embedded(
    root: Path, parties: tuple[str, ...], data: dict[str, pd.DataFrame], epochs: int
) -> dict[str, Any]:
    store = open_store(f"sqlite:///{root / 'ledger.db'}")
    engine = Engine(parties, root / "engine", step_timeout=3600)
    try:
        engine.start()
        for party in parties:
            path = engine.data_dir(party) / DATASET
            path.parent.mkdir(parents=True, exist_ok=True)
            data[party].to_csv(path, index=False)
        addresses = {p: engine.addresses[p] for p in parties}
        t0 = time.monotonic()
        res = run_job(engine, manifest("bench-embedded", addresses, epochs), OutboxRecorder(store))
        wall = time.monotonic() - t0
        if not res.succeeded:
            raise SystemExit(f"the embedded job failed: {res.error_class}: {res.error_message}")
        rss = engine.rss_bytes()
        return {
            "cold_start_s": engine.last_start_s,
            "job_s": wall,
            "steps_s": {s.algorithm: s.seconds for s in res.steps},
            "anchoring_s": res.anchoring_seconds,
            "auc": float((res.report("eval", "alice") or {}).get("auc", float("nan"))),
            "peak_rss_mib": {p: rss.get(f"{p}.peak", 0) / 2**20 for p in parties},
        }
    finally:
        engine.shutdown()
        store.close()


# ------------------------------------------------------------------------------------------ consortium


@dataclass
class Consortium:
    root: Path
    url: str
    keys: dict[str, str]
    addresses: dict[str, str]
    children: Children
    store_url: str
    logs: Path
    server: LiveServer
    api: Any
    chain: DevChain
    prefix: str
    redis_url: str = "redis://127.0.0.1:6379/0"

    def close(self) -> None:
        self.children.stop()
        self.server.stop()
        self.api.app.state.services.executor.close()
        self.api.close()
        self.chain.stop()


def start_consortium(root: Path, redis_url: str, data: dict[str, pd.DataFrame]) -> Consortium:
    """`secureflow consortium`'s processes (api/dev/consortium.py), with this run's data and own queues."""
    logs = root / "logs"
    logs.mkdir(parents=True)
    chain = DevChain(log_path=root / "anvil.log").start()
    client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
    admin = TransactionSender(client, DEV_PRIVATE_KEYS[0], _nonces(client))
    deployment = deploy_contracts(client, admin)
    write_deployment(deployment, root / "deployment.json")
    registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
    addresses = {p: str(Account.from_key(k).address) for p, k in PARTY_KEYS.items()}
    for party, address in addresses.items():
        registry.register_member(address, keccak(text=party))
    registry.grant_anchor_service(Account.from_key(DEV_PRIVATE_KEYS[3]).address)
    coordinator_key, coordinator = _fresh_key(root)
    log_reader_key, log_reader = _fresh_key(root, "log-reader")
    registry.grant_role("coordinator", coordinator)
    ledger = deployment.address_of("AuditLedger")
    folders = {}
    for party in ALL_PARTIES:
        others = [a for p, a in addresses.items() if p != party]
        folders[party] = _node_folder(
            root / "nodes", party, others, DEV_CHAIN_ID, ledger, coordinator, log_reader
        )
        data[party].to_csv(folders[party] / "data" / DATASET, index=False)
    tag = uuid.uuid4().hex[:8]
    prefix, queue = f"bench-{tag}", f"secureflow.jobs.bench-{tag}"
    db_url = f"sqlite:///{(root / 'secureflow.db').as_posix()}"
    env = {
        **os.environ,
        "SECUREFLOW_DATABASE_URL": db_url,
        "SECUREFLOW_RPC_URL": chain.rpc_url,
        "SECUREFLOW_CHAIN_ID": str(DEV_CHAIN_ID),
        "SECUREFLOW_DEPLOYMENT": str(root / "deployment.json"),
        "SECUREFLOW_BROKER_URL": redis_url,
        "SECUREFLOW_QUEUE_NAME": queue,
        "SECUREFLOW_COMPUTE_REDIS_URL": redis_url,
        "SECUREFLOW_COMPUTE_REDIS_PREFIX": prefix,
        "SECUREFLOW_COORDINATOR_WORKDIR": str(root / "coordinator"),
        "SECUREFLOW_COORDINATOR_KEY_FILE": str(coordinator_key),
        "SECUREFLOW_COORDINATOR_CONCURRENCY": "2",
    }
    settings = ApiSettings(
        database_url=db_url,
        rpc_url=chain.rpc_url,
        chain_id=DEV_CHAIN_ID,
        deployment=root / "deployment.json",
        anchor_key=DEV_PRIVATE_KEYS[3],
        broker_url=redis_url,
        queue_name=queue,
        compute_redis_url=redis_url,
        compute_redis_prefix=prefix,
        log_reader_key_file=log_reader_key,
    )
    api = build_api(settings, with_worker=True)
    db = api.app.state.api_db
    keys = {p: add_member_key(db, p, a, "member") for p, a in addresses.items()}
    children = Children(logs)
    for party in ALL_PARTIES:
        children.spawn(f"node-{party}", ["node", "--party", party, "--data-dir", str(folders[party]),
                                         "--redis-url", redis_url, "--prefix", prefix], env)  # fmt: skip
    children.spawn("coordinator", ["coordinator", "--log-level", "INFO"], env)
    rds = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 300
    while not all(rds.exists(node_alive_key(prefix, p)) for p in ALL_PARTIES):
        children.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"the nodes did not start within 300 s (logs in {logs})")
        time.sleep(0.2)
    server = LiveServer(api.app).start()
    return Consortium(root, server.url, keys, addresses, children, db_url, logs, server, api, chain, prefix)


def wait_warm(c: Consortium, parties: tuple[str, ...], timeout: float = 300.0) -> float:
    """Until each node's spare party worker is warm (SecretFlow imported); the seconds waited."""
    rds = redis.Redis.from_url(c.redis_url)
    t0 = time.monotonic()
    while not all(_node_warm(rds, c.prefix, p) for p in parties):
        c.children.check()
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"the nodes' spare workers were not warm within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - t0


def _nonces(client: ChainClient) -> Any:
    from secureflow.ledger.nonces import ChainNonceSource

    return ChainNonceSource(client.w3)


@dataclass
class Followed:
    """One job's life as seen from outside: wall-clock times (time.time()) of its transitions."""

    job_id: str
    submitted: float
    running: float | None = None
    ended: float | None = None
    closed: float | None = None
    status: str = ""


def submit(c: Consortium, parties: tuple[str, ...], epochs: int, name: str) -> Followed:
    addresses = {p: c.addresses[p] for p in parties}
    body = {"manifest": manifest(name, addresses, epochs)}
    t = time.time()
    headers = {"Authorization": f"Bearer {c.keys['alice']}"}
    reply = requests.post(f"{c.url}/v1/jobs", json=body, headers=headers, timeout=60)
    if reply.status_code != 201:
        raise SystemExit(f"submit failed: {reply.status_code} {reply.text}")
    return Followed(str(reply.json()["job"]["job_id"]), t)


def follow(c: Consortium, jobs: list[Followed], timeout: float = 3600.0) -> None:
    """Poll the store (every 50 ms) until every job is closed on chain (or failed), noting each transition."""
    store = open_store(c.store_url)
    deadline = time.monotonic() + timeout
    try:
        while any(j.closed is None for j in jobs):
            if time.monotonic() > deadline:
                raise SystemExit(f"jobs not closed within {timeout} s: {[j.status for j in jobs]}")
            c.children.check()
            now = time.time()
            for j in jobs:
                if j.closed is not None:
                    continue
                job = store.get_job(j.job_id)
                if job is None:
                    continue
                j.status = job.status
                if job.status != "submitted" and j.running is None:
                    j.running = now
                if job.status in ("completed", "failed", "rejected", "cancelled") and j.ended is None:
                    j.ended = now
                    if job.status != "completed":
                        raise SystemExit(f"job {j.job_id} {job.status}: {job.reason}")
                if job.close_status in ("confirmed", "failed"):
                    j.closed = now
            time.sleep(0.05)
    finally:
        store.close()


_RECEIVED = re.compile(
    r"^(\S+ \S+) INFO celery\.worker\.strategy Task \S+\[job-(0x[0-9a-f]+)\] received", re.M
)
_OPENED = re.compile(r"^(\S+ \S+) INFO \S+ job (0x[0-9a-f]+) opened on chain", re.M)
_CONSENTED = re.compile(r"^(\S+ \S+) WARNING \S+ \[\w+\] -- party \w+ consented to job (0x[0-9a-f]+)", re.M)


def _stamp(text: str) -> float:
    """A log line's local time stamp (``2026-12-04 21:14:14,656`` or ``.656``) as a POSIX time."""
    return datetime.strptime(text.replace(",", "."), "%Y-%m-%d %H:%M:%S.%f").timestamp()


def log_times(c: Consortium, job_id: str, parties: tuple[str, ...]) -> dict[str, float]:
    """When the coordinator's Celery worker received the job and the job was opened on chain (the
    coordinator's log), and when the first party worker consented to it (the session workers' logs)."""
    out: dict[str, float] = {}
    coordinator = (c.logs / "coordinator.log").read_text()
    for stamp, job in _RECEIVED.findall(coordinator):
        if job == job_id:
            out["received"] = _stamp(stamp)
    for stamp, short in _OPENED.findall(coordinator):
        if job_id.startswith(short):
            out["opened"] = _stamp(stamp)
    consents = [
        _stamp(stamp)
        for party in parties
        for log in (c.root / "nodes" / party / "sessions").glob("*/logs/worker.log")
        for stamp, job in _CONSENTED.findall(log.read_text(errors="replace"))
        if job == job_id
    ]
    if consents:
        out["consented"] = min(consents)
    return out


def job_figures(c: Consortium, j: Followed, parties: tuple[str, ...]) -> dict[str, Any]:
    """The job's steps (from its records) and where the rest of its submit -> closed time went."""
    store = open_store(c.store_url)
    try:
        records = [StepRecord.model_validate_json(r.record_json) for r in store.records_for_job(j.job_id)]
    finally:
        store.close()
    assert j.closed is not None
    steps = {r.algorithm: (r.finished_at_ms - r.started_at_ms) / 1000 for r in records}
    first_start = min(r.started_at_ms for r in records) / 1000
    last_end = max(r.finished_at_ms for r in records) / 1000
    at = log_times(c, j.job_id, parties)
    received = at.get("received", j.submitted)
    consented = at.get("consented", received)
    opened = at.get("opened", consented)
    return {
        "total_s": j.closed - j.submitted,
        "steps_s": steps,
        "queue_s": max(0.0, received - j.submitted),
        "workers_s": max(0.0, consented - received),  # the nodes start this job's party workers
        "open_s": max(0.0, opened - consented),  # consents, createJob sent and mined
        "setup_s": max(0.0, first_start - opened),  # the workers' set-up for the first step (SPU, data)
        "between_s": max(0.0, (last_end - first_start) - sum(steps.values())),  # records, signatures
        "close_s": max(0.0, j.closed - last_end),  # anchoring of the records, closeJob confirmed
    }


# ------------------------------------------------------------------------------------------ output


def fmt(value: float | None, unit: str = "s") -> str:
    return "-" if value is None else f"{value:.2f} {unit}"


def print_run(n: int, emb: dict[str, Any], con: dict[str, Any], rss: dict[str, tuple[float, float]]) -> None:
    print(f"\n== {n} parties, {emb['rows']} rows ({emb['common']} common)")
    print(f"  {'':<34}{'consortium':>12}{'embedded':>12}")

    def row(label: str, mine: float | None, base: float | None = None, note: str = "") -> None:
        print(f"  {label:<34}{fmt(mine):>12}{fmt(base):>12}{note}")

    for algorithm, seconds in con["steps_s"].items():
        row(f"step {algorithm}", seconds, emb["steps_s"].get(algorithm))
    row("sum of steps", sum(con["steps_s"].values()), sum(emb["steps_s"].values()))
    row("job: submit -> closed", con["total_s"], emb["job_s"], "  (embedded: run_job, warm workers)")
    row("  queue: submit -> received", con["queue_s"])
    row("  party workers start", con["workers_s"], emb["cold_start_s"], "  (embedded: once, warm after)")
    row("  consents + createJob mined", con["open_s"])
    row("  opened -> first step starts", con["setup_s"])
    row("  between steps", con["between_s"], emb["job_s"] - sum(emb["steps_s"].values()))
    row("  last step -> closed on chain", con["close_s"], emb["anchoring_s"], "  (embedded: outbox writes)")
    coordination = con["queue_s"] + con["open_s"] + con["between_s"] + con["close_s"]
    start = con["workers_s"] + con["setup_s"]
    total = con["total_s"]
    print(
        f"  coordination overhead (queue + consents/createJob + between steps + close): {coordination:.2f} s "
        f"= {100 * coordination / total:.1f}% of the job (target < 2%); the party workers' start and "
        f"first-step set-up: {start:.2f} s = {100 * start / total:.1f}%"
    )
    print(f"  AUC (embedded): {emb['auc']:.4f}")
    for name, (own, worker) in rss.items():
        base = emb["peak_rss_mib"].get(name)
        workers = f", its party worker {worker:.0f} MiB" if name != "coordinator" else ""
        embedded = "" if base is None else f"  (embedded worker: {base:.0f} MiB)"
        print(f"  peak RSS {name:<12}: process {own:.0f} MiB{workers}{embedded}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--parties", default="2,3", help="party counts to run, e.g. 2,3")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=4, help="jobs for the throughput figure (0: skip)")
    ap.add_argument("--quick", action="store_true", help="1,000 rows, 1 epoch, 2 parties, 2 jobs")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.epochs, args.parties, args.jobs = 1000, 1, "2", 2
    counts = [int(n) for n in args.parties.split(",")]
    if any(n not in (2, 3) for n in counts):
        raise SystemExit("--parties takes 2 and/or 3")
    configure_logging("WARNING")
    logging.getLogger("secureflow").setLevel(logging.WARNING)
    load_before = os.getloadavg()
    print(f"load average at start: {load_before} ({os.cpu_count()} cores)")
    print(f"rows {args.rows}, epochs {args.epochs}, parties {counts}, throughput jobs {args.jobs}")
    data = tables(args.rows)
    with TemporaryDirectory(prefix="bench-consortium-") as tmp:
        root = Path(tmp)
        t = time.monotonic()
        c = start_consortium(root / "consortium", args.redis_url, data)
        c.redis_url = args.redis_url
        print(f"consortium up in {time.monotonic() - t:.1f} s (anvil, contracts, API, coordinator, 3 nodes)")
        try:
            procs = c.children.procs
            nodes = {p.removeprefix("node-"): proc.pid for p, proc in procs.items() if p.startswith("node-")}
            for n in counts:
                parties = ALL_PARTIES[:n]
                emb = run_embedded(root / f"embedded-{n}", parties, data, args.epochs)
                joined = data["alice"]
                for p in parties[1:]:
                    joined = joined.merge(data[p][["id"]], on="id")
                emb |= {"rows": args.rows, "common": len(joined)}
                watched = {p: nodes[p] for p in parties} | {"coordinator": procs["coordinator"].pid}
                wait_warm(c, parties)  # the measured job takes warm spares, as a job on an idle node does
                with RssSampler(watched) as sampler:
                    job = submit(c, parties, args.epochs, f"bench-{n}")
                    follow(c, [job])
                print_run(n, emb, job_figures(c, job, parties), sampler.by_node())
                print(f"  load average now: {os.getloadavg()}", flush=True)
            if args.jobs:
                parties = ALL_PARTIES[: counts[0]]
                t = time.time()
                one_by_one = []
                for i in range(args.jobs):
                    job = submit(c, parties, args.epochs, f"seq-{i}")
                    follow(c, [job])
                    one_by_one.append(job)
                seq_s = time.time() - t
                t = time.time()
                together = [submit(c, parties, args.epochs, f"par-{i}") for i in range(args.jobs)]
                follow(c, together)
                par_s = time.time() - t
                print(f"\n== {args.jobs} jobs of {counts[0]} parties, one coordinator running 2 at a time")
                print(f"  submitted at once : {par_s:.1f} s, {60 * args.jobs / par_s:.2f} jobs/min")
                print(
                    f"  one after another : {seq_s:.1f} s, {60 * args.jobs / seq_s:.2f} jobs/min  (baseline)"
                )
                latencies = sorted(j.closed - j.submitted for j in together if j.closed is not None)
                print(f"  submit -> closed at once: {', '.join(f'{x:.1f}' for x in latencies)} s")
        finally:
            c.close()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process (API + anchoring worker + the embedded runs' run_job): {own:.0f} MiB")
    print(f"load average: {load_before} at start, {os.getloadavg()} at the end ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
