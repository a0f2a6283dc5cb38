"""``secureflow up``: the embedded stack for trying the API on one machine (anvil, contracts, SQLite, the
anchoring worker, the API and the local SecretFlow party workers of the dev consortium), with its keys
printed at start. Development only: the production server (`api.server`) never imports this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from fastapi import FastAPI

from secureflow.api.dev.compute_executor import LocalComputeExecutor
from secureflow.api.dev.devstack import PARTIES, dev_consortium
from secureflow.api.server.app import create_app
from secureflow.api.server.db import ApiDb
from secureflow.api.server.logs import configure_logging
from secureflow.api.server.serve import (
    Printer,
    add_member_key,
    ensure_admin_key,
    freeze_startup_objects,
    uvicorn_server,
)
from secureflow.api.server.settings import ApiSettings
from secureflow.ledger.anchoring import AnchoringWorker
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
from secureflow.ledger.store.sql import SqlLedgerStore


@dataclass
class EmbeddedStack:
    """The embedded stack of `secureflow up`: chain, store, worker, app and the keys printed at start."""

    chain: DevChain
    store: SqlLedgerStore
    worker: AnchoringWorker
    app: FastAPI
    keys: dict[str, str]
    executor: LocalComputeExecutor
    parties: dict[str, tuple[str, Path]]
    """party name -> (member address, data folder): what a manifest names."""

    def close(self) -> None:
        self.executor.close()
        self.executor.engine.shutdown()
        self.worker.stop()
        self.store.close()
        self.chain.stop()


def build_embedded(workdir: Path, settings: ApiSettings | None = None) -> EmbeddedStack:
    """Anvil + deployed contracts + SQLite + anchoring worker + API, with admin, member and service keys."""
    workdir.mkdir(parents=True, exist_ok=True)
    chain = DevChain(log_path=workdir / "anvil.log").start()
    try:
        db_url = f"sqlite:///{(workdir / 'secureflow.db').as_posix()}"
        settings = settings or ApiSettings(
            rpc_url=chain.rpc_url,
            chain_id=DEV_CHAIN_ID,
            database_url=db_url,
            deployment=workdir / "deployment.json",
        )
        dev = dev_consortium(workdir, chain)
        executor = LocalComputeExecutor(
            dev.engine,
            dev.store,
            dev.client,
            dev.ledger_contract,
            dev.nonces,
            {p: dev.keys[p] for p in PARTIES},
        )
        app = create_app(
            settings,
            store=dev.store,
            client=dev.client,
            deployment=dev.deployment,
            worker=dev.worker,
            executor=executor,
        )
        db: ApiDb = app.state.api_db
        keys = {"admin": ensure_admin_key(db, dev.address("admin")) or ""}
        keys["alice (member)"] = add_member_key(db, "alice", dev.address("alice"), "member")
        keys["bob (member)"] = add_member_key(db, "bob", dev.address("bob"), "member")
        keys["anchoring service"] = add_member_key(db, "anchor-service", dev.address("anchor"), "service")
        auditor = Account.from_key(DEV_PRIVATE_KEYS[4]).address  # read-only: the web page's user
        keys["auditor"] = add_member_key(db, "auditor", auditor, "auditor")
        # /metrics only (Prometheus's bearer token); the address is a label, it holds no on-chain role
        keys["metrics (Prometheus)"] = add_member_key(db, "prometheus", Account.create().address, "metrics")
        dev.worker.start()
        parties = {p: (dev.address(p), dev.engine.data_dir(p)) for p in PARTIES}
        return EmbeddedStack(chain, dev.store, dev.worker, app, keys, executor, parties)
    except BaseException:
        chain.stop()
        raise


def write_example(stack: EmbeddedStack, workdir: Path, rows: int = 2000) -> Path:
    """The demo's synthetic datasets in each party's data folder (kept if present) and a job manifest naming
    the parties' addresses, for trying the stack: ``secureflow job submit <returned path> --follow``."""
    from secureflow.api.dev.demo import (  # pandas and the demo pipeline: only when asked
        demo_data,
        demo_manifest,
    )

    tables = dict(zip(("alice", "bob"), demo_data(rows), strict=True))
    for party, (_address, data) in stack.parties.items():
        target = data / "customers.csv"
        if not target.exists():
            tables[party].to_csv(target, index=False)
    manifest = workdir / "example-manifest.json"
    addresses = {party: address for party, (address, _data) in stack.parties.items()}
    manifest.write_text(json.dumps(demo_manifest(addresses), indent=2) + "\n")
    return manifest


def run_up(
    port: int = 8000, *, workdir: Path | None = None, host: str = "127.0.0.1", echo: Printer = print
) -> None:
    """``secureflow up --port N``: the embedded stack in the foreground until Ctrl-C/SIGTERM."""
    configure_logging("WARNING")
    workdir = workdir or Path(".secureflow") / "up"
    stack = build_embedded(workdir)
    try:
        example = write_example(stack, workdir)
        echo(f"secureflow API on http://{host}:{port}  (OpenAPI: http://{host}:{port}/docs)")
        echo(f"web page for auditors: http://{host}:{port}/ui  (paste the auditor key below)")
        echo(f"chain (anvil, chain id {DEV_CHAIN_ID}) at {stack.chain.rpc_url}")
        for who, key in stack.keys.items():
            echo(f"{who} API key: {key}")
        for party, (address, data) in stack.parties.items():
            echo(
                f"party {party}: member {address}, datasets in {data} "
                "(its SecretFlow worker starts with the first job)"
            )
        echo(
            f"try it: SECUREFLOW_API_URL=http://{host}:{port} SECUREFLOW_API_KEY=<alice's key> "
            f"secureflow job submit {example} --follow  (the demo's datasets are in the party folders)"
        )
        echo("Ctrl-C stops everything (pending records are anchored first, up to 30 s)")
        freeze_startup_objects()
        uvicorn_server(stack.app, host, port).run()
    finally:
        stack.close()
