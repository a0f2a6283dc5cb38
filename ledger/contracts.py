"""Typed Python faces of the deployed contracts: the consortium registry and the audit ledger.

Each write goes through a `secureflow.ledger.chain.TransactionSender` (legacy tx, bounded
in-flight, custom errors decoded by name); each read is an ``eth_call``.
On-chain structs come back as pydantic models.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier, TxReceipt

from secureflow.ledger.chain import SentTransaction, TransactionSender
from secureflow.ledger.errors import ReadOnlyClientError

MEMBER_ROLE = keccak(text="MEMBER_ROLE")
ANCHOR_ROLE = keccak(text="ANCHOR_ROLE")
AUDITOR_ROLE = keccak(text="AUDITOR_ROLE")
COORDINATOR_ROLE = keccak(text="COORDINATOR_ROLE")
ADMIN_ROLE = b"\0" * 32  # OpenZeppelin AccessControl's DEFAULT_ADMIN_ROLE
REGISTRY_ROLES: dict[str, bytes] = {
    "admin": ADMIN_ROLE,
    "member": MEMBER_ROLE,
    "anchor": ANCHOR_ROLE,
    "auditor": AUDITOR_ROLE,
    "coordinator": COORDINATOR_ROLE,
}
"""The registry's roles by the names the CLI and docs use (``anchor`` is the anchoring service,
``coordinator`` a job coordinator whose signed queue messages the members' nodes accept)."""


class JobStatus(IntEnum):
    """``AuditLedger.JobStatus``: PROPOSED (waiting for a party's consent) was appended, so the other
    values never changed."""

    NONE = 0
    OPEN = 1
    CLOSED = 2
    FAILED = 3
    PROPOSED = 4


class OnChainJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    manifest_hash: str
    creator: str
    status: JobStatus
    created_at_block: int
    step_count: int
    final_root: str
    parties: tuple[str, ...]


class OnChainBatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch_id: str
    root: str
    record_count: int
    block_number: int
    anchorer: str


def hex32(value: bytes) -> str:
    return "0x" + bytes(value).hex()


class ContractClient:
    """A deployed contract and, for writes, the sender that signs for it (read-only without one)."""

    def __init__(self, contract: Contract, sender: TransactionSender | None = None) -> None:
        self.contract = contract
        self.sender = sender

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def _send(self) -> TransactionSender:
        if self.sender is None:
            raise ReadOnlyClientError(
                f"this {type(self).__name__} is read-only",
                hint="construct it with a TransactionSender to send transactions",
            )
        return self.sender


class RegistryAccount(BaseModel):
    """An account of the consortium registry: the roles it holds now and whether it is suspended."""

    model_config = ConfigDict(frozen=True)

    address: str
    roles: list[str]
    suspended: bool
    metadata_hash: str | None

    @property
    def active_member(self) -> bool:
        return "member" in self.roles and not self.suspended


class RegistryClient(ContractClient):
    """Members and roles of the consortium."""

    def register_member(self, account: str, metadata_hash: bytes = b"\0" * 32) -> TxReceipt:
        return self._send().transact(self.contract.functions.registerMember(account, metadata_hash))

    def suspend_member(self, account: str) -> TxReceipt:
        return self._send().transact(self.contract.functions.suspendMember(account))

    def reinstate_member(self, account: str) -> TxReceipt:
        return self._send().transact(self.contract.functions.reinstateMember(account))

    def grant_anchor_service(self, account: str) -> TxReceipt:
        return self._send().transact(self.contract.functions.grantRole(ANCHOR_ROLE, account))

    def grant_auditor(self, account: str) -> TxReceipt:
        return self._send().transact(self.contract.functions.grantRole(AUDITOR_ROLE, account))

    def is_active_member(self, account: str) -> bool:
        return bool(self.contract.functions.isActiveMember(account).call())

    def is_anchor_service(self, account: str) -> bool:
        return bool(self.contract.functions.isAnchorService(account).call())

    def is_coordinator(self, account: str) -> bool:
        return bool(self.contract.functions.isCoordinator(account).call())

    def is_suspended(self, account: str) -> bool:
        return bool(self.contract.functions.isSuspended(account).call())

    def has_role(self, role: str, account: str) -> bool:
        """Whether ``account`` holds ``role`` (a name of `REGISTRY_ROLES`)."""
        return bool(self.contract.functions.hasRole(REGISTRY_ROLES[role], account).call())

    def grant_role(self, role: str, account: str) -> TxReceipt:
        """Grant ``role`` (``anchor``, ``auditor``, ``coordinator`` or ``admin``; members join by
        `register_member`)."""
        return self._send().transact(self.contract.functions.grantRole(REGISTRY_ROLES[role], account))

    def revoke_role(self, role: str, account: str) -> TxReceipt:
        return self._send().transact(self.contract.functions.revokeRole(REGISTRY_ROLES[role], account))

    def accounts(self, from_block: int) -> list[RegistryAccount]:
        """Every account that was ever granted a role (from the registry's events since ``from_block``),
        with the roles it holds now, whether it is suspended, and its member metadata hash."""
        seen: dict[str, None] = {}
        for log in self.contract.events.RoleGranted().get_logs(from_block=from_block, to_block="latest"):
            seen.setdefault(str(log["args"]["account"]), None)
        metadata = {
            str(log["args"]["account"]): hex32(log["args"]["metadataHash"])
            for log in self.contract.events.MemberRegistered().get_logs(
                from_block=from_block, to_block="latest"
            )
        }
        return [
            RegistryAccount(
                address=account,
                roles=[name for name in REGISTRY_ROLES if self.has_role(name, account)],
                suspended=self.is_suspended(account),
                metadata_hash=metadata.get(account),
            )
            for account in seen
        ]


class AuditLedgerClient(ContractClient):
    """Jobs, batch anchors, models and proof verification on the audit ledger."""

    def create_job(
        self, *, manifest_hash: bytes, salt: bytes, parties: Sequence[str], consents: Sequence[bytes] = ()
    ) -> TxReceipt:
        """``createJob``: the job's id is ``ledger.records.job_id_for(sender, manifest_hash, salt)``; it is
        Open with every party's consent (one signature per party, in party order), else Proposed.

        Keyword-only: the arguments were (job_id, manifest_hash, ...) before ids were derived on chain."""
        call = self.contract.functions.createJob(manifest_hash, salt, list(parties), list(consents))
        return self._send().transact(call)

    def submit_consent(self, job_id: bytes, party: str, signature: bytes) -> TxReceipt:
        return self._send().transact(self.contract.functions.submitConsent(job_id, party, signature))

    def send_anchor_batch(self, batch_id: bytes, root: bytes, record_count: int) -> SentTransaction:
        """Send ``anchorBatch`` without waiting (pair with ``sender.wait``)."""
        return self._send().send(self.contract.functions.anchorBatch(batch_id, root, record_count))

    def anchor_batch(self, batch_id: bytes, root: bytes, record_count: int) -> TxReceipt:
        return self._send().transact(self.contract.functions.anchorBatch(batch_id, root, record_count))

    def record_model(self, job_id: bytes, model_id: bytes, version: int, model_hash: bytes) -> TxReceipt:
        """``recordModel`` (the anchoring service's key, an Open job)."""
        call = self.contract.functions.recordModel(job_id, model_id, version, model_hash)
        return self._send().transact(call)

    def model_hash(self, job_id: bytes, model_id: bytes, version: int) -> bytes:
        """``modelHash(jobId, modelId, version)``: 32 zero bytes when that version is not recorded."""
        return bytes(self.contract.functions.modelHash(job_id, model_id, version).call())

    def close_job_call(
        self,
        job_id: bytes,
        *,
        step_count: int,
        final_record_hash: bytes,
        final_root: bytes,
        proof: Sequence[bytes],
        succeeded: bool = True,
    ) -> ContractFunction:
        """The ``closeJob`` call: with steps, ``proof`` proves the leaf of (job_id, step_count - 1,
        final_record_hash) against the anchored ``final_root``; with none, all three are zero/empty."""
        return self.contract.functions.closeJob(
            job_id, step_count, final_record_hash, final_root, list(proof), succeeded
        )

    def close_job(
        self,
        job_id: bytes,
        *,
        step_count: int,
        final_record_hash: bytes,
        final_root: bytes,
        proof: Sequence[bytes],
        succeeded: bool = True,
    ) -> TxReceipt:
        """``closeJob`` (the anchoring service's key, an Open job); see `close_job_call`."""
        call = self.close_job_call(
            job_id,
            step_count=step_count,
            final_record_hash=final_record_hash,
            final_root=final_root,
            proof=proof,
            succeeded=succeeded,
        )
        return self._send().transact(call)

    def get_job(self, job_id: bytes) -> OnChainJob:
        job = self.contract.functions.getJob(job_id).call()
        manifest_hash, creator, status, created_at_block, step_count, final_root = job
        parties = self.contract.functions.jobParties(job_id).call()
        return OnChainJob(
            job_id=hex32(job_id),
            manifest_hash=hex32(manifest_hash),
            creator=str(creator),
            status=JobStatus(int(status)),
            created_at_block=int(created_at_block),
            step_count=int(step_count),
            final_root=hex32(final_root),
            parties=tuple(str(p) for p in parties),
        )

    def has_consented(self, job_id: bytes, party: str) -> bool:
        return bool(self.contract.functions.hasConsented(job_id, party).call())

    def missing_consents(self, job_id: bytes) -> int:
        """How many parties of a Proposed job have not consented yet (0 for any other job)."""
        return int(self.contract.functions.missingConsents(job_id).call())

    def get_batch(self, batch_id: bytes) -> OnChainBatch:
        root, record_count, block_number, anchorer = self.contract.functions.getBatch(batch_id).call()
        return OnChainBatch(
            batch_id=hex32(batch_id),
            root=hex32(root),
            record_count=int(record_count),
            block_number=int(block_number),
            anchorer=str(anchorer),
        )

    def is_anchored_root(self, root: bytes, block: BlockIdentifier = "latest") -> bool:
        return bool(self.contract.functions.isAnchoredRoot(root).call(block_identifier=block))

    def verify(self, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
        """On-chain check: ``root`` is anchored and ``proof`` leads from ``leaf`` to it."""
        return bool(self.contract.functions.verify(leaf, list(proof), root).call())

    def batch_anchored_events(self, from_block: int, to_block: int | str = "latest") -> list[OnChainBatch]:
        """``BatchAnchored`` events in a block range, filtered by the event topic on the node."""
        logs = self.contract.events.BatchAnchored().get_logs(from_block=from_block, to_block=to_block)
        return [
            OnChainBatch(
                batch_id=hex32(log["args"]["batchId"]),
                root=hex32(log["args"]["root"]),
                record_count=int(log["args"]["recordCount"]),
                block_number=int(log["blockNumber"]),
                anchorer=str(log["args"]["anchorer"]),
            )
            for log in logs
        ]
