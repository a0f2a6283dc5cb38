"""Standalone verification of receipts and audit bundles against any JSON-RPC node of the chain.

Uses only the receipt and a node: no ledger database, no secureflow API, no
deployment file (the few contract entry points it needs are declared here).
The checks run in a fixed order, each reported with its name, outcome and
detail; a check whose prerequisites did not pass is reported as skipped::

    receipt_format   the receipt parses as a version-1 receipt
    record_hash      record is a valid StepRecord; keccak256(RFC 8785 JSON) == record_hash
    leaf             the record's (job_id, seq) are the receipt's; leaf(job_id, seq, record_hash) == leaf
    proof            the proof leads from the leaf to batch_root (computed locally, OpenZeppelin rules)
    chain_id         the node serves receipt.chain_id
    contract_code    there is contract code at receipt.contract
    root_anchored    rootRecord(batch_root) was anchored at block_number; verify(leaf, proof, root) is true
    block_canonical  the canonical block at block_number has block_hash; tx_hash is in it, succeeded,
                     and the ledger emitted BatchAnchored(root) in it
    confirmations    head - block_number + 1 >= min_confirmations

A bad receipt never raises: it gets a failed check. An unreachable node raises
`secureflow.ledger.errors.NodeUnreachableError` (nothing could be checked on chain).
`rootRecord` is read at the latest block: a root's ``anchoredAtBlock`` is written
once and never changes, so this needs no archive node.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import requests
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, ValidationError
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound

from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.chain import redact_url
from secureflow.ledger.errors import NodeUnreachableError
from secureflow.ledger.merkle import leaf_hash, process_proof
from secureflow.ledger.receipts import AuditBundle, InvalidReceiptFileError, Receipt, read_json_file
from secureflow.ledger.records import StepRecord, canonical_hash, canonical_json

CheckStatus = Literal["passed", "failed", "skipped"]

CHECK_ORDER: tuple[str, ...] = (
    "receipt_format",
    "record_hash",
    "leaf",
    "proof",
    "chain_id",
    "contract_code",
    "root_anchored",
    "block_canonical",
    "confirmations",
)
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "receipt_format": (),
    "record_hash": ("receipt_format",),
    "leaf": ("record_hash",),
    "proof": ("leaf",),
    "chain_id": ("receipt_format",),
    "contract_code": ("chain_id",),
    "root_anchored": ("proof", "contract_code"),
    "block_canonical": ("chain_id",),
    "confirmations": ("block_canonical",),
}

BATCH_ANCHORED_TOPIC = keccak(text="BatchAnchored(bytes32,bytes32,uint32,address)")
_VERIFY_SELECTOR = keccak(text="verify(bytes32,bytes32[],bytes32)")[:4]

_LEDGER_VIEWS = ("rootRecord", "getBatch", "verify", "getJob")
LEDGER_VIEW_ABI: list[dict[str, Any]] = [
    entry
    for entry in load_artifact("AuditLedger").abi
    if entry.get("type") == "function" and entry.get("name") in _LEDGER_VIEWS
]
"""The audit ledger's views used by verification and reconciliation (taken from the checked-in artifact)."""


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
    """The outcome of verifying one receipt: every check in order, ``ok`` only if all passed."""

    model_config = ConfigDict(frozen=True)

    job_id: str | None
    seq: int | None
    checks: list[Check]

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

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks) and all(v.ok for v in self.receipts)

    @property
    def invalid_receipts(self) -> list[Verdict]:
        return [v for v in self.receipts if not v.ok]

    def check(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def summary(self) -> str:
        valid = sum(v.ok for v in self.receipts)
        bad = [c.name for c in self.checks if c.status == "failed"]
        state = "VALID" if self.ok else "INVALID"
        extra = f"; bundle checks failed: {', '.join(bad)}" if bad else ""
        return f"job {self.job_id}: {state}, {valid}/{len(self.receipts)} receipts valid{extra}"


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


@dataclass
class NodeView:
    """One node, with the answers shared by every receipt of a batch cached (also used by reconciliation)."""

    w3: Web3
    _chain_id: int | None = None
    _head: int | None = None
    _code: dict[str, bytes] = field(default_factory=dict)
    _blocks: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    _tx_receipts: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    _root_records: dict[tuple[str, str], tuple[int, int, str]] = field(default_factory=dict)
    _contracts: dict[str, Contract] = field(default_factory=dict)

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
            self._code[address] = bytes(self.rpc(self.w3.eth.get_code, address))
        return self._code[address]

    def block(self, number: int) -> dict[str, Any] | None:
        if number not in self._blocks:
            block = self.raw("eth_getBlockByNumber", [hex(number), False])
            self._blocks[number] = block if isinstance(block, dict) else None
        return self._blocks[number]

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

    def onchain_verify(self, address: str, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
        """``verify(leaf, proof, root)`` as one raw ``eth_call`` (per receipt, so kept light)."""
        data = _VERIFY_SELECTOR + abi_encode(["bytes32", "bytes32[]", "bytes32"], [leaf, proof, root])
        result = self.raw("eth_call", [{"to": address, "data": "0x" + data.hex()}, "latest"])
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


# -- the checks ----------------------------------------------------------------------------------------


def _b(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def _short(value: str) -> str:
    return value[:10] + "…" + value[-4:] if len(value) > 20 else value


def _check_record_hash(r: Receipt, _node: NodeView, _min: int) -> str:
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


def _check_leaf(r: Receipt, _node: NodeView, _min: int) -> str:
    job_id, seq = r.record.get("job_id"), r.record.get("seq")
    if job_id != r.job_id or seq != r.seq:
        raise _Failed(f"the record is job {job_id} step {seq}, the receipt says job {r.job_id} step {r.seq}")
    computed = "0x" + leaf_hash(_b(r.job_id), r.seq, _b(r.record_hash)).hex()
    if computed != r.leaf:
        raise _Failed(f"(job_id, seq, record_hash) gives leaf {computed}, the receipt says leaf {r.leaf}")
    return f"leaf(job_id, seq, record_hash) = {computed}"


def _check_proof(r: Receipt, _node: NodeView, _min: int) -> str:
    reached = "0x" + process_proof(_b(r.leaf), [_b(p) for p in r.proof]).hex()
    if reached != r.batch_root:
        raise _Failed(
            f"the {len(r.proof)}-step proof leads from the leaf to {reached}, "
            f"the receipt says batch_root {r.batch_root}"
        )
    return f"the {len(r.proof)}-step proof leads from the leaf to batch_root {r.batch_root}"


def _check_chain_id(r: Receipt, node: NodeView, _min: int) -> str:
    chain_id = node.chain_id()
    if chain_id != r.chain_id:
        raise _Failed(f"the node serves chain id {chain_id}, the receipt is for chain id {r.chain_id}")
    return f"the node serves chain id {chain_id}"


def _check_contract_code(r: Receipt, node: NodeView, _min: int) -> str:
    code = node.code(r.contract)
    if not code:
        raise _Failed(f"there is no contract code at {r.contract} on chain {r.chain_id}")
    return f"{len(code)} bytes of code at {r.contract} (code hash 0x{keccak(code).hex()})"


def _check_root_anchored(r: Receipt, node: NodeView, _min: int) -> str:
    try:
        count, block, anchorer = node.root_record(r.contract, r.batch_root)
    except NodeUnreachableError:
        raise
    except Exception as exc:
        raise _Failed(f"{r.contract} does not answer rootRecord(root) like the audit ledger: {exc}") from exc
    if count == 0:
        raise _Failed(f"root {r.batch_root} is not anchored by the ledger contract {r.contract}")
    if block != r.block_number:
        raise _Failed(
            f"root {_short(r.batch_root)} was anchored at block {block}, "
            f"the receipt says block {r.block_number}"
        )
    if not node.onchain_verify(r.contract, _b(r.leaf), [_b(p) for p in r.proof], _b(r.batch_root)):
        raise _Failed("the ledger contract's verify(leaf, proof, root) returned false")
    return (
        f"root anchored at block {block} ({count} records, anchorer {anchorer}); "
        "on-chain verify(leaf, proof, root) is true"
    )


def _check_block_canonical(r: Receipt, node: NodeView, _min: int) -> str:
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
    contract = to_checksum_address(r.contract)
    for log in tx["logs"]:
        topics = [bytes(t) for t in log["topics"]]
        if (
            to_checksum_address(log["address"]) == contract
            and len(topics) >= 3
            and topics[0] == BATCH_ANCHORED_TOPIC
            and topics[2] == _b(r.batch_root)
        ):
            batch_id = "0x" + topics[1].hex()
            return (
                f"block {r.block_number} is canonical; transaction {_short(r.tx_hash)} succeeded in it and "
                f"emitted BatchAnchored(batch {_short(batch_id)}, root {_short(r.batch_root)})"
            )
    raise _Failed(f"transaction {r.tx_hash} emitted no BatchAnchored event for this root from {contract}")


def _check_confirmations(r: Receipt, node: NodeView, min_confirmations: int) -> str:
    head = node.head()
    confirmations = head - r.block_number + 1
    if confirmations < min_confirmations:
        raise _Failed(
            f"{confirmations} confirmation(s) (head {head}, block {r.block_number}), "
            f"{min_confirmations} required"
        )
    return f"{confirmations} confirmation(s) (head {head}), {min_confirmations} required"


_CHECKS: dict[str, Callable[[Receipt, NodeView, int], str]] = {
    "record_hash": _check_record_hash,
    "leaf": _check_leaf,
    "proof": _check_proof,
    "chain_id": _check_chain_id,
    "contract_code": _check_contract_code,
    "root_anchored": _check_root_anchored,
    "block_canonical": _check_block_canonical,
    "confirmations": _check_confirmations,
}


def _run_checks(data: Receipt | Mapping[str, Any], node: NodeView, min_confirmations: int) -> Verdict:
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
            detail = (
                f"not a version-1 receipt: {exc.error_count()} problem(s), first at {where}: {error['msg']}"
            )
            results["receipt_format"] = Check(name="receipt_format", status="failed", detail=detail)
    if receipt is not None:
        results["receipt_format"] = Check(
            name="receipt_format", status="passed", detail=f"version {receipt.version} receipt"
        )
    for name in CHECK_ORDER[1:]:
        blocked = [dep for dep in DEPENDS_ON[name] if results[dep].status != "passed"]
        if blocked or receipt is None:
            detail = f"skipped: needs {', '.join(blocked)}"
            results[name] = Check(name=name, status="skipped", detail=detail)
            continue
        try:
            results[name] = Check(
                name=name, status="passed", detail=_CHECKS[name](receipt, node, min_confirmations)
            )
        except _Failed as failure:
            results[name] = Check(name=name, status="failed", detail=str(failure))
        except NodeUnreachableError:
            raise
        except Exception as exc:  # a malformed answer or receipt must not crash the verifier
            results[name] = Check(name=name, status="failed", detail=f"{type(exc).__name__}: {exc}")
    job_id = receipt.job_id if receipt is not None else _get_str(data, "job_id")
    seq = receipt.seq if receipt is not None else _get_int(data, "seq")
    return Verdict(job_id=job_id, seq=seq, checks=[results[name] for name in CHECK_ORDER])


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
    *,
    min_confirmations: int = 1,
    timeout: float = 10.0,
) -> Verdict:
    """Check one receipt against a JSON-RPC node (a `Web3` or an RPC URL); see the module docstring.

    ``receipt`` may be a parsed JSON object: if it is not a valid receipt, the
    verdict's ``receipt_format`` check fails. Raises only
    `secureflow.ledger.errors.NodeUnreachableError`.
    """
    _check_min(min_confirmations)
    return _run_checks(receipt, NodeView(_web3(node, timeout)), min_confirmations)


def verify_bundle(
    bundle: AuditBundle, node: Web3 | str, *, min_confirmations: int = 1, timeout: float = 10.0
) -> BundleVerdict:
    """Check every receipt of an audit bundle, and the bundle itself.

    Bundle checks: ``records_covered`` (every record has a receipt carrying it,
    and every receipt is of this job), ``manifest_hash`` (keccak256 of the
    manifest's RFC 8785 JSON is the job's manifest hash; skipped without a
    manifest) and ``job_on_chain`` (the ledger holds the job with that manifest
    hash). Answers shared by a batch (block, transaction, root) are fetched once.
    """
    _check_min(min_confirmations)
    chain = NodeView(_web3(node, timeout))
    verdicts = [_run_checks(r, chain, min_confirmations) for r in bundle.receipts]
    checks = [_records_covered(bundle), _manifest_hash(bundle), _job_on_chain(bundle, chain)]
    return BundleVerdict(job_id=bundle.job.job_id, checks=checks, receipts=verdicts)


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


def _manifest_hash(bundle: AuditBundle) -> Check:
    name = "manifest_hash"
    if bundle.manifest is None:
        return Check(name=name, status="skipped", detail="skipped: the bundle carries no manifest")
    try:
        computed = canonical_hash(bundle.manifest)
    except Exception as exc:
        return Check(name=name, status="failed", detail=f"the manifest cannot be canonicalised: {exc}")
    if computed != bundle.job.manifest_hash:
        return Check(
            name=name,
            status="failed",
            detail=f"the manifest hashes to {computed}, the job's manifest hash is "
            f"{bundle.job.manifest_hash}",
        )
    return Check(name=name, status="passed", detail=f"keccak256(RFC 8785 JSON of the manifest) = {computed}")


def _job_on_chain(bundle: AuditBundle, node: NodeView) -> Check:
    name = "job_on_chain"
    contracts = {(r.chain_id, r.contract) for r in bundle.receipts}
    if len(contracts) != 1:
        why = "the bundle has no receipts" if not contracts else "the receipts name different ledgers"
        return Check(name=name, status="skipped" if not contracts else "failed", detail=why)
    ((chain_id, contract),) = contracts
    if node.chain_id() != chain_id:
        return Check(name=name, status="skipped", detail=f"skipped: the node is not on chain {chain_id}")
    try:
        job = node.rpc(node.ledger(contract).functions.getJob(_b(bundle.job.job_id)).call)
    except NodeUnreachableError:
        raise
    except Exception as exc:
        return Check(name=name, status="failed", detail=f"getJob failed on {contract}: {exc}")
    manifest_hash, status = "0x" + bytes(job[0]).hex(), int(job[2])
    if status == 0:
        return Check(
            name=name, status="failed", detail=f"the ledger {contract} has no job {bundle.job.job_id}"
        )
    if manifest_hash != bundle.job.manifest_hash:
        return Check(
            name=name,
            status="failed",
            detail=f"the ledger holds manifest hash {manifest_hash}, the bundle says "
            f"{bundle.job.manifest_hash}",
        )
    return Check(
        name=name, status="passed", detail=f"the ledger holds the job with manifest hash {manifest_hash}"
    )


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
        """Plain-text lines: one per check (receipts of a bundle: one line each, failed ones in full)."""
        out: list[str] = []
        if self.receipt is not None:
            out.extend(_check_lines(self.receipt.checks))
            out.append(self.receipt.summary())
        elif self.bundle is not None:
            out.extend(_check_lines(self.bundle.checks))
            for verdict in self.bundle.receipts:
                out.append(("  ok   " if verdict.ok else "  FAIL ") + verdict.summary())
            out.append(self.bundle.summary())
        return out


def _check_lines(checks: Sequence[Check]) -> list[str]:
    marks = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}
    return [f"[{marks[c.status]}] {c.name:<16} {c.detail}" for c in checks]


def verify_file(
    path: Path, node: Web3 | str, *, min_confirmations: int = 1, timeout: float = 10.0
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
        verdict = verify_bundle(bundle, node, min_confirmations=min_confirmations, timeout=timeout)
        return FileVerification(path=path, bundle=verdict)
    payload: Mapping[str, Any] = data if isinstance(data, dict) else {"_": json.dumps(data)[:50]}
    return FileVerification(
        path=path,
        receipt=verify_receipt(payload, node, min_confirmations=min_confirmations, timeout=timeout),
    )
