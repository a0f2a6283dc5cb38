"""Contracts deployed once per session on each test chain from the checked-in artifacts, plus tx helpers.

Every contract test runs on anvil and on hardhat's node set up like Besu/GoQuorum (``devchain`` is
the root conftest's ``evm_chain`` here): none needs an ``anvil_*`` method (``evm_snapshot`` and
``evm_revert`` work on both; funding uses each node's own ``*_setBalance``).

Accounts: admin = dev key 0, anchoring service = dev key 1, members A and B =
dev keys 2 and 3, outsider = dev key 4, member C = a throw-away key (gas price
is 0, so it needs no funds). Transactions are legacy with ``gasPrice: 0``.
Reverts are checked with ``eth_call`` and decoded to the custom error's name
by its 4-byte selector from the ABIs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_abi import decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain

ZERO_ADDRESS = "0x" + "00" * 20
ZERO32 = b"\x00" * 32


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(p) for p in param["components"]) + ")" + kind[len("tuple") :]
    return kind


def error_table(*abis: Sequence[dict[str, Any]]) -> dict[bytes, tuple[str, list[str]]]:
    """4-byte selector -> (error name, argument types) for every custom error in ``abis``."""
    table: dict[bytes, tuple[str, list[str]]] = {}
    for abi in abis:
        for item in abi:
            if item["type"] == "error":
                types = [_abi_type(p) for p in item["inputs"]]
                table[keccak(f"{item['name']}({','.join(types)})".encode())[:4]] = (item["name"], types)
    return table


@dataclass
class ContractsEnv:
    """The deployed registry and ledger, the test accounts and helpers to transact and decode reverts."""

    w3: Web3
    registry: Contract
    ledger: Contract
    admin: LocalAccount
    anchor: LocalAccount
    member_a: LocalAccount
    member_b: LocalAccount
    member_c: LocalAccount
    outsider: LocalAccount
    errors: dict[bytes, tuple[str, list[str]]] = field(default_factory=dict)

    def send(self, fn: ContractFunction, account: LocalAccount, *, gas: int | None = None) -> TxReceipt:
        """Sign and send ``fn`` from ``account`` as a legacy tx with gas price 0; return the receipt."""
        params: dict[str, Any] = {
            "from": account.address,
            "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
            "gasPrice": 0,
            "chainId": DEV_CHAIN_ID,
        }
        if gas is not None:
            params["gas"] = gas
        tx = fn.build_transaction(params)  # type: ignore[arg-type]
        assert "maxFeePerGas" not in tx
        signed = account.sign_transaction(tx)  # type: ignore[arg-type]
        receipt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(signed.raw_transaction)
        )
        return receipt

    def ok(self, fn: ContractFunction, account: LocalAccount) -> TxReceipt:
        """Send ``fn`` and assert it succeeded."""
        receipt = self.send(fn, account)
        assert receipt["status"] == 1
        return receipt

    def decode_revert(self, data: object) -> tuple[str, tuple[Any, ...]]:
        """The custom error (name, args) in revert ``data``."""
        if isinstance(data, dict):
            data = data.get("data")
        assert isinstance(data, str) and data.startswith("0x"), f"no revert data: {data!r}"
        raw = bytes.fromhex(data[2:])
        name, types = self.errors[raw[:4]]
        return name, tuple(decode(types, raw[4:]))

    def revert(self, fn: ContractFunction, account: LocalAccount) -> tuple[str, tuple[Any, ...]]:
        """Call ``fn`` from ``account`` (eth_call), expect a revert and return the decoded custom error."""
        try:
            fn.call({"from": account.address})
        except ContractLogicError as error:
            return self.decode_revert(error.data)
        raise AssertionError("the call did not revert")

    def events(self, receipt: TxReceipt, contract: Contract, name: str) -> list[dict[str, Any]]:
        """The ``name`` events that ``contract`` emitted in ``receipt`` (their args)."""
        event = getattr(contract.events, name)()
        return [dict(log["args"]) for log in event.process_receipt(receipt, errors=DISCARD)]


def _deploy(w3: Web3, name: str, account: LocalAccount, *args: object) -> Contract:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor(*args).build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "gasPrice": 0,
            "chainId": DEV_CHAIN_ID,
        }
    )
    signed = account.sign_transaction(tx)  # type: ignore[arg-type]
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    assert receipt["status"] == 1 and receipt["contractAddress"]
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


@pytest.fixture(scope="session")
def devchain(evm_chain: DevChain) -> DevChain:
    """Both clients, one after the other (overrides the root conftest's anvil-only ``devchain``)."""
    return evm_chain


@pytest.fixture(scope="session")
def contracts_env(w3: Web3) -> ContractsEnv:
    """Registry + ledger deployed once; members A, B, C registered; dev key 1 is the anchoring service."""
    keys = [Account.from_key(key) for key in DEV_PRIVATE_KEYS]
    admin, anchor, member_a, member_b, outsider = keys
    member_c = Account.from_key(keccak(b"secureflow-test-member-c"))
    registry = _deploy(w3, "ConsortiumRegistry", admin, admin.address)
    ledger = _deploy(w3, "AuditLedger", admin, registry.address)
    env = ContractsEnv(
        w3=w3,
        registry=registry,
        ledger=ledger,
        admin=admin,
        anchor=anchor,
        member_a=member_a,
        member_b=member_b,
        member_c=member_c,
        outsider=outsider,
        errors=error_table(registry.abi, ledger.abi),
    )
    for member in (member_a, member_b, member_c):
        env.ok(registry.functions.registerMember(member.address, keccak(member.address.encode())), admin)
    env.ok(registry.functions.grantRole(registry.functions.ANCHOR_ROLE().call(), anchor.address), admin)
    return env


@pytest.fixture
def env(contracts_env: ContractsEnv, chain_snapshot: None) -> ContractsEnv:
    """The session contracts, with every chain change of the test reverted afterwards."""
    return contracts_env


@pytest.fixture
def consent_signer(contracts_env: ContractsEnv) -> Callable[[LocalAccount, bytes, bytes], bytes]:
    """Sign JobConsent(jobId, manifestHash) for the deployed ledger with eth_account's EIP-712 support."""

    def sign(account: LocalAccount, job_id: bytes, manifest_hash: bytes) -> bytes:
        signed = account.sign_typed_data(
            domain_data={
                "name": "SecureflowAuditLedger",
                "version": "1",
                "chainId": DEV_CHAIN_ID,
                "verifyingContract": contracts_env.ledger.address,
            },
            message_types={
                "JobConsent": [
                    {"name": "jobId", "type": "bytes32"},
                    {"name": "manifestHash", "type": "bytes32"},
                ]
            },
            message_data={"jobId": job_id, "manifestHash": manifest_hash},
        )
        return bytes(signed.signature)

    return sign
