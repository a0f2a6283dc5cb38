"""Helpers for the Settlement tests: the test-only contracts, a settlement environment on top of the
session contracts of ``tests/contracts/conftest.py``, and builders for jobs and contribution records.

The test-only contracts (``contracts/src/test/*.sol``: an ERC-20, a fee-on-transfer ERC-20 and a
reentrant receiver) are not picked up by ``secureflow.ledger.compiler`` (it compiles ``contracts/src/*.sol``
only). Their artifacts live in ``contracts/artifacts/test/``; regenerate them with
``.venv/bin/python tests/contracts/settlement_helpers.py`` (a test checks they are current).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx
from conftest import (
    ContractsEnv,
    error_table,
)  # tests/contracts/conftest.py (pytest puts its folder on sys.path)
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract

from secureflow.ledger.artifacts import ARTIFACTS_DIR, Artifact, CompilerInfo, artifact_path, load_artifact
from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.compiler import COMPILER_SETTINGS, solc_shim, source_hash, standard_input
from secureflow.ledger.deploy import deploy_settlement
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, rpc_call
from secureflow.ledger.merkle import MerkleTree
from secureflow.ledger.records import PartyDigests, StepRecord, job_id_for
from secureflow.ledger.settlement.approval import sign_approval
from secureflow.ledger.settlement.client import SettlementClient
from secureflow.ledger.settlement.contribution import WEIGHTS_OUTPUT, WeightsProposal, propose_weights
from secureflow.ledger.settlement.weights import weights_hash

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MEMBER_A = Account.from_key(DEV_PRIVATE_KEYS[2]).address  # conftest's member_a, the creator of most jobs


def job_id_of(salt: bytes, creator: str = MEMBER_A) -> bytes:
    """The id of the job `SettlementEnv.create_job` creates with ``salt`` when ``creator`` sends it."""
    return bytes.fromhex(job_id_for(creator, keccak(salt), salt)[2:])


TEST_SOURCES_DIR = PROJECT_ROOT / "contracts" / "src" / "test"
TEST_ARTIFACTS_DIR = ARTIFACTS_DIR / "test"
TEST_CONTRACTS = ("CallbackToken", "FeeOnTransferToken", "ReentrantReceiver", "TestToken")


# ------------------------------------------------------------------ test-only contracts


def compile_test_contracts() -> dict[str, Artifact]:
    """Compile ``contracts/src/test/*.sol`` with the pinned solcjs and the project's settings."""
    sources = {
        f"contracts/src/test/{path.name}": path.read_text(encoding="utf-8")
        for path in sorted(TEST_SOURCES_DIR.glob("*.sol"))
    }
    shim = solc_shim()
    output = solcx.compile_standard(standard_input(sources), solc_binary=shim)
    version = solcx.wrapper.get_version_str_from_solc_binary(shim)
    info = CompilerInfo(version=version, settings=COMPILER_SETTINGS)
    digest = source_hash(sources)
    artifacts: dict[str, Artifact] = {}
    for unit in sources:
        for name, contract in output["contracts"][unit].items():
            artifacts[name] = Artifact.model_validate(
                {
                    "contractName": name,
                    "abi": contract["abi"],
                    "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
                    "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
                    "compiler": info,
                    "sourceHash": digest,
                    "metadata": contract["metadata"],
                }
            )
    return artifacts


def write_test_artifacts() -> list[Path]:
    TEST_ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in sorted(compile_test_contracts().items()):
        path = artifact_path(name, TEST_ARTIFACTS_DIR)
        path.write_text(artifact.to_json(), encoding="utf-8")
        written.append(path)
    return written


def load_test_artifact(name: str) -> Artifact:
    return load_artifact(name, TEST_ARTIFACTS_DIR)


# ------------------------------------------------------------------ nonces and accounts


class PendingNonceSource:
    """Nonces straight from the node's pending count: correct across ``evm_revert`` (tests send
    sequentially and wait for each receipt)."""

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3

    def next_nonce(self, address: str) -> int:
        return int(self._w3.eth.get_transaction_count(Web3.to_checksum_address(address), "pending"))

    def resync(self, address: str) -> None:
        return None

    def release(self, address: str, nonce: int) -> None:
        return None  # nothing is handed out ahead of the node's pending count

    def unsent_below(self, address: str, nonce: int) -> bool:
        return False


def throwaway(label: str) -> LocalAccount:
    return Account.from_key(keccak(f"secureflow-settlement-{label}".encode()))


def key_of(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


# ------------------------------------------------------------------ environment


@dataclass
class SettlementEnv:
    """The session registry and ledger, a Settlement, the test tokens and the reentrant receiver."""

    base: ContractsEnv
    client: ChainClient
    settlement: Contract
    token: Contract
    fee_token: Contract
    receiver: Contract
    members: list[LocalAccount]  # A, B, C, D, E: all registered and active
    callback_token: Contract  # calls the receiving contract on every transfer (ERC-777/1363 style)

    @property
    def w3(self) -> Web3:
        return self.base.w3

    @property
    def rpc_url(self) -> str:
        return str(self.w3.provider.endpoint_uri)  # type: ignore[attr-defined]

    def sender(self, account: LocalAccount) -> TransactionSender:
        return TransactionSender(self.client, key_of(account), PendingNonceSource(self.w3))

    def as_client(self, account: LocalAccount) -> SettlementClient:
        return SettlementClient(self.settlement, self.sender(account))

    def snapshot(self) -> str:
        return str(rpc_call(self.rpc_url, "evm_snapshot"))

    def revert_to(self, snapshot: str) -> None:
        assert rpc_call(self.rpc_url, "evm_revert", [snapshot]) is True

    # ---- jobs and records

    def create_job(self, salt: bytes, parties: Sequence[LocalAccount | str]) -> bytes:
        """createJob by the first party given as an account (manifest hash keccak(salt)); the job id,
        which is `job_id_of(salt, creator)`."""
        addresses = [p if isinstance(p, str) else p.address for p in parties]
        creator = next(p for p in parties if not isinstance(p, str))
        self.base.ok(self.base.ledger.functions.createJob(keccak(salt), salt, addresses, []), creator)
        return job_id_of(salt, creator.address)

    def contribution_record(
        self, job_id: bytes, members: Sequence[str], bps: Sequence[int], seq: int = 7
    ) -> StepRecord:
        wh = "0x" + weights_hash(job_id, members, bps).hex()
        return StepRecord(
            job_id="0x" + job_id.hex(),
            seq=seq,
            algorithm="contribution",
            params_hash="0x" + keccak(b"leave-one-party-out:auc").hex(),
            code_version="settlement-test",
            parties=tuple(
                PartyDigests(party=m, outputs={WEIGHTS_OUTPUT: wh}) for m in dict.fromkeys(members)
            ),
            status="succeeded",
            started_at_ms=1_700_000_000_000,
            finished_at_ms=1_700_000_000_500,
        )

    def anchor_record(self, record: StepRecord, others: int = 2) -> MerkleTree:
        """Anchor a batch holding ``record`` and ``others`` unrelated leaves; return its tree."""
        leaves = [record.leaf()] + [keccak(record.leaf() + bytes([i])) for i in range(others)]
        tree = MerkleTree(leaves)
        batch_id = keccak(b"batch" + tree.root)
        self.base.ok(
            self.base.ledger.functions.anchorBatch(batch_id, tree.root, len(leaves)), self.base.anchor
        )
        return tree

    def proposal(
        self, job_id: bytes, members: Sequence[LocalAccount | str], bps: Sequence[int], *, anchor: bool = True
    ) -> WeightsProposal:
        """Build and (by default) anchor the contribution record for these weights; the proposal."""
        addresses = [m if isinstance(m, str) else m.address for m in members]
        record = self.contribution_record(job_id, addresses, bps)
        tree = self.anchor_record(record) if anchor else MerkleTree([record.leaf()])
        return propose_weights(job_id, addresses, bps, record, tree)

    def signature(self, account: LocalAccount, proposal: WeightsProposal) -> bytes:
        return sign_approval(
            key_of(account),
            DEV_CHAIN_ID,
            self.settlement.address,
            proposal.job_id_bytes,
            proposal.weights_hash,
            proposal.record_leaf,
        )

    def set_weights_call(self, proposal: WeightsProposal, signatures: Sequence[bytes]) -> Any:
        return self.settlement.functions.setWeights(
            proposal.job_id_bytes,
            list(proposal.members),
            list(proposal.bps),
            proposal.record_proof(),
            list(signatures),
        )

    def setup_job(self, salt: bytes, members: Sequence[LocalAccount], bps: Sequence[int]) -> WeightsProposal:
        """Create the job (`create_job`), anchor its contribution record, set the weights, all signing."""
        job_id = self.create_job(salt, members)
        proposal = self.proposal(job_id, members, bps)
        signatures = [self.signature(m, proposal) for m in members]
        self.base.ok(self.set_weights_call(proposal, signatures), members[0])
        return proposal

    def fund(self, account: str, wei: int) -> None:
        """Set ``account``'s balance with the dev node's own method (anvil's or hardhat's setBalance)."""
        client = str(rpc_call(self.rpc_url, "web3_clientVersion"))
        method = "hardhat_setBalance" if client.startswith("HardhatNetwork") else "anvil_setBalance"
        rpc_call(self.rpc_url, method, [account, hex(wei)])


def build_settlement_env(contracts_env: ContractsEnv) -> SettlementEnv:
    """Deploy Settlement (through ``secureflow.ledger.deploy.deploy_settlement``), the test tokens and the
    receiver; register members D and E and the receiver contract in the session registry."""
    w3 = contracts_env.w3
    client = ChainClient(ChainConfig(rpc_url=str(w3.provider.endpoint_uri), expected_chain_id=DEV_CHAIN_ID))  # type: ignore[attr-defined]
    admin = contracts_env.admin
    sender = TransactionSender(client, key_of(admin), PendingNonceSource(w3))
    deployed = deploy_settlement(client, sender, contracts_env.registry.address, contracts_env.ledger.address)
    settlement = w3.eth.contract(address=deployed.address, abi=load_artifact("Settlement").abi)

    def deploy_test(name: str) -> Contract:
        artifact = load_test_artifact(name)
        receipt = sender.deploy(artifact.abi, artifact.bytecode)
        return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)

    token = deploy_test("TestToken")
    fee_token = deploy_test("FeeOnTransferToken")
    callback_token = deploy_test("CallbackToken")
    receiver = deploy_test("ReentrantReceiver")
    member_d, member_e = throwaway("member-d"), throwaway("member-e")
    for account in (member_d.address, member_e.address, receiver.address):
        contracts_env.ok(
            contracts_env.registry.functions.registerMember(account, keccak(text=account)), admin
        )
    base = dataclasses.replace(
        contracts_env,
        errors=error_table(
            contracts_env.registry.abi,
            contracts_env.ledger.abi,
            settlement.abi,
            token.abi,
            fee_token.abi,
            receiver.abi,
        ),
    )
    return SettlementEnv(
        base=base,
        client=client,
        settlement=settlement,
        token=token,
        fee_token=fee_token,
        receiver=receiver,
        members=[contracts_env.member_a, contracts_env.member_b, contracts_env.member_c, member_d, member_e],
        callback_token=callback_token,
    )


if __name__ == "__main__":
    for written in write_test_artifacts():
        print(written.relative_to(PROJECT_ROOT))
    sys.exit(0)
