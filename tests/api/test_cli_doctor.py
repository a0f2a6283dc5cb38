"""`secureflow doctor`'s key checks against the session's anvil and a deployment: the coordinator's key
(``SECUREFLOW_COORDINATOR_KEY_FILE``) must hold the registry's coordinator role (every node drops what a
key without it signs), and a key file other users may read is a failed check with the fix."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from stack import LedgerStack
from typer.testing import CliRunner

from secureflow.api.cli.main import app as cli_app
from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID


def _doctor(env: dict[str, str]) -> tuple[int, dict[str, dict[str, str]]]:
    result = CliRunner().invoke(cli_app, ["doctor", "--json", "--skip", "secretflow"], env=env)
    return result.exit_code, {check["name"]: check for check in json.loads(result.stdout)}


def test_doctor_checks_the_coordinator_key_s_role_and_the_key_file_s_mode(
    ledger_stack: LedgerStack, tmp_path: Path
) -> None:
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    account = Account.create()
    key_file = tmp_path / "coordinator.key"
    key_file.write_text("0x" + bytes(account.key).hex() + "\n")
    key_file.chmod(0o600)
    env = {
        "SECUREFLOW_RPC_URL": ledger_stack.rpc_url,
        "SECUREFLOW_CHAIN_ID": str(DEV_CHAIN_ID),
        "SECUREFLOW_DEPLOYMENT": str(deployment),
        "SECUREFLOW_COORDINATOR_KEY_FILE": str(key_file),
        "SECUREFLOW_DATABASE_URL": "",
    }

    code, checks = _doctor(env)
    assert code == 1, checks
    roles = checks["key_roles"]
    assert roles["status"] == "fail", checks
    assert f"coordinator key {account.address} lacks the coordinator role" in roles["detail"]
    assert "grant-role ADDRESS ROLE" in roles["fix"]
    assert bytes(account.key).hex() not in json.dumps(checks)  # the key itself is never printed

    ledger_stack.registry().grant_role("coordinator", account.address)
    try:
        code, checks = _doctor(env)
        assert checks["key_roles"]["status"] == "ok", checks
        assert f"coordinator key {account.address}: coordinator" in checks["key_roles"]["detail"]
        assert "keys" not in checks and code == 0, checks

        key_file.chmod(0o644)  # readable by every user of the host
        code, checks = _doctor(env)
        assert code == 1 and checks["keys"]["status"] == "fail", checks
        assert "may be read by other users" in checks["keys"]["detail"]
        assert checks["keys"]["fix"] == f"chmod 600 {key_file}"
    finally:
        ledger_stack.registry().revoke_role("coordinator", account.address)
