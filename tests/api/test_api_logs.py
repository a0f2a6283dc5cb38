"""`secureflow api` as a real process against the session's chain: by default its log is one short line per
event for a person (no JSON objects, no line per migration); `--log-format json` (or
SECUREFLOW_LOG_FORMAT=json) gives one JSON object per line for a log collector; and `api --with-worker`
refuses to start, naming the fix, when its anchoring key lacks the anchor role."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import requests
from eth_account import Account
from stack import ANCHOR_KEY, LedgerStack
from test_cli_sigterm import command, read_until, wait_serving

from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID, free_port


def _env(ledger_stack: LedgerStack, tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    deployment = tmp_path / "deployment.json"
    if not deployment.exists():
        write_deployment(ledger_stack.deployment, deployment)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SECUREFLOW_")}
    return {
        **clean,
        "SECUREFLOW_RPC_URL": ledger_stack.rpc_url,
        "SECUREFLOW_CHAIN_ID": str(DEV_CHAIN_ID),
        "SECUREFLOW_DEPLOYMENT": str(deployment),
        "SECUREFLOW_DATABASE_URL": f"sqlite:///{tmp_path}/api-{port}.db",  # new: every migration runs
        "SECUREFLOW_API_PORT": str(port),
        "SECUREFLOW_API_WORKERS": "1",
        **extra,
    }


def _serve_once(env: dict[str, str], *args: str) -> list[str]:
    """Start `secureflow api ARGS`, ask /healthz and an unknown route, stop it with SIGTERM: its output."""
    port = int(env["SECUREFLOW_API_PORT"])
    with command("api", *args, env=env) as proc:
        started = read_until(proc, "secureflow API on")
        wait_serving(port, proc)
        assert requests.get(f"http://127.0.0.1:{port}/v1/nope", timeout=30).status_code == 404
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    return (started + rest).splitlines()


@pytest.mark.parametrize("how", ["default", "--log-format json", "SECUREFLOW_LOG_FORMAT=json"])
def test_api_logs_short_lines_by_default_and_json_on_request(
    ledger_stack: LedgerStack, tmp_path: Path, how: str
) -> None:
    port = free_port()
    extra = {"SECUREFLOW_LOG_FORMAT": "json"} if how.startswith("SECUREFLOW_") else {}
    args = how.split() if how.startswith("--") else []
    lines = _serve_once(_env(ledger_stack, tmp_path, port, **extra), *args)
    logged = [line for line in lines if not line.startswith("secureflow API on")]
    print("\n".join(lines))  # shown with -s or when the test fails
    assert not any("Running upgrade" in line or "alembic" in line for line in logged), lines
    if how == "default":
        assert logged and not any(line.lstrip().startswith("{") for line in logged), lines
        assert any(" info " in line and "api started" in line for line in logged), lines
        assert any("api: GET /healthz 200 in " in line for line in logged), lines  # one line a request
        assert all(len(line) < 400 for line in logged), lines
    else:
        entries = [json.loads(line) for line in logged]  # every line is one JSON object
        assert any(e["message"] == "api started" and e["level"] == "info" for e in entries), entries


def test_api_with_worker_refuses_an_anchoring_key_without_the_anchor_role(
    ledger_stack: LedgerStack, tmp_path: Path
) -> None:
    stranger = Account.create()
    env = _env(ledger_stack, tmp_path, free_port(), SECUREFLOW_ANCHOR_KEY=stranger.key.hex())
    with command("api", "--with-worker", env=env) as proc:
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert f"{stranger.address} (SECUREFLOW_ANCHOR_KEY) does not hold the anchor role" in out, out
    assert f"secureflow members grant-role {stranger.address} anchor" in out, out
    assert "secureflow API on" not in out and "Traceback" not in out
    env["SECUREFLOW_ANCHOR_KEY"] = ANCHOR_KEY  # the anchoring service's key: it starts
    lines = _serve_once(env, "--with-worker")
    assert any("api started" in line for line in lines), lines
