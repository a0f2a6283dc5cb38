"""Consortium mode end to end (issue 15): three members' own nodes, the production API, Celery, the chain.

Separate processes, as on separate hosts: three ``secureflow node`` processes (alice, bob, carol: each
with its own data folder, member key and policy; nothing shared with the coordinator but Redis), one
``secureflow coordinator`` process (a Celery worker on a Redis broker), and the production API with its
anchoring worker in this process, all on real PostgreSQL and the session's anvil (contracts deployed
for this module, carol registered as a third member; the nodes pinned to it take only entries signed by
the coordinator's key, which holds the registry's coordinator role). A member submits a 3-party job with
its API key; the chain then holds the complete job: every party's consent, ``createJob`` sent by the
creator's own key, each step's record signed by all three, the close with its step count and the proof of
its last record. A node whose policy refuses a job makes it ``rejected`` with its reason and nothing on chain.
The isolation check (issue 15, item 6; tests/isolation.py) of a PSI -> preprocessing -> SS-LR -> prediction
to alice -> evaluation job: no cell of any member's data nor any of alice's scores is in what the coordinator
side can read (the API's PostgreSQL tables and log, the coordinator's log and folder, every Redis command of
the job, the calldata and events of its transactions), and no member's node (its log, its folder but its own
dataset and key, the queue entries it received) holds a cell of another member's (or, but alice, a score),
nor do the bytes its worker received from the other members' workers (captured in the node's TLS tunnel:
tests/api/link_capture_node.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
import requests
from eth_account import Account
from isolation import (
    COORDINATOR,
    Views,
    binary_leaks,
    float_patterns,
    isolation_leaks,
    node_view,
    redis_view,
)
from leaks import table_renderings
from rabbitmq_server import RabbitMqServer
from redis_server import RedisServer
from scrape import scrape, value
from sinks import (
    ChainCapture,
    LogCapture,
    RedisMonitor,
    capture_chain,
    chain_sinks,
    folder_files,
    postgres_rows,
)
from stack import LedgerStack, assert_anchored_exactly_once, deploy_ledger_stack

from secureflow.api.dev.consortium import consortium_data
from secureflow.api.server.db import ApiDb
from secureflow.api.server.jobqueue import CeleryJobExecutor, celery_app
from secureflow.api.server.serve import ApiProcess, add_member_key, build_api
from secureflow.api.server.settings import ApiSettings
from secureflow.compute.worker.engine import REPO_ROOT
from secureflow.compute.worker.link import node_alive_key, node_warm
from secureflow.ledger.contracts import AuditLedgerClient, JobStatus
from secureflow.ledger.deploy import connect, write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain, rpc_call
from secureflow.ledger.records import StepRecord
from secureflow.ledger.signing import signature_problems
from secureflow.ledger.store import open_store
from secureflow.ledger.verify import AuditBundle, pin_from_options, verify_bundle
from tools.live_server import LiveServer

REDIS = "redis://127.0.0.1:6379"
PARTIES = ("alice", "bob", "carol")
KEYS = {"alice": DEV_PRIVATE_KEYS[1], "bob": DEV_PRIVATE_KEYS[2], "carol": DEV_PRIVATE_KEYS[4]}
ADDRESSES = {p: str(Account.from_key(k).address) for p, k in KEYS.items()}
FEATURES = ["a0", "a1", "b0", "b1", "c0", "c1"]


@dataclass
class Consortium:
    url: str
    keys: dict[str, str]  # party -> API key
    stack: LedgerStack
    deployment: Path
    api: ApiProcess
    nodes: dict[str, Path]
    logs: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]]
    prefix: str
    settings: ApiSettings
    server: LiveServer | None = None

    def serve(self) -> None:
        """Serve the API (``self.api``) on a new port, with its anchoring worker."""
        self.server = LiveServer(self.api.app).start()
        self.url = self.server.url

    def stop_api(self) -> None:
        """Stop the API as its process would stop: the server, the broker connection, the anchoring worker."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.api.app.state.services.executor.close()
        self.api.close()

    def restart_api(
        self, while_down: Callable[[], None] = lambda: None, settings: ApiSettings | None = None
    ) -> None:
        """Stop the API, run ``while_down``, and start a new API process's app on the same database (with
        ``settings`` from now on, if given)."""
        self.stop_api()
        while_down()
        self.settings = settings or self.settings
        self.api = build_api(self.settings, with_worker=True)
        self.serve()

    def start(self, name: str, **env: str) -> None:
        """Start (again) the coordinator (``coordinator``, or a name starting with it: another coordinator
        process, with ``env`` added to its environment) or a party's node (its party name)."""
        if name.startswith("coordinator"):
            args = ["coordinator", "--metrics-port", "0"]
        else:
            args = ["node", "--party", name, "--data-dir", str(self.nodes[name]), "--redis-url", f"{REDIS}/0",
                    "--prefix", self.prefix, "--log-level", "INFO"]  # fmt: skip
            # the real node, with what its worker receives from the other parties' nodes copied to a file
            self.links.mkdir(exist_ok=True)
            launcher = [
                str(Path(__file__).with_name("link_capture_node.py")),
                str(self.links / f"{name}.bin"),
            ]
            self.procs[name] = _spawn(args, {**self.env, **env}, self.logs / f"{name}.log", launcher)
            return
        self.procs[name] = _spawn(args, {**self.env, **env}, self.logs / f"{name}.log")

    @property
    def links(self) -> Path:
        """Where each node's link capture is (``<party>.bin``: tests/api/link_capture_node.py)."""
        return self.logs.parent / "links"

    def wait_nodes(self, timeout: float = 120.0) -> None:
        rds = redis.Redis.from_url(f"{REDIS}/0")
        deadline = time.monotonic() + timeout

        while not all(node_warm(rds, self.prefix, p) for p in PARTIES):  # beating, spare worker warm
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            assert not dead, f"{dead} exited: {self.logs_tail()}"
            assert time.monotonic() < deadline, "the nodes did not beat in time"
            time.sleep(0.2)

    def headers(self, party: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[party]}"}

    def logs_tail(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log")))


def _node_dir(root: Path, party: str, table: pd.DataFrame) -> Path:
    """A member's own folder: its data, its member key (0600) and its policy, as it would set up its host."""
    folder = root / party
    (folder / "data").mkdir(parents=True)
    (folder / "secrets").mkdir(mode=0o700)
    key = folder / "secrets" / "member.key"
    key.write_text(KEYS[party].removeprefix("0x"))
    key.chmod(0o600)
    table.to_csv(folder / "data" / "t3.csv", index=False)
    others = [a for p, a in ADDRESSES.items() if p != party]
    policy: dict[str, Any] = {
        "version": 1,
        "reveal": {"psi": others, "secure_predict": others},
        "spu_protocols": ["SEMI2K", "ABY3"],  # ABY3 only where a member's policy accepts it
    }
    if party == "carol":  # carol exposes only t3.csv and accepts no statistics over her columns
        policy |= {
            "datasets": ["t3.csv"],
            "algorithms": ["psi", "standard_scaler", "ss_lr", "secure_predict", "biclassification_eval"],
        }
    (folder / "policy.json").write_text(json.dumps(policy))
    return folder


def _spawn(
    args: list[str], env: dict[str, str], log: Path, launcher: list[str] | None = None
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, *(launcher or ["-m", "secureflow.api"]), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(REPO_ROOT),
            start_new_session=True,
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


@pytest.fixture(scope="module")
def consortium(
    devchain: DevChain,
    postgres_module_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    redis_service: None,
) -> Iterator[Consortium]:
    root = tmp_path_factory.mktemp("consortium")
    logs = root / "logs"
    logs.mkdir()
    stack = deploy_ledger_stack(devchain.rpc_url)
    stack.registry().register_member(ADDRESSES["carol"])
    coordinator = Account.create()  # the coordinator's own key, granted the registry's coordinator role
    stack.registry().grant_role("coordinator", coordinator.address)
    coordinator_key = root / "coordinator.key"
    coordinator_key.write_text("0x" + bytes(coordinator.key).hex())
    coordinator_key.chmod(0o600)
    deployment = root / "deployment.json"
    write_deployment(stack.deployment, deployment)
    tag = uuid.uuid4().hex[:12]
    prefix, queue, broker = f"sfc-{tag}", f"secureflow.jobs.{tag}", f"{REDIS}/3"
    tables = consortium_data(900, seed=5)  # the same split as `secureflow consortium`'s example data
    nodes = {p: _node_dir(root / "hosts", p, tables[p]) for p in PARTIES}
    env = {
        **os.environ,
        "SECUREFLOW_DATABASE_URL": postgres_module_url,
        "SECUREFLOW_RPC_URL": devchain.rpc_url,
        "SECUREFLOW_CHAIN_ID": str(DEV_CHAIN_ID),
        "SECUREFLOW_DEPLOYMENT": str(deployment),
        "SECUREFLOW_BROKER_URL": broker,
        "SECUREFLOW_QUEUE_NAME": queue,
        "SECUREFLOW_COMPUTE_REDIS_URL": f"{REDIS}/0",
        "SECUREFLOW_COMPUTE_REDIS_PREFIX": prefix,
        "SECUREFLOW_COORDINATOR_WORKDIR": str(root / "coordinator"),
        "SECUREFLOW_COORDINATOR_KEY_FILE": str(coordinator_key),
        "SECUREFLOW_START_TIMEOUT": "240",
        # a killed coordinator: its lease lapses after 4 s, its unacknowledged task comes back after 12 s
        "SECUREFLOW_LEASE_SECONDS": "4",
        "SECUREFLOW_QUEUE_VISIBILITY_TIMEOUT": "12",
    }
    settings = ApiSettings(
        database_url=postgres_module_url,
        rpc_url=devchain.rpc_url,
        chain_id=DEV_CHAIN_ID,
        deployment=deployment,
        anchor_key=DEV_PRIVATE_KEYS[3],
        deployer_key=DEV_PRIVATE_KEYS[0],
        broker_url=broker,
        queue_name=queue,
        max_batch_delay=0.2,
    )
    api = build_api(settings, with_worker=True)  # migrates the DB before the coordinator connects
    c = Consortium("", {}, stack, deployment, api, nodes, logs, env, {}, prefix, settings)
    try:
        for party in PARTIES:
            c.start(party)
        c.start("coordinator")
        c.wait_nodes()
        db: ApiDb = api.app.state.api_db
        c.keys = {p: add_member_key(db, p, ADDRESSES[p], "member") for p in PARTIES}
        c.keys["auditor"] = add_member_key(db, "auditor", ADDRESSES["alice"], "auditor")
        c.serve()
        yield c
    finally:
        _stop(list(c.procs.values()))
        c.stop_api()  # the API serving now (a test may have restarted it)
        rds = redis.Redis.from_url(f"{REDIS}/0")
        leftover = list(rds.scan_iter(f"{prefix}:*"))
        if leftover:
            rds.delete(*leftover)


def _manifest(name: str, steps: list[dict[str, Any]], dataset: str = "t3.csv") -> dict[str, Any]:
    return {
        "name": name,
        "parties": [{"name": p, "address": ADDRESSES[p]} for p in PARTIES],
        "datasets": {"raw": {"alice": "t3.csv", "bob": "t3.csv", "carol": dataset}},
        "steps": steps,
    }


def _pipeline(scores: str = "out/scores.csv") -> list[dict[str, Any]]:
    """PSI -> SS-LR -> secure prediction to alice, saved under ``scores`` (a job never overwrites a file)."""
    return [
        *PIPELINE[:2],
        {
            "algorithm": "secure_predict",
            "params": {"receiver": "alice"},
            "inputs": {"table": "j", "model": "lr3"},
            "outputs": {"table": "scores"},
            "save": {"table": scores},
        },
    ]


PIPELINE = [
    {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}},
    {
        "algorithm": "ss_lr",
        "params": {"label": "y", "features": FEATURES, "epochs": 3, "batch_size": 128},
        "inputs": {"table": "j"},
        "outputs": {"model": "lr3"},
    },
    {
        "algorithm": "secure_predict",
        "params": {"receiver": "alice"},
        "inputs": {"table": "j", "model": "lr3"},
        "outputs": {"table": "scores"},
        "save": {"table": "out/scores.csv"},
    },
]


ISOLATION_PIPELINE = [
    PIPELINE[0],
    {
        "algorithm": "standard_scaler",
        "params": {"columns": FEATURES},
        "inputs": {"table": "j"},
        "outputs": {"table": "s"},
    },
    {
        "algorithm": "ss_lr",
        "params": {"label": "y", "features": FEATURES, "epochs": 3, "batch_size": 128},
        "inputs": {"table": "s"},
        "outputs": {"model": "lr3"},
    },
    {
        "algorithm": "secure_predict",
        "params": {"receiver": "alice"},
        "inputs": {"table": "s", "model": "lr3"},
        "outputs": {"table": "scores"},
        "save": {"table": "out/scores.csv"},
    },
    {
        "algorithm": "biclassification_eval",
        "params": {"label": "y"},
        "inputs": {"labels": "s", "scores": "scores"},
        "outputs": {"report": "evaluation"},
    },
]
"""PSI -> preprocessing -> SS-LR -> prediction to alice (saved on her host) -> its evaluation (alice's)."""


def _wait_job(c: Consortium, job_id: str, until: Any, timeout: float = 600.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(f"{c.url}/v1/jobs/{job_id}", headers=c.headers("alice"), timeout=30).json()
        if until(job):
            return dict(job)
        assert time.monotonic() < deadline, (job, c.logs_tail())
        time.sleep(0.5)


def test_a_three_party_job_runs_on_the_members_nodes_and_ends_closed_on_chain(consortium: Consortium) -> None:
    tag = consortium.prefix.removeprefix("sfc-")  # in the nodes' keys and the Celery queue's name
    first_block = int(str(rpc_call(consortium.stack.rpc_url, "eth_blockNumber")), 16) + 1
    with LogCapture() as api_log, RedisMonitor(REDIS, tag) as traffic:  # the API runs in this process
        _three_party_job(consortium)
    chain = capture_chain(consortium.stack.rpc_url, first_block)  # the job's transactions and events
    _no_cell_crosses_to_another_party_or_the_coordinator(consortium, api_log, traffic, chain)
    _the_coordinator_s_metrics_counted_the_job(consortium)


def _coordinator_metrics_url(c: Consortium, name: str = "coordinator") -> str:
    """Where ``secureflow coordinator --metrics-port 0`` serves its metrics (it prints the URL)."""
    found = re.search(
        r"coordinator metrics on (http://[\d.]+:\d+)/metrics", (c.logs / f"{name}.log").read_text()
    )
    assert found, c.logs_tail()
    return found.group(1)


def _the_coordinator_s_metrics_counted_the_job(c: Consortium) -> None:
    """``secureflow coordinator --metrics-port 0`` serves what it did: the job it ran, none running now."""
    url = _coordinator_metrics_url(c)
    samples = scrape(url)
    assert (value(samples, "secureflow_coordinator_deliveries_total", action="ran") or 0) >= 1, samples
    assert value(samples, "secureflow_coordinator_jobs_running") == 0
    assert (value(samples, "secureflow_coordinator_job_seconds_count") or 0) >= 1
    assert value(samples, "secureflow_coordinator_concurrency") is not None
    assert requests.get(url + "/readyz", timeout=30).status_code == 200
    for name, labels in samples:  # no job ids, addresses or hashes in any label
        assert not any(v.startswith("0x") for _, v in labels), (name, labels)


def _three_party_job(c: Consortium) -> None:
    submitted = requests.post(
        f"{c.url}/v1/jobs",
        json={"manifest": _manifest("three", ISOLATION_PIPELINE)},
        headers=c.headers("alice"),
        timeout=60,
    )
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["execution"] == "handed_to_executor"
    job_id = submitted.json()["job"]["job_id"]
    job = _wait_job(c, job_id, lambda j: j["status"] in ("completed", "failed", "rejected", "cancelled")
                    and (j["status"] != "completed" or j["close_status"] == "confirmed"))  # fmt: skip
    assert (job["status"], job["close_status"]) == ("completed", "confirmed"), (job, c.logs_tail())

    # the chain's own truth: opened by alice's key with all three consents, closed after 5 steps
    client = c.stack.client()
    ledger = AuditLedgerClient(connect(client, c.stack.deployment, "AuditLedger"))
    raw_id = bytes.fromhex(job_id[2:])
    on_chain = ledger.get_job(raw_id)
    assert (on_chain.status, on_chain.step_count) == (JobStatus.CLOSED, len(ISOLATION_PIPELINE))
    assert on_chain.creator.lower() == ADDRESSES["alice"].lower()
    assert [p.lower() for p in on_chain.parties] == [ADDRESSES[p].lower() for p in PARTIES]
    assert all(ledger.has_consented(raw_id, ADDRESSES[p]) for p in PARTIES)
    # every record signed by all three parties' own keys
    records = c.api.store.records_for_job(job_id)
    assert [r.seq for r in records] == list(range(len(ISOLATION_PIPELINE)))
    for row in records:
        record = StepRecord.model_validate_json(row.record_json)
        assert record.status == "succeeded"
        assert signature_problems(record, [ADDRESSES[p] for p in PARTIES]) == []
    # the auditor's verdict from the bundle, pinned to the deployment: the chain's step count is the bundle's
    bundle = requests.get(f"{c.url}/v1/jobs/{job_id}/bundle", headers=c.headers("auditor"), timeout=60)
    assert bundle.status_code == 200, bundle.text
    verdict = verify_bundle(
        AuditBundle.model_validate_json(bundle.content),
        c.stack.rpc_url,
        pin_from_options(deployment=c.deployment),
    )
    assert verdict.ok, verdict.summary()
    assert verdict.check("step_count").ok
    # the scores went to alice's own host only
    assert (c.nodes["alice"] / "data" / "out" / "scores.csv").exists()
    assert not any((c.nodes[p] / "data" / "out" / "scores.csv").exists() for p in ("bob", "carol"))


def _no_cell_crosses_to_another_party_or_the_coordinator(
    c: Consortium, api_log: LogCapture, traffic: RedisMonitor, chain: ChainCapture
) -> None:
    """The isolation check (tests/isolation.py) of the job, each viewer against what it may not hold.

    The coordinator side (every row of every table of the API's PostgreSQL database, the API process's log
    records, the coordinator's log and folder, every Redis command of the job: the Celery task decoded, the
    nodes' queues and replies; the calldata and events of every transaction since the job was submitted)
    holds no cell of any member's table and none of the scores sent to alice. Each member's node (its
    process log, every file of its host folder but its own dataset and key: its session worker logs, job
    logs, model shares, saved outputs; the Redis entries addressed to it) holds no cell of another member's
    table that is not also its own (a key in the intersection) and, but for alice, the receiver, no score.
    And the check sees a value of another party planted in a copy of each sink of each viewer."""
    tables = {p: pd.read_csv(c.nodes[p] / "data" / "t3.csv") for p in PARTIES}
    scores = pd.read_csv(c.nodes["alice"] / "data" / "out" / "scores.csv")
    secrets = {p: table_renderings([t]) for p, t in tables.items()}
    secrets["alice"] |= table_renderings([scores])  # what secure_predict reveals to its named receiver
    assert table_renderings([scores]) - table_renderings(tables.values()), "the scores are not cells"
    redis_sinks = traffic.sinks()
    queue = f"redis {c.env['SECUREFLOW_QUEUE_NAME']}"
    assert queue in redis_sinks and '[["0x' in redis_sinks[queue], sorted(redis_sinks)  # the task, decoded
    views = Views()
    root = c.logs.parent
    views.add(COORDINATOR, {**postgres_rows(c.env["SECUREFLOW_DATABASE_URL"]), "api log": api_log.text()})
    views.add(COORDINATOR, {**redis_sinks, **chain_sinks(chain)})
    logs = folder_files(c.logs, skip=())
    views.add(COORDINATOR, {f"logs/{k}": v for k, v in logs.items() if Path(k).stem not in PARTIES})
    views.add(
        COORDINATOR, {f"coordinator/{k}": v for k, v in folder_files(root / "coordinator", skip=()).items()}
    )
    for party in PARTIES:
        views.add(party, {f"logs/{party}.log": logs[f"{party}.log"]})
        views.add(party, node_view(c.nodes[party], own=["t3.csv"]))
        views.add(party, redis_view(redis_sinks, party))
    seen = views.names(COORDINATOR)
    assert {"db api_manifests", "db step_records", "logs/coordinator.log", "chain calldata"} <= seen, seen
    assert "createJob" in views.sinks[COORDINATOR]["chain calldata"]  # the job's own transactions
    assert '"message": "job queued"' in views.sinks[COORDINATOR]["api log"]
    for party in PARTIES:
        names = views.names(party)
        assert f"redis {c.prefix}:party:{party}:in" in names, names  # what the coordinator sent it
        assert sum(n.endswith("worker.log") for n in names) >= 1 and "data/t3.csv" not in names, names
    assert "data/out/scores.csv" in views.names("alice")
    assert isolation_leaks(views, secrets) == {}
    # what each party's worker received from the other parties' workers (SecretFlow's and SPU's links,
    # in clear inside the nodes' TLS tunnels): no float cell of another party, nor a score but at alice
    for party in PARTIES:
        received = (c.links / f"{party}.bin").read_bytes()
        assert len(received) > 100_000, (party, len(received))  # PSI and the SPU's traffic of the job
        foreign = float_patterns([t for p, t in tables.items() if p != party])
        if party != "alice":
            foreign |= float_patterns([scores])
        assert binary_leaks(received, foreign) == [], party
        planted = received[:1000] + next(iter(foreign)) + received[1000:]
        assert binary_leaks(planted, foreign) == [foreign[next(iter(foreign))]], party
        link = Views({party: {"links": received.decode("latin-1")}})
        assert isolation_leaks(link, secrets) == {}, party

    only_alice = set(tables["alice"]["id"]) - set(tables["bob"]["id"]) - set(tables["carol"]["id"])
    alice_only_id = str(int(min(only_alice)))
    planted = [
        ("alice", alice_only_id),
        ("alice", repr(float(tables["alice"]["a0"].iloc[8]))),
        ("alice", repr(float(scores.iloc[3, -1]))),
        ("bob", f"{tables['bob']['b1'].iloc[4]:.6f}"),
        ("carol", repr(float(tables["carol"]["c1"].iloc[6]))),
    ]
    for viewer, sinks in views.sinks.items():
        foreign = [v for owner, v in planted if owner != viewer]
        for index, (name, text) in enumerate(sorted(sinks.items())):
            value = foreign[index % len(foreign)]
            tampered = Views({viewer: {name: text + f' {{"x": {value}}}'}})
            assert isolation_leaks(tampered, secrets) == {viewer: {name: [value]}}, (viewer, name)


def test_a_job_a_node_refuses_is_rejected_with_its_reason_and_never_opens_on_chain(
    consortium: Consortium,
) -> None:
    c = consortium
    steps = [
        {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}},
        {
            "algorithm": "table_statistics",
            "params": {"columns": ["c0"], "reveal_to": ["carol"]},
            "inputs": {"table": "j"},
            "outputs": {"report": "stats"},
        },
    ]
    submitted = requests.post(
        f"{c.url}/v1/jobs",
        json={"manifest": _manifest("refused", steps)},
        headers=c.headers("bob"),
        timeout=60,
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job"]["job_id"]
    job = _wait_job(c, job_id, lambda j: j["status"] in ("completed", "failed", "rejected", "cancelled"))
    assert job["status"] == "rejected", (job, c.logs_tail())
    assert "party 'carol' refuses" in job["reason"] and "table_statistics" in job["reason"], job
    client = c.stack.client()
    ledger = AuditLedgerClient(connect(client, c.stack.deployment, "AuditLedger"))
    assert ledger.get_job(bytes.fromhex(job_id[2:])).status == JobStatus.NONE
    assert c.api.store.records_for_job(job_id) == []


TERMINAL = ("completed", "failed", "rejected", "cancelled")


def _submit(c: Consortium, party: str, manifest: dict[str, Any]) -> str:
    submitted = requests.post(
        f"{c.url}/v1/jobs", json={"manifest": manifest}, headers=c.headers(party), timeout=60
    )
    assert submitted.status_code == 201, submitted.text
    return str(submitted.json()["job"]["job_id"])


def _wait_records(c: Consortium, job_id: str, count: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while len(c.api.store.records_for_job(job_id)) < count:
        assert time.monotonic() < deadline, c.logs_tail()
        time.sleep(0.2)


def _chain_job(c: Consortium, job_id: str) -> Any:
    client = c.stack.client()
    return AuditLedgerClient(connect(client, c.stack.deployment, "AuditLedger")).get_job(
        bytes.fromhex(job_id[2:])
    )


def _every_record_anchored_exactly_once(c: Consortium) -> None:
    """The chain's BatchAnchored events hold every record of every job of this module exactly once."""
    records = [
        StepRecord.model_validate_json(row.record_json)
        for job in c.api.store.list_jobs()
        for row in c.api.store.records_for_job(job.job_id)
    ]
    assert_anchored_exactly_once(c.stack, c.api.store, records)


def _sessions_on_nodes(c: Consortium) -> dict[str, int]:
    rds = redis.Redis.from_url(f"{REDIS}/0")
    out = {}
    for party in PARTIES:
        raw = rds.get(node_alive_key(c.prefix, party))
        out[party] = -1 if raw is None else int(json.loads(raw)["sessions"])
    return out


@pytest.mark.slow_fault
def test_a_coordinator_killed_mid_job_fails_the_job_once_and_it_closes_on_chain(
    consortium: Consortium,
) -> None:
    """SIGKILL of the coordinator during SS-LR: Celery delivers the task again (late acks), the new one
    finds the job orphaned (its lease lapsed) and fails it without running anything twice; the anchoring
    service closes it on chain as failed with the steps recorded before the kill, each anchored once."""
    c = consortium
    job_id = _submit(c, "alice", _manifest("killed-coordinator", _pipeline("out/scores-kc.csv")))
    _wait_records(c, job_id, 1)  # PSI recorded: the coordinator is in SS-LR now
    os.killpg(c.procs["coordinator"].pid, signal.SIGKILL)
    c.procs["coordinator"].wait(10)
    c.start("coordinator")
    job = _wait_job(
        c, job_id, lambda j: j["status"] in TERMINAL and j["close_status"] in ("confirmed", "failed")
    )
    assert job["status"] == "failed" and "stopped mid-job" in job["reason"], (job, c.logs_tail())
    assert job["close_status"] == "confirmed", job
    recorded = [r.seq for r in c.api.store.records_for_job(job_id)]
    assert recorded == list(range(len(recorded))) and recorded, recorded  # never two records for one seq
    on_chain = _chain_job(c, job_id)
    assert (on_chain.status, on_chain.step_count) == (JobStatus.FAILED, len(recorded))
    _every_record_anchored_exactly_once(c)
    # the nodes dropped the dead coordinator's sessions (its engine stopped beating): no worker lingers
    deadline = time.monotonic() + 30
    while _sessions_on_nodes(c) != dict.fromkeys(PARTIES, 0):
        assert time.monotonic() < deadline, _sessions_on_nodes(c)
        time.sleep(0.2)


@pytest.mark.slow_fault
def test_a_node_killed_mid_step_fails_the_job_with_its_step_anchored_as_failed(
    consortium: Consortium,
) -> None:
    """SIGKILL of bob's node during SS-LR: the job fails naming the dead worker, the step is recorded and
    anchored as failed (signed by nobody's digests), the job closes on chain as failed; bob restarts."""
    c = consortium
    job_id = _submit(c, "carol", _manifest("killed-node", _pipeline("out/scores-kn.csv")))
    _wait_records(c, job_id, 1)
    os.killpg(c.procs["bob"].pid, signal.SIGKILL)
    c.procs["bob"].wait(10)
    job = _wait_job(
        c, job_id, lambda j: j["status"] in TERMINAL and j["close_status"] in ("confirmed", "failed")
    )
    assert job["status"] == "failed" and "step 1 (ss_lr) failed" in job["reason"], (job, c.logs_tail())
    assert job["close_status"] == "confirmed", job
    rows = c.api.store.records_for_job(job_id)
    assert [r.seq for r in rows] == [0, 1]
    failed = StepRecord.model_validate_json(rows[1].record_json)
    assert failed.status == "failed" and all(not p.inputs and not p.outputs for p in failed.parties)
    on_chain = _chain_job(c, job_id)
    assert (on_chain.status, on_chain.step_count) == (JobStatus.FAILED, 2)
    _every_record_anchored_exactly_once(c)
    c.start("bob")
    c.wait_nodes()


@pytest.mark.slow_fault
def test_the_api_restarted_mid_job_loses_no_status_and_the_job_closes_on_chain(
    consortium: Consortium,
) -> None:
    """The API process (and its anchoring worker) stops during SS-LR; the coordinator goes on without it and
    records the next step in the outbox; a new API process on the same database serves the job's status as
    the coordinator wrote it, its anchoring worker anchors what waited and closes the job on chain."""
    c = consortium
    job_id = _submit(c, "alice", _manifest("api-restart", _pipeline("out/scores-ar.csv")))
    _wait_records(c, job_id, 1)  # PSI recorded: the coordinator is in SS-LR now

    def a_step_is_recorded_while_the_api_is_down() -> None:
        store = open_store(c.settings.database_url)
        try:
            deadline = time.monotonic() + 300
            while len(store.records_for_job(job_id)) < 2:
                assert time.monotonic() < deadline, c.logs_tail()
                time.sleep(0.2)
            assert store.get_record(job_id, 1) is not None
        finally:
            store.close()

    c.restart_api(a_step_is_recorded_while_the_api_is_down)
    job = _wait_job(
        c, job_id, lambda j: j["status"] in TERMINAL and j["close_status"] in ("confirmed", "failed")
    )
    assert (job["status"], job["close_status"]) == ("completed", "confirmed"), (job, c.logs_tail())
    steps = requests.get(f"{c.url}/v1/jobs/{job_id}/steps", headers=c.headers("alice"), timeout=30).json()
    assert [(s["seq"], s["algorithm"], s["chain_status"]) for s in steps["items"]] == [
        (0, "psi", "confirmed"), (1, "ss_lr", "confirmed"), (2, "secure_predict", "confirmed")
    ], steps  # fmt: skip
    records = [StepRecord.model_validate_json(r.record_json) for r in c.api.store.records_for_job(job_id)]
    assert [r.status for r in records] == ["succeeded"] * 3
    on_chain = _chain_job(c, job_id)
    assert (on_chain.status, on_chain.step_count) == (JobStatus.CLOSED, 3)
    _every_record_anchored_exactly_once(c)


@pytest.mark.slow_fault
def test_the_redis_broker_restarted_mid_job_loses_no_job(consortium: Consortium, tmp_path: Path) -> None:
    """The broker (a redis-server of this test's own: the machine's Redis is shared) is restarted during
    SS-LR, empty, as Redis restarts here (nothing on disk): the coordinator running the job goes on, the job
    completes and closes on chain with each step anchored once; the API and the coordinator reconnect, and a
    job submitted after the restart runs too."""
    c = consortium
    original = c.settings
    with RedisServer(tmp_path / "broker") as broker:
        c.restart_api(settings=original.model_copy(update={"broker_url": broker.url}))
        c.start("coordinator-own-broker", SECUREFLOW_BROKER_URL=broker.url)
        try:
            job_id = _submit(c, "alice", _manifest("broker-restart", _pipeline("out/scores-br.csv")))
            _wait_records(c, job_id, 1)  # PSI recorded: the coordinator is in SS-LR now
            broker.stop()
            coordinator_log = c.logs / "coordinator-own-broker.log"
            deadline = time.monotonic() + 120
            while "Connection to broker lost" not in coordinator_log.read_text():  # it noticed: start again
                assert time.monotonic() < deadline, c.logs_tail()
                time.sleep(0.1)
            broker.start()
            job = _wait_job(
                c, job_id, lambda j: j["status"] in TERMINAL and j["close_status"] in ("confirmed", "failed")
            )
            assert (job["status"], job["close_status"]) == ("completed", "confirmed"), (job, c.logs_tail())
            after = _submit(c, "bob", _manifest("after-broker-restart", PIPELINE[:1]))
            done = _wait_job(
                c, after, lambda j: j["status"] in TERMINAL and j["close_status"] in ("confirmed", "failed")
            )
            assert (done["status"], done["close_status"]) == ("completed", "confirmed"), (done, c.logs_tail())
            for job_id_, steps in ((job_id, 3), (after, 1)):
                assert [r.seq for r in c.api.store.records_for_job(job_id_)] == list(range(steps))
                on_chain = _chain_job(c, job_id_)
                assert (on_chain.status, on_chain.step_count) == (JobStatus.CLOSED, steps)
            _every_record_anchored_exactly_once(c)
            # with the broker still down when Celery restores its unacknowledged message, kombu's Redis
            # transport fails ("Unrecoverable error") and the worker stops once the running job is done (as
            # after a clean stop): the coordinator started a new worker, which took the second job
            samples = scrape(_coordinator_metrics_url(c, "coordinator-own-broker"))
            assert value(samples, "secureflow_coordinator_worker_restarts_total") == 1, samples
            assert "the Celery worker stopped without a stop signal" in coordinator_log.read_text()
        finally:
            _stop([c.procs.pop("coordinator-own-broker")])
            c.restart_api(settings=original)


def _two_party(name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """A job of alice and bob only (carol's node takes no part)."""
    return {
        "name": name,
        "parties": [{"name": p, "address": ADDRESSES[p]} for p in ("alice", "bob")],
        "datasets": {"raw": {"alice": "t3.csv", "bob": "t3.csv"}},
        "steps": steps,
    }


TWO_PARTY_LR = [
    PIPELINE[0],
    {
        "algorithm": "ss_lr",
        # 60 epochs: SS-LR runs long enough (~30 s) for the broker to be stopped and started, and the
        # coordinator to reconnect (its backoff: 2, 4, 6 s), within it
        "params": {"label": "y", "features": ["a0", "a1", "b0", "b1"], "epochs": 60, "batch_size": 128},
        "inputs": {"table": "j"},
        "outputs": {"model": "lr3"},
    },
]


@pytest.mark.slow_fault
def test_the_rabbitmq_broker_restarted_mid_job_loses_no_job(consortium: Consortium, tmp_path: Path) -> None:
    """The broker (a rabbitmq-server node of this test's own: the machine's RabbitMQ is shared) is stopped
    during SS-LR and started again on the same port and Mnesia folder (the job's task, unacknowledged, is
    kept: durable queue, persistent message). The coordinator running the job goes on, the job completes
    and closes on chain with each step anchored once (the chain's BatchAnchored events); the task
    delivered again after the restart runs nothing twice; the API and the coordinator reconnect, and a job
    submitted after the restart runs too."""
    c = consortium
    original = c.settings
    channel = f"secureflow-test:{uuid.uuid4().hex[:12]}"  # live status: Redis pub/sub beside the broker
    status = {"status_redis_url": f"{REDIS}/3", "status_channel": channel, "sse_poll_interval": 60.0}
    with RabbitMqServer(tmp_path / "rabbitmq") as broker:
        c.restart_api(settings=original.model_copy(update={"broker_url": broker.url, **status}))
        c.start(
            "coordinator-own-rabbitmq",
            SECUREFLOW_BROKER_URL=broker.url,
            SECUREFLOW_STATUS_REDIS_URL=f"{REDIS}/3",
            SECUREFLOW_STATUS_CHANNEL=channel,
        )
        coordinator_log = c.logs / "coordinator-own-rabbitmq.log"
        try:
            watch = redis.Redis.from_url(f"{REDIS}/3").pubsub(ignore_subscribe_messages=True)
            watch.subscribe(channel)
            job_id = _submit(c, "alice", _two_party("rabbitmq-restart", TWO_PARTY_LR))
            follow = requests.get(  # the live-status stream, read to its end by a thread
                f"{c.url}/v1/jobs/{job_id}/events", headers=c.headers("bob"), stream=True, timeout=120
            )
            assert follow.status_code == 200, follow.text
            statuses: list[str] = []

            def read() -> None:
                for line in follow.iter_lines(decode_unicode=True):
                    if line.startswith("data: "):
                        statuses.append(json.loads(line[6:]).get("status", "end"))

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            _wait_records(c, job_id, 1)  # PSI recorded: the coordinator is in SS-LR now
            broker.stop()
            deadline = time.monotonic() + 120
            while "Connection to broker lost" not in coordinator_log.read_text():  # it noticed: start again
                assert time.monotonic() < deadline, c.logs_tail()
                time.sleep(0.1)
            broker.start()
            job = _wait_job(
                c, job_id, lambda j: j["status"] in TERMINAL and j["close_status"] in ("confirmed", "failed")
            )
            assert (job["status"], job["close_status"]) == ("completed", "confirmed"), (job, c.logs_tail())
            # the stream followed the job to its end, woken by notices (its poll: 60 s); the coordinator's
            # process published its own (only it sets a job running, and completed)
            reader.join(120)
            assert statuses[-2:] == ["completed", "end"] and "running" in statuses, statuses
            assert c.api.app.state.notifier.metrics.wakes.labels(source="pubsub")._value.get() >= 2
            notices, quiet = [], 0
            while quiet < 3:  # the subscribe reply reads as None too: stop after three quiet reads
                message = watch.get_message(timeout=0.5)
                quiet = 0 if message is not None else quiet + 1
                if message is not None:
                    notices.append(json.loads(message["data"]))
            watch.close()
            mine = {n["status"] for n in notices if n["job_id"] == job_id}
            assert {"running", "completed"} <= mine, notices
            after = _submit(c, "bob", _two_party("after-rabbitmq-restart", PIPELINE[:1]))
            done = _wait_job(
                c, after, lambda j: j["status"] in TERMINAL and j["close_status"] in ("confirmed", "failed")
            )
            assert (done["status"], done["close_status"]) == ("completed", "confirmed"), (done, c.logs_tail())
            for job_id_, steps in ((job_id, 2), (after, 1)):
                assert [r.seq for r in c.api.store.records_for_job(job_id_)] == list(range(steps))
                on_chain = _chain_job(c, job_id_)
                assert (on_chain.status, on_chain.step_count) == (JobStatus.CLOSED, steps)
            _every_record_anchored_exactly_once(c)
            # the job's task came back after the restart (unacknowledged, persistent): it ran nothing twice
            samples = scrape(_coordinator_metrics_url(c, "coordinator-own-rabbitmq"))
            assert value(samples, "secureflow_coordinator_deliveries_total", action="ran") == 2, samples
        finally:
            _stop([c.procs.pop("coordinator-own-rabbitmq")])
            c.restart_api(settings=original)


def test_a_job_cancelled_mid_run_stops_before_its_next_step_and_closes_with_what_ran(
    consortium: Consortium,
) -> None:
    """Cancel during SS-LR: the step running finishes and is recorded, nothing after it runs, the job stays
    cancelled with who cancelled it, and the chain's close counts exactly the recorded steps."""
    c = consortium
    job_id = _submit(c, "bob", _manifest("cancelled", _pipeline("out/scores-cancelled.csv")))
    _wait_records(c, job_id, 1)
    cancelled = requests.post(f"{c.url}/v1/jobs/{job_id}/cancel", headers=c.headers("bob"), timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["close_status"] is None  # held: a step may still be running
    job = _wait_job(c, job_id, lambda j: j["close_status"] in ("confirmed", "failed"))
    assert (job["status"], job["close_status"]) == ("cancelled", "confirmed"), (job, c.logs_tail())
    assert job["reason"].startswith("cancelled by bob"), job
    recorded = [r.seq for r in c.api.store.records_for_job(job_id)]
    assert recorded in ([0], [0, 1]), recorded  # secure_predict never ran
    assert not (c.nodes["alice"] / "data" / "out" / "scores-cancelled.csv").exists()
    on_chain = _chain_job(c, job_id)
    assert (on_chain.status, on_chain.step_count) == (JobStatus.FAILED, len(recorded))
    _every_record_anchored_exactly_once(c)


def test_rabbitmq_carries_jobs_like_redis(consortium: Consortium, rabbitmq_service: None) -> None:
    """The same production path on RabbitMQ (127.0.0.1:5672, guest/guest), Celery's recommended broker for
    late acks: the API queues to it and a coordinator serving it runs the job to its close on chain."""
    c = consortium
    queue = f"secureflow.jobs.amqp-{uuid.uuid4().hex[:8]}"
    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    services = c.api.app.state.services
    redis_executor = services.executor
    services.executor = CeleryJobExecutor(celery_app(amqp, queue=queue))
    env = dict(c.env, SECUREFLOW_BROKER_URL=amqp, SECUREFLOW_QUEUE_NAME=queue)
    rabbit = _spawn(["coordinator"], env, c.logs / "coordinator-amqp.log")
    try:
        job_id = _submit(c, "alice", _manifest("amqp", PIPELINE[:1]))
        job = _wait_job(c, job_id, lambda j: j["status"] in TERMINAL and j["close_status"] is not None
                        and j["close_status"] != "pending" and j["close_status"] != "submitted")  # fmt: skip
        assert (job["status"], job["close_status"]) == ("completed", "confirmed"), (job, c.logs_tail())
        assert "job 0x" in (c.logs / "coordinator-amqp.log").read_text()  # the AMQP coordinator ran it
        on_chain = _chain_job(c, job_id)
        assert (on_chain.status, on_chain.step_count) == (JobStatus.CLOSED, 1)
    finally:
        services.executor.close()
        services.executor = redis_executor
        _stop([rabbit])


def _aby3_models(c: Consortium, party: str) -> list[dict[str, Any]]:
    metas = [json.loads(p.read_text()) for p in c.nodes[party].rglob("meta.json")]
    return [m for m in metas if (m.get("spu_runtime_config") or {}).get("protocol") == "ABY3"]


def test_an_aby3_job_of_three_members_runs_under_the_protocol_its_manifest_names(
    consortium: Consortium,
) -> None:
    """``spu_protocol: ABY3`` (three parties, honest majority): the coordinator starts the job's SPU on each
    node under ABY3's runtime (each node checks it is a known one and consents only to a manifest naming
    its session's protocol); the model's stored runtime config says ABY3 at every party; the scores rank
    as well as SEMI2K's; the job closes on chain with all three consents."""
    from sklearn.metrics import roc_auc_score

    c = consortium
    assert all(_aby3_models(c, p) == [] for p in PARTIES)
    steps = [
        dict(PIPELINE[0], save={"table": "out/aby3-j.csv"}),
        PIPELINE[1],
        dict(PIPELINE[2], save={"table": "out/aby3-scores.csv"}),
    ]
    job_id = _submit(c, "bob", {**_manifest("aby3", steps), "spu_protocol": "ABY3"})
    job = _wait_job(c, job_id, lambda j: j["status"] in TERMINAL and j["close_status"] == "confirmed")
    assert job["status"] == "completed", (job, c.logs_tail())
    on_chain = _chain_job(c, job_id)
    assert (on_chain.status, on_chain.step_count) == (JobStatus.CLOSED, 3)
    for party in PARTIES:
        [meta] = _aby3_models(c, party)
        assert meta["spu_runtime_config"]["field"] == "FM64", meta["spu_runtime_config"]
    labels = pd.read_csv(c.nodes["alice"] / "data" / "out" / "aby3-j.csv")["y"].to_numpy()
    scores = pd.read_csv(c.nodes["alice"] / "data" / "out" / "aby3-scores.csv").iloc[:, -1].to_numpy()
    assert len(scores) == len(labels) and roc_auc_score(labels, scores) > 0.8


def test_an_aby3_manifest_of_two_members_is_refused_before_anything_runs(consortium: Consortium) -> None:
    c = consortium
    manifest = {**_manifest("aby3-two", PIPELINE[:1]), "spu_protocol": "ABY3"}
    manifest["parties"] = manifest["parties"][:2]
    manifest["datasets"] = {"raw": {"alice": "t3.csv", "bob": "t3.csv"}}
    before = len(c.api.store.list_jobs())
    answer = requests.post(
        f"{c.url}/v1/jobs", json={"manifest": manifest}, headers=c.headers("alice"), timeout=60
    )
    assert answer.status_code == 422, answer.text
    assert "ABY3 runs exactly three parties" in answer.text
    assert len(c.api.store.list_jobs()) == before
