"""The ``secureflow`` command line (typer + rich).

Every `secureflow.ledger.errors.LedgerError` is shown as one red line with what to do,
never as a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from secureflow.api.cli.audit_search import audit_search
from secureflow.api.cli.doctor import doctor
from secureflow.api.cli.errors import CliError, console, friendly_errors
from secureflow.api.cli.job import job_app
from secureflow.api.cli.members import members_app
from secureflow.api.cli.model import model_app
from secureflow.api.cli.options import (
    MetricsHost,
    MetricsPort,
    PinChainId,
    PinCodeHash,
    PinDeployment,
    PinLedger,
    PinRegistry,
    metrics_overrides,
)
from secureflow.api.cli.settle import settle_app
from secureflow.ledger.errors import ConfigurationError
from secureflow.ledger.text import plural

if TYPE_CHECKING:
    from secureflow.compute.worker.trust import QueueGuard


class LogFormat(str, Enum):
    """How `secureflow api` writes its logs."""

    text = "text"
    json = "json"


app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Blockchain-audited ledger for SecretFlow jobs."
)
contracts_app = typer.Typer(no_args_is_help=True, help="Solidity sources and compiled artifacts.")
db_app = typer.Typer(no_args_is_help=True, help="The ledger database.")
app.add_typer(contracts_app, name="contracts")
audit_app = typer.Typer(no_args_is_help=True, help="Audit the ledger against the chain.")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
audit_app.command("search")(audit_search)
app.add_typer(settle_app, name="settle")
app.add_typer(job_app, name="job")
app.add_typer(model_app, name="model")
app.add_typer(members_app, name="members")
app.command()(friendly_errors(doctor))


def _sigterm_as_ctrl_c() -> None:
    """SIGTERM (systemd, containers, CI) stops a foreground command as Ctrl-C does: the ``finally`` blocks
    run and stop what the command started (anvil runs in its own process group and would outlive it)."""
    import signal

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)


@app.command()
@friendly_errors
def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="where to keep the demo's DB, logs and audit trail")
    ] = None,
    keep_chain: Annotated[bool, typer.Option(help="keep anvil running after the demo")] = False,
) -> None:
    """Run a two-party job end to end on a local anvil and print its audit trail read back from the chain."""
    from secureflow.api.dev.demo import run_demo

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    workdir = workdir or Path(".secureflow") / f"demo-{stamp}"
    started = time.monotonic()
    _sigterm_as_ctrl_c()
    result = run_demo(console, workdir, keep_chain=keep_chain)
    console.print(
        f"[bold green]demo finished[/] in {time.monotonic() - started:.1f}s: job {result.job_id}, "
        f"{result.verified}/{plural(result.records, 'record')} verified on chain"
    )
    if result.verified != result.records:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def algorithms(
    json_output: Annotated[
        bool, typer.Option("--json", help="every algorithm with its parameter JSON schema")
    ] = False,
) -> None:
    """List the compute algorithms: roles, what each reveals to whom, parameters."""
    import json

    from rich.table import Table

    from secureflow.compute.registry import describe_algorithms

    described = describe_algorithms()
    if json_output:
        print(json.dumps(described, indent=2))
        return
    table = Table(title=f"{len(described)} algorithms")
    table.add_column("name", no_wrap=True)  # names are what a manifest must spell: never cut
    for column in ("summary", "reveals"):
        table.add_column(column)
    for algo in described:  # text, not markup: "[0, 1]" in a summary stays
        table.add_row(
            escape(str(algo["name"])),
            escape(str(algo.get("summary", ""))),
            escape(str(algo.get("reveals", ""))),
        )
    console.print(table)


@app.command()
@friendly_errors
def deploy(
    rpc_url: Annotated[str, typer.Option(envvar="SECUREFLOW_RPC_URL", help="JSON-RPC endpoint")],
    chain_id: Annotated[
        int, typer.Option(envvar="SECUREFLOW_CHAIN_ID", help="expected chain id (refused if different)")
    ],
    out: Annotated[
        Path, typer.Option(envvar="SECUREFLOW_DEPLOYMENT", help="deployment file to write")
    ] = Path(".secureflow/deployment.json"),
    admin: Annotated[str | None, typer.Option(help="admin of the registry (default: the deployer)")] = None,
    poa: Annotated[
        bool, typer.Option(envvar="SECUREFLOW_POA", help="QBFT/IBFT node (extraData middleware)")
    ] = False,
    gas_price: Annotated[
        int, typer.Option(envvar="SECUREFLOW_GAS_PRICE", help="legacy gas price in wei")
    ] = 0,
    force: Annotated[bool, typer.Option(help="replace an existing deployment file")] = False,
) -> None:
    """Deploy the contracts with the key in SECUREFLOW_DEPLOYER_KEY and write the deployment file."""
    import os

    from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
    from secureflow.ledger.deploy import deploy_contracts, write_deployment
    from secureflow.ledger.nonces import ChainNonceSource

    if out.exists() and not force:  # checked before any transaction is sent
        raise CliError(
            f"{out} exists: it may be the deployment your members and auditors pinned",
            hint="pass --force to replace it, or write to another file with --out",
        )
    key = os.environ.get("SECUREFLOW_DEPLOYER_KEY")
    if not key:
        raise ConfigurationError(
            "SECUREFLOW_DEPLOYER_KEY is not set", hint="export the deployer's private key"
        )
    client = ChainClient(
        ChainConfig(rpc_url=rpc_url, expected_chain_id=chain_id, poa=poa, gas_price=gas_price)
    )
    client.check()
    sender = TransactionSender(client, key, ChainNonceSource(client.w3))
    deployment = deploy_contracts(client, sender, admin=admin)
    write_deployment(deployment, out, overwrite_other_chain=True)  # --force was checked above
    for name, entry in deployment.contracts.items():
        console.print(f"{name:<20} {entry.address}  block {entry.block_number}  code hash {entry.code_hash}")
    console.print(f"deployment (chain {deployment.chain_id}) written to {escape(str(out))}")
    console.print(f"auditors pin it: secureflow verify FILE --rpc-url URL --deployment {escape(str(out))}")


@app.command()
@friendly_errors
def chain(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8545,
    block_time: Annotated[float | None, typer.Option(help="seconds per block (default: automine)")] = None,
) -> None:
    """Run a dev chain (anvil configured like a Quorum node) in the foreground until Ctrl-C or SIGTERM."""
    from eth_account import Account

    from secureflow.ledger.devchain import DEV_PRIVATE_KEYS, DevChain

    _sigterm_as_ctrl_c()
    dev = DevChain(port=port, block_time=block_time).start()
    console.print(
        f"anvil (Berlin, gas price 0, chain id {dev.chain_id}) at {escape(dev.rpc_url)}; Ctrl-C stops it"
    )
    console.print("dev accounts (PUBLIC test keys, known to everyone: never use them on a real network):")
    for index, key in enumerate(DEV_PRIVATE_KEYS):
        console.print(f"  ({index}) {Account.from_key(key).address}  private key {key}")
    console.print("e.g. export SECUREFLOW_DEPLOYER_KEY=<key (0)> before `secureflow deploy`")
    try:
        while dev.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        dev.stop()


@app.command()
@friendly_errors
def up(
    port: Annotated[int, typer.Option(help="port of the API on 127.0.0.1")] = 8000,
    workdir: Annotated[
        Path | None, typer.Option(help="where the DB, chain state, anvil log and deployment go")
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="set the previous run's DB, chain state and deployment aside; start anew"
        ),
    ] = False,
) -> None:
    """Embedded stack: anvil + contracts + SQLite + anchoring worker + API; prints the URL and keys.

    Run again on the same workdir, it goes on with the previous run's chain state, DB and deployment."""
    from secureflow.api.server.listen import ensure_port_free

    # before the stack starts (chain, contracts, party workers): fail at once on what would stop it later
    if workdir is not None and workdir.exists() and not workdir.is_dir():
        raise CliError(f"--workdir {workdir} is a file, not a folder", hint="name a folder (it is created)")
    ensure_port_free("127.0.0.1", port, setting="--port")
    from secureflow.api.dev.up import run_up

    _sigterm_as_ctrl_c()
    run_up(port, workdir=workdir, echo=console.print, fresh=fresh)


@app.command()
@friendly_errors
def consortium(
    port: Annotated[int, typer.Option(help="port of the API on 127.0.0.1")] = 8000,
    workdir: Annotated[
        Path | None, typer.Option(help="where the DB, deployment, node folders and logs go")
    ] = None,
    redis_url: Annotated[
        str, typer.Option(help="the Redis of the job queue and of the nodes' work")
    ] = "redis://127.0.0.1:6379/0",
) -> None:
    """Three members on their own nodes (127.0.0.2-4), a coordinator, the API and anvil; prints keys."""
    from secureflow.api.dev.consortium import run_consortium

    _sigterm_as_ctrl_c()
    run_consortium(port, workdir=workdir, redis_url=redis_url, echo=console.print)


@app.command()
@friendly_errors
def api(
    with_worker: Annotated[bool, typer.Option(help="also run the anchoring worker in-process")] = False,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            envvar="SECUREFLOW_LOG_FORMAT",
            help="text: one short line per event (default); json: one JSON object per line",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The API against SECUREFLOW_DATABASE_URL / RPC_URL / DEPLOYMENT (SECUREFLOW_API_HOST / API_PORT)."""
    import os

    from secureflow.api.server.serve import run_api

    if log_format is not None:  # the API's processes read it from the environment (several workers too)
        os.environ["SECUREFLOW_LOG_FORMAT"] = log_format.value
    run_api(with_worker=with_worker, echo=console.print)


@app.command()
@friendly_errors
def node(
    party: Annotated[str, typer.Option(help="this member's party name (as in the job manifests)")],
    data_dir: Annotated[
        Path, typer.Option(help="the party folder: data/, models/, secrets/member.key (created if missing)")
    ],
    redis_url: Annotated[
        str, typer.Option(envvar="SECUREFLOW_COMPUTE_REDIS_URL", help="the job queue, redis://host:6379/0")
    ],
    host: Annotated[
        str, typer.Option(help="the address the other parties' workers reach this host at")
    ] = "127.0.0.1",
    prefix: Annotated[
        str, typer.Option(envvar="SECUREFLOW_COMPUTE_REDIS_PREFIX", help="key prefix of the job queue")
    ] = "secureflow",
    log_level: Annotated[str, typer.Option(help="log level of the node")] = "INFO",
    max_sessions: Annotated[
        int, typer.Option(min=1, max=64, help="jobs this node runs at once (one SecretFlow worker each)")
    ] = 4,
    warm_worker: Annotated[
        bool,
        typer.Option(
            help="keep a spare party worker with SecretFlow imported, so a job's first step does not wait "
            "for the import (~6-9 s; the spare holds ~0.3-0.5 GB while it waits)"
        ),
    ] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar="SECUREFLOW_NODE_METRICS_PORT",
            min=0,
            max=65_535,
            help="serve /metrics, /healthz and /readyz on this port (0: any free port; unset: not served)",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(envvar="SECUREFLOW_NODE_METRICS_HOST", help="address to serve the metrics on")
    ] = "127.0.0.1",
    rpc_url: Annotated[
        str | None,
        typer.Option(
            envvar="SECUREFLOW_RPC_URL", help="a chain node's JSON-RPC URL (coordinator roles, job consents)"
        ),
    ] = None,
    deployment: Annotated[
        Path | None,
        typer.Option(
            envvar="SECUREFLOW_DEPLOYMENT",
            help="the deployment file this node pins (its registry's coordinators, its ledger's jobs)",
        ),
    ] = None,
    trust_redis: Annotated[
        bool,
        typer.Option(
            "--trust-redis",
            help="tests and single-host development only: act on unsigned queue entries, no chain checks",
        ),
    ] = False,
    log_retention_days: Annotated[
        float,
        typer.Option(
            envvar="SECUREFLOW_LOG_RETENTION_DAYS",
            min=0.001,
            help="days to keep job logs and finished sessions' folders (pruned at start, then hourly)",
        ),
    ] = 30.0,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            envvar="SECUREFLOW_NODE_TLS_CERT",
            help="this node's TLS certificate (PEM) for the links to the other parties "
            "(default: a new self-signed one at every start, in DATA_DIR/secrets/tls/)",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(envvar="SECUREFLOW_NODE_TLS_KEY", help="the private key of --tls-cert (PEM, mode 0600)"),
    ] = None,
    no_tls: Annotated[
        bool,
        typer.Option(
            "--no-tls",
            help="run the SecretFlow/SPU links as plain TCP (anyone who reaches the ports can connect; "
            "measurements only)",
        ),
    ] = False,
) -> None:
    """Distributed mode: run this member's party workers next to its data, taking work from its own queue.

    The node acts only on queue entries signed by a coordinator of the deployment it pins (--rpc-url,
    --deployment), and on a job's requests only once the job is open on chain with this member's consent.
    The links between the parties' workers run over mutual TLS that admits the job's parties only.
    """
    from secureflow.compute.worker.node import run_node
    from secureflow.compute.worker.tls import TlsIdentity, load_identity, make_identity

    if (tls_cert is None) != (tls_key is None):
        raise CliError(
            "--tls-cert and --tls-key go together", hint="pass both, or neither (a new certificate)"
        )
    if no_tls and tls_cert is not None:
        raise CliError("--no-tls and --tls-cert contradict each other", hint="pass one of them")
    tls: TlsIdentity | None = None
    if tls_cert is not None and tls_key is not None:
        tls = load_identity(tls_cert, tls_key)
    elif not no_tls:
        tls = make_identity(data_dir / "secrets" / "tls", party)

    guard = None
    if not trust_redis:
        if rpc_url is None or deployment is None:
            raise CliError(
                "the node needs the chain to check who may instruct it",
                hint="pass --rpc-url URL and --deployment FILE (SECUREFLOW_RPC_URL, SECUREFLOW_DEPLOYMENT)",
            )
        guard = _queue_guard(party, data_dir, rpc_url, deployment)
    try:
        run_node(
            party,
            data_dir,
            redis_url,
            host=host,
            prefix=prefix,
            log_level=log_level,
            max_sessions=max_sessions,
            metrics_host=metrics_host,
            metrics_port=metrics_port,
            guard=guard,
            log_retention_days=log_retention_days,
            tls=tls,
            warm_worker=warm_worker,
        )
    finally:  # a key the node made for this run only is not left behind (the operator's stays)
        if tls is not None and tls_key is None:
            tls.key_path.unlink(missing_ok=True)


def _queue_guard(party: str, data_dir: Path, rpc_url: str, deployment: Path) -> QueueGuard:
    """The node's checks: coordinators of the pinned registry (narrowed by its policy), jobs of its ledger."""
    from secureflow.compute.policy import load_policy
    from secureflow.compute.worker.trust import QueueGuard, member_address
    from secureflow.ledger.node_authority import open_authority

    policy = load_policy(data_dir)
    authority = open_authority(rpc_url, deployment)
    ledger = authority.ledger.address
    if policy.ledger is not None and policy.ledger.lower() != ledger.lower():
        raise CliError(
            f"the policy pins AuditLedger {policy.ledger}, but the deployment's is {ledger}",
            hint="pass the deployment file of the ledger the policy pins",
        )
    from eth_utils.address import to_checksum_address

    address = member_address(data_dir)
    member = to_checksum_address(address)
    if not authority.registry.is_active_member(member):
        raise CliError(
            f"the member key of party {party} ({member}, in {data_dir / 'secrets' / 'member.key'}) is not an "
            f"active member of the registry {authority.registry.address}: the other parties would refuse "
            "its consents and signatures",
            hint=f"the registry's admin adds it: secureflow members add {member} (or, if it was suspended, "
            f"secureflow members reinstate {member})",
        )
    return QueueGuard(party, address, authority, coordinators=policy.coordinators)


@app.command()
@friendly_errors
def coordinator(
    log_level: Annotated[str, typer.Option(help="log level of the coordinator")] = "INFO",
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = None,
) -> None:
    """Run the jobs the API queued (SECUREFLOW_BROKER_URL) on the members' nodes until SIGTERM/Ctrl-C."""
    from secureflow.api.coordinator.settings import CoordinatorSettings
    from secureflow.api.coordinator.tasks import run_coordinator

    overrides = metrics_overrides(metrics_port, metrics_host)
    run_coordinator(CoordinatorSettings(**overrides), log_level=log_level)  # type: ignore[arg-type]


@app.command("anchor-worker")
@friendly_errors
def anchor_worker(
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = None,
) -> None:
    """Run the anchoring worker and event indexer until SIGTERM/Ctrl-C (settings from SECUREFLOW_*)."""
    import signal
    import threading

    from secureflow.ledger.metrics_server import MetricsServer, serve_metrics
    from secureflow.ledger.runtime import build_runtime
    from secureflow.ledger.settings import LedgerSettings

    overrides = metrics_overrides(metrics_port, metrics_host)
    settings = LedgerSettings(**overrides)  # type: ignore[arg-type]
    runtime = build_runtime(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server: MetricsServer | None = None
    try:
        if settings.metrics_port is not None:
            worker = runtime.worker
            server = serve_metrics(
                worker.anchorer.metrics.registry,
                settings.metrics_host,
                settings.metrics_port,
                worker.readiness,
            )
            console.print(f"metrics on {server.url}/metrics (health: /healthz, readiness: /readyz)")
        console.print(
            f"anchoring to {runtime.deployment.address_of('AuditLedger')} on chain "
            f"{runtime.deployment.chain_id} from {runtime.worker.anchorer.sender.address}; SIGTERM stops "
            "after the current pass"
        )
        runtime.worker.run(stop)
        console.print(f"stopped; records by status: {runtime.store.count_records_by_status()}")
    finally:
        if server is not None:
            server.close()
        runtime.close()


@app.command()
@friendly_errors
def verify(
    path: Annotated[Path, typer.Argument(help="a receipt.json or an audit bundle")],
    rpc: Annotated[
        str | None, typer.Option("--rpc-url", envvar="SECUREFLOW_RPC_URL", help="any node's JSON-RPC URL")
    ] = None,
    deployment: PinDeployment = None,
    ledger: PinLedger = None,
    code_hash: PinCodeHash = None,
    registry: PinRegistry = None,
    chain_id: PinChainId = None,
    min_confirmations: Annotated[int, typer.Option(min=0, help="blocks including the anchor's")] = 1,
    json_output: Annotated[
        bool, typer.Option("--json", help="print the verdict as JSON (every check, for scripts)")
    ] = False,
    old_rpc: Annotated[str | None, typer.Option("--rpc", hidden=True)] = None,  # the old spelling
) -> None:
    """Check a receipt or audit bundle against any node and the deployment you pin, without our DB or API.

    Nothing is taken from the file on trust: the contract it names must be the pinned ledger, a bundle's
    job header must be the chain's, and a bundle is VALID only for a whole job closed on chain.
    """
    from secureflow.ledger.verify import pin_from_options, verify_file

    rpc = old_rpc or rpc
    if not rpc:
        raise CliError(
            "no chain node to verify against", hint="pass --rpc-url URL (or set SECUREFLOW_RPC_URL)"
        )
    pin = pin_from_options(
        deployment=deployment, ledger=ledger, code_hash=code_hash, registry=registry, chain_id=chain_id
    )
    result = verify_file(path, rpc, pin, min_confirmations=min_confirmations)
    if json_output:
        verdict = result.receipt if result.receipt is not None else result.bundle
        document = {
            "path": str(path),
            "kind": "receipt" if result.receipt is not None else "bundle",
            "ok": result.ok,
            "summary": verdict.summary() if verdict is not None else "",
            "verdict": verdict.model_dump(mode="json") if verdict is not None else None,
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        for line in result.lines():
            console.print(line, markup=False, highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("reconcile")
@friendly_errors
def audit_reconcile(
    rpc_url: Annotated[str, typer.Option(envvar="SECUREFLOW_RPC_URL", help="JSON-RPC endpoint")],
    deployment: Annotated[Path, typer.Option(envvar="SECUREFLOW_DEPLOYMENT", help="deployment file")] = Path(
        ".secureflow/deployment.json"
    ),
    database_url: Annotated[str | None, typer.Option(envvar="SECUREFLOW_DATABASE_URL")] = None,
    stale_minutes: Annotated[float, typer.Option(min=0, help="pending longer than this is reported")] = 10.0,
    json_output: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    allow_empty: Annotated[
        bool, typer.Option(help="exit 0 for a store with no records (otherwise an empty store is an error)")
    ] = False,
) -> None:
    """Re-derive every stored record's leaf and check it against the chain (tampered, missing, unanchored).

    The database must exist (it is never created here); a store with no records is not reported clean.
    """
    from datetime import timedelta

    from secureflow.ledger.chain import ChainClient, ChainConfig
    from secureflow.ledger.contracts import AuditLedgerClient
    from secureflow.ledger.deploy import connect, load_deployment
    from secureflow.ledger.reconcile import reconcile
    from secureflow.ledger.store.sql import open_store

    deployed = load_deployment(deployment)
    client = ChainClient(ChainConfig(rpc_url=rpc_url, expected_chain_id=deployed.chain_id))
    client.check()
    with open_store(database_url, migrate=False, must_exist=True) as store:
        store.check()  # at the newest schema: this command only reads
        report = reconcile(
            store,
            AuditLedgerClient(connect(client, deployed, "AuditLedger")),
            stale_after=timedelta(minutes=stale_minutes),
        )
    if json_output:
        print(report.model_dump_json(indent=2))
    else:
        for line in report.lines():
            console.print(line, markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(1)
    if report.records_checked == 0 and not allow_empty:
        raise CliError(
            f"the ledger database holds no records: nothing was checked against {report.contract}",
            hint="point --database-url at the store of the deployment you audit, or pass --allow-empty",
        )


@contracts_app.command("compile")
@friendly_errors
def contracts_compile() -> None:
    """Recompile contracts/src with solcjs (berlin) and rewrite contracts/artifacts."""
    from secureflow.ledger.compiler import write_artifacts

    for path in write_artifacts():
        console.print(f"wrote {escape(str(path))}")


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(
    url: Annotated[
        str | None,
        typer.Option(
            "--database-url", envvar="SECUREFLOW_DATABASE_URL", help="SQLAlchemy URL of the database"
        ),
    ] = None,
    old_url: Annotated[str | None, typer.Option("--url", hidden=True)] = None,  # the old spelling
) -> None:
    """Create or migrate the ledger database to the newest schema (a SQLite file's folder must exist)."""
    from sqlalchemy.engine import make_url

    from secureflow.ledger.store.engine import mask_url, resolve_url
    from secureflow.ledger.store.sql import open_store

    resolved = resolve_url(old_url or url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().parent
        if not folder.is_dir() and folder != Path(".secureflow").resolve():
            raise CliError(
                f"the folder {folder} does not exist", hint="create it first, or fix --database-url"
            )
    with open_store(resolved, migrate=False) as store:
        before = store.schema_revision()
        store.migrate()
        after = store.schema_revision()
    where = mask_url(resolved)
    if before == after:
        console.print(f"{escape(where)}: already at the newest schema ({after})")
    else:
        console.print(f"{escape(where)}: migrated from {before or 'empty'} to {after}")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
