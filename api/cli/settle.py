"""``secureflow settle``: contribution weights and revenue settlement from the command line.

Every write goes through the ledger's settlement service
(`secureflow.ledger.settlement.service.SettlementService`), the one the API's
``/v1/settlements`` routes call, so the CLI applies the API's rules: who may
propose and approve, which step the contribution record takes, what an
approval must name, and each transaction is prepared for the sender's own
address, simulated, signed here with ``SECUREFLOW_MEMBER_KEY``, checked again
and then broadcast. Proposals and approvals are files here
(`secureflow.ledger.settlement.book.ProposalFiles`), rows in the API.

The flow of one job:

0. (leave-one-out weights) ``measure MANIFEST.json --data-dir DIR --out inputs.json``: run the job's
   coalitions (all parties, then each party's features left out) as recorded jobs on the local
   SecretFlow workers (`secureflow.compute.contribution`) and write the metrics as the inputs of ``propose``.

1. ``propose JOB_ID --inputs inputs.json --out proposal.json``: compute the weights by the inputs'
   method (`secureflow.ledger.settlement.contribution`), write the proposal file for the members to review
   and record the contribution step in the ledger outbox; the anchoring worker then anchors the record.
   The step is the one after the job's last step (never chosen by the caller); a job submitted through
   the API (its manifest is in this database) must have completed. Run by whoever holds the ledger
   database (the operator, as an API admin); the same inputs again (``--force``) record nothing new.
2. ``approve proposal.json`` as each member (key in ``SECUREFLOW_MEMBER_KEY``), once the record is
   confirmed: check the proposal against its inputs and against the anchored record, then sign the
   EIP-712 approval into a file beside the proposal (``--out`` to choose it) or approve on chain
   (``--on-chain``).
3. ``set-weights proposal.json`` as a party: the record's proof comes from the ledger store, the
   approvals from the signature files (``--approval``, default: every ``<proposal>.approval.*.json``
   beside it, each verified) and from on-chain approvals.
4. ``deposit JOB_ID AMOUNT [--token ADDRESS]`` (anyone), ``balances``, ``withdraw`` (each member pulls
   its share), ``history``.

Settings come from ``SECUREFLOW_RPC_URL``, ``SECUREFLOW_CHAIN_ID``, ``SECUREFLOW_DEPLOYMENT`` and
``SECUREFLOW_DATABASE_URL`` (`secureflow.ledger.settings.LedgerSettings`); the signing key from
``SECUREFLOW_MEMBER_KEY``. Every `LedgerError` (settlement errors included) prints as one red line
with what to do. Register on the root CLI with ``app.add_typer(settle_app, name="settle")``.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from secureflow.api.cli.errors import CliError, friendly_errors
from secureflow.api.cli.errors import plain_console as console
from secureflow.ledger.errors import ConfigurationError

if TYPE_CHECKING:  # the chain stack (web3) takes seconds to import: commands import it when they run
    from secureflow.compute.manifest import JobManifest
    from secureflow.ledger.chain import ChainClient, TransactionSender
    from secureflow.ledger.contracts import AuditLedgerClient
    from secureflow.ledger.deploy import Deployment
    from secureflow.ledger.settings import LedgerSettings
    from secureflow.ledger.settlement.book import ProposalBook
    from secureflow.ledger.settlement.client import SettlementClient
    from secureflow.ledger.settlement.service import SettlementService, StepPlans
    from secureflow.ledger.settlement.transactions import (
        PreparedTransaction,
        SettlementTransactions,
        SubmittedTransaction,
    )
    from secureflow.ledger.store.sql import SqlLedgerStore

settle_app = typer.Typer(
    no_args_is_help=True, help="Contribution weights and revenue settlement of a job (on chain)."
)
F = TypeVar("F", bound=Callable[..., Any])


@settle_app.callback()
def _chain_settings(
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url", envvar="SECUREFLOW_RPC_URL", help="the chain node's JSON-RPC URL", show_default=False
        ),
    ] = None,
) -> None:
    """Contribution weights and revenue settlement of a job (on chain). Settings: SECUREFLOW_RPC_URL
    (or --rpc-url before the command), SECUREFLOW_CHAIN_ID, SECUREFLOW_DEPLOYMENT, SECUREFLOW_DATABASE_URL and
    the signing key SECUREFLOW_MEMBER_KEY_FILE (or SECUREFLOW_MEMBER_KEY)."""
    if rpc_url:  # every command below reads its settings from the environment (LedgerSettings)
        os.environ["SECUREFLOW_RPC_URL"] = rpc_url


MEMBER_KEY_ENV = "SECUREFLOW_MEMBER_KEY"
_WEI_PER_ETH = 10**18
_ETH = "0x" + "00" * 20  # the settlement contract's asset id of ETH (secureflow.ledger.settlement.client.ETH)
_NOT_A_PARTY_HINT = f"set {MEMBER_KEY_ENV} to the private key of one of the job's members"


# ------------------------------------------------------------------ errors


class SettleError(CliError):
    """A settlement command cannot go ahead."""

    hint = "see `secureflow settle --help` for the order of the steps"


class MissingApprovalsError(SettleError):
    """Some members have neither signed nor approved on chain."""

    hint = (
        "each listed member runs `secureflow settle approve PROPOSAL` (and passes the signature file with "
        "--approval) or `secureflow settle approve PROPOSAL --on-chain`"
    )


class WeightsStateError(SettleError):
    """The job's weights are (not) set, so the command does not apply."""

    hint = "check the job's settlement state with `secureflow settle history JOB_ID`"


class NothingToWithdrawError(SettleError):
    """The member's whole entitlement in this asset is withdrawn already."""

    hint = "wait for further deposits; `secureflow settle balances JOB_ID` shows what is releasable"


# ------------------------------------------------------------------ wiring


@dataclass
class _Chain:
    settings: LedgerSettings
    client: ChainClient
    deployment: Deployment
    settlement: SettlementClient
    ledger: AuditLedgerClient
    txs: SettlementTransactions
    sender: TransactionSender | None

    @property
    def address(self) -> str:
        if self.sender is None:
            raise ConfigurationError(f"{MEMBER_KEY_ENV} is not set", hint="export the member's private key")
        return self.sender.address


def _member_key() -> str:
    from eth_account import Account

    key = os.environ.get(MEMBER_KEY_ENV, "").strip()
    key_file = os.environ.get(f"{MEMBER_KEY_ENV}_FILE", "").strip()
    if not key and key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the key file {key_file} ({MEMBER_KEY_ENV}_FILE): {exc.strerror or exc}",
                hint=f"point {MEMBER_KEY_ENV}_FILE at the member's key file, or set {MEMBER_KEY_ENV}",
            ) from None
    if not key:
        raise ConfigurationError(
            f"{MEMBER_KEY_ENV} is not set", hint="export the private key of the account that signs/sends"
        )
    try:
        Account.from_key(key)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"{MEMBER_KEY_ENV} is not a private key", hint="give 0x + 64 hex digits"
        ) from None
    return key


def _chain(*, with_key: bool) -> _Chain:
    from secureflow.ledger.chain import ChainClient, TransactionSender
    from secureflow.ledger.contracts import AuditLedgerClient
    from secureflow.ledger.deploy import connect, load_deployment
    from secureflow.ledger.nonces import ChainNonceSource
    from secureflow.ledger.settings import LedgerSettings
    from secureflow.ledger.settlement.client import SettlementClient
    from secureflow.ledger.settlement.transactions import SettlementTransactions

    settings = LedgerSettings()
    deployment = load_deployment(settings.deployment)
    client = ChainClient(settings.chain_config())
    client.check()
    sender = TransactionSender(client, _member_key(), ChainNonceSource(client.w3)) if with_key else None
    contract = connect(client, deployment, "Settlement")
    ledger = AuditLedgerClient(connect(client, deployment, "AuditLedger"))
    txs = SettlementTransactions(client, contract, ledger)
    return _Chain(settings, client, deployment, SettlementClient(contract, sender), ledger, txs, sender)


@contextmanager
def _store(settings: LedgerSettings) -> Iterator[SqlLedgerStore]:
    from secureflow.ledger.store.sql import open_store

    store = open_store(settings.database_url)
    try:
        yield store
    finally:
        store.close()


def _plans(store: SqlLedgerStore) -> StepPlans | None:
    """The API's stored manifests when this database holds the API's tables (the API ran on it), so that a
    job the compute engine runs waits for its completion here as through the API; else None (no plans)."""
    from secureflow.api.server.db import ApiDb

    return ApiDb.if_present(store.engine)


def _service(
    chain: _Chain, store: SqlLedgerStore | None = None, book: ProposalBook | None = None
) -> SettlementService:
    """The settlement service over the chain, and for proposals and approvals the ledger store (receipts
    built from it) and the proposal and approval files."""
    from secureflow.ledger.receipts import Receipt, build_receipt
    from secureflow.ledger.settlement.service import SettlementService

    if store is None:
        return SettlementService(chain.txs)
    ledger_store = store

    def receipt_of(job_id: str, seq: int) -> Receipt:
        return build_receipt(ledger_store, chain.deployment.chain_id, chain.ledger.address, job_id, seq)

    return SettlementService(chain.txs, store=store, receipts=receipt_of, book=book, plans=_plans(store))


def _send(service: SettlementService, job_id: str, prepared: PreparedTransaction) -> SubmittedTransaction:
    """Sign ``prepared`` with the member's key and submit it through the service (checked, simulated
    again, broadcast); raise unless it was mined."""
    from eth_account import Account

    signed = Account.sign_transaction(prepared.transaction.model_dump(), _member_key())
    done = service.submit(job_id, bytes(signed.raw_transaction), prepared.sender)
    if done.status != "succeeded":
        raise SettleError(
            f"{prepared.function} transaction {done.tx_hash} is broadcast but not mined yet",
            hint="see whether it is mined later with `secureflow settle history JOB_ID`",
        )
    return done


def _tx(done: SubmittedTransaction) -> str:
    return f"tx {done.tx_hash}, block {done.block_number}"


def _job_bytes(job_id: str) -> bytes:
    text = job_id.lower()
    if not (text.startswith("0x") and len(text) == 66):
        raise SettleError(f"job id {job_id!r} is not 0x + 64 hex digits")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise SettleError(f"job id {job_id!r} is not 0x + 64 hex digits") from None


def _asset(token: str | None) -> str:
    from eth_utils.address import is_address, to_checksum_address

    if token is None:
        return _ETH
    if not is_address(token) or int(token, 16) == 0:
        raise SettleError(f"{token!r} is not a token address", hint="give the ERC-20 contract's 0x address")
    return str(to_checksum_address(token))


def _asset_name(asset: str) -> str:
    return "ETH" if int(asset, 16) == 0 else f"token {asset}"


def _amount(asset: str, value: int) -> str:
    """``"7 wei (0.000000000000000007 ETH)"`` or ``"7 of token 0x..."``."""
    if int(asset, 16) != 0:
        return f"{value} of token {asset}"
    ether = Decimal(value) / Decimal(_WEI_PER_ETH)
    return f"{value} wei ({ether.normalize():f} ETH)"


def _plain(asset: str, value: int) -> str:
    return _amount(asset, value) if int(asset, 16) == 0 else str(value)


def parse_amount(text: str, *, token: bool) -> int:
    """``"1.5ether"``, ``"2gwei"``, ``"1000"`` (wei) for ETH; a whole number of units for a token."""
    raw = text.strip().lower().replace("_", "")
    units = {"ether": 10**18, "eth": 10**18, "gwei": 10**9, "wei": 1}
    factor = 1
    for suffix, scale in units.items():
        if raw.endswith(suffix):
            if token:
                raise SettleError(f"amount {text!r}: token amounts are whole units, without a unit suffix")
            raw, factor = raw[: -len(suffix)].strip(), scale
            break
    try:
        with localcontext() as exact:  # the default 28 digits would round a large amount silently
            exact.prec = len(raw) + 40
            value = Decimal(raw) * factor
    except ArithmeticError:  # InvalidOperation (not a number), Overflow (an absurd exponent)
        raise SettleError(f"amount {text!r} is not a number (e.g. 1000, 2gwei, 1.5ether)") from None
    if value != value.to_integral_value() or value <= 0:
        raise SettleError(f"amount {text!r} must be a positive whole number of wei or token units")
    if value > 2**256 - 1:
        raise SettleError(f"amount {text!r} does not fit uint256")
    return int(value)


def _require_weights(chain: _Chain, job: bytes) -> None:
    if not chain.settlement.weights_of(job).is_set:
        raise WeightsStateError(
            f"the weights of job 0x{job.hex()} are not set yet",
            hint="propose, approve and `secureflow settle set-weights` first; deposits wait for the weights",
        )


# ------------------------------------------------------------------ commands


ProposalArg = Annotated[
    Path, typer.Argument(metavar="PROPOSAL", help="the proposal JSON written by `settle propose`")
]
JobArg = Annotated[str, typer.Argument(help="the job id (0x + 64 hex digits)")]
TokenOpt = Annotated[str | None, typer.Option(help="ERC-20 token address (default: ETH)")]


@settle_app.command()
@friendly_errors
def propose(
    job_id: JobArg,
    inputs: Annotated[
        Path, typer.Option(help="contribution inputs JSON (method data_share or leave_one_out)")
    ],
    out: Annotated[Path, typer.Option(help="where to write the proposal JSON")] = Path("proposal.json"),
    force: Annotated[bool, typer.Option(help="replace an existing proposal file")] = False,
) -> None:
    """Compute the weights, write the proposal file and record the contribution step in the outbox (after
    the job's last step)."""
    from secureflow.ledger.settlement.book import ProposalFiles
    from secureflow.ledger.settlement.contribution import load_inputs
    from secureflow.ledger.settlement.service import OPERATOR

    _job_bytes(job_id)
    if out.exists() and not force:
        raise SettleError(
            f"{out} exists already", hint="choose another --out, or pass --force to replace the file"
        )
    contribution_inputs = load_inputs(inputs)
    chain = _chain(with_key=False)
    with _store(chain.settings) as store:
        service = _service(chain, store, ProposalFiles(out, replace=force))
        service.job_parties(job_id)  # a job that is not on chain is named so before anything else
        done = service.propose(job_id, contribution_inputs, OPERATOR)
    proposal = done.stored.proposal
    console.print(f"contribution of job {proposal.job_id} by {proposal.method}:")
    for member, bps in proposal.shares().items():
        console.print(f"  {member}  {bps:>5} bps  ({bps / 100:.2f}%)")
    if proposal.fallback == "equal_split":
        console.print("  (no party changes the metric: equal split)")
    console.print(f"weights hash {proposal.weights_hash}")
    if done.replayed:
        console.print(
            f"proposed before with these inputs as step {proposal.seq} (its record is {done.record_status}); "
            f"proposal in {out}"
        )
    else:
        console.print(f"recorded as step {proposal.seq} (pending anchoring); proposal written to {out}")
    console.print(f"wait until it is confirmed: secureflow job status {proposal.job_id} --follow")
    console.print(f"then each member of the job: secureflow settle approve {shlex.quote(str(out))}")


@settle_app.command()
@friendly_errors
def measure(
    manifest_path: Annotated[
        Path,
        typer.Argument(
            metavar="MANIFEST", help="job manifest JSON: training, secure_predict and evaluation steps"
        ),
    ],
    data_dir: Annotated[
        Path, typer.Option(help="the local engine's party folders (<data-dir>/<party>/data, secrets, ...)")
    ],
    out: Annotated[Path, typer.Option(help="where to write the leave-one-out inputs JSON")] = Path(
        "inputs.json"
    ),
    metric: Annotated[
        str | None, typer.Option(help="evaluation metric (default: auc, or r2_score for regression_eval)")
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="leave_one_out (every party, then without each party's features) or shapley (exact "
            "Shapley values over every set of parties holding the label party; at most 4 parties)"
        ),
    ] = "leave_one_out",
    force: Annotated[bool, typer.Option(help="replace an existing inputs file")] = False,
) -> None:
    """Measure each party's contribution: run the manifest's training and evaluation for each coalition of
    parties' features (leave one party out, or every coalition for Shapley values) as recorded jobs on the
    local SecretFlow workers, and write the inputs file that `settle propose --inputs` takes. Each
    coalition job is opened on chain by SECUREFLOW_MEMBER_KEY's node (a party) only after every party's
    own worker consented to it under its policy."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from secureflow.api.coordinator.opening import open_job_on_chain
    from secureflow.compute.contribution import METHODS, CoalitionJob, check_manifest, measure_leave_one_out
    from secureflow.compute.contribution import Progress as Step
    from secureflow.compute.errors import ComputeError, ConsentRefusedError
    from secureflow.compute.worker.engine import Engine
    from secureflow.ledger.contracts import AuditLedgerClient
    from secureflow.ledger.deploy import connect
    from secureflow.ledger.model_anchors import ChainModelAnchors
    from secureflow.ledger.recorder import OutboxRecorder
    from secureflow.ledger.settlement.errors import NotAPartyError

    if method not in METHODS:
        raise SettleError(f"unknown method {method!r}", hint=f"--method {' or '.join(METHODS)}")
    if out.exists() and not force:
        raise SettleError(f"{out} exists already", hint="choose another --out, or pass --force")
    try:
        job_manifest = check_manifest(manifest_path.read_bytes(), metric, method)  # before SecretFlow
    except OSError as exc:
        raise SettleError(f"cannot read the manifest {manifest_path}: {exc.strerror}") from None
    except ComputeError as exc:
        raise SettleError(f"{exc.error_class}: {exc.args[0]}", hint=exc.hint or "fix the manifest") from None
    missing = [p for p in job_manifest.party_names() if not (data_dir / p / "data").is_dir()]
    if missing:
        raise SettleError(
            f"no party folder {', '.join(str(data_dir / p / 'data') for p in missing)}",
            hint="give --data-dir the folder holding each party's folder (as `secureflow up` prints it)",
        )
    chain = _chain(with_key=True)
    me = chain.address
    if me.lower() not in {p.address.lower() for p in job_manifest.parties}:
        raise NotAPartyError(f"{me} is not a party of the manifest: only a party runs its coalitions")
    ledger_contract = connect(chain.client, chain.deployment, "AuditLedger")
    engine = Engine(job_manifest.party_names(), data_dir, spu_protocol=job_manifest.spu_protocol)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    live = console.is_terminal  # a bar on a terminal; piped or logged, one line per step instead
    starting = "starting the SecretFlow party workers (SecretFlow import, links; ~10-30 s) …"
    with _store(chain.settings) as store, Progress(*columns, console=console, disable=not live) as bar:
        task = bar.add_task(starting, total=None)
        if not live:
            console.print(starting)

        def show(step: Step) -> None:
            doing = f": {step.algorithm}" if step.algorithm else ""
            coalition = f"coalition {step.index + 1}/{step.coalitions} ({step.coalition})"
            bar.update(
                task, description=coalition + doing, completed=step.completed_steps, total=step.total_steps
            )
            if not live:
                done = f"{step.completed_steps}/{step.total_steps} steps"
                what = {"started": "started", "finished": "done"}.get(
                    step.event, f"{step.algorithm} recorded"
                )
                console.print(f"{coalition} {what} ({done})")

        recorder = OutboxRecorder(store)

        def open_coalition(job: CoalitionJob) -> None:
            """Each party's own worker checks the coalition job against its policy and signs its consent;
            the creator's (this member's) worker signs createJob: the job opens on chain with every
            party's consent, as a job submitted through the API (`api.coordinator.opening`)."""
            parties = [job.manifest.address_of(p) for p in job.manifest.party_names()]
            recorder.open_job(job.job_id, job.manifest_hash, job.creator, parties, salt=job.salt)
            stored = store.get_job(job.job_id)
            assert stored is not None  # noqa: S101 - stored just above
            try:
                open_job_on_chain(
                    engine,
                    chain.client,
                    ledger_contract,
                    store,
                    stored,
                    job.manifest.model_dump(mode="json"),
                    job.job_secret,
                    gas_price=chain.settings.gas_price,
                )
            except ConsentRefusedError as exc:  # not on chain: the stored job never runs
                refused = f"the parties' nodes refused it: {exc}"
                store.update_job(job.job_id, status="rejected", reason=refused)
                raise

        try:
            engine.start()
            measured = measure_leave_one_out(
                engine,
                job_manifest,
                recorder,
                progress=show,
                creator=me,
                model_anchors=ChainModelAnchors(AuditLedgerClient(ledger_contract)),
                method=method,  # checked against METHODS above
                open_job=open_coalition,
            )
        except ComputeError as exc:
            raise SettleError(
                f"{exc.error_class}: {exc.args[0]}", hint=exc.hint or "see the message"
            ) from None
        finally:
            engine.shutdown()
        jobs = _completed_jobs_of(store, job_manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(measured.to_inputs().model_dump_json(indent=2) + "\n", encoding="utf-8")
    console.print(
        f"{measured.metric} by coalition ({measured.training_algorithm}, label party {measured.label_party}):"
    )
    for c in measured.coalitions:
        if c.metric is None:
            console.print(f"  {c.coalition:<16} no feature: no model, no job (value {measured.baseline})")
            continue
        console.print(
            f"  {c.coalition:<16} {measured.metric} {c.metric:.6f}  job {c.job_id}  ({c.seconds:.1f}s)"
        )
    console.print(f"inputs written to {out}; the coalitions' steps are in the outbox, pending anchoring")
    if len(jobs) == 1:  # the job of this manifest submitted through the API: the one to settle
        console.print(f"next: secureflow settle propose {jobs[0]} --inputs {shlex.quote(str(out))}")
        return
    if jobs:
        console.print(f"completed jobs of this manifest: {', '.join(jobs)}")
    console.print(
        f"next: secureflow settle propose JOB_ID --inputs {shlex.quote(str(out))}  (JOB_ID: the job whose "
        "revenue these weights share, as `secureflow job submit` printed it)"
    )


def _completed_jobs_of(store: SqlLedgerStore, manifest: JobManifest) -> list[str]:
    """The completed jobs submitted through the API (whose manifests are in this database) with this
    manifest: the jobs a measurement of it is for (the coalition jobs have no stored manifest)."""
    from secureflow.api.server.db import ApiDb
    from secureflow.compute.errors import ComputeError
    from secureflow.compute.manifest import JobManifest

    api = ApiDb.if_present(store.engine)
    if api is None:
        return []
    want = manifest.model_dump(mode="json")
    found = []
    for job in store.list_jobs(limit=1000):
        stored = api.get_manifest(job.job_id) if job.status == "completed" else None
        if stored is None:
            continue
        try:
            if JobManifest.parse(stored).model_dump(mode="json") == want:
                found.append(job.job_id)
        except ComputeError:
            continue
    return found


@settle_app.command()
@friendly_errors
def approve(
    proposal_path: ProposalArg,
    on_chain: Annotated[
        bool, typer.Option("--on-chain", help="approve by transaction instead of signing")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="signature file (default: beside the proposal)")] = None,
) -> None:
    """As a member (SECUREFLOW_MEMBER_KEY): check the proposal and its confirmed record, then approve."""
    from secureflow.ledger.settlement.approval import Approval, sign_approval
    from secureflow.ledger.settlement.book import ProposalFiles
    from secureflow.ledger.settlement.contribution import ContributionProposal
    from secureflow.ledger.settlement.errors import NotAPartyError

    proposal = ContributionProposal.load(proposal_path)
    proposal.verify()
    chain = _chain(with_key=True)
    me = chain.address
    if me.lower() not in {m.lower() for m in proposal.members}:
        raise NotAPartyError(
            f"{me} is not a member of this proposal (members: {', '.join(proposal.members)})",
            hint=_NOT_A_PARTY_HINT,
        )
    with _store(chain.settings) as store:
        service = _service(chain, store, ProposalFiles(proposal_path, approval_out=out))
        _, weights = service.weights_to_approve(proposal.job_id, me)  # coalition jobs checked on chain too
        _print_evidence(proposal.method, len(proposal.inputs.evidence_jobs()))
        if on_chain:
            if chain.settlement.has_approved(weights, me):
                console.print(f"{me} has approved these weights on chain already")
                return
            done = _send(service, proposal.job_id, service.prepare(proposal.job_id, me, "approve_weights"))
            console.print(f"{me} approved the weights of job {proposal.job_id} on chain ({_tx(done)})")
            return
        signature = sign_approval(
            _member_key(),
            service.chain_id,
            service.address,
            weights.job_id_bytes,
            weights.weights_hash,
            weights.record_leaf,
        )
        kept, _ = service.approve(proposal.job_id, Approval(signature="0x" + signature.hex()), me)
    console.print(f"{me} signed the weights of job {proposal.job_id}; approval written to {kept.source}")


def _print_evidence(method: str, jobs: int) -> None:
    """What the measured methods' metrics rest on: coalition jobs checked on chain, or the proposer's word."""
    if method == "data_share":
        return
    if jobs:
        console.print(f"{jobs} coalition job(s) checked on chain: each opened with every party's consent")
    else:
        console.print(
            "the inputs name no coalition job: the metrics are the proposer's word, not jobs on chain "
            "(`secureflow settle measure` names them)"
        )


@settle_app.command("set-weights")
@friendly_errors
def set_weights(
    proposal_path: ProposalArg,
    approval: Annotated[
        list[Path] | None,
        typer.Option(help="signature file (repeatable; default: <proposal>.approval.*.json beside it)"),
    ] = None,
) -> None:
    """Once the contribution record is confirmed: set the job's weights on chain with the approvals."""
    from secureflow.ledger.settlement.book import ProposalFiles
    from secureflow.ledger.settlement.contribution import ContributionProposal
    from secureflow.ledger.settlement.errors import NotAPartyError

    proposal = ContributionProposal.load(proposal_path)
    chain = _chain(with_key=True)
    me = chain.address
    with _store(chain.settings) as store:
        service = _service(chain, store, ProposalFiles(proposal_path, approval_paths=approval or ()))
        if me.lower() not in {p.lower() for p in service.job_parties(proposal.job_id)}:
            raise NotAPartyError(
                f"{me} is not a party of job {proposal.job_id}: only a party sets the weights",
                hint=_NOT_A_PARTY_HINT,
            )
        current = service.weights_of(proposal.job_id)
        if current.is_set:
            if current.weights_hash == proposal.weights_hash:
                console.print(
                    f"the weights of job {proposal.job_id} are set already (block {current.set_at_block})"
                )
                return
            raise WeightsStateError(f"the weights of job {proposal.job_id} are set already, to other weights")
        weights = service.confirmed_weights(service.current(proposal.job_id).proposal)
        missing = [a.party for a in service.state(proposal.job_id).approvals if not a.approved]
        if missing:
            raise MissingApprovalsError(f"no approval yet from {', '.join(missing)}")
        done = _send(service, proposal.job_id, service.prepare(proposal.job_id, me, "set_weights"))
    console.print(
        f"weights of job {proposal.job_id} set in block {done.block_number} (tx {done.tx_hash}) "
        f"from record step {proposal.seq} under root {weights.root}"
    )
    for member, bps in proposal.shares().items():
        console.print(f"  {member}  {bps:>5} bps")


@settle_app.command()
@friendly_errors
def deposit(
    job_id: JobArg,
    amount: Annotated[str, typer.Argument(help="wei, or with a unit: 2gwei, 1.5ether; token: whole units")],
    token: TokenOpt = None,
) -> None:
    """Deposit revenue for a job whose weights are set (sender: SECUREFLOW_MEMBER_KEY)."""
    job = _job_bytes(job_id)
    asset = _asset(token)
    value = parse_amount(amount, token=token is not None)
    chain = _chain(with_key=True)
    _require_weights(chain, job)
    if int(asset, 16) != 0:  # the allowance is a transaction to the token, not a settlement write
        chain.settlement.approve_token(asset, value)
    service = _service(chain)
    done = _send(
        service, job_id, service.prepare(job_id, chain.address, "deposit", asset=asset, amount=value)
    )
    total = chain.settlement.total_deposited(job, asset)
    console.print(
        f"{chain.address} deposited {_amount(asset, value)} for job {job_id.lower()} "
        f"in block {done.block_number}; total deposited {_amount(asset, total)}"
    )


@settle_app.command()
@friendly_errors
def balances(
    job_id: JobArg,
    token: TokenOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Each member's weight, entitlement, withdrawn and releasable amount, read from the chain."""
    job = _job_bytes(job_id)
    asset = _asset(token)
    chain = _chain(with_key=False)
    _require_weights(chain, job)
    rows = chain.settlement.balances(job, asset)
    deposited = chain.settlement.total_deposited(job, asset)
    released = chain.settlement.total_released(job, asset)
    if json_output:
        document = {
            "job_id": job_id.lower(),
            "asset": asset,
            "deposited": deposited,
            "released": released,
            "held": deposited - released,
            "members": [row.model_dump() for row in rows],
        }
        print(json.dumps(document, indent=2))
        return
    console.print(
        f"job {job_id.lower()}, {_asset_name(asset)}: deposited {_plain(asset, deposited)}, "
        f"withdrawn {_plain(asset, released)}, held {_plain(asset, deposited - released)}"
    )
    console.print(f"  {'member':<42}  {'bps':>5}  {'entitled':>24}  {'withdrawn':>24}  {'releasable':>24}")
    for row in rows:
        console.print(
            f"  {row.member:<42}  {row.bps:>5}  {row.entitled:>24}  {row.released:>24}  {row.releasable:>24}"
        )


@settle_app.command()
@friendly_errors
def withdraw(job_id: JobArg, token: TokenOpt = None) -> None:
    """Withdraw the sender's releasable share (sender: SECUREFLOW_MEMBER_KEY, a member with a weight)."""
    from secureflow.ledger.settlement.errors import NotAPartyError

    job = _job_bytes(job_id)
    asset = _asset(token)
    chain = _chain(with_key=True)
    _require_weights(chain, job)
    me = chain.address
    if me.lower() not in {m.lower() for m in chain.settlement.weights_of(job).members}:
        raise NotAPartyError(
            f"{me} has no weight in job {job_id.lower()}, so nothing to withdraw", hint=_NOT_A_PARTY_HINT
        )
    releasable = chain.settlement.releasable(job, me, asset)
    if releasable == 0:
        done_before = chain.settlement.released(job, me, asset)
        raise NothingToWithdrawError(
            f"{me} has nothing to withdraw in {_asset_name(asset)} from job {job_id.lower()}: "
            f"its entitlement so far ({_amount(asset, done_before)}) is withdrawn already"
        )
    service = _service(chain)
    done = _send(service, job_id, service.prepare(job_id, me, "withdraw", asset=asset))
    released = next((int(e.args["amount"]) for e in done.events if e.name == "RevenueReleased"), releasable)
    console.print(f"{me} withdrew {_amount(asset, released)} from job {job_id.lower()} ({_tx(done)})")


def _describe(name: str, args: dict[str, Any]) -> str:
    if name == "WeightsApproved":
        return f"{args['party']} approved weights {args['weightsHash']}"
    if name == "WeightsSet":
        shares = ", ".join(f"{m}={b}" for m, b in zip(args["members"], args["bps"], strict=True))
        return f"weights set by {args['setBy']} from record leaf {args['recordLeaf']}: {shares}"
    if name == "RevenueDeposited":
        asset = str(args["asset"])
        return f"{args['depositor']} deposited {_amount(asset, int(args['amount']))}"
    if name == "RevenueReleased":
        asset = str(args["asset"])
        return f"{args['member']} withdrew {_amount(asset, int(args['amount']))}"
    return json.dumps(args)


@settle_app.command()
@friendly_errors
def history(
    job_id: JobArg,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The job's approvals, weights, deposits and withdrawals, from the chain's events."""
    job = _job_bytes(job_id)
    chain = _chain(with_key=False)
    events = chain.settlement.history(job, from_block=chain.deployment.deploy_block)
    if json_output:
        print(json.dumps([e.model_dump() for e in events], indent=2))
        return
    if not events:
        console.print(f"no settlement events for job {job_id.lower()}")
        return
    for event in events:
        console.print(f"block {event.block_number:>6}  {event.name:<16}  {_describe(event.name, event.args)}")
