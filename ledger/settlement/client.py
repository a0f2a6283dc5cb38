"""Contribution weights and revenue settlement on chain: the typed Python face of ``Settlement.sol``.

A job's parties agree once on contribution weights (basis points per party,
summing to 10,000) that refer to an anchored contribution record: the record
is a `secureflow.ledger.records.StepRecord` whose output digests include the
``weightsHash`` (``keccak256(abi.encode(jobId, members, bps))``), anchored in a
batch of the audit ledger. Each party approves ``ContributionApproval(jobId,
weightsHash, recordLeaf)`` by EIP-712 signature (domain
``SecureflowSettlement``, version ``1``) or on chain; any party then sets the
weights with the record's proof. Revenue in ETH or an ERC-20 is deposited for
the job and each member withdraws its share (pull payments).

Rounding (also in `allocate`): floors first, then each remaining unit to the
member with the largest ``bps / (allocated + 1)`` (lowest index on ties), the
highest-averages rule. Entitlements sum to the deposits exactly and never
decrease as deposits grow.

`secureflow.ledger.deploy.deploy_settlement` deploys the contract next to an existing
registry and audit ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict
from web3.contract import Contract
from web3.types import TxReceipt

from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.chain import ChainClient
from secureflow.ledger.contracts import ContractClient
from secureflow.ledger.merkle import MerkleTree, leaf_hash
from secureflow.ledger.records import StepRecord

CONTRACT_NAME = "Settlement"
DOMAIN_NAME = "SecureflowSettlement"
DOMAIN_VERSION = "1"
TOTAL_BPS = 10_000
ETH = "0x0000000000000000000000000000000000000000"
"""The asset id of ETH in views and events."""
WEIGHTS_OUTPUT = "weights_hash"
"""The output name under which a contribution record carries the weights hash (per party)."""
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
APPROVAL_TYPES = {
    "ContributionApproval": [
        {"name": "jobId", "type": "bytes32"},
        {"name": "weightsHash", "type": "bytes32"},
        {"name": "recordLeaf", "type": "bytes32"},
    ]
}
_ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
]


class SettlementError(ValueError):
    """Weights or a proposal that the contract would refuse, caught before sending."""


def hex32(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _b32(value: bytes | str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value) if isinstance(value, str) else value
    if len(raw) != 32:
        raise SettlementError("expected 32 bytes")
    return bytes(raw)


# ------------------------------------------------------------------- pure helpers


def check_weights(members: Sequence[str], bps: Sequence[int]) -> None:
    """Raise `SettlementError` unless the weights are well-formed (the contract checks them again)."""
    if len(members) != len(bps) or not members:
        raise SettlementError("members and bps must be non-empty and of equal length")
    if len({m.lower() for m in members}) != len(members):
        raise SettlementError("a member appears twice")
    if any(not 0 <= b <= 0xFFFF for b in bps):
        raise SettlementError("each weight must fit uint16")
    if sum(bps) != TOTAL_BPS:
        raise SettlementError(f"weights sum to {sum(bps)} basis points, not {TOTAL_BPS}")


def weights_hash(job_id: bytes, members: Sequence[str], bps: Sequence[int]) -> bytes:
    """``keccak256(abi.encode(jobId, members, bps))`` as the contract computes it."""
    checksummed = [to_checksum_address(m) for m in members]
    return bytes(keccak(encode(["bytes32", "address[]", "uint16[]"], [job_id, checksummed, list(bps)])))


def _highest_averages(total: int, weights: Sequence[int], weight_sum: int) -> list[int]:
    alloc = [total * w // weight_sum for w in weights]
    for _ in range(total - sum(alloc)):
        best = 0
        for i in range(1, len(weights)):
            if weights[i] * (alloc[best] + 1) > weights[best] * (alloc[i] + 1):
                best = i
        alloc[best] += 1
    return alloc


def allocate(total: int, bps: Sequence[int]) -> list[int]:
    """Each member's share of ``total`` under the contract's rounding rule (sums to ``total``): floors
    of ``total * bps / 10000``, then each remaining unit to the largest ``bps / (allocated + 1)``,
    lowest index on ties."""
    if total < 0 or sum(bps) != TOTAL_BPS:
        raise SettlementError("total must be non-negative and the weights must sum to 10,000")
    return _highest_averages(total, bps, TOTAL_BPS)


def bps_from_scores(scores: Sequence[int | float]) -> list[int]:
    """Turn non-negative contribution scores into basis points summing to exactly 10,000 (same rule,
    scores taken to 12 decimal places)."""
    if not scores or any(s < 0 for s in scores) or sum(scores) <= 0:
        raise SettlementError("scores must be non-negative with a positive sum")
    integral = [round(s * 10**12) for s in scores]
    if sum(integral) == 0:
        raise SettlementError("scores are too small")
    return _highest_averages(TOTAL_BPS, integral, sum(integral))


def approval_typed_data(
    chain_id: int, settlement_address: str, job_id: bytes, weights_hash_: bytes, record_leaf: bytes
) -> dict[str, Any]:
    """The EIP-712 typed data of a ContributionApproval (domain, types, message)."""
    return {
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(settlement_address),
        },
        "types": APPROVAL_TYPES,
        "message": {"jobId": job_id, "weightsHash": weights_hash_, "recordLeaf": record_leaf},
    }


def approval_digest(
    chain_id: int, settlement_address: str, job_id: bytes, weights_hash_: bytes, record_leaf: bytes
) -> bytes:
    """The digest a party signs (equals the contract's ``approvalDigest``)."""
    t = approval_typed_data(chain_id, settlement_address, job_id, weights_hash_, record_leaf)
    message = encode_typed_data(t["domain"], t["types"], t["message"])
    return bytes(keccak(b"\x19" + message.version + message.header + message.body))


def sign_approval(
    private_key: str,
    chain_id: int,
    settlement_address: str,
    job_id: bytes,
    weights_hash_: bytes,
    record_leaf: bytes,
) -> bytes:
    """A party's 65-byte EIP-712 ContributionApproval signature."""
    t = approval_typed_data(chain_id, settlement_address, job_id, weights_hash_, record_leaf)
    signed = Account.sign_typed_data(private_key, t["domain"], t["types"], t["message"])
    return bytes(signed.signature)


def approval_signer(
    chain_id: int,
    settlement_address: str,
    job_id: bytes,
    weights_hash_: bytes,
    record_leaf: bytes,
    signature: bytes,
) -> str:
    """The address whose EIP-712 ContributionApproval ``signature`` is, as the contract's ``ECDSA.tryRecover``
    sees it; `SettlementError` if the contract would not recover one (not 65 bytes, ``v`` not 27 or 28,
    ``s`` in the upper half of the curve order, or no public key)."""
    if len(signature) != 65:
        raise SettlementError(f"an approval signature is 65 bytes (r, s, v), not {len(signature)}")
    if signature[64] not in (27, 28):
        raise SettlementError(f"the approval signature cannot be read (v is {signature[64]}, not 27 or 28)")
    if int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_N:
        raise SettlementError(
            "the approval signature cannot be read (s is not canonical, OpenZeppelin's ECDSA)"
        )
    t = approval_typed_data(chain_id, settlement_address, job_id, weights_hash_, record_leaf)
    message = encode_typed_data(t["domain"], t["types"], t["message"])
    try:
        return str(Account.recover_message(message, signature=signature))
    except (ValueError, TypeError, BadSignature) as exc:
        raise SettlementError(f"the approval signature cannot be read ({exc})") from None


def signature_list(parties: Sequence[str], signatures: Mapping[str, bytes]) -> list[bytes]:
    """The ``signatures`` argument of ``setWeights``: one entry per party in ``jobParties`` order (empty bytes
    for a party that approved on chain), or an empty list when no party signed."""
    by_party = {str(k).lower(): v for k, v in signatures.items()}
    ordered = [by_party.get(p.lower(), b"") for p in parties]
    return ordered if any(ordered) else []


def record_carries_weights(record: StepRecord, weights_hash_: bytes) -> bool:
    """Whether the contribution record names ``weights_hash_`` among its output digests (the binding
    that the parties check before approving: the contract only sees the record's hash)."""
    wanted = hex32(weights_hash_)
    return any(wanted in party.outputs.values() for party in record.parties)


# ------------------------------------------------------------------- proposal


class WeightsProposal(BaseModel):
    """Weights for a job and the anchored contribution record they refer to: what parties approve."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    members: tuple[str, ...]
    bps: tuple[int, ...]
    record_hash: str
    seq: int
    root: str
    proof: tuple[str, ...]

    @property
    def job_id_bytes(self) -> bytes:
        return _b32(self.job_id)

    @property
    def weights_hash(self) -> bytes:
        return weights_hash(self.job_id_bytes, self.members, self.bps)

    @property
    def record_leaf(self) -> bytes:
        return leaf_hash(self.job_id_bytes, self.seq, _b32(self.record_hash))

    def record_proof(self) -> tuple[bytes, int, bytes, list[bytes]]:
        """The ``RecordProof`` struct argument of ``setWeights``."""
        return (_b32(self.record_hash), self.seq, _b32(self.root), [_b32(p) for p in self.proof])

    def shares(self, total: int) -> dict[str, int]:
        """What each member is entitled to of ``total`` deposited."""
        return dict(zip(self.members, allocate(total, self.bps), strict=True))


def propose_weights(
    job_id: bytes,
    members: Sequence[str],
    bps: Sequence[int],
    record: StepRecord,
    tree: MerkleTree,
) -> WeightsProposal:
    """A proposal from weights and the anchored contribution record (in ``tree``, whose root is anchored).

    Raises `SettlementError` if the weights are malformed, the record is for another job, it does not
    carry the weights hash among its outputs, or it is not in ``tree``.
    """
    check_weights(members, bps)
    if _b32(record.job_id) != job_id:
        raise SettlementError("the contribution record belongs to another job")
    wh = weights_hash(job_id, members, bps)
    if not record_carries_weights(record, wh):
        raise SettlementError("the contribution record does not carry the weights hash among its outputs")
    leaf = record.leaf()
    if leaf not in tree:
        raise SettlementError("the contribution record is not in the given tree")
    return WeightsProposal(
        job_id=hex32(job_id),
        members=tuple(to_checksum_address(m) for m in members),
        bps=tuple(bps),
        record_hash=hex32(record.record_hash()),
        seq=record.seq,
        root=hex32(tree.root),
        proof=tuple(hex32(p) for p in tree.proof(leaf)),
    )


# ------------------------------------------------------------------- client


class OnChainWeights(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    members: tuple[str, ...]
    bps: tuple[int, ...]
    weights_hash: str
    record_leaf: str
    root: str
    set_at_block: int
    set_by: str

    @property
    def is_set(self) -> bool:
        return int(self.weights_hash, 16) != 0


class MemberBalance(BaseModel):
    model_config = ConfigDict(frozen=True)

    member: str
    bps: int
    entitled: int
    released: int
    releasable: int


class SettlementEvent(BaseModel):
    """One event of a job's settlement history (``args`` as decoded, bytes rendered as hex)."""

    model_config = ConfigDict(frozen=True)

    name: str
    block_number: int
    log_index: int
    tx_hash: str
    args: dict[str, Any]


SETTLEMENT_EVENTS = ("WeightsApproved", "WeightsSet", "RevenueDeposited", "RevenueReleased")


def _render(value: object) -> object:
    if isinstance(value, bytes):
        return hex32(value) if len(value) == 32 else "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return [_render(v) for v in value]
    return value


def settlement_event(name: str, log: Any) -> SettlementEvent:
    """A decoded settlement event log (web3's ``EventData``) as a `SettlementEvent`."""
    return SettlementEvent(
        name=name,
        block_number=int(log["blockNumber"]),
        log_index=int(log["logIndex"]),
        tx_hash=hex32(bytes(log["transactionHash"])),
        args={k: _render(v) for k, v in dict(log["args"]).items()},
    )


class SettlementClient(ContractClient):
    """Weights, deposits, balances, withdrawals and history of the settlement contract."""

    # ---- approvals and weights

    def sign_approval(self, private_key: str, proposal: WeightsProposal) -> bytes:
        """``private_key``'s EIP-712 approval of ``proposal`` for this contract."""
        chain_id = int(self.contract.w3.eth.chain_id)
        return sign_approval(
            private_key,
            chain_id,
            self.address,
            proposal.job_id_bytes,
            proposal.weights_hash,
            proposal.record_leaf,
        )

    def approve_weights(self, proposal: WeightsProposal) -> TxReceipt:
        """Approve ``proposal`` on chain as the sender (a job party)."""
        call = self.contract.functions.approveWeights(
            proposal.job_id_bytes, proposal.weights_hash, proposal.record_leaf
        )
        return self._send().transact(call)

    def has_approved(self, proposal: WeightsProposal, party: str) -> bool:
        return bool(
            self.contract.functions.hasApproved(
                proposal.job_id_bytes, proposal.weights_hash, proposal.record_leaf, party
            ).call()
        )

    def set_weights(
        self, proposal: WeightsProposal, signatures: Mapping[Any, bytes] | Sequence[bytes] = ()
    ) -> TxReceipt:
        """Set the job's weights. ``signatures``: by party address (ordered here as ``jobParties``; a
        missing party must have approved on chain), or a list in ``jobParties`` order, or empty."""
        job_id = proposal.job_id_bytes
        if isinstance(signatures, Mapping):
            ledger_address = self.contract.functions.ledger().call()
            ledger = self.contract.w3.eth.contract(
                address=ledger_address, abi=load_artifact("AuditLedger").abi
            )
            order = [str(p) for p in ledger.functions.jobParties(job_id).call()]
            sig_list = signature_list(order, signatures)
        else:
            sig_list = list(signatures)
        call = self.contract.functions.setWeights(
            job_id, list(proposal.members), list(proposal.bps), proposal.record_proof(), sig_list
        )
        return self._send().transact(call)

    def weights_of(self, job_id: bytes) -> OnChainWeights:
        members, bps, info = self.contract.functions.weightsOf(job_id).call()
        wh, leaf, root, block, set_by = info
        return OnChainWeights(
            job_id=hex32(job_id),
            members=tuple(str(m) for m in members),
            bps=tuple(int(b) for b in bps),
            weights_hash=hex32(wh),
            record_leaf=hex32(leaf),
            root=hex32(root),
            set_at_block=int(block),
            set_by=str(set_by),
        )

    # ---- revenue

    def deposit_eth(self, job_id: bytes, amount: int) -> TxReceipt:
        return self._send().transact(self.contract.functions.depositEth(job_id), value=amount)

    def approve_token(self, token: str, amount: int) -> TxReceipt:
        """Let this contract pull ``amount`` of ``token`` from the sender (before `deposit_token`)."""
        erc20 = self.contract.w3.eth.contract(address=to_checksum_address(token), abi=_ERC20_ABI)
        return self._send().transact(erc20.functions.approve(self.address, amount))

    def deposit_token(self, job_id: bytes, token: str, amount: int, *, approve: bool = True) -> TxReceipt:
        """Deposit ``amount`` of ``token`` (approving it first unless ``approve`` is false)."""
        if approve:
            self.approve_token(token, amount)
        call = self.contract.functions.depositToken(job_id, to_checksum_address(token), amount)
        return self._send().transact(call)

    def withdraw_eth(self, job_id: bytes) -> TxReceipt:
        return self._send().transact(self.contract.functions.withdrawEth(job_id))

    def withdraw_token(self, job_id: bytes, token: str) -> TxReceipt:
        return self._send().transact(
            self.contract.functions.withdrawToken(job_id, to_checksum_address(token))
        )

    def withdraw(self, job_id: bytes, asset: str = ETH) -> TxReceipt:
        """Withdraw the sender's releasable ``asset`` (`ETH` or a token address)."""
        if int(asset, 16) == 0:
            return self.withdraw_eth(job_id)
        return self.withdraw_token(job_id, asset)

    # ---- views

    def total_deposited(self, job_id: bytes, asset: str = ETH) -> int:
        return int(self.contract.functions.totalDeposited(job_id, to_checksum_address(asset)).call())

    def total_released(self, job_id: bytes, asset: str = ETH) -> int:
        return int(self.contract.functions.totalReleased(job_id, to_checksum_address(asset)).call())

    def releasable(self, job_id: bytes, member: str, asset: str = ETH) -> int:
        fn = self.contract.functions.releasable(job_id, to_checksum_address(asset), member)
        return int(fn.call())

    def released(self, job_id: bytes, member: str, asset: str = ETH) -> int:
        return int(self.contract.functions.released(job_id, to_checksum_address(asset), member).call())

    def entitlements(self, job_id: bytes, asset: str = ETH) -> list[int]:
        return [
            int(v) for v in self.contract.functions.entitlements(job_id, to_checksum_address(asset)).call()
        ]

    def balances(self, job_id: bytes, asset: str = ETH) -> list[MemberBalance]:
        """Per member: weight, cumulative entitlement, withdrawn and withdrawable now."""
        weights = self.weights_of(job_id)
        entitled = self.entitlements(job_id, asset)
        rows = []
        for member, bps, amount in zip(weights.members, weights.bps, entitled, strict=True):
            done = self.released(job_id, member, asset)
            rows.append(
                MemberBalance(
                    member=member, bps=bps, entitled=amount, released=done, releasable=amount - done
                )
            )
        return rows

    def history(
        self, job_id: bytes, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[SettlementEvent]:
        """The job's approvals, weights, deposits and withdrawals, filtered by the indexed job id."""
        found: list[SettlementEvent] = []
        for name in SETTLEMENT_EVENTS:
            event = getattr(self.contract.events, name)()
            logs = event.get_logs(
                from_block=from_block, to_block=to_block, argument_filters={"jobId": job_id}
            )
            found.extend(settlement_event(name, log) for log in logs)
        return sorted(found, key=lambda e: (e.block_number, e.log_index))


def settlement_contract(client: ChainClient, address: str) -> Contract:
    """A handle on a deployed Settlement (raises if no code at ``address``)."""
    return client.contract(address, load_artifact(CONTRACT_NAME).abi, CONTRACT_NAME)
