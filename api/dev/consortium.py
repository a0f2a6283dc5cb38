"""``secureflow consortium``: a three-member consortium on this machine, each member on its own node.

What a consortium deployment runs, as separate processes on one host: anvil with the contracts, the
production API with its anchoring worker (SQLite in ``<workdir>``), one ``secureflow coordinator``
(Celery on Redis), and one ``secureflow node`` per member (alice, bob, carol), each on its own loopback
address (127.0.0.2, .3, .4) with its own folder under ``<workdir>/nodes/<party>`` holding its data,
its member key and its consent policy (pinned to this chain and ledger, and to this run's coordinator).
Nothing but Redis and the chain is shared between the nodes and the coordinator; the coordinator holds no
member key, only its own key (``<workdir>/secrets/coordinator.key``, granted the registry's coordinator
role), with which it signs every entry it puts on a node's queue; the nodes check it and the job's
on-chain consent before they act. The keys are
anvil's public dev keys: for trying the consortium path locally only.

Ctrl-C or SIGTERM stops everything it started (nodes, coordinator, anvil) before it exits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from pathlib import Path

import numpy as np
import pandas as pd
import redis
from eth_account import Account
from eth_utils.crypto import keccak
from pydantic import SecretStr

from secureflow.api.dev.devstack import DEV_REVEALS
from secureflow.api.dev.up import set_aside_previous_run, write_settings_env
from secureflow.api.server.logs import configure_logging
from secureflow.api.server.serve import (
    Printer,
    add_member_key,
    build_api,
    ensure_admin_key,
    freeze_startup_objects,
    uvicorn_server,
)
from secureflow.api.server.settings import ApiSettings
from secureflow.compute.policy import PartyPolicy, write_policy
from secureflow.compute.worker.link import node_warm
from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.contracts import RegistryClient
from secureflow.ledger.deploy import connect, deploy_contracts, write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
from secureflow.ledger.errors import ConfigurationError
from secureflow.ledger.nonces import ChainNonceSource

PARTY_KEYS = {"alice": DEV_PRIVATE_KEYS[1], "bob": DEV_PRIVATE_KEYS[2], "carol": DEV_PRIVATE_KEYS[4]}
"""The members' dev keys (anvil's public test keys; 0 is the admin, 3 the anchoring service)."""
NODE_HOSTS = {"alice": "127.0.0.2", "bob": "127.0.0.3", "carol": "127.0.0.4"}
FEATURES = {"alice": ["a0", "a1"], "bob": ["b0", "b1"], "carol": ["c0", "c1"]}


def consortium_data(rows: int = 2000, seed: int = 11) -> dict[str, pd.DataFrame]:
    """Synthetic customers split vertically over three members: alice holds the label, each two features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    y = (x @ np.array([1.1, -0.7, 0.9, 0.6, -1.0, 0.8]) + rng.logistic(size=rows) * 0.6 > 0).astype(int)
    ids = rng.permutation(rows * 3)[:rows] + 100_000
    keep_b, keep_c = rng.random(rows) < 0.9, rng.random(rows) < 0.85
    return {
        "alice": pd.DataFrame({"id": ids, "a0": x[:, 0], "a1": x[:, 1], "y": y}),
        "bob": pd.DataFrame({"id": ids[keep_b], "b0": x[keep_b, 2], "b1": x[keep_b, 3]}),
        "carol": pd.DataFrame({"id": ids[keep_c], "c0": x[keep_c, 4], "c1": x[keep_c, 5]}),
    }


def consortium_manifest(addresses: dict[str, str]) -> dict[str, object]:
    """PSI over the three -> SS-LR on all six features -> scores to alice (saved) -> its evaluation."""
    return {
        "name": "three-member-scoring",
        "parties": [{"name": p, "address": a} for p, a in addresses.items()],
        "datasets": {"customers": dict.fromkeys(addresses, "customers.csv")},
        "models": {},
        "steps": [
            {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "customers"},
             "outputs": {"table": "joined"}},
            {"algorithm": "ss_lr",
             "params": {"label": "y", "features": [f for fs in FEATURES.values() for f in fs], "epochs": 3},
             "inputs": {"table": "joined"}, "outputs": {"model": "scorer"}},
            {"algorithm": "secure_predict", "params": {"receiver": "alice"},
             "inputs": {"table": "joined", "model": "scorer"}, "outputs": {"table": "scores"},
             "save": {"table": "out/scores.csv"}},
            {"algorithm": "biclassification_eval", "params": {"label": "y"},
             "inputs": {"labels": "joined", "scores": "scores"}, "outputs": {"report": "evaluation"}},
        ],
    }  # fmt: skip


def _node_folder(
    root: Path, party: str, others: list[str], chain_id: int, ledger: str, coordinator: str, log_reader: str
) -> Path:
    """A member's folder as it would set up its own host: member key (0600), policy, data folder."""
    folder = root / party
    secrets_dir = folder / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets_dir / "member.key"
    key.write_text(PARTY_KEYS[party].removeprefix("0x"))
    key.chmod(0o600)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    reveal = {algorithm: tuple(others) for algorithm in DEV_REVEALS}
    # pinned to this run's chain and ledger: a coordinator cannot get a consent for any other deployment
    # and it takes work only from this consortium's coordinator (which also holds the registry's role)
    # and it serves its job logs only to this run's API (its log-reader key)
    policy = PartyPolicy(
        reveal=reveal,
        chain_id=chain_id,
        ledger=ledger,
        coordinators=(coordinator,),
        log_readers=(log_reader,),
    )
    write_policy(folder, policy)
    return folder


class Children:
    """The processes this command started (each in its own process group); `stop` ends them all."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        with open(self.logs / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(  # noqa: S603 - our own CLI, fixed argv
                [sys.executable, "-m", "secureflow.api", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise ConfigurationError(
                    f"the {name} process exited with code {proc.returncode}",
                    hint=f"read {self.logs / (name + '.log')}",
                )

    def stop(self, timeout: float = 30.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            with suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group (its SecretFlow workers)
            proc.wait(5.0)


def _fresh_key(workdir: Path, name: str = "coordinator") -> tuple[Path, str]:
    """A fresh key in ``workdir/secrets/<name>.key`` (0600) and its address: the coordinator's, or the API's
    log-reader key (``name="log-reader"``)."""
    account = Account.create()
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = secrets_dir / f"{name}.key"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("0x" + bytes(account.key).hex() + "\n")
    return path, str(account.address)


def run_consortium(
    port: int = 8000,
    *,
    workdir: Path | None = None,
    redis_url: str = "redis://127.0.0.1:6379/0",
    host: str = "127.0.0.1",
    echo: Printer = print,
) -> None:
    """``secureflow consortium``: the three-member consortium in the foreground until Ctrl-C/SIGTERM."""
    configure_logging("WARNING")
    workdir = (workdir or Path(".secureflow") / "consortium").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        redis.Redis.from_url(redis_url).ping()
    except redis.RedisError as exc:
        raise ConfigurationError(
            f"cannot reach Redis at {redis_url} ({type(exc).__name__}): it carries the job queue and the "
            "nodes' work",
            hint="start Redis (127.0.0.1:6379) or pass --redis-url",
        ) from None
    previous = set_aside_previous_run(workdir)
    if previous is not None:
        echo(f"a previous run's database and deployment are now in {previous}; starting a fresh chain")
    chain = DevChain(log_path=workdir / "anvil.log").start()
    children = Children(logs)
    api = None
    try:
        client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
        admin = TransactionSender(client, DEV_PRIVATE_KEYS[0], ChainNonceSource(client.w3))
        deployment = deploy_contracts(client, admin)
        write_deployment(deployment, workdir / "deployment.json")
        registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
        addresses = {p: str(Account.from_key(k).address) for p, k in PARTY_KEYS.items()}
        for party, address in addresses.items():
            registry.register_member(address, keccak(text=party))
        registry.grant_anchor_service(Account.from_key(DEV_PRIVATE_KEYS[3]).address)
        coordinator_key, coordinator = _fresh_key(workdir)
        log_reader_key, log_reader = _fresh_key(workdir, "log-reader")  # no on-chain role
        registry.grant_role("coordinator", coordinator)
        echo(
            f"chain (anvil, chain id {DEV_CHAIN_ID}) at {chain.rpc_url}; contracts deployed, members "
            f"registered, coordinator {coordinator} granted its role"
        )

        ledger = deployment.address_of("AuditLedger")
        tables = consortium_data()
        folders = {}
        for party in addresses:
            others = [a for p, a in addresses.items() if p != party]
            folders[party] = _node_folder(
                workdir / "nodes", party, others, DEV_CHAIN_ID, ledger, coordinator, log_reader
            )
            target = folders[party] / "data" / "customers.csv"
            if not target.exists():
                tables[party].to_csv(target, index=False)

        tag = uuid.uuid4().hex[:8]
        prefix, queue = f"secureflow-{tag}", f"secureflow.jobs.{tag}"  # this run's own queues
        db_url = f"sqlite:///{(workdir / 'secureflow.db').as_posix()}"
        env = {
            **os.environ,
            "SECUREFLOW_DATABASE_URL": db_url,
            "SECUREFLOW_RPC_URL": chain.rpc_url,
            "SECUREFLOW_CHAIN_ID": str(DEV_CHAIN_ID),
            "SECUREFLOW_DEPLOYMENT": str(workdir / "deployment.json"),
            "SECUREFLOW_BROKER_URL": redis_url,
            "SECUREFLOW_QUEUE_NAME": queue,
            "SECUREFLOW_COMPUTE_REDIS_URL": redis_url,
            "SECUREFLOW_COMPUTE_REDIS_PREFIX": prefix,
            "SECUREFLOW_COORDINATOR_WORKDIR": str(workdir / "coordinator"),
            "SECUREFLOW_COORDINATOR_KEY_FILE": str(coordinator_key),
        }
        settings = ApiSettings(
            database_url=db_url,
            rpc_url=chain.rpc_url,
            chain_id=DEV_CHAIN_ID,
            deployment=workdir / "deployment.json",
            anchor_key=SecretStr(DEV_PRIVATE_KEYS[3]),
            broker_url=redis_url,
            queue_name=queue,
            api_host=host,
            api_port=port,
            compute_redis_url=redis_url,
            compute_redis_prefix=prefix,
            log_reader_key_file=log_reader_key,
        )
        api = build_api(settings, with_worker=True)  # migrates the database before the coordinator starts
        db = api.app.state.api_db
        keys = {"admin": ensure_admin_key(db, Account.from_key(DEV_PRIVATE_KEYS[0]).address) or ""}
        keys |= {f"{p} (member)": add_member_key(db, p, a, "member") for p, a in addresses.items()}
        auditor = Account.create().address  # read-only: a label, no on-chain role
        keys["auditor"] = add_member_key(db, "auditor", auditor, "auditor")

        for party in addresses:
            children.spawn(
                f"node-{party}",
                ["node", "--party", party, "--data-dir", str(folders[party]), "--redis-url", redis_url,
                 "--prefix", prefix, "--host", NODE_HOSTS[party], "--rpc-url", chain.rpc_url,
                 "--deployment", str(workdir / "deployment.json")],
                env,
            )  # fmt: skip
        children.spawn("coordinator", ["coordinator"], env)
        echo(
            "starting the three nodes (each warms a party worker: SecretFlow imported) and the coordinator …"
        )
        rds = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 180
        while not all(node_warm(rds, prefix, p) for p in addresses):
            children.check()
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    "the nodes did not start and warm a worker within 180 s", hint=f"read the logs in {logs}"
                )
            time.sleep(0.2)

        api_url = f"http://{host}:{port}"
        manifest = workdir / "example-manifest.json"
        manifest.write_text(json.dumps(consortium_manifest(addresses), indent=2) + "\n")
        env_file = write_settings_env(
            workdir,
            api_url=api_url,
            rpc_url=chain.rpc_url,
            api_keys={k: v for k, v in keys.items() if v},
            member_keys=PARTY_KEYS,
            header="secureflow consortium",
        )
        echo(f"secureflow API on {api_url}  (OpenAPI: {api_url}/docs; web page: {api_url}/ui)")
        for party, address in addresses.items():
            echo(f"node {party}: member {address} on {NODE_HOSTS[party]}, folder {folders[party]}")
        echo(f"logs of the nodes and the coordinator: {logs}")
        echo(f"settings for other commands (API, chain, deployment, key files): source {env_file}")
        echo(f"try it: source {env_file} && secureflow job submit {manifest} --follow  (as alice)")
        echo("ready. Ctrl-C stops everything")
        freeze_startup_objects()
        uvicorn_server(api.app, host, port).run()
    except KeyboardInterrupt:
        pass
    finally:
        with suppress(OSError, SystemExit):  # a closed terminal: rich exits on a broken pipe; stop first
            echo("stopping: the nodes, the coordinator, the anchoring worker, then anvil")
        children.stop()
        if api is not None:
            services = api.app.state.services
            if services.worker is not None:
                services.worker.stop()  # stopped already when the server ran (its shutdown drains it)
            if services.executor is not None:
                services.executor.close()
            api.close()
        chain.stop()
