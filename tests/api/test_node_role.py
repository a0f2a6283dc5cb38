"""`secureflow node` refuses to start, with a clear message and the command that fixes it, when its member
key is not an active member of the registry it pins (the other parties would refuse everything it signs);
a member's node starts."""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

from eth_account import Account
from stack import ALICE, MEMBER_KEYS, LedgerStack
from test_cli_sigterm import command, read_until

from secureflow.ledger.deploy import write_deployment


def _node(ledger_stack: LedgerStack, tmp_path: Path, key: str) -> tuple[list[str], dict[str, str]]:
    data_dir = tmp_path / "party"
    (data_dir / "secrets").mkdir(parents=True, exist_ok=True)
    (data_dir / "secrets" / "member.key").write_text(key)
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    args = [
        "node",
        "--party",
        "alice",
        "--data-dir",
        str(data_dir),
        "--redis-url",
        "redis://127.0.0.1:6379/0",
        "--prefix",
        f"test-node-role-{secrets.token_hex(4)}",
        "--rpc-url",
        ledger_stack.rpc_url,
        "--deployment",
        str(deployment),
    ]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SECUREFLOW_")}
    return args, clean


def test_node_refuses_a_member_key_that_is_not_an_active_member(
    ledger_stack: LedgerStack, tmp_path: Path, redis_service: None
) -> None:
    stranger = Account.create()
    args, env = _node(ledger_stack, tmp_path, stranger.key.hex())
    with command(*args, env=env) as proc:
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert f"the member key of party alice ({stranger.address}" in out, out
    assert "is not an active member of the registry" in out, out
    assert f"secureflow members add {stranger.address}" in out and "Traceback" not in out, out
    assert stranger.key.hex() not in out and stranger.key.hex().removeprefix("0x") not in out  # never the key

    args, env = _node(ledger_stack, tmp_path, MEMBER_KEYS[ALICE])  # alice is a member: her node starts
    with command(*args, env=env) as proc:
        read_until(proc, "node of party alice serving")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
