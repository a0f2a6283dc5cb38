"""Deploying the contracts and the deployment file that records where they are.

`deploy_contracts` deploys the consortium registry, the audit ledger and the
settlement contract to any
JSON-RPC endpoint (anvil, Besu, GoQuorum) and returns a `Deployment`: chain id,
addresses, deploy block, the sha256 of each artifact's bytecode and (version
2) each contract's code hash: keccak256 of its runtime code as deployed (what
``eth_getCode`` returns, the EVM's EXTCODEHASH). The file is what every other
command uses to find the contracts; `connect` refuses a node on another chain,
an address without code, and artifacts that changed since the deployment (a
stale ABI would mis-decode events). It is also what an auditor pins:
``secureflow verify --deployment FILE`` checks the code at each address against
its code hash (see ``secureflow.ledger.verify``). Version-1 files (no code
hashes) still load.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from web3.contract import Contract

from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.chain import ChainClient, TransactionSender
from secureflow.ledger.errors import DeploymentFileError, WrongChainError

DEPLOYMENT_VERSION = 2
CONTRACT_NAMES = ("ConsortiumRegistry", "AuditLedger", "Settlement")


class DeployedContract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    tx_hash: str
    block_number: int
    bytecode_sha256: str
    code_hash: str | None = None
    """keccak256 of the runtime code at ``address`` right after deployment (0x + 64 hex); None in v1 files."""


class Deployment(BaseModel):
    """Where the contracts live on one chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = DEPLOYMENT_VERSION
    chain_id: int
    deployer: str
    deploy_block: int
    contracts: dict[str, DeployedContract]
    deployed_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    def address_of(self, name: str) -> str:
        try:
            return self.contracts[name].address
        except KeyError:
            raise DeploymentFileError(f"the deployment has no {name}") from None


def bytecode_sha256(name: str) -> str:
    return hashlib.sha256(load_artifact(name).bytecode.encode()).hexdigest()


def deploy_contracts(
    client: ChainClient, sender: TransactionSender, *, admin: str | None = None
) -> Deployment:
    """Deploy the registry (``admin`` gets the admin role; default: the deployer), the audit ledger and
    the settlement contract bound to both."""
    chain_id = client.check()
    admin = admin or sender.address
    deployed: dict[str, DeployedContract] = {}

    registry_artifact = load_artifact("ConsortiumRegistry")
    receipt = sender.deploy(registry_artifact.abi, registry_artifact.bytecode, admin)
    deployed["ConsortiumRegistry"] = _deployed(client, receipt, "ConsortiumRegistry")

    ledger_artifact = load_artifact("AuditLedger")
    receipt = sender.deploy(
        ledger_artifact.abi, ledger_artifact.bytecode, deployed["ConsortiumRegistry"].address
    )
    deployed["AuditLedger"] = _deployed(client, receipt, "AuditLedger")

    deployed["Settlement"] = deploy_settlement(
        client, sender, deployed["ConsortiumRegistry"].address, deployed["AuditLedger"].address
    )

    return Deployment(
        chain_id=chain_id,
        deployer=sender.address,
        deploy_block=min(c.block_number for c in deployed.values()),
        contracts=deployed,
    )


def deploy_settlement(
    client: ChainClient, sender: TransactionSender, registry_address: str, ledger_address: str
) -> DeployedContract:
    """Deploy ``Settlement`` for an existing registry and audit ledger; the entry for a `Deployment`."""
    artifact = load_artifact("Settlement")
    receipt = sender.deploy(
        artifact.abi,
        artifact.bytecode,
        to_checksum_address(registry_address),
        to_checksum_address(ledger_address),
    )
    return _deployed(client, receipt, "Settlement")


def code_hash_at(client: ChainClient, address: str) -> str:
    """keccak256 of the runtime code at ``address`` (0x + 64 hex); what a deployment file pins."""
    code = bytes(client.call_rpc(client.w3.eth.get_code, to_checksum_address(address)))
    if not code:
        raise DeploymentFileError(f"there is no contract code at {address}")
    return "0x" + keccak(code).hex()


def _deployed(client: ChainClient, receipt: object, name: str) -> DeployedContract:
    r = dict(receipt)  # type: ignore[call-overload]
    address = str(r["contractAddress"])
    return DeployedContract(
        address=address,
        tx_hash="0x" + bytes(r["transactionHash"]).hex(),
        block_number=int(r["blockNumber"]),
        bytecode_sha256=bytecode_sha256(name),
        code_hash=code_hash_at(client, address),
    )


def write_deployment(deployment: Deployment, path: Path, *, overwrite_other_chain: bool = False) -> None:
    """Write ``deployment`` atomically; refuse to replace a file for another chain unless told to."""
    if path.exists() and not overwrite_other_chain:
        try:
            existing = load_deployment(path)
        except DeploymentFileError:
            existing = None
        if existing is not None and existing.chain_id != deployment.chain_id:
            raise WrongChainError(
                f"{path} holds a deployment on chain {existing.chain_id}; this one is on chain "
                f"{deployment.chain_id}",
                hint="write to another file (--out) or pass --force to replace it",
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(deployment.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)


def load_deployment(path: Path) -> Deployment:
    try:
        return Deployment.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise DeploymentFileError(f"no deployment file at {path}") from None
    except (json.JSONDecodeError, ValidationError) as exc:
        raise DeploymentFileError(f"{path} is not a valid deployment file: {exc}") from exc


def connect(client: ChainClient, deployment: Deployment, name: str) -> Contract:
    """A handle on contract ``name`` of ``deployment``, after checking chain, code and artifact."""
    chain_id = client.chain_id
    if chain_id != deployment.chain_id:
        raise WrongChainError(
            f"the deployment is on chain {deployment.chain_id} but the node serves chain {chain_id}"
        )
    entry = deployment.contracts.get(name)
    if entry is None:
        raise DeploymentFileError(f"the deployment has no {name}")
    if entry.bytecode_sha256 != bytecode_sha256(name):
        raise DeploymentFileError(
            f"{name} in the deployment was built from other sources than the checked-in artifact",
            hint="redeploy with `secureflow deploy`, or check out the commit that deployed it",
        )
    return client.contract(entry.address, load_artifact(name).abi, name)
