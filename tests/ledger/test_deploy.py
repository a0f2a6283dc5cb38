"""Deploying through the CLI to a real anvil, and what the deployment file guards against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from eth_account import Account
from typer.testing import CliRunner
from web3 import Web3

from secureflow.api.cli.main import app
from secureflow.ledger.chain import ChainClient, ChainConfig
from secureflow.ledger.deploy import Deployment, connect, load_deployment, write_deployment
from secureflow.ledger.devchain import DEV_PRIVATE_KEYS, DevChain
from secureflow.ledger.errors import DeploymentFileError, WrongChainError


def run_cli(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """The real `secureflow` CLI, in process (importing web3 costs seconds per subprocess)."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


@pytest.fixture(scope="module")
def deployment_file(devchain: DevChain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy") / "deployment.json"
    result = run_cli(
        "deploy",
        "--rpc-url",
        devchain.rpc_url,
        "--chain-id",
        "1337",
        "--out",
        str(out),
        env={"SECUREFLOW_DEPLOYER_KEY": DEV_PRIVATE_KEYS[0]},
    )
    assert result.exit_code == 0, result.output
    assert "AuditLedger" in result.stdout
    return out


def test_deploy_writes_a_usable_deployment_file(devchain: DevChain, deployment_file: Path) -> None:
    deployment = load_deployment(deployment_file)
    assert deployment.chain_id == 1337
    assert set(deployment.contracts) == {"ConsortiumRegistry", "AuditLedger", "Settlement"}
    client = ChainClient(ChainConfig(rpc_url=devchain.rpc_url))
    for name in deployment.contracts:
        assert connect(client, deployment, name).address == deployment.address_of(name)
    registry = connect(client, deployment, "ConsortiumRegistry")
    admin_role = registry.functions.DEFAULT_ADMIN_ROLE().call()
    assert registry.functions.hasRole(admin_role, deployment.deployer).call()
    assert deployment.deploy_block <= min(c.block_number for c in deployment.contracts.values())
    assert deployment.version == 2
    for entry in deployment.contracts.values():  # what an auditor pins: the runtime code as deployed
        code = bytes(client.w3.eth.get_code(Web3.to_checksum_address(entry.address)))
        assert entry.code_hash == "0x" + Web3.keccak(code).hex().removeprefix("0x")


def test_a_version_1_deployment_file_still_loads(deployment_file: Path, tmp_path: Path) -> None:
    raw = json.loads(deployment_file.read_text())
    raw["version"] = 1
    for entry in raw["contracts"].values():
        del entry["code_hash"]
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(raw))
    loaded = load_deployment(old)
    assert loaded.version == 1 and {c.code_hash for c in loaded.contracts.values()} == {None}


def test_deploy_refuses_a_chain_id_mismatch(devchain: DevChain, tmp_path: Path) -> None:
    out = tmp_path / "deployment.json"
    result = run_cli(
        "deploy",
        "--rpc-url",
        devchain.rpc_url,
        "--chain-id",
        "10",
        "--out",
        str(out),
        env={"SECUREFLOW_DEPLOYER_KEY": DEV_PRIVATE_KEYS[0]},
    )
    assert result.exit_code == 1
    assert "serves chain id 1337, expected 10" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_deploy_without_a_key_says_which_variable(devchain: DevChain, tmp_path: Path) -> None:
    result = run_cli(
        "deploy",
        "--rpc-url",
        devchain.rpc_url,
        "--chain-id",
        "1337",
        "--out",
        str(tmp_path / "d"),
        env={"SECUREFLOW_DEPLOYER_KEY": None},
    )
    assert result.exit_code == 1
    assert "SECUREFLOW_DEPLOYER_KEY" in result.output


def test_deployment_file_of_another_chain_is_not_overwritten(deployment_file: Path, tmp_path: Path) -> None:
    deployment = load_deployment(deployment_file)
    target = tmp_path / "deployment.json"
    write_deployment(deployment, target)
    other_chain = deployment.model_copy(update={"chain_id": 10})
    with pytest.raises(WrongChainError, match="holds a deployment on chain 1337"):
        write_deployment(other_chain, target)
    assert load_deployment(target).chain_id == 1337
    write_deployment(other_chain, target, overwrite_other_chain=True)
    assert load_deployment(target).chain_id == 10


def test_deployment_on_another_chain_is_refused_when_connecting(
    devchain: DevChain, deployment_file: Path
) -> None:
    deployment = load_deployment(deployment_file).model_copy(update={"chain_id": 10})
    with pytest.raises(WrongChainError, match="deployment is on chain 10"):
        connect(ChainClient(ChainConfig(rpc_url=devchain.rpc_url)), deployment, "AuditLedger")


def test_stale_artifacts_are_refused(devchain: DevChain, deployment_file: Path) -> None:
    raw = json.loads(deployment_file.read_text())
    raw["contracts"]["AuditLedger"]["bytecode_sha256"] = "0" * 64
    with pytest.raises(DeploymentFileError, match="other sources"):
        connect(
            ChainClient(ChainConfig(rpc_url=devchain.rpc_url)), Deployment.model_validate(raw), "AuditLedger"
        )


def test_broken_deployment_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DeploymentFileError, match="not a valid deployment file"):
        load_deployment(tmp_path / "bad.json")
    with pytest.raises(DeploymentFileError, match="no deployment file"):
        load_deployment(tmp_path / "missing.json")


def test_deploy_refuses_to_replace_a_deployment_file_without_force(
    devchain: DevChain, tmp_path: Path
) -> None:
    out = tmp_path / "deployment.json"
    args = ["deploy", "--rpc-url", devchain.rpc_url, "--chain-id", "1337", "--out", str(out)]
    env = {"SECUREFLOW_DEPLOYER_KEY": DEV_PRIVATE_KEYS[0]}
    first = run_cli(*args, env=env)
    assert first.exit_code == 0, first.output
    pinned = out.read_text()
    w3 = Web3(Web3.HTTPProvider(devchain.rpc_url))
    deployer = Account.from_key(DEV_PRIVATE_KEYS[0]).address
    nonce = w3.eth.get_transaction_count(deployer)
    again = run_cli(*args, env=env)
    assert again.exit_code == 1
    assert f"{out} exists" in again.output and "--force" in again.output
    assert out.read_text() == pinned
    assert w3.eth.get_transaction_count(deployer) == nonce  # refused before any transaction was sent
    forced = run_cli(*args, "--force", env=env)
    assert forced.exit_code == 0, forced.output
    assert out.read_text() != pinned
