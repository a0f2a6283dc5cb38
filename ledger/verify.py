"""Standalone verification of receipts and audit bundles against a deployment the auditor pins.

Uses a receipt (or bundle), a JSON-RPC node of the chain and a `PinnedDeployment`:
no ledger database, no secureflow API. The pin is the trust anchor
(docs/trust-model.md): the chain id and the audit ledger's address with the hash of
its runtime code, from the deployment file written by ``secureflow deploy``
(``--deployment FILE``) or given by hand (``--ledger ADDRESS --code-hash HASH``).
The ledger's code holds its registry's address (an immutable), so pinning the
ledger's code pins the registry it trusts for roles; a deployment file pins the
registry's code hash too. Nothing is taken from the file being verified: the
``contract`` a receipt names is only compared with the pin, and the job header
of a bundle only with the chain.

Receipt checks run in a fixed order, each reported with its name, outcome and
detail; a check whose prerequisites did not pass is reported as skipped::

    receipt_format    the receipt parses (format version 2; version 1 verifies with a warning)
    record_hash       record is a valid StepRecord; keccak256(RFC 8785 JSON) == record_hash
    leaf              the record's (job_id, seq) are the receipt's; leaf(job_id, seq, record_hash) == leaf
    proof             the proof leads from the leaf to batch_root (computed locally, OpenZeppelin rules)
    chain_id          the node serves the pinned chain id, and the receipt is for that chain
    code_hash         the code at the pinned ledger has the pinned code hash; its registry() is the
                      pinned registry, whose code hash is checked when pinned
    contract_pinned   the receipt names the pinned ledger
    root_anchored     the pinned ledger's rootRecord(batch_root) was anchored at block_number;
                      its verify(leaf, proof, root) is true
    block_canonical   the canonical block at block_number has block_hash; tx_hash is in it, succeeded,
                      and the pinned ledger emitted BatchAnchored(batch_id, root) in it
    anchor_role       that event's anchorer (the root's anchorer; the receipt's, version 2) held
                      ANCHOR_ROLE in the pinned registry at block_number (state at the end of the block)
    party_signatures  the record carries exactly the job's on-chain parties (jobParties on the pinned
                      ledger), each with a valid signature of its part by that party's key; an unsigned
                      contribution record (a settlement's, algorithm ``contribution``) is the parties'
                      only if the pinned Settlement set the job's weights from its leaf (``weightsOf``:
                      setWeights needs every party's approval), checked with the pinned Settlement's code
                      and its ledger() equal to the pinned ledger
    confirmations     head - block_number + 1 >= min_confirmations

Bundle checks (`verify_bundle`) prove the job complete::

    records_covered   every record has a receipt carrying it, and every receipt is of this job
    seqs              the records' seqs are 0..n-1, without gaps or duplicates
    manifest_commitment  the manifest's commitment under the bundle's job secret,
                      keccak256(job_secret || RFC 8785 JSON of the manifest), is the job's manifest
                      hash (`secureflow.ledger.records.manifest_commitment`); a bundle without a job
                      secret (written before commitments were salted) is checked against the unsalted
                      keccak256 of the manifest. Skipped without a manifest: the bundle is then not VALID
    params_commitments  (only with a job secret) every compute record's ``params_hash`` is the
                      commitment of its step's ``params`` in the manifest under the job secret
                      (records past the manifest's steps, e.g. a contribution record, are not compute
                      steps). Without a job secret the parameter commitments could not be checked: the
                      verdict says so in a warning
    job_header        the pinned ledger holds the job, with the bundle's creator, manifest hash,
                      parties (in order) and status
    consents          every on-chain party has consented on chain (hasConsented)
    job_closed        the chain says the job is Closed
    step_count        the chain's step count == the number of records (== the manifest's steps); of a
                      closed job, records past the step count must be contribution records (the
                      settlement's, after the close) and are not counted. One of them the parties did
                      not adopt (its receipt fails party_signatures only) does not make the bundle
                      INVALID: ``BundleVerdict.unadopted`` and a warning name it, attributed to nobody
    final_record      the record of seq stepCount-1, with its receipt's proof, reaches the job's
                      on-chain finalRoot, a root anchored on the pinned ledger

A bad receipt or bundle never raises: it gets a failed check. An unreachable
node raises `secureflow.ledger.errors.NodeUnreachableError` (nothing could be
checked on chain). ``rootRecord``, jobs and consents are read at the latest
block; the anchor role is read at the anchor's block, which needs a node that
keeps that block's state (anvil does; on Besu/GoQuorum an archive node for old
blocks: otherwise ``anchor_role`` fails and says why).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import requests
from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, ValidationError
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound

from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.chain import redact_url
from secureflow.ledger.contracts import ANCHOR_ROLE
from secureflow.ledger.deploy import Deployment, load_deployment
from secureflow.ledger.errors import LedgerError, NodeUnreachableError
from secureflow.ledger.merkle import leaf_hash, process_proof
from secureflow.ledger.receipts import AuditBundle, InvalidReceiptFileError, Receipt, read_json_file
from secureflow.ledger.records import (
    StepRecord,
    canonical_hash,
    canonical_json,
    commitment,
    manifest_commitment,
    model_key,
)
from secureflow.ledger.settlement.contribution import ALGORITHM as CONTRIBUTION_ALGORITHM
from secureflow.ledger.signing import recover_party, signature_problems

CheckStatus = Literal["passed", "failed", "skipped"]

CHECK_ORDER: tuple[str, ...] = (
    "receipt_format",
    "record_hash",
    "leaf",
    "proof",
    "chain_id",
    "code_hash",
    "contract_pinned",
    "root_anchored",
    "block_canonical",
    "anchor_role",
    "party_signatures",
    "confirmations",
)
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "receipt_format": (),
    "record_hash": ("receipt_format",),
    "leaf": ("record_hash",),
    "proof": ("leaf",),
    "chain_id": ("receipt_format",),
    "code_hash": ("chain_id",),
    "contract_pinned": ("receipt_format",),
    "root_anchored": ("proof", "code_hash"),
    "block_canonical": ("code_hash",),
    "anchor_role": ("block_canonical",),
    "party_signatures": ("record_hash", "code_hash"),
    "confirmations": ("block_canonical",),
}
BUNDLE_CHECK_ORDER: tuple[str, ...] = (
    "records_covered",
    "seqs",
    "manifest_commitment",
    "params_commitments",
    "job_header",
    "consents",
    "job_closed",
    "step_count",
    "final_record",
)

BATCH_ANCHORED_TOPIC = keccak(text="BatchAnchored(bytes32,bytes32,uint32,address)")
_VERIFY_SELECTOR = keccak(text="verify(bytes32,bytes32[],bytes32)")[:4]
VERIFY_BATCH_SIZE = 100
"""``verify(leaf, proof, root)`` calls per JSON-RPC batch request when several receipts are verified."""
_SIGNERS_CACHED = 100_000

_LEDGER_VIEWS = (
    "rootRecord",
    "getBatch",
    "verify",
    "getJob",
    "jobParties",
    "hasConsented",
    "registry",
    "modelHash",
    "latestModelVersion",
)
LEDGER_VIEW_ABI: list[dict[str, Any]] = [
    entry
    for entry in load_artifact("AuditLedger").abi
    if entry.get("type") == "function" and entry.get("name") in _LEDGER_VIEWS
]
"""The audit ledger's views used by verification and reconciliation (taken from the checked-in artifact)."""

_SETTLEMENT_VIEWS = ("ledger", "weightsOf")
SETTLEMENT_VIEW_ABI: list[dict[str, Any]] = [
    entry
    for entry in load_artifact("Settlement").abi
    if entry.get("type") == "function" and entry.get("name") in _SETTLEMENT_VIEWS
]
"""The settlement contract's views used to attribute a contribution record (the weights set from it)."""

_REGISTRY_VIEWS = ("hasRole",)
REGISTRY_VIEW_ABI: list[dict[str, Any]] = [
    entry
    for entry in load_artifact("ConsortiumRegistry").abi
    if entry.get("type") == "function" and entry.get("name") in _REGISTRY_VIEWS
]
"""The consortium registry's views used by verification (the anchor role at a block)."""


# -- the pin -------------------------------------------------------------------------------------------


class PinError(LedgerError):
    """No deployment pinned, or a pin that is not well formed (nothing was verified)."""

    hint = (
        "pin the deployment you trust: --deployment FILE (written by `secureflow deploy`), or "
        "--ledger ADDRESS --code-hash HASH (keccak256 of the ledger's runtime code, as the deployment file "
        "and `secureflow deploy` give it)"
    )


class PinnedContract(BaseModel):
    """One pinned contract: its address and what its code must be.

    ``code_hash`` is keccak256 of the runtime code (``eth_getCode``; the EVM's EXTCODEHASH). A
    deployment file written before code hashes existed (version 1) pins the creation instead: the
    contract must have been created at ``address`` by ``creation_tx``, whose init code starts with
    the artifact bytecode of sha256 ``bytecode_sha256`` (checked against this verifier's artifact).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    address: str
    code_hash: str | None = None
    creation_tx: str | None = None
    bytecode_sha256: str | None = None

    def describe(self) -> str:
        how = f"code hash {self.code_hash}" if self.code_hash else f"created by {self.creation_tx}"
        return f"{self.name} {self.address} ({how})"


class PinnedDeployment(BaseModel):
    """What the auditor trusts: the chain and the audit ledger (and registry) with their code."""

    model_config = ConfigDict(frozen=True)

    source: str
    chain_id: int | None
    ledger: PinnedContract
    registry: PinnedContract | None = None
    settlement: PinnedContract | None = None
    """The Settlement bound to the ledger (from a deployment file): attributes contribution records."""

    @classmethod
    def of_deployment(cls, deployment: Deployment, source: str = "a deployment file") -> PinnedDeployment:
        """Pin the audit ledger and registry of a deployment file (`secureflow.ledger.deploy`)."""

        def pinned(name: str) -> PinnedContract:
            entry = deployment.contracts.get(name)
            if entry is None:
                raise PinError(f"the deployment ({source}) has no {name}")
            return PinnedContract(
                name=name,
                address=_address(entry.address, name),
                code_hash=_hash_or_none(entry.code_hash, f"{name}.code_hash"),
                creation_tx=entry.tx_hash.lower(),
                bytecode_sha256=entry.bytecode_sha256,
            )

        return cls(
            source=source,
            chain_id=deployment.chain_id,
            ledger=pinned("AuditLedger"),
            registry=pinned("ConsortiumRegistry"),
            settlement=pinned("Settlement") if "Settlement" in deployment.contracts else None,
        )

    @classmethod
    def of_ledger(
        cls,
        address: str,
        code_hash: str,
        *,
        registry: str | None = None,
        chain_id: int | None = None,
        source: str = "--ledger and --code-hash",
    ) -> PinnedDeployment:
        """Pin an audit ledger by address and runtime code hash (optionally its registry's address and
        the chain id; without a chain id, the receipt's must be the node's)."""
        checked = _hash_or_none(code_hash, "code hash")
        if checked is None:
            raise PinError("the code hash is required (0x + 64 hex digits)")
        return cls(
            source=source,
            chain_id=chain_id,
            ledger=PinnedContract(name="AuditLedger", address=_address(address, "ledger"), code_hash=checked),
            registry=None
            if registry is None
            else PinnedContract(name="ConsortiumRegistry", address=_address(registry, "registry")),
        )

    def describe(self) -> str:
        chain = f"chain {self.chain_id}" if self.chain_id is not None else "the node's chain"
        registry = f", {self.registry.describe()}" if self.registry is not None else ""
        return f"{self.ledger.describe()}{registry} on {chain}, pinned by {self.source}"


def _address(value: str, what: str) -> str:
    if not is_address(value):
        raise PinError(f"the {what} address {value!r} is not an Ethereum address")
    return str(to_checksum_address(value))


def _hash_or_none(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    text = value.lower()
    if not text.startswith("0x"):
        text = "0x" + text
    if len(text) != 66 or any(c not in "0123456789abcdef" for c in text[2:]):
        raise PinError(f"the {what} {value!r} is not 0x + 64 hex digits")
    return text


def pin_from_options(
    *,
    deployment: Path | None = None,
    ledger: str | None = None,
    code_hash: str | None = None,
    registry: str | None = None,
    chain_id: int | None = None,
) -> PinnedDeployment:
    """The pin of ``secureflow verify``: a deployment file, or a ledger address with its code hash.

    Raises `PinError` when nothing or both are given, and `DeploymentFileError` for an unreadable file.
    """
    by_hand = ledger is not None or code_hash is not None
    if deployment is not None and (by_hand or registry is not None or chain_id is not None):
        raise PinError("pin either a deployment file or a ledger address and code hash, not both")
    if deployment is not None:
        return PinnedDeployment.of_deployment(
            load_deployment(deployment), source=f"the deployment file {deployment}"
        )
    if ledger is None or code_hash is None:
        missing = "--code-hash" if ledger is not None else "--ledger" if code_hash is not None else "a pin"
        raise PinError(f"nothing to verify against: {missing} is missing")
    return PinnedDeployment.of_ledger(ledger, code_hash, registry=registry, chain_id=chain_id)


# -- verdicts ------------------------------------------------------------------------------------------


class Check(BaseModel):
    """The outcome of one check."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: CheckStatus
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "passed"


class Verdict(BaseModel):
    """The outcome of verifying one receipt: every check in order, ``ok`` only if all passed.

    ``warnings`` say what could not be checked although the receipt is valid (e.g. a version-1
    receipt states no anchorer of its own); ``pinned`` says what it was verified against.
    """

    model_config = ConfigDict(frozen=True)

    job_id: str | None
    seq: int | None
    checks: list[Check]
    warnings: list[str] = []
    pinned: str = ""

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((check for check in self.checks if check.status == "failed"), None)

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed (not those skipped because of them)."""
        return [check.name for check in self.checks if check.status == "failed"]

    def check(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def summary(self) -> str:
        what = f"job {self.job_id} step {self.seq}" if self.job_id is not None else "receipt"
        if self.ok:
            return f"{what}: VALID ({len(self.checks)} checks passed)"
        first = self.first_failure
        return f"{what}: INVALID, {first.name if first else '?'} failed: {first.detail if first else ''}"


class BundleVerdict(BaseModel):
    """The outcome of verifying an audit bundle: bundle-level checks and one verdict per receipt."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    checks: list[Check]
    receipts: list[Verdict]
    warnings: list[str] = []
    pinned: str = ""
    unadopted: list[int] = []
    """Seqs of contribution records after the close that the job's parties did not adopt (see warnings):
    their receipts fail ``party_signatures`` only, and they are not counted against the bundle."""

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks) and not self.invalid_receipts

    @property
    def invalid_receipts(self) -> list[Verdict]:
        return [v for v in self.receipts if not v.ok and v.seq not in self.unadopted]

    @property
    def failed_checks(self) -> list[str]:
        """Names of every failed check, of the bundle and of its receipts (each name once, sorted)."""
        names = {c.name for c in self.checks if c.status == "failed"}
        names.update(name for verdict in self.invalid_receipts for name in verdict.failed)
        return sorted(names)

    def check(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def summary(self) -> str:
        valid = sum(v.ok for v in self.receipts)
        state = "VALID" if self.ok else "INVALID"
        text = f"job {self.job_id}: {state}, {valid}/{len(self.receipts)} receipts valid"
        if self.unadopted:
            seqs = ", ".join(map(str, self.unadopted[:10]))
            text += f", {len(self.unadopted)} unadopted contribution record(s) (seq {seqs})"
        by_check: dict[str, list[str]] = {}
        for verdict in self.invalid_receipts:
            for name in verdict.failed:
                by_check.setdefault(name, []).append(str(verdict.seq))
        if by_check:
            failed = "; ".join(f"{name} at seq {', '.join(seqs[:10])}" for name, seqs in by_check.items())
            text += f" (failed: {failed})"
        bad = [c.name for c in self.checks if c.status == "failed"]
        if bad:
            text += f"; bundle checks failed: {', '.join(bad)}"
        return text


# -- the node ------------------------------------------------------------------------------------------


class _Failed(Exception):
    """A check's verdict: failed, with this detail."""


def _web3(node: Web3 | str, timeout: float) -> Web3:
    if isinstance(node, Web3):
        return node
    return Web3(Web3.HTTPProvider(node, request_kwargs={"timeout": timeout}))


def _node_name(w3: Web3) -> str:
    uri = getattr(w3.provider, "endpoint_uri", None)
    return redact_url(str(uri)) if uri else "the JSON-RPC node"


@dataclass(frozen=True)
class OnChainJob:
    """A job as the pinned ledger holds it (``status`` is the raw enum value of ``AuditLedger.JobStatus``)."""

    status: int
    manifest_hash: str
    creator: str
    step_count: int
    final_root: str
    parties: tuple[str, ...]


@dataclass
class NodeView:
    """One node, with the answers shared by every receipt of a batch cached (also used by reconciliation)."""

    w3: Web3
    _chain_id: int | None = None
    _head: int | None = None
    _code: dict[str, bytes] = field(default_factory=dict)
    _blocks: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    _txs: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    _tx_receipts: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    _root_records: dict[tuple[str, str], tuple[int, int, str]] = field(default_factory=dict)
    _contracts: dict[str, Contract] = field(default_factory=dict)
    _registries: dict[str, Contract] = field(default_factory=dict)
    _jobs: dict[tuple[str, str], OnChainJob] = field(default_factory=dict)
    _consents: dict[tuple[str, str, str], bool] = field(default_factory=dict)
    _roles: dict[tuple[str, bytes, str, int], bool] = field(default_factory=dict)
    _weights: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    _verify_results: dict[tuple[str, str], object] = field(default_factory=dict)
    batch_requests: int = 0

    def rpc(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (requests.RequestException, OSError) as exc:
            raise NodeUnreachableError(
                f"cannot reach the JSON-RPC node at {_node_name(self.w3)}: {type(exc).__name__}",
                hint="check the --rpc-url and that the node is running, then verify again",
            ) from exc

    def raw(self, method: str, params: list[Any]) -> Any:
        """A raw JSON-RPC call (no web3 formatters, so QBFT/IBFT blocks need no middleware)."""
        response = self.rpc(self.w3.provider.make_request, method, params)
        if response.get("error"):
            error = response["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise _Failed(f"the node refused {method}: {message}")
        return response.get("result")

    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.rpc(lambda: self.w3.eth.chain_id))
        return self._chain_id

    def head(self, refresh: bool = False) -> int:
        if self._head is None or refresh:
            self._head = int(self.rpc(lambda: self.w3.eth.block_number))
        return self._head

    def code(self, address: str) -> bytes:
        if address not in self._code:
            self._code[address] = bytes(self.rpc(self.w3.eth.get_code, to_checksum_address(address)))
        return self._code[address]

    def block(self, number: int) -> dict[str, Any] | None:
        if number not in self._blocks:
            block = self.raw("eth_getBlockByNumber", [hex(number), False])
            self._blocks[number] = block if isinstance(block, dict) else None
        return self._blocks[number]

    def transaction(self, tx_hash: str) -> Mapping[str, Any] | None:
        if tx_hash not in self._txs:
            try:
                self._txs[tx_hash] = self.rpc(self.w3.eth.get_transaction, tx_hash)
            except TransactionNotFound:
                self._txs[tx_hash] = None
        return self._txs[tx_hash]

    def tx_receipt(self, tx_hash: str) -> Mapping[str, Any] | None:
        if tx_hash not in self._tx_receipts:
            try:
                self._tx_receipts[tx_hash] = self.rpc(self.w3.eth.get_transaction_receipt, tx_hash)
            except TransactionNotFound:
                self._tx_receipts[tx_hash] = None
        return self._tx_receipts[tx_hash]

    def ledger(self, address: str) -> Contract:
        if address not in self._contracts:
            checksum = to_checksum_address(address)
            self._contracts[address] = self.w3.eth.contract(address=checksum, abi=LEDGER_VIEW_ABI)
        return self._contracts[address]

    def registry(self, address: str) -> Contract:
        if address not in self._registries:
            checksum = to_checksum_address(address)
            self._registries[address] = self.w3.eth.contract(address=checksum, abi=REGISTRY_VIEW_ABI)
        return self._registries[address]

    @staticmethod
    def _verify_data(leaf: bytes, proof: list[bytes], root: bytes) -> str:
        data = _VERIFY_SELECTOR + abi_encode(["bytes32", "bytes32[]", "bytes32"], [leaf, proof, root])
        return "0x" + data.hex()

    def prefetch_verify(self, address: str, calls: Sequence[tuple[bytes, list[bytes], bytes]]) -> None:
        """Ask the node for many ``verify(leaf, proof, root)`` at once: JSON-RPC batch requests of
        `VERIFY_BATCH_SIZE` ``eth_call``s instead of one round trip per receipt. `onchain_verify` then answers
        from these results; what a batch did not answer (a node that refuses batches, an error entry) it
        asks one by one, so the verdicts are the same either way."""
        batch_call = getattr(self.w3.provider, "make_batch_request", None)
        if batch_call is None:
            return
        todo = list(dict.fromkeys(self._verify_data(*call) for call in calls))
        todo = [data for data in todo if (address, data) not in self._verify_results]
        for start in range(0, len(todo), VERIFY_BATCH_SIZE):
            chunk = todo[start : start + VERIFY_BATCH_SIZE]
            batch = [("eth_call", [{"to": address, "data": data}, "latest"]) for data in chunk]
            try:
                responses = self.rpc(batch_call, batch)
            except NodeUnreachableError:
                raise
            except Exception:  # no batch support here: one call per receipt, as before
                return
            self.batch_requests += 1
            if not isinstance(responses, list) or len(responses) != len(chunk):
                return
            for data, response in zip(chunk, responses, strict=True):
                if isinstance(response, Mapping) and not response.get("error") and "result" in response:
                    self._verify_results[(address, data)] = response["result"]

    def onchain_verify(self, address: str, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
        """``verify(leaf, proof, root)`` as one raw ``eth_call``, or its answer from `prefetch_verify`."""
        data = self._verify_data(leaf, proof, root)
        result = self._verify_results.get((address, data))
        if result is None:
            result = self.raw("eth_call", [{"to": address, "data": data}, "latest"])
        raw = bytes.fromhex(str(result)[2:]) if isinstance(result, str) and result.startswith("0x") else b""
        if len(raw) != 32:
            raise _Failed(f"{address} does not answer verify(leaf, proof, root) like the audit ledger")
        return bool(int.from_bytes(raw, "big"))

    def root_record(self, address: str, root: str) -> tuple[int, int, str]:
        key = (address, root)
        if key not in self._root_records:
            call = self.ledger(address).functions.rootRecord(bytes.fromhex(root[2:]))
            count, block, anchorer = self.rpc(call.call)
            self._root_records[key] = (int(count), int(block), str(anchorer))
        return self._root_records[key]

    def job(self, ledger: str, job_id: str) -> OnChainJob:
        key = (ledger, job_id)
        if key not in self._jobs:
            functions = self.ledger(ledger).functions
            raw_id = bytes.fromhex(job_id[2:])
            manifest_hash, creator, status, _created, step_count, final_root = self.rpc(
                functions.getJob(raw_id).call
            )
            parties = self.rpc(functions.jobParties(raw_id).call)
            self._jobs[key] = OnChainJob(
                status=int(status),
                manifest_hash="0x" + bytes(manifest_hash).hex(),
                creator=str(to_checksum_address(creator)),
                step_count=int(step_count),
                final_root="0x" + bytes(final_root).hex(),
                parties=tuple(str(to_checksum_address(p)) for p in parties),
            )
        return self._jobs[key]

    def has_consented(self, ledger: str, job_id: str, party: str) -> bool:
        key = (ledger, job_id, party)
        if key not in self._consents:
            call = self.ledger(ledger).functions.hasConsented(bytes.fromhex(job_id[2:]), party)
            self._consents[key] = bool(self.rpc(call.call))
        return self._consents[key]

    def weights_leaf(self, settlement: str, job_id: str) -> tuple[str, int]:
        """(record leaf, block) the Settlement set the job's weights from; the zero leaf while not set."""
        key = (settlement, job_id)
        if key not in self._weights:
            contract = self.w3.eth.contract(address=to_checksum_address(settlement), abi=SETTLEMENT_VIEW_ABI)
            _members, _bps, info = self.rpc(contract.functions.weightsOf(bytes.fromhex(job_id[2:])).call)
            _weights_hash, leaf, _root, block, _set_by = info
            self._weights[key] = ("0x" + bytes(leaf).hex(), int(block))
        return self._weights[key]

    def settlement_ledger(self, settlement: str) -> str:
        contract = self.w3.eth.contract(address=to_checksum_address(settlement), abi=SETTLEMENT_VIEW_ABI)
        return str(to_checksum_address(self.rpc(contract.functions.ledger().call)))

    def has_role_at(self, registry: str, role: bytes, account: str, block: int) -> bool:
        """``hasRole(role, account)`` in the state at the end of ``block`` (needs that block's state)."""
        key = (registry, role, account, block)
        if key not in self._roles:
            call = self.registry(registry).functions.hasRole(role, to_checksum_address(account))
            self._roles[key] = bool(self.rpc(call.call, block_identifier=block))
        return self._roles[key]


# -- the pinned deployment on this node ------------------------------------------------------------------


@dataclass(frozen=True)
class _Pinned:
    """The pinned deployment as found on the node: the ledger and the registry it is bound to."""

    ledger: str
    registry: str
    detail: str
    warnings: tuple[str, ...]


@dataclass
class _Context:
    node: NodeView
    pin: PinnedDeployment
    min_confirmations: int
    _pinned: _Pinned | _Failed | None = None
    _settlement: str | _Failed | None = None

    def pinned(self) -> _Pinned:
        """The deployment check (once per verification): raises `_Failed` if the pin does not hold."""
        if self._pinned is None:
            self._pinned = _outcome(lambda: _check_pinned_code(self.node, self.pin))
        return _passed(self._pinned)

    def settlement(self) -> str:
        """The pinned Settlement's address, once its code and its ledger are checked (once per verification):
        raises `_Failed` if no Settlement is pinned or the pin does not hold."""
        if self._settlement is None:
            self._settlement = _outcome(
                lambda: _check_pinned_settlement(self.node, self.pin, self.pinned().ledger)
            )
        return _passed(self._settlement)


_T = TypeVar("_T")


def _outcome(check: Callable[[], _T]) -> _T | _Failed:
    """What a once-per-verification check found, or its failure (an unreachable node still raises)."""
    try:
        return check()
    except _Failed as failure:
        return failure
    except NodeUnreachableError:
        raise
    except Exception as exc:  # a malformed answer must not crash the verifier
        return _Failed(f"{type(exc).__name__}: {exc}")


def _passed(outcome: _T | _Failed) -> _T:
    if isinstance(outcome, _Failed):
        raise _Failed(str(outcome))
    return outcome


def _check_pinned_code(node: NodeView, pin: PinnedDeployment) -> _Pinned:
    chain_id = node.chain_id()
    if pin.chain_id is not None and chain_id != pin.chain_id:
        raise _Failed(
            f"the node serves chain id {chain_id}, the pinned deployment is on chain {pin.chain_id}"
        )
    warnings: list[str] = []
    ledger = pin.ledger.address
    ledger_hash = _check_code(node, pin.ledger, warnings)
    try:
        bound = str(to_checksum_address(node.rpc(node.ledger(ledger).functions.registry().call)))
    except NodeUnreachableError:
        raise
    except Exception as exc:
        raise _Failed(
            f"the pinned ledger {ledger} does not answer registry() like the audit ledger: {exc}"
        ) from exc
    if pin.registry is not None and bound != pin.registry.address:
        raise _Failed(
            f"the pinned ledger {ledger} is bound to registry {bound}, not to the pinned registry "
            f"{pin.registry.address}"
        )
    if pin.registry is not None and (pin.registry.code_hash or pin.registry.creation_tx):
        registry_hash = _check_code(node, pin.registry, warnings)
        registry_text = f"registry {bound} (code hash {registry_hash}, as pinned)"
    else:
        registry_text = f"registry {bound} (bound to it by the ledger's code)"
    return _Pinned(
        ledger=ledger,
        registry=bound,
        detail=f"the pinned ledger {ledger} has code hash {ledger_hash}, as pinned; "
        f"it trusts {registry_text}",
        warnings=tuple(warnings),
    )


def _check_pinned_settlement(node: NodeView, pin: PinnedDeployment, ledger: str) -> str:
    if pin.settlement is None:
        raise _Failed(
            f"the pin ({pin.source}) names no Settlement contract to attribute a contribution record to the "
            f"job's parties: {UNATTRIBUTED}; pin the deployment file, which names it (--deployment FILE)"
        )
    address = pin.settlement.address
    _check_code(node, pin.settlement, [])
    bound = node.settlement_ledger(address)
    if bound != ledger:
        raise _Failed(
            f"the pinned Settlement {address} is bound to ledger {bound}, not to the pinned {ledger}"
        )
    return address


def _check_code(node: NodeView, pinned: PinnedContract, warnings: list[str]) -> str:
    """The code hash at the pinned address, after checking it is the pinned code."""
    code = node.code(pinned.address)
    if not code:
        raise _Failed(f"there is no contract code at the pinned {pinned.name} {pinned.address}")
    actual = "0x" + keccak(code).hex()
    if pinned.code_hash is not None:
        if actual != pinned.code_hash:
            raise _Failed(
                f"the code at the pinned {pinned.name} {pinned.address} has code hash {actual}, "
                f"the pin says {pinned.code_hash}"
            )
        return actual
    _check_creation(node, pinned)
    warnings.append(
        f"the pin gives no code hash for {pinned.name} (a version-1 deployment file): its code was checked "
        f"through its creation transaction {pinned.creation_tx} and this verifier's artifact instead; "
        f"pin its code hash {actual} (--code-hash) or redeploy to get a version-2 file"
    )
    return actual


def _check_creation(node: NodeView, pinned: PinnedContract) -> None:
    """A contract pinned by its creation: created at its address, by the artifact of the pinned sha256."""
    if pinned.creation_tx is None or pinned.bytecode_sha256 is None:
        raise _Failed(f"the pin gives neither a code hash nor a creation of {pinned.name} {pinned.address}")
    bytecode = load_artifact(pinned.name).bytecode
    if hashlib.sha256(bytecode.encode()).hexdigest() != pinned.bytecode_sha256:
        raise _Failed(
            f"cannot check the code of {pinned.name} {pinned.address}: the pin has no code hash and was "
            "deployed from another artifact than this verifier's; pin its code hash (--code-hash)"
        )
    receipt = node.tx_receipt(pinned.creation_tx)
    tx = node.transaction(pinned.creation_tx)
    created = receipt.get("contractAddress") if receipt is not None else None
    if receipt is None or tx is None or int(receipt["status"]) != 1 or created is None:
        raise _Failed(
            f"the pinned creation {pinned.creation_tx} of {pinned.name} is not a successful creation"
        )
    if to_checksum_address(created) != pinned.address:
        raise _Failed(f"the pinned creation {pinned.creation_tx} created {created}, not {pinned.address}")
    init = "0x" + bytes(tx["input"]).hex()
    if not init.startswith(bytecode.lower()):
        raise _Failed(f"{pinned.name} {pinned.address} was not created from this verifier's artifact")


# -- the receipt checks ----------------------------------------------------------------------------------


def _b(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def _short(value: str) -> str:
    return value[:10] + "…" + value[-4:] if len(value) > 20 else value


def _check_record_hash(r: Receipt, _ctx: _Context) -> str:
    try:
        canonical = canonical_json(r.record)
    except Exception as exc:  # rfc8785 raises its own errors for non-I-JSON values
        raise _Failed(f"the record cannot be canonicalised (RFC 8785): {exc}") from exc
    try:
        model = StepRecord.model_validate(r.record)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise _Failed(f"the record is not a valid step record ({where}: {error['msg']})") from exc
    if model.canonical_json() != canonical:
        raise _Failed("the record is not in the step record's canonical form (fields missing or coerced)")
    computed = "0x" + keccak(canonical).hex()
    if computed != r.record_hash:
        raise _Failed(f"the record hashes to {computed}, the receipt says record_hash {r.record_hash}")
    return f"keccak256(RFC 8785 JSON of the record) = {computed}"


def _check_leaf(r: Receipt, _ctx: _Context) -> str:
    job_id, seq = r.record.get("job_id"), r.record.get("seq")
    if job_id != r.job_id or seq != r.seq:
        raise _Failed(f"the record is job {job_id} step {seq}, the receipt says job {r.job_id} step {r.seq}")
    computed = "0x" + leaf_hash(_b(r.job_id), r.seq, _b(r.record_hash)).hex()
    if computed != r.leaf:
        raise _Failed(f"(job_id, seq, record_hash) gives leaf {computed}, the receipt says leaf {r.leaf}")
    return f"leaf(job_id, seq, record_hash) = {computed}"


def _check_proof(r: Receipt, _ctx: _Context) -> str:
    reached = "0x" + process_proof(_b(r.leaf), [_b(p) for p in r.proof]).hex()
    if reached != r.batch_root:
        raise _Failed(
            f"the {len(r.proof)}-step proof leads from the leaf to {reached}, "
            f"the receipt says batch_root {r.batch_root}"
        )
    return f"the {len(r.proof)}-step proof leads from the leaf to batch_root {r.batch_root}"


def _check_chain_id(r: Receipt, ctx: _Context) -> str:
    chain_id = ctx.node.chain_id()
    pinned = ctx.pin.chain_id
    if pinned is not None and chain_id != pinned:
        raise _Failed(f"the node serves chain id {chain_id}, the pinned deployment is on chain {pinned}")
    if chain_id != r.chain_id:
        raise _Failed(f"the node serves chain id {chain_id}, the receipt is for chain id {r.chain_id}")
    return f"the node serves chain id {chain_id}" + (", as pinned" if pinned is not None else "")


def _check_code_hash(_r: Receipt, ctx: _Context) -> str:
    return ctx.pinned().detail


def _check_contract_pinned(r: Receipt, ctx: _Context) -> str:
    pinned = ctx.pin.ledger.address
    if r.contract != pinned:
        raise _Failed(
            f"the receipt names contract {r.contract}, the pinned ledger is {pinned} "
            f"(pinned by {ctx.pin.source})"
        )
    return f"the receipt names the pinned ledger {pinned}"


def _check_root_anchored(r: Receipt, ctx: _Context) -> str:
    ledger = ctx.pinned().ledger
    try:
        count, block, anchorer = ctx.node.root_record(ledger, r.batch_root)
    except NodeUnreachableError:
        raise
    except Exception as exc:
        raise _Failed(f"the pinned ledger {ledger} does not answer rootRecord(root): {exc}") from exc
    if count == 0:
        raise _Failed(f"root {r.batch_root} is not anchored by the pinned ledger {ledger}")
    if block != r.block_number:
        raise _Failed(
            f"root {_short(r.batch_root)} was anchored at block {block}, "
            f"the receipt says block {r.block_number}"
        )
    if not ctx.node.onchain_verify(ledger, _b(r.leaf), [_b(p) for p in r.proof], _b(r.batch_root)):
        raise _Failed("the pinned ledger's verify(leaf, proof, root) returned false")
    return (
        f"root anchored at block {block} ({count} records, anchorer {anchorer}); "
        "on-chain verify(leaf, proof, root) is true"
    )


def _batch_event(r: Receipt, ctx: _Context) -> tuple[str, str]:
    """(batch id, anchorer) of the pinned ledger's BatchAnchored event for the receipt's root in its
    transaction, after checking the block is canonical and the transaction succeeded in it."""
    node = ctx.node
    block = node.block(r.block_number)
    if block is None:
        raise _Failed(f"the node has no block {r.block_number} (head is {node.head()})")
    if str(block.get("hash", "")).lower() != r.block_hash:
        raise _Failed(
            f"the canonical block {r.block_number} has hash {block.get('hash')}, "
            f"the receipt says {r.block_hash} (reorged out, or a wrong block)"
        )
    tx = node.tx_receipt(r.tx_hash)
    if tx is None:
        raise _Failed(f"the node does not know transaction {r.tx_hash}")
    tx_block_hash = "0x" + bytes(tx["blockHash"]).hex()
    if tx_block_hash != r.block_hash or int(tx["blockNumber"]) != r.block_number:
        raise _Failed(
            f"transaction {_short(r.tx_hash)} is in block {tx['blockNumber']} ({_short(tx_block_hash)}), "
            f"not in block {r.block_number}"
        )
    if int(tx["status"]) != 1:
        raise _Failed(f"transaction {r.tx_hash} reverted (status {tx['status']})")
    ledger = ctx.pinned().ledger
    for log in tx["logs"]:
        topics = [bytes(t) for t in log["topics"]]
        if (
            to_checksum_address(log["address"]) == ledger
            and len(topics) == 4
            and topics[0] == BATCH_ANCHORED_TOPIC
            and topics[2] == _b(r.batch_root)
        ):
            return "0x" + topics[1].hex(), str(to_checksum_address(topics[3][12:]))
    raise _Failed(
        f"transaction {r.tx_hash} emitted no BatchAnchored event for this root "
        f"from the pinned ledger {ledger}"
    )


def _check_block_canonical(r: Receipt, ctx: _Context) -> str:
    batch_id, _anchorer = _batch_event(r, ctx)
    if r.batch_id is not None and batch_id != r.batch_id:
        raise _Failed(f"the chain anchored the root as batch {batch_id}, the receipt says batch {r.batch_id}")
    return (
        f"block {r.block_number} is canonical; transaction {_short(r.tx_hash)} succeeded in it and "
        f"emitted BatchAnchored(batch {_short(batch_id)}, root {_short(r.batch_root)})"
    )


def _check_anchor_role(r: Receipt, ctx: _Context) -> str:
    pinned = ctx.pinned()
    _batch_id, anchorer = _batch_event(r, ctx)
    if r.anchorer is not None and r.anchorer != anchorer:
        raise _Failed(f"the chain's BatchAnchored names anchorer {anchorer}, the receipt says {r.anchorer}")
    _count, _block, root_anchorer = ctx.node.root_record(pinned.ledger, r.batch_root)
    if to_checksum_address(root_anchorer) != anchorer:
        raise _Failed(f"the ledger records anchorer {root_anchorer} for the root, its event says {anchorer}")
    try:
        held = ctx.node.has_role_at(pinned.registry, ANCHOR_ROLE, anchorer, r.block_number)
    except NodeUnreachableError:
        raise
    except Exception as exc:
        raise _Failed(
            f"the node cannot answer hasRole(ANCHOR_ROLE, {anchorer}) at block {r.block_number} "
            f"(it needs that block's state: an archive node for old blocks): {exc}"
        ) from exc
    if not held:
        raise _Failed(
            f"anchorer {anchorer} did not hold ANCHOR_ROLE in the pinned registry {pinned.registry} "
            f"at block {r.block_number} (the state at the end of the anchor's block)"
        )
    return (
        f"anchorer {anchorer} held ANCHOR_ROLE in the pinned registry {pinned.registry} "
        f"at block {r.block_number}"
    )


def _check_party_signatures(r: Receipt, ctx: _Context) -> str:
    ledger = ctx.pinned().ledger
    job = ctx.node.job(ledger, r.job_id)
    if job.status == 0 or not job.parties:
        raise _Failed(f"the pinned ledger {ledger} has no job {r.job_id}, so no parties to have signed")
    record = StepRecord.model_validate(r.record)
    problems = signature_problems(
        record, job.parties, recover=lambda rec, entry: _signer(r.record_hash, rec, entry)
    )
    if problems and is_contribution(record) and all(p.signature is None for p in record.parties):
        return _adopted_contribution(r, ctx, job)
    if problems:
        raise _Failed("; ".join(problems) + " (the job's parties on chain)")
    return f"signed by every job party on chain ({', '.join(job.parties)})"


def is_contribution(record: StepRecord) -> bool:
    """A settlement's contribution record (`secureflow.ledger.settlement.contribution`), which the parties
    attribute to themselves by approving its weights on the Settlement contract, not by signing it."""
    return record.algorithm == CONTRIBUTION_ALGORITHM


def _adopted_contribution(r: Receipt, ctx: _Context, job: OnChainJob) -> str:
    """An unsigned contribution record is the parties' only if it follows the job's close (a seq at or past
    the closed job's step count: never one of its steps) and the pinned Settlement set the job's weights
    from it: ``setWeights`` takes the record's leaf proven against an anchored root and needs every job
    party's approval of (weights, leaf), by signature or on chain."""
    if job.status not in (_CLOSED, _FAILED):
        raise _Failed(
            f"an unsigned contribution record of a job that is {status_name(job.status)} on chain, not "
            f"closed: a contribution record follows the job's close; {UNATTRIBUTED}"
        )
    if r.seq < job.step_count:
        raise _Failed(
            f"an unsigned contribution record at seq {r.seq}, within the job's {job.step_count} steps: a "
            f"contribution record follows the job's close, it is never one of its steps; {UNATTRIBUTED}"
        )
    settlement = ctx.settlement()
    leaf = "0x" + leaf_hash(_b(r.job_id), r.seq, _b(r.record_hash)).hex()
    adopted, block = ctx.node.weights_leaf(settlement, r.job_id)
    if adopted != leaf:
        why = (
            "the job's weights are not set"
            if int(adopted, 16) == 0
            else f"the job's weights were set from another record (leaf {_short(adopted)})"
        )
        raise _Failed(
            f"an unsigned contribution record {NOT_ADOPTED} ({why} on the pinned Settlement {settlement}): "
            f"{UNATTRIBUTED}"
        )
    return (
        f"an unsigned contribution record adopted by every job party: the pinned Settlement {settlement} set "
        f"the job's weights from it at block {block}, which needs each party's approval"
    )


NOT_ADOPTED = "the job's parties have not adopted"
UNATTRIBUTED = "it is attributed to none of them"


_signers: dict[tuple[str, str, str | None], str | None] = {}
_signers_lock = threading.Lock()


def forget_signers() -> None:
    """Empty the cache of recovered party signatures (benchmarks measure a cold verification)."""
    with _signers_lock:
        _signers.clear()


def cached_signer(record_hash: str, record: StepRecord, entry: Any) -> str | None:
    """Who signed ``entry`` (a part) of ``record`` whose hash is ``record_hash``, or None if malformed;
    remembered (the API's timeline shows the same records' signatures again and again)."""
    return _signer(record_hash, record, entry)


def _signer(record_hash: str, record: StepRecord, entry: Any) -> str | None:
    """Who signed ``entry`` of the record, or None if malformed; remembered by (record hash, party,
    signature): the record hash (checked first, a dependency of this check) fixes what was signed, and
    recovering a signature is the costly part of verifying a page of receipts again."""
    key = (record_hash, str(entry.party), entry.signature)
    with _signers_lock:
        if key in _signers:
            return _signers[key]
    signer: str | None
    try:
        signer = recover_party(record, entry)
    except Exception:  # a malformed signature (bad recovery id, not a curve point)
        signer = None
    with _signers_lock:
        if len(_signers) >= _SIGNERS_CACHED:
            _signers.clear()
        _signers[key] = signer
    return signer


def _check_confirmations(r: Receipt, ctx: _Context) -> str:
    head = ctx.node.head()
    confirmations = head - r.block_number + 1
    if confirmations < ctx.min_confirmations:
        raise _Failed(
            f"{confirmations} confirmation(s) (head {head}, block {r.block_number}), "
            f"{ctx.min_confirmations} required"
        )
    return f"{confirmations} confirmation(s) (head {head}), {ctx.min_confirmations} required"


_CHECKS: dict[str, Callable[[Receipt, _Context], str]] = {
    "record_hash": _check_record_hash,
    "leaf": _check_leaf,
    "proof": _check_proof,
    "chain_id": _check_chain_id,
    "code_hash": _check_code_hash,
    "contract_pinned": _check_contract_pinned,
    "root_anchored": _check_root_anchored,
    "block_canonical": _check_block_canonical,
    "anchor_role": _check_anchor_role,
    "party_signatures": _check_party_signatures,
    "confirmations": _check_confirmations,
}

_V1_WHAT = (
    "no batch id and anchorer of its own, so there was nothing to cross-check with the chain; "
    "both were taken from the chain's BatchAnchored event"
)
_V1_WARNING = f"version-1 receipt: it states {_V1_WHAT}"


def _run_checks(data: Receipt | Mapping[str, Any], ctx: _Context) -> Verdict:
    results: dict[str, Check] = {}
    receipt: Receipt | None = None
    if isinstance(data, Receipt):
        receipt = data
    else:
        try:
            receipt = Receipt.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "(top level)"
            detail = f"not a receipt: {exc.error_count()} problem(s), first at {where}: {error['msg']}"
            results["receipt_format"] = Check(name="receipt_format", status="failed", detail=detail)
    warnings: list[str] = []
    if receipt is not None:
        results["receipt_format"] = Check(
            name="receipt_format", status="passed", detail=f"version {receipt.version} receipt"
        )
        if receipt.version == 1:
            warnings.append(_V1_WARNING)
    for name in CHECK_ORDER[1:]:
        blocked = [dep for dep in DEPENDS_ON[name] if results[dep].status != "passed"]
        if blocked or receipt is None:
            detail = f"skipped: needs {', '.join(blocked)}"
            results[name] = Check(name=name, status="skipped", detail=detail)
            continue
        try:
            results[name] = Check(name=name, status="passed", detail=_CHECKS[name](receipt, ctx))
        except _Failed as failure:
            results[name] = Check(name=name, status="failed", detail=str(failure))
        except NodeUnreachableError:
            raise
        except Exception as exc:  # a malformed answer or receipt must not crash the verifier
            results[name] = Check(name=name, status="failed", detail=f"{type(exc).__name__}: {exc}")
    if results["code_hash"].ok:
        warnings.extend(ctx.pinned().warnings)
    job_id = receipt.job_id if receipt is not None else _get_str(data, "job_id")
    seq = receipt.seq if receipt is not None else _get_int(data, "seq")
    return Verdict(
        job_id=job_id,
        seq=seq,
        checks=[results[name] for name in CHECK_ORDER],
        warnings=warnings,
        pinned=ctx.pin.describe(),
    )


def _get_str(data: object, key: str) -> str | None:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, str) else None


def _get_int(data: object, key: str) -> int | None:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_min(min_confirmations: int) -> None:
    if isinstance(min_confirmations, bool) or not isinstance(min_confirmations, int) or min_confirmations < 0:
        raise ValueError(f"min_confirmations must be a non-negative integer, got {min_confirmations!r}")


# -- public API ----------------------------------------------------------------------------------------


def verify_receipt(
    receipt: Receipt | Mapping[str, Any],
    node: Web3 | str,
    pin: PinnedDeployment,
    *,
    min_confirmations: int = 1,
    timeout: float = 10.0,
) -> Verdict:
    """Check one receipt against a JSON-RPC node (a `Web3` or an RPC URL) and the pinned deployment.

    ``receipt`` may be a parsed JSON object: if it is not a valid receipt, the
    verdict's ``receipt_format`` check fails. Raises only
    `secureflow.ledger.errors.NodeUnreachableError`.
    """
    _check_min(min_confirmations)
    return _run_checks(receipt, _Context(NodeView(_web3(node, timeout)), pin, min_confirmations))


def verify_receipts(
    receipts: Sequence[Receipt | Mapping[str, Any]],
    node: Web3 | str,
    pin: PinnedDeployment,
    *,
    min_confirmations: int = 1,
    timeout: float = 10.0,
    batch: bool = True,
) -> list[Verdict]:
    """`verify_receipt` for several receipts, sharing the node's answers (the deployment check once, each
    block, transaction, root, job and role once) and asking the node for every receipt's on-chain
    ``verify(leaf, proof, root)`` in JSON-RPC batch requests (`NodeView.prefetch_verify`; ``batch=False``:
    one ``eth_call`` per receipt, as before batching, for comparison). The verdicts are the same."""
    _check_min(min_confirmations)
    ctx = _Context(NodeView(_web3(node, timeout)), pin, min_confirmations)
    if batch:
        _prefetch(receipts, ctx)
    return [_run_checks(receipt, ctx) for receipt in receipts]


def _prefetch(receipts: Sequence[Receipt | Mapping[str, Any]], ctx: _Context) -> None:
    """The on-chain ``verify`` of every well-formed receipt, in batch requests (before the checks ask)."""
    try:
        ledger = ctx.pinned().ledger
    except _Failed:
        return  # every receipt fails code_hash: root_anchored is skipped, nothing to ask
    calls = []
    for receipt in receipts:
        if isinstance(receipt, Receipt):
            calls.append((_b(receipt.leaf), [_b(p) for p in receipt.proof], _b(receipt.batch_root)))
    if len(calls) > 1:
        ctx.node.prefetch_verify(ledger, calls)


def verify_bundle(
    bundle: AuditBundle,
    node: Web3 | str,
    pin: PinnedDeployment,
    *,
    min_confirmations: int = 1,
    timeout: float = 10.0,
) -> BundleVerdict:
    """Check every receipt of an audit bundle, and that the bundle is the whole job (module docstring).

    Answers shared by a batch (block, transaction, root) and the deployment check are fetched once.
    """
    _check_min(min_confirmations)
    ctx = _Context(NodeView(_web3(node, timeout)), pin, min_confirmations)
    verdicts = [_run_checks(r, ctx) for r in bundle.receipts]
    checks, job = _bundle_checks(bundle, ctx)
    unadopted = _unadopted(bundle, verdicts, job)
    warnings: list[str] = []
    if unadopted:
        seqs = ", ".join(map(str, unadopted[:10]))
        warnings.append(
            f"{len(unadopted)} contribution record(s) after the job's close not attributed to the job's "
            f"parties (seq {seqs}; see its party_signatures check): a settlement proposal they did not (yet) "
            "approve on the Settlement contract, or no Settlement pinned; not one of the job's steps"
        )
    versions = sorted({r.version for r in bundle.receipts})
    old = [str(r.seq) for r in bundle.receipts if r.version == 1]
    if old:
        warnings.append(
            f"{len(old)} version-1 receipt(s) (seq {', '.join(old[:10])}): each states {_V1_WHAT}"
        )
    for verdict in verdicts:
        for warning in verdict.warnings:
            if warning != _V1_WARNING and warning not in warnings:
                warnings.append(warning)
    if bundle.version == 1 and versions != [1]:
        warnings.append("a version-1 bundle carrying version-2 receipts")
    if bundle.job_secret is None:
        warnings.append(_UNSALTED_BUNDLE_WARNING)
    return BundleVerdict(
        job_id=bundle.job.job_id,
        checks=checks,
        receipts=verdicts,
        warnings=warnings,
        pinned=pin.describe(),
        unadopted=unadopted,
    )


# -- the bundle checks -----------------------------------------------------------------------------------


_UNSALTED_BUNDLE_WARNING = (
    "the bundle carries no job secret: the salted manifest and parameter commitments could not be checked "
    "(the manifest was checked against its unsalted hash, as bundles from before salted commitments; "
    "params_hash not at all)"
)


def _bundle_checks(bundle: AuditBundle, ctx: _Context) -> tuple[list[Check], OnChainJob | None]:
    order = _bundle_check_order(bundle)
    results = {
        "records_covered": _records_covered(bundle),
        "seqs": _seqs(bundle),
        "manifest_commitment": _manifest_commitment(bundle),
    }
    if "params_commitments" in order:
        results["params_commitments"] = _params_commitments(bundle, results["manifest_commitment"])
    on_chain = order[order.index("job_header") :]
    try:
        pinned = ctx.pinned()
        job = ctx.node.job(pinned.ledger, bundle.job.job_id)
    except _Failed as failure:
        for name in on_chain:
            results[name] = Check(name=name, status="skipped", detail=f"skipped: needs code_hash ({failure})")
        return [results[name] for name in order], None

    def run(name: str, check: Callable[[], str]) -> None:
        try:
            results[name] = Check(name=name, status="passed", detail=check())
        except _Failed as failure:
            results[name] = Check(name=name, status="failed", detail=str(failure))
        except NodeUnreachableError:
            raise
        except Exception as exc:  # a malformed answer or bundle must not crash the verifier
            results[name] = Check(name=name, status="failed", detail=f"{type(exc).__name__}: {exc}")

    run("job_header", lambda: _job_header(bundle, job, pinned.ledger))
    if job.status == 0:
        for name in on_chain[1:]:
            detail = f"skipped: the pinned ledger has no job {bundle.job.job_id}"
            results[name] = Check(name=name, status="skipped", detail=detail)
        return [results[name] for name in order], job
    run("consents", lambda: _consents(bundle, job, ctx))
    for name, check in _close_checks(bundle, job, ctx, results).items():
        run(name, check)
    return [results[name] for name in order], job


def _bundle_check_order(bundle: AuditBundle) -> tuple[str, ...]:
    """The bundle checks run on ``bundle``: ``params_commitments`` only when it carries a job secret."""
    if bundle.job_secret is not None:
        return BUNDLE_CHECK_ORDER
    return tuple(name for name in BUNDLE_CHECK_ORDER if name != "params_commitments")


def _records_covered(bundle: AuditBundle) -> Check:
    name = "records_covered"
    receipted = {r.seq: r for r in bundle.receipts if r.job_id == bundle.job.job_id}
    foreign = [r.seq for r in bundle.receipts if r.job_id != bundle.job.job_id]
    problems = []
    if foreign:
        problems.append(f"{len(foreign)} receipt(s) of another job (seq {foreign[:10]})")
    uncovered, differing = [], []
    for record in bundle.records:
        seq = record.get("seq")
        receipt = receipted.get(seq) if isinstance(seq, int) else None
        if receipt is None:
            uncovered.append(seq)
        elif receipt.record != record:
            differing.append(seq)
    if uncovered:
        problems.append(
            f"{len(uncovered)} record(s) without a receipt (not anchored yet?): seq {uncovered[:10]}"
        )
    if differing:
        problems.append(
            f"{len(differing)} record(s) differ from their receipt's record: seq {differing[:10]}"
        )
    if len(receipted) != len(bundle.receipts) - len(foreign) or len(bundle.receipts) > len(bundle.records):
        problems.append("receipts repeat a step or carry records missing from the bundle")
    if problems:
        return Check(name=name, status="failed", detail="; ".join(problems))
    return Check(name=name, status="passed", detail=f"all {len(bundle.records)} records have a receipt")


def _seqs(bundle: AuditBundle) -> Check:
    name = "seqs"
    seqs = [record.get("seq") for record in bundle.records]
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seqs):
        return Check(name=name, status="failed", detail="a record has no integer seq")
    counts: dict[int, int] = {}
    for seq in seqs:
        assert isinstance(seq, int)  # noqa: S101 - narrowed above, for the type checker
        counts[seq] = counts.get(seq, 0) + 1
    n = len(seqs)
    problems = []
    missing = [s for s in range(n) if s not in counts]
    if missing:
        problems.append(
            f"seq {', '.join(map(str, missing[:10]))} {'is' if len(missing) == 1 else 'are'} missing"
        )
    repeated = sorted(s for s, c in counts.items() if c > 1)
    if repeated:
        problems.append(f"seq {', '.join(map(str, repeated[:10]))} repeated")
    beyond = sorted(s for s in counts if s >= n)
    if beyond:
        problems.append(f"seq {', '.join(map(str, beyond[:10]))} beyond {n - 1}")
    if problems:
        return Check(
            name=name, status="failed", detail=f"the records' seqs are not 0..{n - 1}: " + "; ".join(problems)
        )
    return Check(name=name, status="passed", detail=f"the records' seqs are 0..{n - 1}, each once")


def _manifest_commitment(bundle: AuditBundle) -> Check:
    name = "manifest_commitment"
    if bundle.manifest is None:
        return Check(name=name, status="skipped", detail="skipped: the bundle carries no manifest")
    secret = bundle.job_secret
    rule = (
        "keccak256(job secret || RFC 8785 JSON of the manifest)"
        if secret is not None
        else "keccak256(RFC 8785 JSON of the manifest), unsalted: the bundle carries no job secret"
    )
    try:
        computed = (
            manifest_commitment(bundle.manifest, secret)
            if secret is not None
            else canonical_hash(bundle.manifest)
        )
    except Exception as exc:
        return Check(name=name, status="failed", detail=f"the manifest cannot be canonicalised: {exc}")
    if computed != bundle.job.manifest_hash:
        return Check(
            name=name,
            status="failed",
            detail=f"the bundle's manifest does not give the job's manifest hash {bundle.job.manifest_hash}: "
            f"{rule} = {computed} (the manifest or the job secret is not the job's)",
        )
    return Check(name=name, status="passed", detail=f"{rule} is the job's manifest hash {computed}")


def _params_commitments(bundle: AuditBundle, manifest: Check) -> Check:
    name = "params_commitments"
    if not manifest.ok or bundle.manifest is None or bundle.job_secret is None:
        return Check(name=name, status="skipped", detail="skipped: needs manifest_commitment")
    steps = bundle.manifest.get("steps")
    if not isinstance(steps, list):
        return Check(name=name, status="failed", detail="the manifest has no list of steps")
    differing: list[str] = []
    checked = 0
    for record in bundle.records:
        seq = record.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < len(steps):
            continue  # not a compute step of the manifest (a contribution record goes after them)
        step = steps[seq]
        params = step.get("params", {}) if isinstance(step, dict) else None
        try:
            expected = commitment(params, bundle.job_secret)
        except Exception:
            differing.append(f"{seq} (its manifest parameters cannot be canonicalised)")
            continue
        checked += 1
        if record.get("params_hash") != expected:
            differing.append(str(seq))
    if differing:
        return Check(
            name=name,
            status="failed",
            detail=f"the params_hash of seq {', '.join(differing[:10])} is not the commitment of its step's "
            "parameters in the manifest under the job secret",
        )
    return Check(
        name=name,
        status="passed",
        detail=f"the params_hash of all {checked} compute record(s) is keccak256(job secret || RFC 8785 JSON "
        "of the step's params in the manifest)",
    )


def _job_header(bundle: AuditBundle, job: OnChainJob, ledger: str) -> str:
    header = bundle.job
    if job.status == 0:
        raise _Failed(f"the pinned ledger {ledger} has no job {header.job_id}")
    differences = []
    if header.manifest_hash != job.manifest_hash:
        differences.append(
            f"manifest hash: the bundle says {header.manifest_hash}, the chain {job.manifest_hash}"
        )
    if header.creator != job.creator:
        differences.append(f"creator: the bundle says {header.creator}, the chain {job.creator}")
    if tuple(header.parties) != job.parties:
        differences.append(f"parties: the bundle says {list(header.parties)}, the chain {list(job.parties)}")
    chain_status = status_name(job.status)
    if not bundle_status_matches(header.status, job.status):
        differences.append(f"status: the bundle says {header.status!r}, the chain's job is {chain_status}")
    if differences:
        raise _Failed("the job header differs from the pinned ledger's job: " + "; ".join(differences))
    return (
        f"the pinned ledger holds the job: creator {job.creator}, manifest hash {_short(job.manifest_hash)}, "
        f"parties {', '.join(job.parties)}, {chain_status} (the bundle says {header.status!r})"
    )


def _consents(bundle: AuditBundle, job: OnChainJob, ctx: _Context) -> str:
    ledger = ctx.pinned().ledger
    missing = [p for p in job.parties if not ctx.node.has_consented(ledger, bundle.job.job_id, p)]
    if missing:
        raise _Failed(f"no consent on chain from job party {', '.join(missing)}")
    return f"every job party consented on chain ({len(job.parties)} parties)"


# -- the close of a job ------------------------------------------------------------------------------------
#
# Everything that depends on how AuditLedger closes a job is here. The anchoring service's
# `closeJob(jobId, stepCount, finalRecordHash, finalRoot, proof, succeeded)` stores the step count and the
# anchored root of the batch holding the last record, whose leaf the contract proves (`Proposed` (4) is a
# job still waiting for a consent). The proof is re-checked here from the bundle, not taken from the chain.

_CHAIN_STATUS = {0: "None", 1: "Open", 2: "Closed", 3: "Failed", 4: "Proposed"}
_CLOSED = 2
_FAILED = 3
# The ledger store's job status (the bundle header's ``status``) for each on-chain status.
_BUNDLE_STATUS_OF_CHAIN: dict[int, frozenset[str]] = {
    1: frozenset({"created", "running"}),
    2: frozenset({"completed"}),
    3: frozenset({"failed", "cancelled"}),
    4: frozenset({"created"}),
}


def _seq_at_least(record: Mapping[str, Any], seq: int) -> bool:
    value = record.get("seq")
    return isinstance(value, int) and not isinstance(value, bool) and value >= seq


def _unadopted(bundle: AuditBundle, verdicts: Sequence[Verdict], job: OnChainJob | None) -> list[int]:
    """Seqs of the unsigned contribution records after the job's close that its parties did not adopt:
    valid otherwise, attributed to nobody; they do not make the bundle invalid, a warning names them."""
    if job is None or job.status != _CLOSED:
        return []
    out = []
    for verdict in verdicts:
        if verdict.seq is None or verdict.seq < job.step_count or verdict.failed != ["party_signatures"]:
            continue
        if UNATTRIBUTED in verdict.check("party_signatures").detail:
            out.append(verdict.seq)
    return out


def status_name(status: int) -> str:
    """The name of an on-chain ``AuditLedger.JobStatus`` value."""
    return _CHAIN_STATUS.get(status, f"status {status}")


def bundle_status_matches(bundle_status: str, chain_status: int) -> bool:
    """Whether a bundle header's (ledger store) job status says what the chain's status says."""
    return bundle_status in _BUNDLE_STATUS_OF_CHAIN.get(chain_status, frozenset())


def _close_checks(
    bundle: AuditBundle, job: OnChainJob, ctx: _Context, results: Mapping[str, Check]
) -> dict[str, Callable[[], str]]:
    def job_closed() -> str:
        if job.status != _CLOSED:
            raise _Failed(
                f"the chain's job is {status_name(job.status)}, not Closed: the chain does not say the job "
                "is complete (closeJob with its step count and final root)"
            )
        return (
            f"the chain's job is Closed with step count {job.step_count}, final root {_short(job.final_root)}"
        )

    def step_count() -> str:
        records, after = bundle.records, []
        if job.status == _CLOSED:  # a closed job's steps are its first step_count records; what follows the
            # close can only be the settlement's contribution records (attributed by party_signatures)
            records = [r for r in bundle.records if not _seq_at_least(r, job.step_count)]
            after = [r for r in bundle.records if _seq_at_least(r, job.step_count)]
        n = len(records)
        problems = []
        if job.step_count != n:
            problems.append(f"the bundle has {n} record(s), the chain's step count {job.step_count}")
        strays = [str(r.get("seq")) for r in after if r.get("algorithm") != CONTRIBUTION_ALGORITHM]
        inside = [str(r.get("seq")) for r in records if r.get("algorithm") == CONTRIBUTION_ALGORITHM]
        if inside:
            what = "is a contribution record" if len(inside) == 1 else "are contribution records"
            problems.append(
                f"seq {', '.join(inside[:10])} {what} within the job's steps: contribution records follow "
                "the close"
            )
        if strays:
            problems.append(
                f"seq {', '.join(strays[:10])} follow{'s' if len(strays) == 1 else ''} the job's last step "
                f"(step count {job.step_count}) and {'is' if len(strays) == 1 else 'are'} no contribution "
                "record: only a settlement's contribution records may follow a job's close"
            )
        if bundle.manifest is not None and results["manifest_commitment"].ok:
            steps = bundle.manifest.get("steps")
            if not isinstance(steps, list):
                problems.append("the manifest has no list of steps")
            elif len(steps) != job.step_count:
                problems.append(
                    f"the manifest has {len(steps)} step(s), the chain's step count {job.step_count}"
                )
        if problems:
            raise _Failed("; ".join(problems))
        manifest = " and the manifest's steps" if bundle.manifest is not None else ""
        if not after:
            return f"the chain's step count {job.step_count} is the number of records{manifest}"
        return (
            f"the bundle's {n} compute records are the chain's step count{manifest}; {len(after)} "
            f"contribution record{'' if len(after) == 1 else 's'} follow{'s' if len(after) == 1 else ''} "
            "the close"
        )

    def final_record() -> str:
        if job.status != _CLOSED:
            raise _Failed(f"the job is {status_name(job.status)}: it has no final root")
        n = job.step_count
        zero = "0x" + "00" * 32
        if n == 0:
            if job.final_root != zero:
                raise _Failed(f"a job closed with no steps has final root {job.final_root}")
            return "the job was closed with no steps (final root zero)"
        last = n - 1
        record = next((r for r in bundle.records if r.get("seq") == last), None)
        receipt = next(
            (
                r
                for r in bundle.receipts
                if r.seq == last and r.job_id == bundle.job.job_id and r.record == record
            ),
            None,
        )
        if record is None or receipt is None:
            raise _Failed(f"the bundle has no receipted record of seq {last}, the job's last step on chain")
        try:
            record_hash = keccak(canonical_json(record))
        except Exception as exc:
            raise _Failed(f"the record of seq {last} cannot be canonicalised: {exc}") from exc
        leaf = leaf_hash(_b(bundle.job.job_id), last, record_hash)
        reached = "0x" + process_proof(leaf, [_b(p) for p in receipt.proof]).hex()
        if reached != job.final_root:
            raise _Failed(
                f"the record of seq {last} proves to root {reached}, the job was closed with final root "
                f"{job.final_root}"
            )
        count, _block, _anchorer = ctx.node.root_record(ctx.pinned().ledger, job.final_root)
        if count == 0:
            raise _Failed(f"the job's final root {job.final_root} is not anchored by the pinned ledger")
        return f"the record of seq {last} is proven in the job's final root {_short(job.final_root)}"

    return {"job_closed": job_closed, "step_count": step_count, "final_record": final_record}


# -- files ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileVerification:
    """What ``secureflow verify FILE`` shows: the verdict of a receipt file or of a bundle file."""

    path: Path
    receipt: Verdict | None = None
    bundle: BundleVerdict | None = None

    @property
    def ok(self) -> bool:
        verdict = self.receipt if self.receipt is not None else self.bundle
        return verdict is not None and verdict.ok

    def lines(self) -> list[str]:
        """Plain-text lines: what was pinned, one per check (receipts of a bundle: one line each, failed ones
        with their failed checks), the warnings, the summary."""
        out: list[str] = []
        if self.receipt is not None:
            out.append(f"[pin ] {self.receipt.pinned}")
            out.extend(_check_lines(self.receipt.checks))
            out.extend(f"[warn] {w}" for w in self.receipt.warnings)
            out.append(self.receipt.summary())
        elif self.bundle is not None:
            out.append(f"[pin ] {self.bundle.pinned}")
            out.extend(_check_lines(self.bundle.checks))
            for verdict in self.bundle.receipts:
                out.append(("  ok   " if verdict.ok else "  FAIL ") + verdict.summary())
            out.extend(f"[warn] {w}" for w in self.bundle.warnings)
            out.append(self.bundle.summary())
        return out


# -- a stored model against its anchor -----------------------------------------------------------------

_JOB_STATUS_NAMES = {0: "None", 1: "Open", 2: "Closed", 3: "Failed", 4: "Proposed"}


def check_model_anchor(
    node: Web3 | str,
    pin: PinnedDeployment,
    *,
    job_id: str,
    model_id: str,
    version: int,
    model_hash: str,
    parties: Sequence[str],
    timeout: float = 30.0,
) -> list[Check]:
    """The chain's side of ``secureflow model verify``, against the deployment the caller pins.

    Checks ``deployment`` (the pinned ledger's code, as `verify_file`), ``onchain_hash`` (the ledger's
    ``modelHash(job_id, keccak(model_id), version)`` is ``model_hash``; a version not recorded fails as
    not anchored) and ``lineage`` (the job that produced the model exists on chain with exactly the
    model's ``parties``).
    """
    view = NodeView(_web3(node, timeout))
    ctx = _Context(view, pin, 1)
    try:
        pinned = ctx.pinned()
    except _Failed as failure:
        skipped = "not checked: the pinned deployment does not hold on this node"
        return [
            Check(name="deployment", status="failed", detail=str(failure)),
            Check(name="onchain_hash", status="skipped", detail=skipped),
            Check(name="lineage", status="skipped", detail=skipped),
        ]
    checks = [Check(name="deployment", status="passed", detail=pinned.detail)]
    if (
        len(job_id) != 66
        or not job_id.startswith("0x")
        or any(c not in "0123456789abcdef" for c in job_id[2:])
    ):
        bad = f"the metadata's job id {job_id!r} is not 0x + 64 lower-case hex digits"
        return [
            *checks,
            Check(name="onchain_hash", status="failed", detail=bad),
            Check(name="lineage", status="failed", detail=bad),
        ]
    functions = view.ledger(pinned.ledger).functions
    raw_job = _b(job_id)
    what = f"model {model_id!r} version {version}"
    try:
        anchored = (
            "0x" + bytes(view.rpc(functions.modelHash(raw_job, model_key(model_id), version).call)).hex()
        )
        if anchored == "0x" + "00" * 32:
            latest = int(view.rpc(functions.latestModelVersion(raw_job, model_key(model_id)).call))
            raise _Failed(
                f"{what} is not anchored on chain: job {job_id} recorded no hash for this version "
                f"(latest anchored version: {latest or 'none'})"
            )
        if anchored != model_hash.lower():
            raise _Failed(
                f"{what}: the metadata hash {model_hash} differs from the hash {anchored} anchored on chain "
                f"by job {job_id} (meta.json was changed after anchoring)"
            )
        checks.append(
            Check(name="onchain_hash", status="passed", detail=f"{what} is anchored with hash {anchored}")
        )
    except _Failed as failure:
        checks.append(Check(name="onchain_hash", status="failed", detail=str(failure)))
    try:
        job = view.job(pinned.ledger, job_id)
        if job.status == 0:
            raise _Failed(f"job {job_id}, which the metadata says produced {what}, does not exist on chain")
        mine = sorted(str(to_checksum_address(p)) for p in parties)
        if mine != sorted(job.parties):
            raise _Failed(
                f"the model's parties {mine} are not the on-chain parties {sorted(job.parties)} "
                f"of job {job_id}"
            )
        checks.append(
            Check(
                name="lineage",
                status="passed",
                detail=f"produced by job {job_id} ({_JOB_STATUS_NAMES.get(job.status, job.status)} on chain, "
                f"parties {', '.join(job.parties)})",
            )
        )
    except _Failed as failure:
        checks.append(Check(name="lineage", status="failed", detail=str(failure)))
    return checks


def check_lines(checks: Sequence[Check]) -> list[str]:
    """One plain-text line per check, as ``secureflow verify`` prints them."""
    return _check_lines(checks)


def _check_lines(checks: Sequence[Check]) -> list[str]:
    marks = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}
    return [f"[{marks[c.status]}] {c.name:<16} {c.detail}" for c in checks]


def verify_file(
    path: Path,
    node: Web3 | str,
    pin: PinnedDeployment,
    *,
    min_confirmations: int = 1,
    timeout: float = 10.0,
) -> FileVerification:
    """Verify a receipt file or an audit bundle file (told apart by its ``receipts`` key).

    Raises `secureflow.ledger.receipts.InvalidReceiptFileError` if the file is unreadable
    or a malformed bundle, and `NodeUnreachableError`; a malformed *receipt*
    gets a failed ``receipt_format`` check instead.
    """
    data = read_json_file(path)
    if isinstance(data, dict) and "receipts" in data:
        try:
            bundle = AuditBundle.model_validate(data)
        except ValidationError as exc:
            raise InvalidReceiptFileError(
                f"{path} is not an audit bundle: {exc.errors()[0]['msg']} at "
                f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}"
            ) from exc
        verdict = verify_bundle(bundle, node, pin, min_confirmations=min_confirmations, timeout=timeout)
        return FileVerification(path=path, bundle=verdict)
    payload: Mapping[str, Any] = data if isinstance(data, dict) else {"_": json.dumps(data)[:50]}
    return FileVerification(
        path=path,
        receipt=verify_receipt(payload, node, pin, min_confirmations=min_confirmations, timeout=timeout),
    )
