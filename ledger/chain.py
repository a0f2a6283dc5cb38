"""The chain client: one web3 connection to a Quorum-compatible node, and a sender of legacy transactions.

``ChainClient`` connects (optionally with the POA ``extraData`` middleware that
QBFT/IBFT nodes need), checks the chain id, and hands out contract handles that
are known to have code. ``TransactionSender`` signs legacy transactions with an
explicit gas price (0 on a free-gas network), takes nonces from a
`secureflow.ledger.nonces.NonceSource` (persistent in production), keeps at most
``max_in_flight`` transactions unconfirmed, waits for receipts with a timeout,
and turns every failure into a `secureflow.ledger.errors` error that says what to do,
decoding the contracts' custom errors by name.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import TxReceipt

from secureflow.ledger.errors import (
    ChainError,
    ContractNotDeployedError,
    ContractRevertedError,
    NodeUnreachableError,
    NonceTooLowError,
    OutOfGasError,
    TransactionError,
    TransactionTimeoutError,
    WrongChainError,
)
from secureflow.ledger.nonces import NonceSource, pending_nonce

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainConfig:
    """How to reach the chain and how to send to it."""

    rpc_url: str
    expected_chain_id: int | None = None
    poa: bool = False
    gas_price: int = 0
    request_timeout: float = 10.0
    receipt_timeout: float = 60.0
    max_in_flight: int = 64
    gas_limit_multiplier: float = 1.3


class ChainClient:
    """A checked connection to one JSON-RPC node."""

    def __init__(self, config: ChainConfig) -> None:
        self.config = config
        provider = Web3.HTTPProvider(
            config.rpc_url,
            request_kwargs={"timeout": config.request_timeout},
            exception_retry_configuration=None,  # we retry with our own backoff and report outages
        )
        self.w3 = Web3(provider)
        if config.poa:
            self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        """The node's chain id, checked against the configured one on first use."""
        if self._chain_id is None:
            self._chain_id = self.check()
        return self._chain_id

    def check(self) -> int:
        """Reach the node and return its chain id; raise if unreachable or the wrong chain."""
        try:
            chain_id = int(self.w3.eth.chain_id)
        except (requests.RequestException, OSError) as exc:
            raise NodeUnreachableError(
                f"cannot reach the JSON-RPC node at {redact_url(self.config.rpc_url)}: {type(exc).__name__}"
            ) from exc
        expected = self.config.expected_chain_id
        if expected is not None and chain_id != expected:
            raise WrongChainError(
                f"the node at {redact_url(self.config.rpc_url)} serves chain id {chain_id}, "
                f"expected {expected}"
            )
        return chain_id

    def contract(self, address: str, abi: Sequence[Mapping[str, Any]], name: str = "contract") -> Contract:
        """A handle on a deployed contract; raises if there is no code at ``address``."""
        checksum = to_checksum_address(address)
        if self.call_rpc(self.w3.eth.get_code, checksum) in (b"", HexBytes(b"")):
            raise ContractNotDeployedError(
                f"no {name} code at {checksum} on chain {self.chain_id} ({redact_url(self.config.rpc_url)})"
            )
        return self.w3.eth.contract(address=checksum, abi=list(abi))

    def block_number(self) -> int:
        return int(self.call_rpc(lambda: self.w3.eth.block_number))

    def call_rpc(self, fn: Any, *args: Any) -> Any:
        """Call a web3 method, mapping transport failures to `NodeUnreachableError`."""
        try:
            return fn(*args)
        except (requests.RequestException, OSError) as exc:
            raise NodeUnreachableError(
                f"lost the JSON-RPC node at {redact_url(self.config.rpc_url)}: {type(exc).__name__}"
            ) from exc


@dataclass(frozen=True)
class SentTransaction:
    """A transaction handed to the node, not yet known to be mined."""

    tx_hash: str
    nonce: int
    gas: int
    description: str
    fields: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    """What was signed (to, data, value): `TransactionSender.wait` re-signs it if the node loses it."""


@dataclass(frozen=True)
class SignedTransaction:
    """A signed transaction not yet handed to the node (its hash is known before sending)."""

    tx_hash: str
    nonce: int
    gas: int
    description: str
    raw: bytes = field(repr=False)


class TransactionSender:
    """Signs and sends legacy transactions from one account with bounded in-flight count."""

    def __init__(self, client: ChainClient, private_key: str, nonces: NonceSource) -> None:
        self.client = client
        self.account: LocalAccount = Account.from_key(private_key)
        self.nonces = nonces
        self._in_flight = threading.BoundedSemaphore(client.config.max_in_flight)

    @property
    def address(self) -> str:
        return str(self.account.address)

    def prepare(self, call: ContractFunction, *, gas: int | None = None, value: int = 0) -> SignedTransaction:
        """Estimate (which surfaces a revert before anything is sent), take a nonce and sign ``call``.

        Nothing is sent: a caller that must survive crashes stores ``tx_hash`` and ``nonce`` first
        (write-ahead) and then calls `broadcast`. Not counted against ``max_in_flight``.
        """
        if gas is None:
            gas = self._estimate(call, value)
        data = call._encode_transaction_data()
        return self._sign({"to": call.address, "data": data, "value": value}, gas, call.fn_name)

    def broadcast(self, signed: SignedTransaction) -> None:
        """Hand a signed transaction to the node; "already known" counts as sent.

        Raises `NonceTooLowError` when the nonce was used by another transaction, mined or waiting in
        the pool (call ``nonces.resync`` and prepare again). Either way the nonce is released: it is
        no longer waiting to be sent.
        """
        try:
            self.client.call_rpc(self.client.w3.eth.send_raw_transaction, signed.raw)
        except Web3RPCError as exc:
            message = str(exc).lower()
            if "already known" in message or "already imported" in message:
                return
            if "nonce too low" in message or "replacement transaction underpriced" in message:
                raise NonceTooLowError(
                    f"{signed.description}: nonce {signed.nonce} was already used"
                ) from exc
            if "insufficient funds" in message:
                raise TransactionError(
                    f"{signed.description}: account {self.address} cannot pay for gas",
                    hint="fund the account or run the network with gas price 0 (SECUREFLOW_GAS_PRICE=0)",
                ) from exc
            raise TransactionError(f"{signed.description}: the node refused the transaction: {exc}") from exc
        finally:
            self.nonces.release(self.address, signed.nonce)

    def abandon(self, signed: SignedTransaction) -> None:
        """``signed`` will not be broadcast (its write-ahead failed): its nonce no longer waits to be sent."""
        self.nonces.release(self.address, signed.nonce)

    def send(self, call: ContractFunction, *, gas: int | None = None, value: int = 0) -> SentTransaction:
        """Estimate, sign and send ``call``; blocks while ``max_in_flight`` transactions are unconfirmed."""
        if gas is None:
            gas = self._estimate(call, value)
        self._in_flight.acquire()
        try:
            data = call._encode_transaction_data()
            return self._send_raw({"to": call.address, "data": data, "value": value}, gas, call.fn_name)
        except BaseException:
            self._in_flight.release()
            raise

    def wait(
        self, sent: SentTransaction, timeout: float | None = None, contract: Contract | None = None
    ) -> TxReceipt:
        """Wait for ``sent`` to be mined; raise a decoded error if it failed."""
        try:
            receipt, sent = self._wait_for_receipt(sent, timeout or self.client.config.receipt_timeout)
        finally:
            self._in_flight.release()
        if receipt["status"] != 1:
            self._raise_failed(sent, receipt, contract)
        return receipt

    def transact(self, call: ContractFunction, *, gas: int | None = None, value: int = 0) -> TxReceipt:
        """Send ``call`` and wait for its successful receipt."""
        sent = self.send(call, gas=gas, value=value)
        return self.wait(sent, contract=_contract_of(call))

    def deploy(self, abi: Sequence[Mapping[str, Any]], bytecode: str, *args: Any) -> TxReceipt:
        """Deploy a contract and wait for it; the receipt carries ``contractAddress``."""
        factory = self.client.w3.eth.contract(abi=list(abi), bytecode=bytecode)
        constructor = factory.constructor(*args)
        tx_params = {"from": self.address, "gasPrice": self.client.config.gas_price}
        try:
            gas = int(constructor.estimate_gas(tx_params) * self.client.config.gas_limit_multiplier)
        except (ContractLogicError, Web3RPCError) as exc:
            raise TransactionError(f"deployment would fail: {exc}") from exc
        data = constructor.data_in_transaction
        self._in_flight.acquire()
        try:
            sent = self._send_raw({"data": data, "value": 0}, gas, "deploy")
        except BaseException:
            self._in_flight.release()
            raise
        return self.wait(sent)

    def _estimate(self, call: ContractFunction, value: int) -> int:
        params = {"from": self.address, "value": value, "gasPrice": self.client.config.gas_price}
        try:
            estimate = self.client.call_rpc(call.estimate_gas, params)
        except (ContractLogicError, Web3RPCError) as exc:
            raise decode_revert(exc, _contract_of(call), call.fn_name) from exc
        return int(estimate * self.client.config.gas_limit_multiplier) + 10_000

    def _sign(self, fields: Mapping[str, Any], gas: int, description: str) -> SignedTransaction:
        return self._sign_at(self.nonces.next_nonce(self.address), fields, gas, description)

    def _sign_at(
        self, nonce: int, fields: Mapping[str, Any], gas: int, description: str
    ) -> SignedTransaction:
        tx = {**fields, "nonce": nonce, "gas": gas, "gasPrice": self.client.config.gas_price}
        signed = self.account.sign_transaction({**tx, "chainId": self.client.chain_id})
        raw = bytes(signed.raw_transaction)
        return SignedTransaction("0x" + keccak(raw).hex(), nonce, gas, description, raw)

    def _send_raw(self, fields: Mapping[str, Any], gas: int, description: str) -> SentTransaction:
        for _attempt in range(3):
            signed = self._sign(fields, gas, description)
            try:
                self.broadcast(signed)
            except NonceTooLowError:
                self.nonces.resync(self.address)
                continue
            return SentTransaction(signed.tx_hash, signed.nonce, gas, description, fields)
        raise TransactionError(f"{description}: nonce kept being too low after resync")

    def tx_known(self, tx_hash: str) -> bool:
        """Whether the node knows ``tx_hash`` (mined, or in its pool): ``eth_getTransactionByHash``."""
        try:
            self.client.call_rpc(self.client.w3.eth.get_transaction, HexStr(tx_hash))
            return True
        except TransactionNotFound:
            return False

    def _resend_lost(self, sent: SentTransaction) -> SentTransaction:
        """``sent`` is unknown to the node (it lost its pool, or was restarted): sign it again.

        The lost transaction can never be mined (nobody else holds it), so re-signing cannot make it
        happen twice. The nonce allocator gives the lowest free nonce: the same one if the chain is
        right below it (then the same transaction, same hash), else the one at the chain's gap.
        A call whose contract has no code any more (the node lost the chain state) is refused: sent
        to an address without code it would "succeed" without doing anything.
        """
        if sent.fields is None:
            raise TransactionError(
                f"{sent.description}: transaction {sent.tx_hash} (nonce {sent.nonce}) is unknown to the node",
                hint="send it again",
            )
        to = sent.fields.get("to")
        if to and not bytes(self.client.call_rpc(self.client.w3.eth.get_code, to_checksum_address(to))):
            raise ContractNotDeployedError(
                f"{sent.description}: transaction {sent.tx_hash} is unknown to the node at "
                f"{redact_url(self.client.config.rpc_url)} and there is no contract code at {to} on chain "
                f"{self.client.chain_id} any more: the node lost the chain state it was sent against",
                hint="restore the chain's state (e.g. anvil --load-state), or redeploy with "
                "`secureflow deploy` and start from a fresh database for the new deployment",
            )
        self.nonces.resync(self.address)
        resent = self._send_raw(sent.fields, sent.gas, sent.description)
        log.warning(
            "%s: transaction %s (nonce %s) was lost by the node; sent again as %s (nonce %s)",
            sent.description,
            sent.tx_hash,
            sent.nonce,
            resent.tx_hash,
            resent.nonce,
        )
        return resent

    def _fill_gap_below(self, sent: SentTransaction) -> None:
        """``sent`` is in the pool but cannot be mined while a nonce below it is missing (a transaction
        dropped from the pool, or allocated by a process that died before sending it): fill each missing
        nonce with a zero-value transfer to ourselves, unless this process is about to send it. A
        transaction of ours that lost its nonce to a filler is unknown to the node and is re-signed
        by whoever waits for it (`_resend_lost`); one still to be broadcast is refused ("nonce too
        low") and re-signed by its sender."""
        chain_next = pending_nonce(self.client.w3, self.address)
        if chain_next >= sent.nonce or self.nonces.unsent_below(self.address, sent.nonce):
            return
        log.warning(
            "%s: transaction %s (nonce %s) waits behind missing nonces %s..%s; filling them",
            sent.description,
            sent.tx_hash,
            sent.nonce,
            chain_next,
            sent.nonce - 1,
        )
        for nonce in range(chain_next, sent.nonce):
            filler = self._sign_at(nonce, {"to": self.address, "value": 0}, 21_000, "nonce gap filler")
            try:
                self.client.call_rpc(self.client.w3.eth.send_raw_transaction, filler.raw)
            except Web3RPCError as exc:
                message = str(exc).lower()
                if not any(m in message for m in ("nonce too low", "already", "underpriced")):
                    raise TransactionError(f"filling nonce {nonce} failed: {exc}") from exc

    def _wait_for_receipt(self, sent: SentTransaction, timeout: float) -> tuple[TxReceipt, SentTransaction]:
        deadline = time.monotonic() + timeout
        delay = 0.02
        polls = 0
        while True:
            try:
                receipt: TxReceipt = self.client.call_rpc(
                    self.client.w3.eth.get_transaction_receipt, sent.tx_hash
                )
                return receipt, sent
            except TransactionNotFound:
                pass
            polls += 1
            if polls % 4 == 0:
                if not self.tx_known(sent.tx_hash):
                    sent = self._resend_lost(sent)
                    deadline = time.monotonic() + timeout
                    continue
                self._fill_gap_below(sent)
            if time.monotonic() >= deadline:
                raise TransactionTimeoutError(
                    f"{sent.description}: no receipt for {sent.tx_hash} "
                    f"(nonce {sent.nonce}) after {timeout:.0f}s"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _raise_failed(self, sent: SentTransaction, receipt: TxReceipt, contract: Contract | None) -> None:
        raise self.failure(sent.tx_hash, receipt, contract, sent.description)

    def failure(self, tx_hash: str, receipt: TxReceipt, contract: Contract | None, what: str) -> ChainError:
        """The error that a transaction mined with status 0 stands for (see `transaction_failure`)."""
        return transaction_failure(self.client, tx_hash, receipt, contract, what)


def transaction_failure(
    client: ChainClient, tx_hash: str, receipt: TxReceipt, contract: Contract | None, what: str
) -> ChainError:
    """The error that a transaction mined with status 0 stands for: the one its estimate would raise.

    Besu and GoQuorum never refuse a failing transaction at send: they mine it with status 0, often
    behind the transaction that made it fail, in the same block. So the revert data is taken from
    what the node knows of the transaction itself: the receipt's ``revertReason`` (Besu with
    ``--revert-reason-enabled``, GoQuorum with ``--revertreason``), else ``debug_traceTransaction``
    (the default tracer with everything disabled: its ``returnValue``); only when neither is
    available is the call replayed on the block's parent state, which misses a cause earlier in
    the same block. Custom errors are decoded by name, as at estimate (`decode_revert`).
    """
    tx = client.call_rpc(client.w3.eth.get_transaction, HexStr(tx_hash))
    if receipt["gasUsed"] >= tx["gas"]:
        return OutOfGasError(f"{what}: transaction {tx_hash} ran out of gas ({tx['gas']} given)")
    data = _receipt_revert_data(receipt)
    if data is None:
        data = _traced_revert_data(client, tx_hash)
    if data:
        return decode_revert(
            ContractLogicError(_revert_message(data), data="0x" + data.hex()), contract, what
        )
    replay = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
    try:
        client.w3.eth.call(replay, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
    except (ContractLogicError, Web3RPCError) as exc:
        return decode_revert(exc, contract, what)
    return TransactionError(
        f"{what}: transaction {tx_hash} was mined with status 0 and the node gives no reason "
        f"(a replay on block {receipt['blockNumber'] - 1} succeeds: an earlier transaction of block "
        f"{receipt['blockNumber']} made it fail)",
        hint="enable revert reasons on the node (Besu: --revert-reason-enabled, GoQuorum: "
        "--revertreason) or its DEBUG API to see why",
    )


def _traced_revert_data(client: ChainClient, tx_hash: str) -> bytes | None:
    """The revert data of a mined transaction from ``debug_traceTransaction``; None if not available."""
    options = {"disableStorage": True, "disableMemory": True, "disableStack": True}
    try:
        reply = client.call_rpc(client.w3.provider.make_request, "debug_traceTransaction", [tx_hash, options])
    except (Web3RPCError, ValueError):
        return None  # no DEBUG API on this node
    result = reply.get("result") if isinstance(reply, Mapping) else None
    if not isinstance(result, Mapping) or not result.get("failed"):
        return None
    return _hex_bytes(result.get("returnValue"))


def _hex_bytes(value: object) -> bytes | None:
    """Bytes from a hex string with or without ``0x`` (geth 1.10's ``returnValue`` has none)."""
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)
    except ValueError:
        return None


_ERROR_STRING = keccak(text="Error(string)")[:4]


def _revert_message(data: bytes) -> str:
    """What revert ``data`` says when it is no custom error of the contract: Error(string), or the data."""
    if data[:4] == _ERROR_STRING:
        try:
            (reason,) = Web3().codec.decode(["string"], data[4:])
            return f"execution reverted: {reason}"
        except ValueError:
            pass
    return f"execution reverted with data 0x{data.hex()}"


def _receipt_revert_data(receipt: TxReceipt) -> bytes | None:
    """Besu's and GoQuorum's ``revertReason`` receipt field (when the node is run to record it)."""
    return _hex_bytes(dict(receipt).get("revertReason"))


def submit_signed(
    client: ChainClient,
    raw: bytes,
    *,
    gas: int,
    description: str,
    contract: Contract | None = None,
    timeout: float | None = None,
) -> TxReceipt:
    """Hand a transaction signed elsewhere (a member's node) to the node and wait for its successful receipt.

    "Already known" counts as sent; a used nonce raises `NonceTooLowError` (sign again with a fresh
    nonce); a mined failure raises the decoded revert, as for our own transactions.
    """
    tx_hash = "0x" + bytes(keccak(raw)).hex()
    try:
        client.call_rpc(client.w3.eth.send_raw_transaction, raw)
    except Web3RPCError as exc:
        message = str(exc).lower()
        if "nonce too low" in message or "replacement transaction underpriced" in message:
            raise NonceTooLowError(f"{description}: its nonce was already used") from exc
        if not ("already known" in message or "already imported" in message):
            raise TransactionError(f"{description}: the node refused the transaction: {exc}") from exc
    wait_s = timeout or client.config.receipt_timeout
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            receipt: TxReceipt = client.call_rpc(client.w3.eth.get_transaction_receipt, tx_hash)
            break
        except TransactionNotFound:
            pass
        if time.monotonic() >= deadline:
            raise TransactionTimeoutError(f"{description}: no receipt for {tx_hash} after {wait_s:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    if receipt["status"] != 1:
        raise transaction_failure(client, tx_hash, receipt, contract, description)
    return receipt


def _contract_of(call: ContractFunction) -> Contract | None:
    return call.w3.eth.contract(address=call.address, abi=call.contract_abi) if call.address else None


def error_selectors(abi: Sequence[Mapping[str, Any]]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    """Map each custom error's 4-byte selector to (name, argument names, argument types)."""
    selectors = {}
    for entry in abi:
        if entry.get("type") != "error":
            continue
        types = [str(item["type"]) for item in entry.get("inputs", [])]
        names = [str(item.get("name") or f"arg{i}") for i, item in enumerate(entry.get("inputs", []))]
        signature = f"{entry['name']}({','.join(types)})"
        selectors[keccak(text=signature)[:4]] = (str(entry["name"]), names, types)
    return selectors


def decode_revert(exc: Exception, contract: Contract | None, what: str) -> ChainError:
    """Turn a web3 revert into `ContractRevertedError` naming the custom error and its arguments."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(exc, ContractCustomError) or (isinstance(data, str) and data.startswith("0x")):
        raw = bytes.fromhex(str(data)[2:]) if isinstance(data, str) else b""
        if contract is not None and len(raw) >= 4:
            known = error_selectors(contract.abi).get(raw[:4])
            if known is not None:
                name, arg_names, arg_types = known
                values = contract.w3.codec.decode(arg_types, raw[4:]) if arg_types else ()
                rendered = ", ".join(f"{n}={_render(v)}" for n, v in zip(arg_names, values, strict=True))
                return ContractRevertedError(
                    f"{what} reverted: {name}({rendered})", error_name=name, error_args=tuple(values)
                )
    if isinstance(exc, ContractLogicError):
        return ContractRevertedError(f"{what} reverted: {exc.message or exc}")
    return TransactionError(f"{what} failed: {exc}")


def _render(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def redact_url(url: str) -> str:
    """``url`` as scheme, host and port only, safe for messages and logs: credentials before the host, and
    API keys in the path or query (``https://node.example/v3/<key>``), are left out."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return url.split("://", 1)[0] + "://***"
    if host is None:
        return url.split("://", 1)[0] + "://***"
    where = f"[{host}]" if ":" in host else host
    hidden = "***@" if "@" in parts.netloc else ""
    tail = "/***" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{hidden}{where}{'' if port is None else f':{port}'}{tail}"
