"""Settlement transactions that members sign themselves: built unsigned, checked, simulated, then broadcast.

The settlement contract acts for ``msg.sender`` (a party sets or approves the
weights; deposits and withdrawals move the sender's funds), so a service that
never holds a member's key cannot send these for the member. This module is
what such a service does instead:

- `SettlementTransactions.prepare` builds an **unsigned** legacy transaction
  (``to, data, value, gas, gasPrice, nonce, chainId``) for the member's
  address, after simulating it with ``eth_call`` from that address, so that a
  refusal comes back before anything is signed, as the contract's decoded
  custom error (`SettlementRefusedError`).
- `SettlementTransactions.check_submission` decodes a raw signed transaction
  (legacy, EIP-155) and checks chain id, target (the Settlement contract),
  function (one of `ALLOWED_FUNCTIONS`), the job it acts on, the recovered
  sender and the nonce; `SettlementTransactions.submit` simulates it again,
  broadcasts it, waits for the receipt and decodes the settlement events.

Which calls to prepare (the current proposal's weights, the kept approvals)
and who may submit is `secureflow.ledger.settlement.service`'s: the API and
``secureflow settle`` reach this module through it. The member's key never
reaches this module; messages carry addresses, hashes and contract error
names only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import rlp
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict, Field
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from secureflow.ledger.chain import ChainClient, decode_revert
from secureflow.ledger.contracts import AuditLedgerClient
from secureflow.ledger.errors import ContractRevertedError
from secureflow.ledger.settlement.approval import signature_list
from secureflow.ledger.settlement.client import (
    ETH,
    SETTLEMENT_EVENTS,
    SettlementEvent,
    settlement_event,
)
from secureflow.ledger.settlement.contribution import WeightsProposal
from secureflow.ledger.settlement.errors import (
    ForeignTransactionError,
    MalformedTransactionError,
    NonceMismatchError,
    SettlementRefusedError,
    TransactionRevertedError,
    WrongSenderError,
)

Action = Literal["set_weights", "approve_weights", "deposit", "withdraw"]
ALLOWED_FUNCTIONS = (
    "setWeights",
    "approveWeights",
    "depositEth",
    "depositToken",
    "withdrawEth",
    "withdrawToken",
)
"""The Settlement functions a member may send through the service (each takes the job id first)."""

# OpenZeppelin's IERC20Errors: a token deposit refused by the token bubbles up one of these.
_TOKEN_ERRORS: list[dict[str, Any]] = [
    {
        "type": "error",
        "name": name,
        "inputs": [
            {"name": who, "type": "address"},
            {"name": have, "type": "uint256"},
            {"name": "needed", "type": "uint256"},
        ],
    }
    for name, who, have in (
        ("ERC20InsufficientBalance", "sender", "balance"),
        ("ERC20InsufficientAllowance", "spender", "allowance"),
    )
]


# ------------------------------------------------------------------ values


class UnsignedTransaction(BaseModel):
    """A legacy transaction ready to sign (``eth_account.Account.sign_transaction`` takes it as is)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)

    to: str = Field(description="the Settlement contract")
    data: str = Field(description="the ABI-encoded call, 0x-hex")
    value: int = Field(ge=0, description="wei sent with the call (ETH deposits only)")
    gas: int = Field(gt=0)
    gas_price: int = Field(ge=0, alias="gasPrice")
    nonce: int = Field(ge=0, description="the sender's next nonce (pending) when prepared")
    chain_id: int = Field(gt=0, alias="chainId")


class PreparedTransaction(BaseModel):
    """An unsigned settlement transaction, simulated from ``sender``, and what it does."""

    model_config = ConfigDict(frozen=True)

    sender: str
    function: str
    description: str
    transaction: UnsignedTransaction


@dataclass(frozen=True)
class DecodedTransaction:
    """A raw signed settlement transaction, decoded and checked."""

    raw: bytes
    tx_hash: str
    sender: str
    nonce: int
    gas_price: int
    gas: int
    to: str
    value: int
    data: bytes
    chain_id: int
    function: str
    args: Mapping[str, Any]


class SubmittedTransaction(BaseModel):
    """A settlement transaction handed to the node: mined (``succeeded``) or still ``pending``."""

    model_config = ConfigDict(frozen=True)

    tx_hash: str
    sender: str
    function: str
    status: Literal["succeeded", "pending"]
    block_number: int | None = None
    block_hash: str | None = None
    gas_used: int | None = None
    events: list[SettlementEvent] = Field(default_factory=list)
    replayed: bool = Field(default=False, description="the same transaction was submitted (and mined) before")


# ------------------------------------------------------------------ decoding


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def decode_raw_transaction(raw: bytes) -> tuple[str, int, int, int, str | None, int, bytes, int | None]:
    """``(sender, nonce, gas_price, gas, to, value, data, chain_id)`` of a signed legacy transaction.

    Raises `MalformedTransactionError` for anything else (typed transactions, bad RLP, bad signature).
    """
    if not raw:
        raise MalformedTransactionError("the raw transaction is empty")
    if raw[0] <= 0x7F:
        raise MalformedTransactionError(
            f"a typed transaction (EIP-2718 type {raw[0]}) was given; the service accepts legacy (type 0) "
            "transactions, as it prepares them"
        )
    try:
        fields = rlp.decode(raw)
    except Exception as exc:  # untrusted bytes: any decoding failure is the caller's input
        raise MalformedTransactionError(
            f"the raw transaction is not valid RLP ({type(exc).__name__})"
        ) from None
    if not isinstance(fields, list) or len(fields) != 9 or not all(isinstance(f, bytes) for f in fields):
        raise MalformedTransactionError(
            "the raw transaction is not a signed legacy transaction (9 RLP fields)"
        )
    nonce, gas_price, gas, to, value, data, v, _r, _s = fields
    if len(to) not in (0, 20):
        raise MalformedTransactionError(f"the transaction's `to` is {len(to)} bytes, not an address")
    if any(len(f) > 32 for f in (nonce, gas_price, gas, value, v)):
        raise MalformedTransactionError("a numeric field of the transaction exceeds 256 bits")
    v_int = _int(v)
    chain_id = (v_int - 35) // 2 if v_int >= 35 else None
    try:
        sender = str(Account.recover_transaction(raw))
    except Exception as exc:  # untrusted bytes: a signature that does not recover is the caller's input
        raise MalformedTransactionError(
            f"the transaction's signature does not recover a sender ({type(exc).__name__})"
        ) from None
    return (
        sender,
        _int(nonce),
        _int(gas_price),
        _int(gas),
        str(to_checksum_address(to)) if to else None,
        _int(value),
        bytes(data),
        chain_id,
    )


# ------------------------------------------------------------------ the builder


class SettlementTransactions:
    """Builds, checks, simulates and broadcasts the settlement transactions members sign themselves."""

    def __init__(self, client: ChainClient, settlement: Contract, ledger: AuditLedgerClient) -> None:
        self.client = client
        self.settlement = settlement
        self.ledger = ledger
        w3 = settlement.w3
        # the Settlement ABI plus the token errors a token deposit can bubble up, for decoding reverts
        self._errors = w3.eth.contract(address=settlement.address, abi=[*settlement.abi, *_TOKEN_ERRORS])

    @property
    def address(self) -> str:
        return str(self.settlement.address)

    @property
    def chain_id(self) -> int:
        return self.client.chain_id

    def job_parties(self, job_id: bytes) -> tuple[str, ...]:
        """The job's parties on the audit ledger, in contract order (empty: no such job on chain)."""
        parties = self.client.call_rpc(self.ledger.contract.functions.jobParties(job_id).call)
        return tuple(str(p) for p in parties)

    # ---- calls

    def set_weights_call(self, weights: WeightsProposal, signatures: Mapping[str, bytes]) -> ContractFunction:
        """``setWeights`` with the record proof and the stored signatures in ``jobParties`` order."""
        job = weights.job_id_bytes
        sig_list = signature_list(self.job_parties(job), signatures)
        return self.settlement.functions.setWeights(
            job, list(weights.members), list(weights.bps), weights.record_proof(), sig_list
        )

    def approve_weights_call(self, weights: WeightsProposal) -> ContractFunction:
        return self.settlement.functions.approveWeights(
            weights.job_id_bytes, weights.weights_hash, weights.record_leaf
        )

    def deposit_call(self, job_id: bytes, asset: str, amount: int) -> tuple[ContractFunction, int]:
        """``depositEth`` (value = amount) or ``depositToken``; returns the call and the value to send."""
        if int(asset, 16) == 0:
            return self.settlement.functions.depositEth(job_id), amount
        return self.settlement.functions.depositToken(job_id, to_checksum_address(asset), amount), 0

    def withdraw_call(self, job_id: bytes, asset: str = ETH) -> ContractFunction:
        if int(asset, 16) == 0:
            return self.settlement.functions.withdrawEth(job_id)
        return self.settlement.functions.withdrawToken(job_id, to_checksum_address(asset))

    # ---- simulation

    def simulate(
        self,
        sender: str,
        data: bytes | str,
        *,
        value: int = 0,
        gas: int | None = None,
        gas_price: int | None = None,
        what: str = "the transaction",
    ) -> None:
        """``eth_call`` from ``sender`` to the contract; raise `SettlementRefusedError` with the decoded
        custom error if the contract (or the node) refuses."""
        tx: dict[str, Any] = {
            "from": to_checksum_address(sender),
            "to": self.address,
            "data": data if isinstance(data, str) else "0x" + data.hex(),
            "value": value,
        }
        if gas is not None:
            tx["gas"] = gas
        if gas_price is not None:
            tx["gasPrice"] = gas_price
        try:
            self.client.call_rpc(self.client.w3.eth.call, tx)
        except (ContractLogicError, Web3RPCError) as exc:
            raise self._refusal(exc, what, gas) from None

    def _refusal(self, exc: Exception, what: str, gas: int | None) -> SettlementRefusedError:
        decoded = decode_revert(exc, self._errors, what)
        if isinstance(decoded, ContractRevertedError):
            message = str(decoded.args[0]) if decoded.args else what
            return SettlementRefusedError(
                message, error_name=decoded.error_name, error_args=decoded.error_args
            )
        text = _rpc_message(exc)
        if "funds" in text.lower():
            return SettlementRefusedError(
                f"{what}: the sender cannot pay the value plus gas ({text})",
                hint="fund the sender, or deposit less",
            )
        if gas is not None and ("gas" in text.lower() or "oog" in text.lower()):
            return SettlementRefusedError(
                f"{what} would run out of gas with the {gas} given ({text})",
                hint="prepare the transaction again: it carries a sufficient gas limit",
            )
        return SettlementRefusedError(f"{what} would fail: {text}", hint="prepare the transaction again")

    def prepare(self, sender: str, call: ContractFunction, *, value: int = 0) -> PreparedTransaction:
        """Simulate ``call`` from ``sender`` (``eth_call``, then ``eth_estimateGas``) and return the unsigned
        legacy transaction for ``sender`` to sign: gas with headroom, the configured gas price, the sender's
        pending nonce and the chain id."""
        sender = str(to_checksum_address(sender))
        data = call._encode_transaction_data()
        what = call.fn_name
        config = self.client.config
        self.simulate(sender, data, value=value, gas_price=config.gas_price, what=what)
        params: dict[str, Any] = {"from": sender, "value": value, "gasPrice": config.gas_price}
        try:
            estimate = int(self.client.call_rpc(call.estimate_gas, params))
        except (ContractLogicError, Web3RPCError) as exc:
            raise self._refusal(exc, what, None) from None
        nonce = int(self.client.call_rpc(self.client.w3.eth.get_transaction_count, sender, "pending"))
        tx = UnsignedTransaction(
            to=self.address,
            data=str(data),
            value=value,
            gas=int(estimate * config.gas_limit_multiplier) + 10_000,
            gasPrice=config.gas_price,
            nonce=nonce,
            chainId=self.chain_id,
        )
        return PreparedTransaction(sender=sender, function=what, description=_describe(call), transaction=tx)

    # ---- submission

    def check_submission(self, raw: bytes, job_id: bytes, caller: str) -> DecodedTransaction:
        """Decode ``raw`` and check it is a settlement call for ``job_id`` on this chain signed by ``caller``.

        Raises `MalformedTransactionError`, `ForeignTransactionError` (other chain, contract, function or
        job) or `WrongSenderError`. Nothing is sent.
        """
        sender, nonce, gas_price, gas, to, value, data, chain_id = decode_raw_transaction(raw)
        if chain_id is None:
            raise MalformedTransactionError(
                "the transaction has no chain id (pre-EIP-155 signature, replayable on any chain)",
                hint=f"sign it with chainId {self.chain_id}, as prepared",
            )
        if chain_id != self.chain_id:
            raise ForeignTransactionError(
                f"the transaction is for chain {chain_id}, this is chain {self.chain_id}"
            )
        if to is None or to.lower() != self.address.lower():
            raise ForeignTransactionError(
                f"the transaction goes to {to or 'no address (a deployment)'}, "
                f"not to the Settlement contract {self.address}"
            )
        try:
            function, args = self.settlement.decode_function_input(data)
        except Exception:  # untrusted calldata: an unknown selector or bad arguments is the caller's input
            raise ForeignTransactionError(
                f"the call data is not a Settlement function call (selector 0x{data[:4].hex()})"
            ) from None
        name = str(function.fn_name)
        if name not in ALLOWED_FUNCTIONS:
            raise ForeignTransactionError(
                f"{name} is not a settlement write the service relays "
                f"(allowed: {', '.join(ALLOWED_FUNCTIONS)})"
            )
        if bytes(args["jobId"]) != job_id:
            raise ForeignTransactionError(
                f"the transaction's {name} acts on job 0x{bytes(args['jobId']).hex()}, "
                f"not on job 0x{job_id.hex()}",
                hint="submit it under /v1/settlements/{its job id}/transactions",
            )
        if sender.lower() != caller.lower():
            raise WrongSenderError(
                f"the transaction is signed by {sender}, not by {caller}, the address of your API key"
            )
        return DecodedTransaction(
            raw=raw,
            tx_hash="0x" + keccak(raw).hex(),
            sender=sender,
            nonce=nonce,
            gas_price=gas_price,
            gas=gas,
            to=to,
            value=value,
            data=data,
            chain_id=chain_id,
            function=name,
            args=dict(args),
        )

    def mined(self, tx: DecodedTransaction) -> SubmittedTransaction | None:
        """The result of ``tx`` if it is mined already (a replayed submission), else None."""
        receipt = self._receipt(tx.tx_hash)
        if receipt is None:
            return None
        return self._result(tx, receipt, replayed=True)

    def submit(self, tx: DecodedTransaction, *, timeout: float | None = None) -> SubmittedTransaction:
        """Check the nonce, simulate ``tx`` from its sender, broadcast it and wait for the receipt.

        A mined transaction is returned as is (``replayed``). Raises `NonceMismatchError` or
        `SettlementRefusedError` with nothing broadcast; `TransactionRevertedError` if it was mined but
        reverted; returns ``status="pending"`` if no receipt arrived within ``timeout``.
        """
        done = self.mined(tx)
        if done is not None:
            return done
        w3 = self.client.w3
        expected = int(self.client.call_rpc(w3.eth.get_transaction_count, tx.sender, "pending"))
        if tx.nonce < expected:
            raise NonceMismatchError(
                f"nonce {tx.nonce} of {tx.sender} is used already (the next is {expected})",
                hint="prepare the transaction again (it takes the current nonce) and sign that",
            )
        if tx.nonce > expected:
            raise NonceMismatchError(
                f"nonce {tx.nonce} of {tx.sender} leaves a gap (the next is {expected}): "
                "it would wait forever",
                hint="prepare the transaction again (it takes the current nonce) and sign that",
            )
        self.simulate(
            tx.sender, tx.data, value=tx.value, gas=tx.gas, gas_price=tx.gas_price, what=tx.function
        )
        try:
            self.client.call_rpc(w3.eth.send_raw_transaction, tx.raw)
        except Web3RPCError as exc:
            text = str(exc).lower()
            if "already known" not in text and "already imported" not in text:
                done = self.mined(tx)  # a concurrent submission of the same transaction was mined first
                if done is not None:
                    return done
                if "nonce too low" in text:
                    raise NonceMismatchError(
                        f"nonce {tx.nonce} of {tx.sender} was used meanwhile",
                        hint="prepare the transaction again and sign that",
                    ) from None
                raise SettlementRefusedError(
                    f"{tx.function}: the node refused the transaction: {exc}",
                    hint="check the gas price and the sender's balance, then prepare again",
                ) from None
        deadline = time.monotonic() + (timeout if timeout is not None else self.client.config.receipt_timeout)
        delay = 0.02
        while True:
            receipt = self._receipt(tx.tx_hash)
            if receipt is not None:
                return self._result(tx, receipt, replayed=False)
            if time.monotonic() >= deadline:
                return SubmittedTransaction(
                    tx_hash=tx.tx_hash, sender=tx.sender, function=tx.function, status="pending"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _receipt(self, tx_hash: str) -> TxReceipt | None:
        try:
            receipt: TxReceipt = self.client.call_rpc(self.client.w3.eth.get_transaction_receipt, tx_hash)
        except TransactionNotFound:
            return None
        return receipt

    def _result(self, tx: DecodedTransaction, receipt: TxReceipt, *, replayed: bool) -> SubmittedTransaction:
        block = int(receipt["blockNumber"])
        if receipt["status"] != 1:
            reason = "no reason given"
            try:
                self.simulate(
                    tx.sender, tx.data, value=tx.value, gas=tx.gas, gas_price=tx.gas_price, what=tx.function
                )
            except SettlementRefusedError as exc:
                reason = str(exc.args[0])
            raise TransactionRevertedError(
                f"{tx.function} transaction {tx.tx_hash} was mined in block {block} but reverted ({reason})"
            )
        return SubmittedTransaction(
            tx_hash=tx.tx_hash,
            sender=tx.sender,
            function=tx.function,
            status="succeeded",
            block_number=block,
            block_hash="0x" + bytes(receipt["blockHash"]).hex(),
            gas_used=int(receipt["gasUsed"]),
            events=self.events_in(receipt),
            replayed=replayed,
        )

    def events_in(self, receipt: TxReceipt) -> list[SettlementEvent]:
        """The Settlement events of a mined transaction, in log order."""
        events = {
            bytes(HexBytes(e.topic)): (name, e)
            for name in SETTLEMENT_EVENTS
            for e in [getattr(self.settlement.events, name)()]
        }
        found = []
        for log in receipt["logs"]:
            if str(log["address"]).lower() != self.address.lower() or not log["topics"]:
                continue
            hit = events.get(bytes(log["topics"][0]))
            if hit is not None:
                found.append(settlement_event(hit[0], hit[1].process_log(log)))
        return found


def _rpc_message(exc: Exception) -> str:
    """The node's error message (``{'code': ..., 'message': ...}`` reduced to its message)."""
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return str(response["error"].get("message") or exc)
    return str(getattr(exc, "message", None) or exc)


def _describe(call: ContractFunction) -> str:
    job = "0x" + bytes(call.args[0]).hex()
    name = call.fn_name
    if name == "setWeights":
        shares = ", ".join(f"{m}={b}" for m, b in zip(call.args[1], call.args[2], strict=True))
        return f"set the weights of job {job}: {shares} (basis points)"
    if name == "approveWeights":
        return f"approve on chain the weights 0x{bytes(call.args[1]).hex()} of job {job}"
    if name == "depositToken":
        return f"deposit {call.args[2]} of token {call.args[1]} for job {job}"
    if name == "depositEth":
        return f"deposit ETH (the transaction's value, in wei) for job {job}"
    if name == "withdrawToken":
        return f"withdraw the sender's releasable token {call.args[1]} from job {job}"
    return f"withdraw the sender's releasable ETH from job {job}"


def asset_of(token: str | None) -> str:
    """The asset id: `ETH` (the zero address) for None, else the checksummed token address."""
    return ETH if token is None or int(token, 16) == 0 else str(to_checksum_address(token))
