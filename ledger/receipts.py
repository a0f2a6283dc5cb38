"""Receipts: the self-contained proof that one step record is anchored, and the audit bundle of a job.

A :class:`Receipt` (format fixed, docs/formats.md) carries a
step record with everything needed to check it against *any* node of the chain
without this service: the record itself, its hash and Merkle leaf, the sibling
path to the batch root, the anchoring transaction and block, the chain id and
the ledger contract. ``secureflow.ledger.verify`` checks one against the
deployment the auditor pins (the ``contract`` a receipt names is only compared
with it, never trusted).

Format versions: version 2 (issued now) adds ``batch_id`` and ``anchorer``, the
batch id and the account of the ``BatchAnchored`` event that anchored the root,
so that a receipt states who anchored it and the verifier cross-checks that
statement with the chain. Version-1 receipts still load and verify (batch id and
anchorer then come from the chain alone, and the verdict carries a warning).
A version-2 audit bundle carries version-2 receipts.

Receipts are issued from the ledger store for records whose batch is mined
(``submitted`` with a known block, or ``confirmed``). They repeat what the
store holds, without re-deriving it, so that a record altered in the database
after anchoring yields a receipt that fails verification (and reconciliation
flags it) instead of being silently "repaired". The Merkle tree is built once
per batch, so a job of 10,000 records is receipted in about a second.

An :class:`AuditBundle` is what an auditor takes home for one job: the
manifest (optional), the job secret (optional), the job, every record, and a
receipt per anchored record. With the manifest and the job secret the verifier
recomputes the job's manifest hash and every step's ``params_hash``
(`secureflow.ledger.records.commitment`: both are salted with the job secret,
so nobody without it can link or guess them). The secret is given only to the
job's parties and to whoever they hand the bundle to: keep the bundle as
confidential as the manifest. A bundle without it (written before commitments
were salted) still verifies, with a warning that the commitments could not be
checked.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from eth_utils.address import is_address, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from secureflow.ledger.errors import LedgerError, StoreError, UnknownJobError, UnknownRecordError
from secureflow.ledger.merkle import MerkleTree, MerkleTreeError

if TYPE_CHECKING:
    from secureflow.ledger.store.protocols import ReceiptStore
    from secureflow.ledger.store.schemas import Batch, StepRecordRow

RECEIPT_VERSION: Literal[2] = 2
BUNDLE_VERSION: Literal[2] = 2
RECEIPT_VERSIONS = (1, 2)
"""Receipt and bundle format versions this code reads (it writes only the newest)."""
_UINT64_MAX = 2**64 - 1


def _absent(value: object) -> bool:
    return value is None


def _lower(value: str) -> str:
    return value.lower()


@functools.lru_cache(maxsize=1024)
def _checksum(value: str) -> str:
    if not is_address(value):
        raise ValueError(f"{value!r} is not an Ethereum address (0x + 40 hex digits, valid EIP-55 checksum)")
    return str(to_checksum_address(value))


Hex32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$"), AfterValidator(_lower)]
"""A 32-byte value as ``0x`` + 64 hex digits, normalised to lower case."""

Address = Annotated[str, AfterValidator(_checksum)]
"""An Ethereum address in its EIP-55 checksum form."""


class ReceiptError(LedgerError):
    """A receipt or audit bundle cannot be issued, read or written."""

    hint = "check the job id and sequence number, and that the record's batch is anchored"


class RecordNotAnchoredError(ReceiptError):
    """The record is not (yet) in a mined batch, so there is nothing on chain to prove it against."""

    hint = (
        "wait until the anchoring worker has anchored the record (status submitted with a block, or "
        "confirmed), then ask again; check the worker is running if it stays pending"
    )


class InconsistentBatchError(ReceiptError):
    """The stored records of a batch do not rebuild the batch's stored Merkle root."""

    hint = "the ledger database was altered: run `secureflow audit reconcile` to find the records"


class InvalidReceiptFileError(ReceiptError):
    """A receipt or bundle file is missing, not JSON, or not in the receipt format."""

    hint = "pass a receipt or audit bundle JSON file written by secureflow (format version 1 or 2)"


class Receipt(BaseModel):
    """Everything needed to check one step record against any node of the chain (format versions 1, 2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1, 2] = RECEIPT_VERSION
    chain_id: int = Field(ge=0)
    contract: Address
    job_id: Hex32
    seq: int = Field(ge=0, le=_UINT64_MAX)
    record: dict[str, Any]
    record_hash: Hex32
    leaf: Hex32
    proof: list[Hex32]
    batch_root: Hex32
    # Absent (not null) when not stated: a version-1 receipt is written back exactly as it was. Left out
    # per field, not by a model serializer, so that the JSON schema (the API's OpenAPI) lists every field.
    batch_id: Hex32 | None = Field(default=None, exclude_if=_absent)
    """Version 2: the batch id of the ``BatchAnchored`` event that anchored ``batch_root``."""
    tx_hash: Hex32
    block_number: int = Field(ge=0)
    block_hash: Hex32
    anchorer: Address | None = Field(default=None, exclude_if=_absent)
    """Version 2: the account that sent the anchoring transaction (the event's ``anchorer``)."""
    status: Literal["submitted", "confirmed"]

    @model_validator(mode="after")
    def _fields_of_the_version(self) -> Receipt:
        stated = (self.batch_id is not None, self.anchorer is not None)
        if self.version >= 2 and stated != (True, True):
            raise ValueError("a version-2 receipt states its batch_id and anchorer")
        if self.version == 1 and any(stated):
            raise ValueError("a version-1 receipt has no batch_id or anchorer (those came with version 2)")
        return self

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)


class BundleJob(BaseModel):
    """The job as the ledger store knows it (ids and hashes only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: Hex32
    manifest_hash: Hex32
    creator: Address
    parties: list[Address]
    status: str
    chain_status: str
    created_tx_hash: Hex32 | None = None


class AuditBundle(BaseModel):
    """One job's audit trail: manifest (optional), job, every record, and a receipt per anchored record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1, 2] = BUNDLE_VERSION
    manifest: dict[str, Any] | None = None
    job_secret: Hex32 | None = Field(default=None, repr=False, exclude_if=_absent)
    """The job secret that salts the manifest hash and the ``params_hash`` of each step (if known)."""
    job: BundleJob
    records: list[dict[str, Any]]
    receipts: list[Receipt]

    def write(self, path: Path) -> Path:
        """Write the bundle atomically as JSON; returns ``path``."""
        return write_bundle(self, path)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _describe_unanchored(row: StepRecordRow, batch: Batch | None) -> str:
    where = f"job {row.job_id} step {row.seq}"
    if row.status == "pending":
        return f"{where} is still pending: it is not in an anchoring batch yet"
    if row.status == "failed":
        return f"{where} failed to anchor and will not be anchored"
    if batch is None:
        return f"{where} is {row.status} but its batch {row.batch_id} is not in the ledger store"
    if batch.block_number is not None and batch.sender is None:
        return f"{where} is in batch {batch.batch_id}, whose anchoring account is not in the ledger store"
    return (
        f"{where} is {row.status} in batch {batch.batch_id} (batch {batch.status}), "
        "whose anchoring transaction is not mined yet"
    )


def anchored_batch(row: StepRecordRow, batch: Batch | None) -> Batch:
    if row.status not in ("submitted", "confirmed") or batch is None:
        raise RecordNotAnchoredError(_describe_unanchored(row, batch))
    if (
        batch.tx_hash is None
        or batch.block_number is None
        or batch.block_hash is None
        or batch.sender is None
    ):
        raise RecordNotAnchoredError(_describe_unanchored(row, batch))
    return batch


def batch_tree(store: ReceiptStore, batch: Batch, known: list[StepRecordRow] | None = None) -> MerkleTree:
    """The batch's tree from its stored leaves; ``known`` rows are used if they are the whole batch."""
    rows = known if known is not None and len(known) == batch.record_count else None
    if rows is None:
        return _tree_of_leaves(batch, store.batch_leaves(batch.batch_id))
    return _tree_of_leaves(batch, [row.leaf for row in rows])


def receipt_for(
    row: StepRecordRow, batch: Batch, tree: MerkleTree, chain_id: int, contract_address: str
) -> Receipt:
    assert batch.tx_hash is not None and batch.block_number is not None and batch.block_hash is not None  # noqa: S101 - invariant for the type checker, not input validation
    assert batch.sender is not None  # noqa: S101 - invariant for the type checker (anchored_batch)
    try:
        record = json.loads(row.record_json)
    except ValueError as exc:
        raise StoreError(f"job {row.job_id} step {row.seq}: stored record is not JSON ({exc})") from exc
    return Receipt(
        chain_id=chain_id,
        contract=contract_address,
        job_id=row.job_id,
        seq=row.seq,
        record=record,
        record_hash=row.record_hash,
        leaf=row.leaf,
        proof=[_hex(node) for node in tree.proof(bytes.fromhex(row.leaf[2:]))],
        batch_root=batch.root,
        batch_id=batch.batch_id,
        tx_hash=batch.tx_hash,
        block_number=batch.block_number,
        block_hash=batch.block_hash,
        anchorer=batch.sender,
        status="confirmed" if row.status == "confirmed" else "submitted",
    )


_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


class BatchTreeCache:
    """Merkle trees of anchored batches, built once per process from the batch's stored leaves (LRU).

    The key is (batch id, root): a tree is a function of its leaves, which its root fixes, so a cached
    tree never goes stale. A batch that is re-sent (reorg, dropped tx) keeps its id, root and leaves; records
    released back to ``pending`` leave the batch and are re-anchored in a new batch, with a new root and
    id. A tree is cached only after it rebuilt the batch's stored root, and a record whose stored leaf is
    not in its batch's tree gets `InconsistentBatchError`, exactly as when the tree is rebuilt.
    """

    def __init__(self, max_trees: int = 64) -> None:
        self.max_trees = max_trees
        self._trees: OrderedDict[tuple[str, str], MerkleTree] = OrderedDict()
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()

    def cached(self, batch: Batch) -> MerkleTree | None:
        """The batch's tree if it is cached (no database access)."""
        key = (batch.batch_id, batch.root)
        with self._lock:
            tree = self._trees.get(key)
            if tree is not None:
                self._trees.move_to_end(key)
            return tree

    def tree(self, store: ReceiptStore, batch: Batch) -> MerkleTree:
        """The batch's tree, built from its stored leaves (`ReceiptStore.batch_leaves`) if not cached."""
        tree = self.cached(batch)
        if tree is not None:
            return tree
        key = (batch.batch_id, batch.root)
        with self._build_lock:  # concurrent requests for a new batch build its tree once
            with self._lock:
                tree = self._trees.get(key)
            if tree is None:
                tree = _tree_of_leaves(batch, store.batch_leaves(batch.batch_id))
                with self._lock:
                    self._trees[key] = tree
                    while len(self._trees) > self.max_trees:
                        self._trees.popitem(last=False)
            return tree


def _tree_of_leaves(batch: Batch, leaves: list[str]) -> MerkleTree:
    if not leaves:
        raise InconsistentBatchError(f"batch {batch.batch_id} has no records in the ledger store")
    tree = MerkleTree(bytes.fromhex(leaf[2:]) for leaf in leaves)
    if _hex(tree.root) != batch.root:
        raise InconsistentBatchError(
            f"the {len(leaves)} stored records of batch {batch.batch_id} give root {_hex(tree.root)}, "
            f"the batch's root is {batch.root}"
        )
    return tree


def _stored_hex32(value: str, what: str, row: StepRecordRow) -> str:
    if not _HEX32.match(value):
        raise StoreError(
            f"job {row.job_id} step {row.seq}: the stored {what} is not 0x + 64 hex digits",
            hint="the ledger database was altered: run `secureflow audit reconcile`",
        )
    return value.lower()


def receipt_data(
    row: StepRecordRow, batch: Batch, tree: MerkleTree, chain_id: int, contract_address: str
) -> dict[str, Any]:
    """An anchored record's receipt as JSON-ready data: ``receipt_for(...).model_dump(mode="json")``, faster.

    For the API's hot path: it skips building and re-validating the pydantic model (the stored values were
    validated when written; the hex fields are still checked, so a tampered value is an error, not a
    receipt). ``batch`` must be the record's anchored batch (`anchored_batch`) and ``tree`` its tree.
    """
    assert batch.tx_hash is not None and batch.block_number is not None and batch.block_hash is not None  # noqa: S101 - invariant for the type checker, not input validation
    assert batch.sender is not None  # noqa: S101 - invariant for the type checker (anchored_batch)
    try:
        record = json.loads(row.record_json)
    except ValueError as exc:
        raise StoreError(f"job {row.job_id} step {row.seq}: stored record is not JSON ({exc})") from exc
    leaf = _stored_hex32(row.leaf, "leaf", row)
    try:
        proof = tree.proof(bytes.fromhex(leaf[2:]))
    except MerkleTreeError:
        raise InconsistentBatchError(
            f"job {row.job_id} step {row.seq}: its stored leaf is not in batch {batch.batch_id} "
            f"(root {batch.root})"
        ) from None
    return {
        "version": RECEIPT_VERSION,
        "chain_id": chain_id,
        "contract": _checksum(contract_address),
        "job_id": _stored_hex32(row.job_id, "job id", row),
        "seq": row.seq,
        "record": record,
        "record_hash": _stored_hex32(row.record_hash, "record hash", row),
        "leaf": leaf,
        "proof": [_hex(node) for node in proof],
        "batch_root": _stored_hex32(batch.root, "batch root", row),
        "batch_id": _stored_hex32(batch.batch_id, "batch id", row),
        "tx_hash": _stored_hex32(batch.tx_hash, "transaction hash", row),
        "block_number": batch.block_number,
        "block_hash": _stored_hex32(batch.block_hash, "block hash", row),
        "anchorer": _checksum(batch.sender),
        "status": "confirmed" if row.status == "confirmed" else "submitted",
    }


def build_receipt(
    store: ReceiptStore, chain_id: int, contract_address: str, job_id: str, seq: int
) -> Receipt:
    """The receipt of one record whose batch is mined.

    Raises `secureflow.ledger.errors.UnknownRecordError` if there is no such record,
    `RecordNotAnchoredError` (saying which state it is in) if it is pending,
    failed, or in a batch without a block yet, and `InconsistentBatchError` if
    the batch's stored records no longer rebuild its root.
    """
    row = store.get_record(job_id, seq)
    if row is None:
        raise UnknownRecordError(f"no step record {seq} of job {job_id} in the ledger store")
    batch = store.get_batch(row.batch_id) if row.batch_id is not None else None
    batch = anchored_batch(row, batch)
    return receipt_for(row, batch, batch_tree(store, batch), chain_id, contract_address)


def build_job_receipts(
    store: ReceiptStore, chain_id: int, contract_address: str, job_id: str, *, strict: bool = False
) -> list[Receipt]:
    """Receipts for every anchored record of a job, in seq order; one Merkle tree per batch.

    Records that are not anchored yet are left out, or, with ``strict``, raise
    `RecordNotAnchoredError`.
    """
    rows = store.records_for_job(job_id)
    return _receipts_for_rows(store, rows, chain_id, contract_address, strict=strict)


def _receipts_for_rows(
    store: ReceiptStore, rows: Iterable[StepRecordRow], chain_id: int, contract_address: str, *, strict: bool
) -> list[Receipt]:
    contract_address = _checksum(contract_address)
    by_batch: dict[str | None, list[StepRecordRow]] = defaultdict(list)
    for row in rows:
        by_batch[row.batch_id].append(row)
    receipts: list[Receipt] = []
    for batch_id, batch_rows in by_batch.items():
        batch = store.get_batch(batch_id) if batch_id is not None else None
        tree: MerkleTree | None = None
        for row in batch_rows:
            try:
                anchored = anchored_batch(row, batch)
            except RecordNotAnchoredError:
                if strict:
                    raise
                continue
            if tree is None:
                in_batch = [r for r in batch_rows if r.batch_id == anchored.batch_id]
                tree = batch_tree(store, anchored, in_batch)
            receipts.append(receipt_for(row, anchored, tree, chain_id, contract_address))
    receipts.sort(key=lambda r: r.seq)
    return receipts


def build_bundle(
    store: ReceiptStore,
    chain_id: int,
    contract_address: str,
    job_id: str,
    *,
    manifest: dict[str, Any] | None = None,
    job_secret: str | None = None,
) -> AuditBundle:
    """The audit bundle of a job: manifest and job secret (if given), job, all its records, receipts for the
    anchored ones."""
    job = store.get_job(job_id)
    if job is None:
        raise UnknownJobError(f"no job {job_id} in the ledger store")
    rows = store.records_for_job(job_id)
    records: list[dict[str, Any]] = []
    for row in rows:
        try:
            records.append(json.loads(row.record_json))
        except ValueError as exc:
            raise StoreError(f"job {row.job_id} step {row.seq}: stored record is not JSON ({exc})") from exc
    return AuditBundle(
        manifest=manifest,
        job_secret=job_secret,
        job=BundleJob(
            job_id=job.job_id,
            manifest_hash=job.manifest_hash,
            creator=job.creator,
            parties=list(job.parties),
            status=job.status,
            chain_status=job.chain_status,
            created_tx_hash=job.created_tx_hash,
        ),
        records=records,
        receipts=_receipts_for_rows(store, rows, chain_id, contract_address, strict=False),
    )


def _write_atomically(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_receipt(receipt: Receipt, path: Path) -> Path:
    """Write one receipt as JSON (atomically); returns ``path``."""
    return _write_atomically(path, receipt.to_json() + "\n")


def write_bundle(bundle: AuditBundle, path: Path) -> Path:
    """Write an audit bundle as JSON (atomically); returns ``path``."""
    return _write_atomically(path, bundle.model_dump_json(indent=1) + "\n")


def read_json_file(path: Path) -> Any:
    """The parsed JSON of a receipt or bundle file; `InvalidReceiptFileError` if unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidReceiptFileError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidReceiptFileError(f"cannot read {path}: {exc}") from exc
    except ValueError as exc:
        raise InvalidReceiptFileError(f"{path} is not JSON: {exc}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return f"{exc.error_count()} problem(s), first at {where}: {error['msg']}"


def load_receipt(path: Path) -> Receipt:
    """Read a receipt file; `InvalidReceiptFileError` if it is not a receipt (format version 1 or 2)."""
    data = read_json_file(path)
    try:
        return Receipt.model_validate(data)
    except ValidationError as exc:
        raise InvalidReceiptFileError(f"{path} is not a receipt: {_first_error(exc)}") from exc


def load_bundle(path: Path) -> AuditBundle:
    """Read an audit bundle file; `InvalidReceiptFileError` if it is not an audit bundle (version 1 or 2)."""
    data = read_json_file(path)
    try:
        return AuditBundle.model_validate(data)
    except ValidationError as exc:
        raise InvalidReceiptFileError(f"{path} is not an audit bundle: {_first_error(exc)}") from exc
