"""The Settlement contract's client: weights, approvals on chain, deposits, balances, withdrawals, history.

The typed Python face of ``Settlement.sol``, sending with a
`secureflow.ledger.chain.TransactionSender` (a key this process holds). A
job's parties agree once on contribution weights
(`secureflow.ledger.settlement.weights`) that refer to an anchored contribution
record (`secureflow.ledger.settlement.contribution`); each party approves them by
EIP-712 signature (`secureflow.ledger.settlement.approval`) or on chain; any
party then sets the weights with the record's proof. Revenue in ETH or an
ERC-20 is deposited for the job and each member withdraws its share (pull
payments).

Members who keep their keys elsewhere sign the transactions that
`secureflow.ledger.settlement.transactions` prepares instead.
`secureflow.ledger.deploy.deploy_settlement` deploys the contract next to an
existing registry and audit ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eth_utils.address import to_checksum_address
from pydantic import BaseModel, ConfigDict
from web3.contract import Contract
from web3.types import TxReceipt

from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.chain import ChainClient
from secureflow.ledger.contracts import ContractClient, hex32
from secureflow.ledger.settlement.approval import sign_approval, signature_list
from secureflow.ledger.settlement.contribution import WeightsProposal

CONTRACT_NAME = "Settlement"
ETH = "0x0000000000000000000000000000000000000000"
"""The asset id of ETH in views and events."""
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
