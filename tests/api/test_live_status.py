"""Issue 15 item 3: live status reaches the API's SSE streams through Redis pub/sub.

The real app on a loopback port (real anvil, real PostgreSQL/SQLite, the machine's Redis for pub/sub, a
redis-server of the test's own where Redis goes down). A second ledger store with its own publisher stands
for another process (a coordinator, an anchoring worker): its commits reach the API only over Redis. The
streams' slow poll is set far above the client's read timeout, so a status that arrives was carried by a
notice; the counter ``secureflow_status_wakes_total{source="pubsub"}`` says so.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from eth_account import Account
from redis_server import RedisServer
from scrape import wait_for
from stack import LedgerStack, step
from test_api_service import Env, assert_error, live_app, submit

from secureflow.api.server.notify import RedisStatusNotifier, StatusNotifier, announce_changes
from secureflow.api.server.serve import add_member_key
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.store import open_store
from secureflow.ledger.store.sql import SqlLedgerStore
from tools.live_server import LiveServer

REDIS = "redis://127.0.0.1:6379/3"
READ_TIMEOUT = 10.0  # a client's wait for the next line: far below the streams' slow poll (SLOW_POLL)
SLOW_POLL = 60.0
CAROL = Account.create().address  # registered as a member by the test (needs no key of its own here)


class Stream:
    """A live-status stream read event by event (each read bounded by READ_TIMEOUT)."""

    def __init__(self, env: Env, job_id: str, who: str) -> None:
        self.response = requests.get(
            f"{env.url}/v1/jobs/{job_id}/events",
            headers={"Authorization": f"Bearer {env.keys[who]}"},
            stream=True,
            timeout=READ_TIMEOUT,
        )
        assert self.response.status_code == 200, self.response.text
        self.lines = self.response.iter_lines(decode_unicode=True)

    def next_event(self) -> tuple[str, dict[str, object]]:
        name = None
        for line in self.lines:
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: ") and name is not None:
                return name, json.loads(line[len("data: ") :])
        raise AssertionError("the stream closed")

    def close(self) -> None:
        self.response.close()


def _wakes(notifier: StatusNotifier, source: str) -> float:
    return notifier.metrics.wakes.labels(source=source)._value.get()


def _serve(ledger_stack: LedgerStack, ledger_db_url: str, **settings: object) -> Iterator[Env]:
    app, store, keys = live_app(ledger_stack, ledger_db_url, **settings)
    try:
        with LiveServer(app) as server:
            yield Env(server.url, app, store, keys, ledger_stack, server)
    finally:
        app.state.stop_announcing()
        app.state.notifier.close()
        store.close()


@pytest.fixture
def channel() -> str:
    return f"secureflow-test:{uuid.uuid4().hex[:12]}"  # pub/sub channels ignore Redis's db number


@pytest.fixture
def pubsub_env(
    ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None, redis_service: None, channel: str
) -> Iterator[Env]:
    yield from _serve(
        ledger_stack,
        ledger_db_url,
        status_redis_url=REDIS,
        status_channel=channel,
        sse_poll_interval=SLOW_POLL,
    )


@pytest.fixture
def other_process(ledger_db_url: str, channel: str) -> Iterator[SqlLedgerStore]:
    """Another writer of the same database (a coordinator): its commits publish on Redis only."""
    store = open_store(ledger_db_url)
    notifier = RedisStatusNotifier(REDIS, channel=channel, subscribe=False)
    stop = announce_changes(store, notifier)
    try:
        yield store
    finally:
        stop()
        notifier.close()
        store.close()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_status_written_by_another_process_reaches_the_stream_through_pubsub(
    pubsub_env: Env, other_process: SqlLedgerStore, channel: str
) -> None:
    env, writer = pubsub_env, other_process
    notifier = env.app.state.notifier
    assert isinstance(notifier, RedisStatusNotifier) and notifier.wait_connected(10)
    job_id = submit(env)
    watch = redis.Redis.from_url(REDIS).pubsub(ignore_subscribe_messages=True)
    watch.subscribe(channel)
    stream = Stream(env, job_id, "member")
    try:
        assert stream.next_event()[1]["status"] == "created"
        before = _wakes(notifier, "pubsub")
        written = time.monotonic()
        writer.accept_record(to_outbox(step(job_id, 0, signed=True)))  # the step's record, in the outbox
        name, event = stream.next_event()  # within READ_TIMEOUT: the slow poll (60 s) cannot have sent it
        latency = time.monotonic() - written
        assert name == "status" and event["status"] == "running", event
        assert event["records"] == {"pending": 1, "submitted": 0, "confirmed": 0, "failed": 0}, event
        assert _wakes(notifier, "pubsub") > before  # the wake came from the notice on Redis
        print(f"step status on the stream {latency * 1000:.0f} ms after the other process's commit")

        writer.update_job(job_id, status="failed", reason="stopped by the test")
        assert stream.next_event()[1]["status"] == "failed"
    finally:
        stream.close()
    # what went over Redis: the job id, its status, a sequence number; nothing else
    notices = []
    deadline = time.monotonic() + 5
    while len(notices) < 2 and time.monotonic() < deadline:  # the subscribe reply reads as None: go on
        message = watch.get_message(timeout=0.2)
        if message is not None:
            notices.append(json.loads(message["data"]))
    watch.close()
    assert notices and all(set(n) == {"job_id", "status", "seq"} and n["job_id"] == job_id for n in notices)
    assert [n["status"] for n in notices] == ["running", "failed"], notices  # the record started the job


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_with_redis_down_the_stream_still_ends_with_the_final_status(
    ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None, tmp_path: Path
) -> None:
    """The live-status Redis (a redis-server of the test's own) stops: notices are lost, the streams fall
    back to their poll and still end with the job's final status; once Redis is back the subscriber has
    connected again (``secureflow_status_pubsub_reconnects_total``)."""
    with RedisServer(tmp_path / "status-redis") as own:
        env_iter = _serve(ledger_stack, ledger_db_url, status_redis_url=own.url, sse_poll_interval=0.3)
        env = next(env_iter)
        try:
            notifier = env.app.state.notifier
            assert isinstance(notifier, RedisStatusNotifier) and notifier.wait_connected(10)
            job_id = submit(env)
            own.stop()
            assert wait_for(lambda: not notifier.live, 30), "the subscriber did not notice Redis going away"
            stream = Stream(env, job_id, "auditor")
            try:
                assert stream.next_event()[1]["status"] == "created"
                env.store.update_job(job_id, status="running")
                env.store.update_job(job_id, status="completed")
                events = [stream.next_event() for _ in range(2)]
                assert events[-1] == ("end", {"reason": "finished"}), events
                assert events[0][1]["status"] == "completed", events  # the poll read it from the DB
            finally:
                stream.close()
            assert _wakes(notifier, "pubsub") == 0 and notifier.metrics.publish_failures._value.get() >= 1
            own.start()
            assert notifier.wait_connected(30), "the subscriber did not connect again"
            assert notifier.metrics.reconnects._value.get() >= 1
            text = env.call("GET", "/metrics", "metrics").text
            assert "secureflow_status_pubsub_reconnects_total 1.0" in text, text
        finally:
            next(env_iter, None)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_without_redis_the_in_process_notifier_wakes_the_stream(
    ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None
) -> None:
    """No Redis configured (the embedded stack): the app's own writes wake its streams in-process."""
    env_iter = _serve(ledger_stack, ledger_db_url, sse_poll_interval=SLOW_POLL)
    env = next(env_iter)
    try:
        notifier = env.app.state.notifier
        assert not isinstance(notifier, RedisStatusNotifier)
        job_id = submit(env)
        stream = Stream(env, job_id, "member")
        try:
            assert stream.next_event()[1]["status"] == "created"
            cancelled = env.call("POST", f"/v1/jobs/{job_id}/cancel", "member")
            assert cancelled.status_code == 200, cancelled.text
            assert stream.next_event()[1]["status"] == "cancelled"
            assert stream.next_event() == ("end", {"reason": "finished"})
        finally:
            stream.close()
        assert _wakes(notifier, "local") >= 1
    finally:
        next(env_iter, None)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_member_cannot_follow_another_member_s_job(pubsub_env: Env, other_process: SqlLedgerStore) -> None:
    """Carol, an active member who is no party of alice and bob's job, asks for its live status (plain,
    once, resuming with a forged Last-Event-ID): 404, as for a job that does not exist, and no stream of
    hers waits on its notices."""
    env = pubsub_env
    env.stack.registry().register_member(CAROL)  # reverted with the chain snapshot
    carol = add_member_key(env.app.state.api_db, "carol", CAROL, "member")
    env.keys["carol"] = carol
    job_id = submit(env)
    assert env.call("GET", "/v1/jobs", "carol").status_code == 200  # her key works
    for path, headers in (
        (f"/v1/jobs/{job_id}/events", {}),
        (f"/v1/jobs/{job_id}/events?once=true", {}),
        (f"/v1/jobs/{job_id}/events", {"Last-Event-ID": "1-0000000000000000"}),
    ):
        response = env.call("GET", path, "carol", headers=headers)
        assert_error(response, 404, "not_found")
        assert "event:" not in response.text
    assert env.app.state.notifier.waiting() == 0
    other_process.update_job(job_id, status="running")  # a notice for the job: nobody of carol's is woken
    assert env.app.state.notifier.waiting() == 0
    assert env.call("GET", f"/v1/jobs/{job_id}/events?once=true", "bob").status_code == 200  # a party may
