"""The coordinator's own key: read from its file, refused unless it holds the coordinator role."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from stack import LedgerStack

from secureflow.api.coordinator.key import load_coordinator_key
from secureflow.api.coordinator.settings import CoordinatorSettings
from secureflow.ledger.deploy import connect
from secureflow.ledger.errors import ConfigurationError


def _settings(key_file: Path | None) -> CoordinatorSettings:
    return CoordinatorSettings(coordinator_key_file=key_file)


def test_the_coordinator_key_needs_a_file_and_the_coordinator_role(
    ledger_stack: LedgerStack, tmp_path: Path
) -> None:
    registry = connect(ledger_stack.client(), ledger_stack.deployment, "ConsortiumRegistry")
    account = Account.create()
    key_file = tmp_path / "coordinator.key"
    key_file.write_text("0x" + bytes(account.key).hex() + "\n")

    with pytest.raises(ConfigurationError, match="SECUREFLOW_COORDINATOR_KEY_FILE") as missing:
        load_coordinator_key(_settings(None), registry)
    assert "no key" in str(missing.value)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_coordinator_key(_settings(tmp_path / "absent.key"), registry)
    (tmp_path / "garbage.key").write_text("not a key")
    with pytest.raises(ConfigurationError, match="holds no private key") as garbage:
        load_coordinator_key(_settings(tmp_path / "garbage.key"), registry)
    assert "not a key" not in str(garbage.value)  # the file's content is never echoed
    with pytest.raises(ConfigurationError, match="does not hold the coordinator role") as refused:
        load_coordinator_key(_settings(key_file), registry)
    assert f"secureflow members grant-role {account.address} coordinator" in str(refused.value)
    assert bytes(account.key).hex() not in str(refused.value)

    ledger_stack.registry().grant_role("coordinator", account.address)
    assert load_coordinator_key(_settings(key_file), registry) == "0x" + bytes(account.key).hex()
