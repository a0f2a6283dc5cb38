"""`secureflow members`: the consortium's registry administered from the command line, against the session
chain and a pinned deployment file; and `secureflow anchor-worker` refusing a key without the anchor role."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from stack import ALICE, BOB, SERVICE, LedgerStack
from typer.testing import CliRunner, Result

from secureflow.api.cli.main import app
from secureflow.ledger.chain import ChainClient
from secureflow.ledger.contracts import RegistryClient
from secureflow.ledger.deploy import connect, write_deployment
from secureflow.ledger.devchain import DEV_PRIVATE_KEYS


@pytest.fixture
def members(ledger_stack: LedgerStack, tmp_path: Path, chain_snapshot: None) -> Members:
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    return Members(ledger_stack, deployment)


class Members:
    def __init__(self, stack: LedgerStack, deployment: Path) -> None:
        self.stack, self.deployment = stack, deployment
        client: ChainClient = stack.client()
        self.registry = RegistryClient(connect(client, stack.deployment, "ConsortiumRegistry"))

    def __call__(self, *args: str, key: str | None = DEV_PRIVATE_KEYS[0], ok: bool = True) -> Result:
        env = {"SECUREFLOW_RPC_URL": self.stack.rpc_url, "SECUREFLOW_DEPLOYMENT": str(self.deployment)}
        env["SECUREFLOW_ADMIN_KEY"] = key or ""
        result = CliRunner().invoke(app, ["members", *args], env=env)
        print(f"$ secureflow members {' '.join(args)}\n{result.output}")
        assert "Traceback" not in result.output
        assert all(k.removeprefix("0x") not in result.output for k in DEV_PRIVATE_KEYS), "a key was printed"
        assert (result.exit_code == 0) == ok, result.output
        return result


def test_add_suspend_reinstate_grant_and_revoke_change_the_registry(members: Members) -> None:
    newcomer = Account.create().address
    listed = json.loads(members("list", "--json").stdout)
    roles = {a["address"]: a for a in listed["accounts"]}
    assert roles[ALICE]["roles"] == ["member"] and roles[BOB]["roles"] == ["member"]
    assert "anchor" in roles[SERVICE]["roles"] and newcomer not in roles

    assert "registered as a member (carol)" in members("add", newcomer, "--name", "carol").stdout
    assert members.registry.is_active_member(newcomer)
    again = members("add", newcomer, ok=False)
    assert "AlreadyMember" in again.output

    members("suspend", newcomer)
    assert not members.registry.is_active_member(newcomer) and members.registry.is_suspended(newcomer)
    assert f"{newcomer}  member (suspended)" in members("list").stdout
    members("reinstate", newcomer)
    assert members.registry.is_active_member(newcomer)

    members("grant-role", newcomer, "auditor")
    assert members.registry.has_role("auditor", newcomer)
    assert "holds the auditor role already" in members("grant-role", newcomer, "auditor", ok=False).output
    members("revoke-role", newcomer, "auditor")
    assert not members.registry.has_role("auditor", newcomer)
    members("grant-role", newcomer, "coordinator")  # a job coordinator, whose signed work nodes accept
    assert members.registry.is_coordinator(newcomer)
    members("revoke-role", newcomer, "coordinator")
    assert not members.registry.is_coordinator(newcomer)
    entry = next(
        a for a in json.loads(members("list", "--json").stdout)["accounts"] if a["address"] == newcomer
    )
    assert (
        entry["roles"] == ["member"]
        and entry["suspended"] is False
        and entry["metadata_hash"].startswith("0x")
    )


def test_writes_need_the_registry_admin_key_and_change_nothing_otherwise(members: Members) -> None:
    newcomer = Account.create().address
    missing = members("add", newcomer, key=None, ok=False)
    assert "SECUREFLOW_ADMIN_KEY is not set" in missing.output
    not_admin = members("add", newcomer, key=DEV_PRIVATE_KEYS[1], ok=False)  # alice, a member
    assert f"{ALICE} (SECUREFLOW_ADMIN_KEY) is not an admin of the registry" in not_admin.output
    bad = members("grant-role", "0x1234", "anchor", ok=False)
    assert "'0x1234' is not an address" in bad.output
    assert not members.registry.is_active_member(newcomer)


def test_anchor_worker_refuses_a_key_without_the_anchor_role(
    ledger_stack: LedgerStack, tmp_path: Path
) -> None:
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    stranger = Account.create()
    env = {
        "SECUREFLOW_RPC_URL": ledger_stack.rpc_url,
        "SECUREFLOW_CHAIN_ID": "1337",
        "SECUREFLOW_DEPLOYMENT": str(deployment),
        "SECUREFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "SECUREFLOW_ANCHOR_KEY": "0x" + bytes(stranger.key).hex(),
    }
    refused = CliRunner().invoke(app, ["anchor-worker"], env=env)
    assert refused.exit_code == 1, refused.output
    assert f"{stranger.address} (SECUREFLOW_ANCHOR_KEY) does not hold the anchor role" in refused.output
    assert f"secureflow members grant-role {stranger.address} anchor" in refused.output
    assert bytes(stranger.key).hex() not in refused.output
