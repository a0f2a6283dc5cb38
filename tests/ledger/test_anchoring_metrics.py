"""Metrics and health of the anchoring worker: the HTTP server on its own; the real
``secureflow anchor-worker --metrics-port 0`` process against anvil, scraped while it anchors and after a
reorganisation deeper than its confirmation depth; readiness and the paused gauge through a chain outage."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import cast

import pytest
from prometheus_client import CollectorRegistry, Counter
from rpc_proxy import RpcProxy
from scrape import get, metrics_url_in, scrape, value, wait_for
from stack import LedgerStack, accept, make_anchorer, new_job

from secureflow.ledger.anchoring import AnchoringWorker
from secureflow.ledger.anchoring_metrics import TX_ERROR_KINDS
from secureflow.ledger.chain import ChainClient, ChainConfig
from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain, rpc_call
from secureflow.ledger.errors import ConfigurationError
from secureflow.ledger.metrics_server import serve_metrics
from secureflow.ledger.store.sql import SqlLedgerStore, open_store

ROOT = Path(__file__).resolve().parents[2]


def test_metrics_server_serves_metrics_health_and_readiness() -> None:
    registry = CollectorRegistry()
    Counter("secureflow_test_things", "Things", registry=registry).inc(3)
    state = {"ready": False}
    with serve_metrics(
        registry, "127.0.0.1", 0, lambda: (state["ready"], "warm" if state["ready"] else "warming up")
    ) as server:
        assert server.port > 0
        assert value(scrape(server.url), "secureflow_test_things_total") == 3.0
        assert get(server.url + "/healthz") == (200, "ok\n")
        assert get(server.url + "/readyz") == (503, "not ready: warming up\n")
        state["ready"] = True
        assert get(server.url + "/readyz") == (200, "ready: warm\n")
        assert get(server.url + "/other")[0] == 404

        with pytest.raises(ConfigurationError, match=r"cannot serve metrics on 127\.0\.0\.1"):
            serve_metrics(registry, "127.0.0.1", server.port, lambda: (True, ""))
        port = server.port
    with socket.socket() as free:  # closed: the port can be bound again (as a restarted server would)
        free.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        free.bind(("127.0.0.1", port))
        free.listen()


def test_a_readiness_check_that_raises_answers_503_without_its_message() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("secret detail")

    with serve_metrics(CollectorRegistry(), "127.0.0.1", 0, broken) as server:
        status, body = get(server.url + "/readyz")
    assert status == 503 and "RuntimeError" in body and "secret" not in body


def test_anchor_worker_process_serves_its_metrics(
    ledger_stack: LedgerStack, ledger_db_url: str, tmp_path: Path, devchain: DevChain, chain_snapshot: None
) -> None:
    deployment_file = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment_file)
    store = open_store(ledger_db_url)
    job = new_job(store, 77)
    accept(store, job, 300)
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "SECUREFLOW_DATABASE_URL": ledger_db_url,
        "SECUREFLOW_RPC_URL": ledger_stack.rpc_url,
        "SECUREFLOW_CHAIN_ID": "1337",
        "SECUREFLOW_DEPLOYMENT": str(deployment_file),
        "SECUREFLOW_ANCHOR_KEY": DEV_PRIVATE_KEYS[3],
        "SECUREFLOW_MAX_BATCH_SIZE": "20",
        "SECUREFLOW_MAX_BATCH_DELAY": "0",
    }
    worker = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "secureflow"), "anchor-worker", "--metrics-port", "0"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = metrics_url_in(log, 60)

        def all_confirmed() -> object:
            # the store's count moves first; the pass that confirmed the last batch counts it when it ends
            samples = scrape(url)
            confirmed = value(
                samples, "secureflow_anchoring_events_total", object="records", event="confirmed"
            )
            return (
                value(samples, "secureflow_anchoring_records", status="confirmed") == confirmed == 300
                and samples
            )

        samples = wait_for(all_confirmed, 120)
        assert isinstance(samples, dict), log.read_text()
        assert value(samples, "secureflow_anchoring_records", status="pending") == 0
        assert value(samples, "secureflow_anchoring_oldest_pending_age_seconds") == 0
        assert value(samples, "secureflow_jobs", status="running") == 1
        # 300 records in batches of at most 20
        batches = value(samples, "secureflow_anchoring_batch_size_records_count") or 0
        assert batches >= 15, samples
        assert value(samples, "secureflow_anchoring_batch_size_records_sum") == 300
        assert value(samples, "secureflow_anchoring_events_total", object="records", event="batched") == 300
        assert (value(samples, "secureflow_anchoring_batch_latency_seconds_count") or 0) >= 15
        head = value(samples, "secureflow_anchoring_head_block")
        assert head is not None and head >= ledger_stack.deployment.deploy_block
        assert (value(samples, "secureflow_indexer_checkpoint_block") or 0) > 0
        assert value(samples, "secureflow_anchoring_store_up") == 1
        assert value(samples, "secureflow_anchoring_paused") == 0
        assert value(samples, "secureflow_anchoring_confirmations") == 1
        assert value(samples, "secureflow_nonce_resyncs_total") is not None
        assert {k for k in TX_ERROR_KINDS} == {
            dict(labels)["kind"] for name, labels in samples if name == "secureflow_anchoring_tx_errors_total"
        }
        assert value(samples, "secureflow_chain_reorgs_total") == 0
        assert get(url + "/healthz") == (200, "ok\n")
        status, body = get(url + "/readyz")
        assert status == 200 and body.startswith("ready: "), body
        for name, labels in samples:  # no addresses, hashes or job ids in any label
            assert not any(v.startswith("0x") for _, v in labels), (name, labels)

        # Replace the last 3 blocks, deeper than 1 confirmation. The new first block holds a transfer, so
        # its hash differs even within the same second (empty or same-content blocks would hash the same).
        rpc_call(devchain.rpc_url, "anvil_mine", ["0x2"])
        # the indexer must have indexed up to the blocks about to be replaced, or (under load, lagging) it
        # would only ever read the new blocks and see no reorg at all
        tip = int(str(rpc_call(devchain.rpc_url, "eth_blockNumber")), 16)
        indexed = wait_for(
            lambda: (value(scrape(url), "secureflow_indexer_checkpoint_block") or 0) >= tip - 1, 60
        )
        assert indexed, log.read_text()
        spare = str(cast(list[str], rpc_call(devchain.rpc_url, "eth_accounts"))[9])
        transfer = {"from": spare, "to": spare, "value": "0x1", "gasPrice": "0x0", "gas": "0x5208"}
        rpc_call(devchain.rpc_url, "anvil_reorg", [3, [[transfer, 0]]])
        reorged = wait_for(
            lambda: (s := scrape(url)) and (value(s, "secureflow_chain_reorgs_total") or 0) >= 1 and s, 60
        )
        assert isinstance(reorged, dict), log.read_text()
        assert (value(reorged, "secureflow_chain_reorgs_beyond_confirmations_total") or 0) >= 1
        assert (value(reorged, "secureflow_chain_reorg_depth_blocks_count") or 0) >= 1
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(30)
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
        store.close()
    assert code == 0, log.read_text()


def test_an_outage_makes_the_worker_not_ready_and_paused_until_it_ends(
    ledger_stack: LedgerStack, store: SqlLedgerStore, devchain: DevChain, chain_snapshot: None
) -> None:
    with RpcProxy(devchain.rpc_url) as proxy:
        anchorer = make_anchorer(
            ledger_stack,
            store,
            client=ChainClient(
                ChainConfig(rpc_url=proxy.url, expected_chain_id=DEV_CHAIN_ID, request_timeout=2)
            ),
        )
        registry = anchorer.metrics.registry
        worker = AnchoringWorker(anchorer, max_backoff=0.2)
        assert worker.readiness() == (False, "starting: checking the ledger's code and the sender's nonce")
        worker.start()
        try:
            accept(store, new_job(store, 5), 10)
            assert worker.drain(30)
            assert wait_for(lambda: worker.readiness()[0], 10), worker.readiness()
            proxy.down = True
            assert wait_for(lambda: registry.get_sample_value("secureflow_anchoring_paused") == 1, 15)
            ready, why = worker.readiness()
            assert not ready and why.startswith("anchoring paused by NodeUnreachableError"), why
            assert proxy.url not in why  # the class only: the message (with the URL) stays in the log
            pauses = registry.get_sample_value(
                "secureflow_anchoring_pauses_total", {"error": "NodeUnreachableError"}
            )
            assert pauses is not None and pauses >= 1
            proxy.down = False
            assert wait_for(lambda: worker.readiness()[0], 30), worker.readiness()
            assert registry.get_sample_value("secureflow_anchoring_paused") == 0
        finally:
            worker.stop()
