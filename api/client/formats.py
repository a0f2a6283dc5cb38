"""The ledger's formats as the API answers them: receipts, audit bundles, settlement state,
history and transactions (pydantic v2).

GENERATED from the server's OpenAPI by ``tools/client_formats.py``; do not edit (run
``.venv/bin/python -m tools.client_formats`` after changing the ledger's models; a test fails until then).
The server declares these answers with the ledger's own models (``secureflow.ledger.receipts``,
``secureflow.ledger.settlement``), which the client does not import. Fields a newer server adds are kept
(``extra="allow"``), and a model is sent back exactly as it was received (`Format`): a `Receipt` handed to
``verification.verify`` is the receipt the API issued.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Format(BaseModel):
    """A format of the ledger as received from the API (sent back with only the fields it had)."""

    model_config = ConfigDict(frozen=True, extra="allow")


class Receipt(Format):
    """Everything needed to check one step record against any node of the chain (format versions 1, 2)."""

    version: Literal[1, 2] = Field(default=2)
    chain_id: int
    contract: str
    job_id: str
    seq: int
    record: dict[str, Any]
    record_hash: str
    leaf: str
    proof: list[str]
    batch_root: str
    batch_id: str | None = None
    tx_hash: str
    block_number: int
    block_hash: str
    anchorer: str | None = None
    status: Literal["submitted", "confirmed"]


class BundleJob(Format):
    """The job as the ledger store knows it (ids and hashes only)."""

    job_id: str
    manifest_hash: str
    creator: str
    parties: list[str]
    status: str
    chain_status: str
    created_tx_hash: str | None = None


class AuditBundle(Format):
    """One job's audit trail: manifest (optional), job, every record, and a receipt per anchored record."""

    version: Literal[1, 2] = Field(default=2)
    manifest: dict[str, Any] | None = None
    job_secret: str | None = None
    job: BundleJob
    records: list[dict[str, Any]]
    receipts: list[Receipt]


class MemberBalance(Format):
    member: str
    bps: int
    entitled: int
    released: int
    releasable: int


class SettlementOut(Format):
    """A job's settlement state on chain (amounts in the asset's smallest unit, e.g. wei)."""

    job_id: str
    contract: str
    asset: str
    weights_set: bool
    weights_hash: str | None
    contribution_record_leaf: str | None
    total_deposited: int
    total_released: int
    balances: list[MemberBalance]


class SettlementEvent(Format):
    """One event of a job's settlement history (``args`` as decoded, bytes rendered as hex)."""

    name: str
    block_number: int
    log_index: int
    tx_hash: str
    args: dict[str, Any]


class SettlementHistory(Format):
    job_id: str
    events: list[SettlementEvent]


class UnsignedTransaction(Format):
    """A legacy transaction ready to sign (``eth_account.Account.sign_transaction`` takes it as is)."""

    to: str = Field(description="the Settlement contract")
    data: str = Field(description="the ABI-encoded call, 0x-hex")
    value: int = Field(description="wei sent with the call (ETH deposits only)")
    gas: int
    gasPrice: int
    nonce: int = Field(description="the sender's next nonce (pending) when prepared")
    chainId: int


class PreparedTransaction(Format):
    """An unsigned settlement transaction, simulated from ``sender``, and what it does."""

    sender: str
    function: str
    description: str
    transaction: UnsignedTransaction


class SubmittedTransaction(Format):
    """A settlement transaction handed to the node: mined (``succeeded``) or still ``pending``."""

    tx_hash: str
    sender: str
    function: str
    status: Literal["succeeded", "pending"]
    block_number: int | None = None
    block_hash: str | None = None
    gas_used: int | None = None
    events: list[SettlementEvent] = Field(default_factory=list)
    replayed: bool = Field(default=False, description="the same transaction was submitted (and mined) before")


__all__ = [
    "AuditBundle",
    "BundleJob",
    "Format",
    "MemberBalance",
    "PreparedTransaction",
    "Receipt",
    "SettlementEvent",
    "SettlementHistory",
    "SettlementOut",
    "SubmittedTransaction",
    "UnsignedTransaction",
]
