"""An accepted job is never lost to a broker outage: the production API keeps it and queues it later.

The real API (`build_api` with ``SECUREFLOW_BROKER_URL``, as ``secureflow api`` builds it) on the
session's anvil and a fresh SQLite database, its broker the machine's real Redis reached through a TCP
proxy (`tcp_proxy.TcpProxy`: the only way to stop "the broker" without stopping the shared Redis).
What the queue holds is read from Redis itself: Celery's message for the job, exactly once.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from scrape import wait_for
from stack import ALICE, BOB, LedgerStack
from tcp_proxy import TcpProxy

from secureflow.api.server.db import ApiDb
from secureflow.api.server.serve import add_member_key, build_api
from secureflow.api.server.settings import ApiSettings
from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.schemas import NewJob
from tools.live_server import LiveServer

REDIS_DB = 3  # the broker tests' database (the nodes use 0)


def _manifest(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "parties": [{"name": "alice", "address": ALICE}, {"name": "bob", "address": BOB}],
        "datasets": {"raw": {"alice": "a.csv", "bob": "b.csv"}},
        "steps": [{"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}}],
    }


def _queued(rds: redis.Redis, queue: str) -> list[str]:
    """The job ids of Celery's messages waiting in ``queue`` (the task's only argument)."""
    ids = []
    for raw in rds.lrange(queue, 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == "secureflow.run_job"
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        ids.append(str(args[0]))
    return ids


@pytest.fixture
def queue_api(
    ledger_stack: LedgerStack, tmp_path: Path, chain_snapshot: None
) -> Iterator[tuple[str, str, TcpProxy, str, ApiDb, LedgerStore]]:
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    queue = f"secureflow.jobs.{uuid.uuid4().hex[:12]}"
    rds = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    with TcpProxy("127.0.0.1", 6379) as proxy:  # starts down: the broker is unreachable
        settings = ApiSettings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=f"sqlite:///{(tmp_path / 'api.db').as_posix()}",
            rpc_url=ledger_stack.rpc_url,
            chain_id=DEV_CHAIN_ID,
            deployment=deployment,
            broker_url=f"redis://127.0.0.1:{proxy.port}/{REDIS_DB}",
            queue_name=queue,
            queue_sweep_interval=0.2,
        )
        api = build_api(settings)
        db: ApiDb = api.app.state.api_db
        key = add_member_key(db, "alice", ALICE, "member")
        try:
            with LiveServer(api.app) as server:
                yield server.url, key, proxy, queue, db, api.store
        finally:
            api.close()
            rds.delete(queue)


def test_a_job_accepted_while_the_broker_is_down_is_queued_once_it_is_back(
    queue_api: tuple[str, str, TcpProxy, str, ApiDb, LedgerStore],
) -> None:
    url, key, proxy, queue, db, store = queue_api
    rds = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    auth = {"Authorization": f"Bearer {key}"}

    # a job another API process (one without an executor) stored in the same database: not this API's
    # to queue, ever ("not_configured")
    elsewhere = "0x" + "e1" * 32
    store.create_job(
        NewJob(job_id=elsewhere, manifest_hash="0x" + "e2" * 32, creator=ALICE, parties=[ALICE, BOB])
    )
    db.put_manifest(elsewhere, _manifest("stored elsewhere"), 1)

    proxy.stalled = True  # a broker that accepts connections and never answers: refused, not hung
    proxy.up()
    answer = requests.post(url + "/v1/jobs", json={"manifest": _manifest("outage")}, headers=auth, timeout=60)
    # stored and said so: not a 409 "fix the manifest", not failed, nothing to resubmit
    assert answer.status_code == 201, answer.text
    body = answer.json()
    job_id = body["job"]["job_id"]
    assert body["execution"] == "waiting_for_queue" and "do not submit it again" in body["message"]
    assert body["job"]["status"] == "created"
    assert requests.get(f"{url}/v1/jobs/{job_id}", headers=auth, timeout=30).json()["status"] == "created"
    assert _queued(rds, queue) == []
    # waiting for the queue: listed for the sweepers, except while one of them tries to send it (the
    # sweeper runs every 0.2 s here and holds the job during its 5 s attempt on the stalled broker, then
    # gives it back): seen listed again once an attempt failed
    assert wait_for(lambda: db.unqueued_jobs() == [job_id], 30, interval=0.05), db.unqueued_jobs()
    assert _queued(rds, queue) == []
    proxy.cut()
    proxy.stalled = False

    proxy.up()  # the broker answers again: the API's sweeper sends the stored job, once
    assert wait_for(lambda: _queued(rds, queue), 60), "the stored job was never queued"
    assert wait_for(lambda: not db.unqueued_jobs(), 30)
    assert _queued(rds, queue) == [job_id]

    # with the broker up, a job is queued at submission
    answer = requests.post(url + "/v1/jobs", json={"manifest": _manifest("up")}, headers=auth, timeout=60)
    assert answer.status_code == 201 and answer.json()["execution"] == "handed_to_executor", answer.text
    second = answer.json()["job"]["job_id"]
    assert sorted(_queued(rds, queue)) == sorted([job_id, second])
    assert db.unqueued_jobs() == []  # and the job stored elsewhere was never sent
