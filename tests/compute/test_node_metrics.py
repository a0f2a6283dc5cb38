"""Metrics and health of a real ``secureflow node`` process (``--metrics-port 0``), driven through its Redis
queue as an engine drives it: the heartbeat ticks; a session starts and beats; requests are counted by
operation (a step sent before the worker exists is counted and answered with ``exit``); a cluster table
naming only this party spawns its real party worker and the session's ``stop`` ends it, both counted;
SIGTERM ends the node and its metrics server. (tests/compute/test_distributed.py runs real jobs through
nodes.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from scrape import get, metrics_url_in, scrape, value, wait_for

from secureflow.compute.worker.engine import REPO_ROOT
from secureflow.compute.worker.link import engine_alive_key, heartbeat_key, inbound_key, outbound_key
from secureflow.compute.worker.node_metrics import WORKER_OPS, WORKER_STATES, NodeMetrics

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix(redis_service: None) -> Iterator[str]:
    name = f"sftest-metrics-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_node_process_serves_heartbeat_session_and_request_metrics(tmp_path: Path, prefix: str) -> None:
    rds = redis.Redis.from_url(REDIS_URL)
    log = tmp_path / "node.log"
    with log.open("ab") as out:
        node = subprocess.Popen(
            [sys.executable, "-m", "secureflow.api", "node", "--party", "alice", "--data-dir",
             str(tmp_path / "alice"), "--redis-url", REDIS_URL, "--prefix", prefix, "--metrics-port", "0",
             "--trust-redis"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(REPO_ROOT),
            env=dict(os.environ), start_new_session=True,
        )  # fmt: skip
    try:
        url = metrics_url_in(log, 60)
        first = wait_for(lambda: value(scrape(url), "secureflow_node_heartbeat_timestamp_seconds"), 30)
        assert isinstance(first, float), log.read_text()
        later = wait_for(
            lambda: (t := value(scrape(url), "secureflow_node_heartbeat_timestamp_seconds")) and t > first, 10
        )
        assert later, "the heartbeat timestamp did not move"
        samples = scrape(url)
        assert value(samples, "secureflow_node_up") == 1
        assert value(samples, "secureflow_node_info", party="alice") == 1
        assert value(samples, "secureflow_node_worker_state", state="idle") == 1
        assert sum(value(samples, "secureflow_node_worker_state", state=s) or 0 for s in WORKER_STATES) == 1
        assert value(samples, "secureflow_node_session_active") == 0
        assert value(samples, "secureflow_node_sessions_total") == 0
        assert get(url + "/healthz") == (200, "ok\n")
        assert wait_for(lambda: get(url + "/readyz")[0] == 200, 10), get(url + "/readyz")

        # A session starts (its engine beats): the node reports its ports and beats for the session.
        session = uuid.uuid4().hex
        rds.set(engine_alive_key(prefix, session), "1", ex=60)

        def send(op: str, **fields: object) -> None:
            entry = {"session": session, "op": op, "exp": time.time() + 60, **fields}
            rds.rpush(inbound_key(prefix, "alice"), json.dumps(entry))

        send("start", spu_profiles={})
        active = wait_for(
            lambda: (s := scrape(url)) and value(s, "secureflow_node_session_active") == 1 and s, 15
        )
        assert isinstance(active, dict), log.read_text()
        assert value(active, "secureflow_node_session_info", session=session[:8]) == 1
        assert value(active, "secureflow_node_worker_state", state="starting") == 1
        assert value(active, "secureflow_node_sessions_total") == 1
        assert wait_for(
            lambda: (value(scrape(url), "secureflow_node_heartbeats_total", result="ok") or 0) >= 1, 10
        )
        assert rds.exists(heartbeat_key(prefix, session, "alice"))

        # A step before any worker: counted, answered with `exit`.
        send("msg", msg={"op": "run_step", "step": 0})
        send("msg", msg={"op": "not-an-op"})
        counted = wait_for(
            lambda: (
                (s := scrape(url))
                and value(s, "secureflow_node_requests_total", op="run_step") == 1
                and value(s, "secureflow_node_requests_total", op="other") == 1
                and s
            ),
            15,
        )
        assert isinstance(counted, dict), log.read_text()
        assert {
            dict(labels)["op"] for name, labels in counted if name == "secureflow_node_requests_total"
        } == {
            *WORKER_OPS,
            "other",
        }
        replies = [json.loads(r) for r in rds.lrange(outbound_key(prefix, session), 0, -1)]
        assert [r["op"] for r in replies] == ["ports", "exit", "exit"]

        # The cluster table: the node spawns its party worker (a real one, alone in its table), then stops it.
        # With the node's certificate and its own signed ports reply, as an engine sends them (TLS).
        ports, cert = replies[0]["ports"], replies[0]["tls"]["cert"]
        table = {"alice": {"fed": ports["fed"], "spu": ports["spu"], "host": "127.0.0.1", "tls_cert": cert}}
        send("table", parties=table, proofs={"alice": replies[0]})
        started = wait_for(
            lambda: (s := scrape(url)) and value(s, "secureflow_node_worker_starts_total") == 1 and s, 30
        )
        assert isinstance(started, dict), log.read_text()
        send("stop")

        def exits() -> float:
            samples = scrape(url)
            return sum(
                value(samples, "secureflow_node_worker_exits_total", outcome=o) or 0
                for o in ("clean", "error", "signal", "unknown")
            )

        assert wait_for(lambda: exits() == 1, 60), log.read_text()
        assert wait_for(lambda: value(scrape(url), "secureflow_node_session_active") == 0, 15), (
            log.read_text()
        )
        assert value(scrape(url), "secureflow_node_worker_state", state="idle") == 1
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            code = node.wait(30)
        finally:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
        rds.close()
    assert code == 0, log.read_text()
    with pytest.raises(OSError):  # the metrics server went with the process
        get(url + "/healthz", timeout=2)


def test_a_step_is_timed_from_its_relay_to_the_workers_reply_by_algorithm() -> None:
    metrics = NodeMetrics("alice", lambda: ("running", None))
    metrics.replied({"op": "hello"})  # unsolicited, nothing in flight
    metrics.forwarding({"op": "run_step", "algorithm": "ss_lr"})
    metrics.replied({"op": "ready"})  # not a reply: the step is still in flight
    metrics.replied({"ok": True})
    metrics.forwarding({"op": "run_step", "algorithm": "../not a name"})
    metrics.replied({"ok": False, "error_class": "StepExecutionError"})
    metrics.forwarding({"op": "ping"})
    metrics.replied({"ok": True})  # not a step
    counts = {
        (sample.labels["algorithm"], sample.labels["outcome"]): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "secureflow_node_step_seconds_count"
    }
    assert counts == {("ss_lr", "ok"): 1, ("other", "failed"): 1}
