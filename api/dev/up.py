"""``secureflow up``: the embedded stack for trying the API on one machine (anvil, contracts, SQLite, the
anchoring worker, the API and the local SecretFlow party workers of the dev consortium), with its keys
printed at start. Development only: the production server (`api.server`) never imports this.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from eth_account import Account
from fastapi import FastAPI

from secureflow.api.dev.compute_executor import LocalComputeExecutor
from secureflow.api.dev.devstack import PARTIES, dev_consortium
from secureflow.api.server.app import create_app
from secureflow.api.server.db import ApiDb, Role
from secureflow.api.server.joblogs import PartyFolderLogs
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
from secureflow.ledger.errors import ChainMismatchError, ToolchainError
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
    member_keys: dict[str, str] = field(default_factory=dict)
    """party name -> its dev member key (anvil's public test keys), for `secureflow settle` beside it."""

    def close(self) -> None:
        self.executor.close()
        self.executor.engine.shutdown()
        self.worker.stop()
        self.store.close()
        self.chain.stop()


STATE_FILE = "chain-state.json"
"""The dev chain's saved state in the workdir (anvil loads it at start and saves it when stopped)."""
PREVIOUS_RUN_FILES = (
    "secureflow.db",
    "secureflow.db-wal",
    "secureflow.db-shm",
    "deployment.json",
    "anvil.log",
    STATE_FILE,
    STATE_FILE + ".partial",
)
FRESH_FIX = (
    "run `secureflow up --fresh` to start a new chain and database (the old files are set aside, "
    "not deleted), or restore the chain-state.json saved with this database"
)


def set_aside_previous_run(workdir: Path) -> Path | None:
    """Move a previous run's database, deployment file, chain state and anvil log to
    ``workdir/previous/<time>/`` (what ``secureflow up --fresh`` does); the party folders (datasets, keys,
    model shares) stay. Returns where the old files went, or None if there was nothing to set aside."""
    found = [workdir / name for name in PREVIOUS_RUN_FILES if (workdir / name).exists()]
    if not any(path.name in ("secureflow.db", "deployment.json", STATE_FILE) for path in found):
        return None
    target = workdir / "previous" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target.mkdir(parents=True)
    for path in found:
        shutil.move(str(path), str(target / path.name))
    return target


def _reuse_previous_run(workdir: Path) -> bool:
    """Whether ``workdir`` holds a previous run to go on with (its database and deployment file).

    Only one of the two is a broken workdir: refused with what to do rather than half reused.
    """
    db, deployment = (workdir / "secureflow.db").exists(), (workdir / "deployment.json").exists()
    if db != deployment:
        missing = "deployment.json" if db else "secureflow.db"
        raise ChainMismatchError(f"{workdir} holds a previous run without its {missing}", hint=FRESH_FIX)
    return db


def build_embedded(
    workdir: Path,
    settings: ApiSettings | None = None,
    *,
    echo: Printer = lambda _: None,
    fresh: bool = False,
) -> EmbeddedStack:
    """Anvil + deployed contracts + SQLite + anchoring worker + API, with admin, member and service keys.

    The chain keeps its state in ``workdir/chain-state.json`` (saved when the stack stops), so a second
    start on the same ``workdir`` goes on with the previous run's chain, database and deployment: every
    earlier job still verifies. A database or deployment that does not match the chain (the state file lost,
    or older than the database) is refused with `ChainMismatchError`, saying to use ``--fresh``. With
    ``fresh`` a previous run's files are set aside first (`set_aside_previous_run`; ``echo`` says where)
    and everything starts anew.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if fresh:
        previous = set_aside_previous_run(workdir)
        if previous is not None:
            echo(
                f"--fresh: the previous run's database, deployment, chain state and anvil log are now in "
                f"{previous}; starting a new chain and database (party folders kept)"
            )
    reuse = _reuse_previous_run(workdir)
    if not reuse and (workdir / STATE_FILE).exists():
        set_aside_previous_run(workdir)  # a chain state without its database: nothing can use it
    if reuse:
        echo(f"going on with the previous run in {workdir}: its chain state, database and deployment")
    chain = _start_chain(workdir)
    try:
        db_url = f"sqlite:///{(workdir / 'secureflow.db').as_posix()}"
        settings = settings or ApiSettings(
            rpc_url=chain.rpc_url,
            chain_id=DEV_CHAIN_ID,
            database_url=db_url,
            deployment=workdir / "deployment.json",
        )
        dev = dev_consortium(workdir, chain, reuse=reuse, mismatch_fix=FRESH_FIX)
        executor = LocalComputeExecutor(
            dev.engine,
            dev.store,
            dev.client,
            dev.ledger_contract,
            {p: dev.address(p) for p in PARTIES},
        )
        app = create_app(
            settings,
            store=dev.store,
            client=dev.client,
            deployment=dev.deployment,
            worker=dev.worker,
            executor=executor,
            job_logs=PartyFolderLogs({p: dev.engine.party_dir(p) for p in dev.engine.parties}),
        )
        db: ApiDb = app.state.api_db
        keys = {"admin": _api_key(db, "admin", dev.address("admin"), "admin")}
        keys["alice (member)"] = _api_key(db, "alice", dev.address("alice"), "member")
        keys["bob (member)"] = _api_key(db, "bob", dev.address("bob"), "member")
        keys["anchoring service"] = _api_key(db, "anchor-service", dev.address("anchor"), "service")
        auditor = Account.from_key(DEV_PRIVATE_KEYS[4]).address  # read-only: the web page's user
        keys["auditor"] = _api_key(db, "auditor", auditor, "auditor")
        # /metrics only (Prometheus's bearer token); the address is a label, it holds no on-chain role
        keys["metrics (Prometheus)"] = _api_key(db, "prometheus", Account.create().address, "metrics")
        dev.worker.start()
        parties = {p: (dev.address(p), dev.engine.data_dir(p)) for p in PARTIES}
        member_keys = {p: dev.keys[p] for p in PARTIES}
        return EmbeddedStack(chain, dev.store, dev.worker, app, keys, executor, parties, member_keys)
    except BaseException as exc:
        chain.stop(keep_state=not isinstance(exc, ChainMismatchError))  # a refused start saves nothing
        raise


def _start_chain(workdir: Path) -> DevChain:
    """anvil on a free port, loading ``workdir/chain-state.json`` if present; one that cannot load it is
    refused with what to do."""
    state = workdir / STATE_FILE
    chain = DevChain(log_path=workdir / "anvil.log", state_path=state)
    try:
        return chain.start()
    except ToolchainError as exc:
        if not state.exists():
            raise
        raise ChainMismatchError(
            f"anvil could not load the saved chain state {state} ({exc}; see {workdir / 'anvil.log'})",
            hint=FRESH_FIX,
        ) from exc


UP_KEY_LABELS = frozenset({"bootstrap", "default", "up"})
"""Labels of the keys `up` makes for its dev members (first run: ``bootstrap``, ``default``; then ``up``)."""


def _api_key(db: ApiDb, name: str, address: str, role: Role) -> str:
    """A new API key for the dev member ``name``, created with it on the first run; on a later run over the
    same database the member exists already: the keys earlier runs made for it are revoked (their files
    are rewritten with the new key) and it gets a new one. Keys made otherwise (an admin's) stay."""
    existing = [m for m in db.list_members(limit=1000, after_id=0) if m.name == name]
    if existing:
        for key in db.list_keys(existing[0].id):
            if key.revoked_at is None and key.label in UP_KEY_LABELS:
                db.revoke_key(key.key_id)
        return db.create_key(existing[0].id, "up")[1]
    if role == "admin":
        created = ensure_admin_key(db, address, name)
        if created is not None:
            return created
    return add_member_key(db, name, address, role)


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


def _slug(label: str) -> str:
    """``alice (member)`` -> ``alice``, ``anchoring service`` -> ``anchoring-service``."""
    return re.sub(r"[^a-z0-9]+", "-", label.split(" (")[0].lower()).strip("-")


def write_env(stack: EmbeddedStack, workdir: Path, api_url: str) -> Path:
    """``<workdir>/secureflow.env`` for the commands run beside ``stack`` (see `write_settings_env`)."""
    return write_settings_env(
        workdir,
        api_url=api_url,
        rpc_url=stack.chain.rpc_url,
        api_keys=stack.keys,
        member_keys=stack.member_keys,
        header="secureflow up",
    )


def write_settings_env(
    workdir: Path,
    *,
    api_url: str,
    rpc_url: str,
    api_keys: Mapping[str, str],
    member_keys: Mapping[str, str],
    header: str,
) -> Path:
    """``<workdir>/secureflow.env``: every setting a command run beside the stack needs, as ``export`` lines
    (``source`` it), with keys only as paths to files in ``<workdir>/keys/`` (mode 0600), never inline.

    ``api_keys``: label (``alice (member)``) -> API key; ``member_keys``: party -> member key. The API key
    and member key files point at alice; the file names the others' key files to switch.
    """
    keys_dir = workdir.resolve() / "keys"
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def key_file(name: str, secret: str) -> Path:
        path = keys_dir / name
        path.write_text(secret + "\n", encoding="utf-8")
        path.chmod(0o600)
        return path

    api_files = {_slug(label): key_file(f"{_slug(label)}.api-key", key) for label, key in api_keys.items()}
    member_files = {party: key_file(f"{party}.member-key", key) for party, key in member_keys.items()}
    settings = {
        "SECUREFLOW_API_URL": api_url,
        "SECUREFLOW_RPC_URL": rpc_url,
        "SECUREFLOW_CHAIN_ID": str(DEV_CHAIN_ID),
        "SECUREFLOW_DEPLOYMENT": str(workdir.resolve() / "deployment.json"),
        "SECUREFLOW_DATABASE_URL": f"sqlite:///{(workdir.resolve() / 'secureflow.db').as_posix()}",
        "SECUREFLOW_API_KEY_FILE": str(api_files["alice"]),
        "SECUREFLOW_MEMBER_KEY_FILE": str(member_files["alice"]),
    }
    lines = [
        f"# {header}: the settings of the commands you run beside this stack (`source` this file).",
        "# Keys are files in keys/ (mode 0600); these point at alice's. To act as another, e.g. bob:",
        f"#   export SECUREFLOW_API_KEY_FILE={shlex.quote(str(api_files.get('bob', '')))}",
        f"#   export SECUREFLOW_MEMBER_KEY_FILE={shlex.quote(str(member_files.get('bob', '')))}",
        "# API key files: " + ", ".join(f"{who}: {path.name}" for who, path in api_files.items()),
        *(f"export {name}={shlex.quote(value)}" for name, value in settings.items()),
    ]
    env = workdir / "secureflow.env"
    env.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return env


def run_up(
    port: int = 8000,
    *,
    workdir: Path | None = None,
    host: str = "127.0.0.1",
    echo: Printer = print,
    fresh: bool = False,
) -> None:
    """``secureflow up --port N [--fresh]``: the embedded stack in the foreground until Ctrl-C/SIGTERM."""
    configure_logging("WARNING")
    workdir = workdir or Path(".secureflow") / "up"
    stack = build_embedded(workdir, echo=echo, fresh=fresh)
    try:
        example = write_example(stack, workdir)
        env = write_env(stack, workdir, f"http://{host}:{port}")
        echo(f"secureflow API on http://{host}:{port}  (OpenAPI: http://{host}:{port}/docs)")
        echo(f"web page for auditors: http://{host}:{port}/ui  (paste the auditor key below)")
        echo(f"chain (anvil, chain id {DEV_CHAIN_ID}) at {stack.chain.rpc_url}")
        for who, key in stack.keys.items():
            echo(f"{who} API key: {key}")
        for party, (address, data) in stack.parties.items():
            echo(
                f"party {party}: member {address}, datasets in {data}, "
                f"consent policy {data.parent / 'policy.json'}"
            )
        echo(f"settings for other commands (API, chain, deployment, database, key files): source {env}")
        echo(
            f"try it: source {env} && secureflow job submit {example} --follow  "
            "(as alice; the demo's datasets are in the party folders)"
        )
        echo(f"starting the party workers ({', '.join(stack.parties)}: SecretFlow import, links; ~10-30 s) …")
        engine = stack.executor.engine
        engine.ensure_healthy()  # warm before the first job: it starts its first step at once
        echo(f"party workers ready in {engine.last_start_s:.1f}s")
        echo("Ctrl-C stops everything (pending records are anchored first, up to 30 s)")
        freeze_startup_objects()
        uvicorn_server(stack.app, host, port).run()
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM (uvicorn re-raises the signal after its graceful shutdown): stop below
    finally:
        with suppress(OSError, SystemExit):  # a closed terminal: rich exits on a broken pipe; stop first
            echo("stopping: anchoring what is pending, then the party workers and anvil")
        stack.close()
        if stack.chain.state_saved:
            echo(f"chain state saved in {workdir / STATE_FILE}: `secureflow up` goes on from it")
        else:
            echo(
                f"the chain's state could not be saved (see {workdir / 'anvil.log'}): the next "
                "`secureflow up` here refuses the database; `secureflow up --fresh` starts anew"
            )
