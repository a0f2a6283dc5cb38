"""The anchoring worker as its own process (``secureflow anchor-worker``), killed with SIGKILL mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from stack import LedgerStack, accept, assert_anchored_exactly_once, new_job

from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.devchain import DEV_PRIVATE_KEYS
from secureflow.ledger.store.sql import open_store

ROOT = Path(__file__).resolve().parents[2]


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "secureflow"), "anchor-worker"],
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_sigkill_mid_run_then_restart_anchors_everything_exactly_once(
    ledger_stack: LedgerStack, ledger_db_url: str, tmp_path: Path, chain_snapshot: None
) -> None:
    deployment_file = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment_file)
    env = {
        "SECUREFLOW_DATABASE_URL": ledger_db_url,
        "SECUREFLOW_RPC_URL": ledger_stack.rpc_url,
        "SECUREFLOW_CHAIN_ID": "1337",
        "SECUREFLOW_DEPLOYMENT": str(deployment_file),
        "SECUREFLOW_ANCHOR_KEY": DEV_PRIVATE_KEYS[3],
        "SECUREFLOW_MAX_BATCH_SIZE": "20",
        "SECUREFLOW_MAX_BATCH_DELAY": "0",
    }
    store = open_store(ledger_db_url)
    job = new_job(store, 99)
    accepted = accept(store, job, 2_000)
    log = tmp_path / "worker.log"

    worker = start_worker(env, log)
    try:
        assert wait_for(lambda: store.count_records_by_status()["confirmed"] >= 200, 120), log.read_text()
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    counts = store.count_records_by_status()
    assert counts["confirmed"] < 2_000, "the worker finished before it could be killed; use more records"

    restarted = start_worker(env, log)
    try:
        assert wait_for(lambda: store.count_records_by_status()["confirmed"] == 2_000, 120), log.read_text()
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(30) == 0, log.read_text()
    assert_anchored_exactly_once(ledger_stack, store, accepted)
    store.close()
