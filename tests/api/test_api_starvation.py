"""Issue 11 item 7: streams and heavy queries cannot starve the API, and nobody reads what it may not.

Each test replays an attack against the real app on a loopback port (real anvil, real SQLite/PostgreSQL):
many live-status streams from one key, streams that go away, a suspended member's key. Liveness is bounded
by client timeouts, never by measured durations; waits are on conditions, never sleeps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest
import requests
from rpc_proxy import RpcProxy
from stack import ALICE, LedgerStack, accept, anchor_and_index, new_job, open_job_on_chain
from test_api_service import Env, assert_error, live_app, submit

from secureflow.ledger.chain import ChainClient, ChainConfig
from secureflow.ledger.devchain import DEV_CHAIN_ID
from tools.live_server import LiveServer

if TYPE_CHECKING:
    from secureflow.api.server.streams import StreamSlots
LIVENESS_TIMEOUT = 20.0  # seconds a client waits for an answer: a starved API does not give one
PER_KEY, TOTAL = 8, 48  # 48 streams: more than anyio's 40 worker threads, which each stream once held


def serve(ledger_stack: LedgerStack, ledger_db_url: str, **settings: object) -> Iterator[Env]:
    app, store, keys = live_app(ledger_stack, ledger_db_url, **settings)
    try:
        with LiveServer(app) as server:
            yield Env(server.url, app, store, keys, ledger_stack, server)
    finally:
        store.close()


@pytest.fixture
def capped(ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None) -> Iterator[Env]:
    yield from serve(
        ledger_stack,
        ledger_db_url,
        sse_max_streams_per_key=PER_KEY,
        sse_max_streams=TOTAL,
        # a long poll interval: each stream of the old code slept in a worker thread for this long
        sse_poll_interval=30.0,
    )


@pytest.fixture
def live(ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None) -> Iterator[Env]:
    yield from serve(ledger_stack, ledger_db_url)


def key_id(key: str) -> str:
    return key.removeprefix("sfk_").split("_", 1)[0]


class Stream:
    """A live-status stream kept open: its response and its line iterator (dropping the iterator would
    make the HTTP library close the connection)."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.lines: Iterator[str] = response.iter_lines(decode_unicode=True)

    def wait_for_status(self) -> Stream:
        """Return once the first status event has arrived (the stream is being served)."""
        for line in self.lines:
            if line.startswith("event: status"):
                return self
        raise AssertionError("the stream ended before its first status event")

    def end_reason(self) -> str:
        """Read on to the stream's ``end`` event and return its reason (bounded: a client timeout per read,
        and a deadline a stream that never ends runs into)."""
        deadline = time.monotonic() + 2 * LIVENESS_TIMEOUT
        ended = False
        for line in self.lines:
            if ended and line.startswith("data: "):
                return str(json.loads(line[len("data: ") :])["reason"])
            ended = ended or line == "event: end"
            assert time.monotonic() < deadline, "the stream did not end"
        raise AssertionError("the stream closed without an end event")

    def close(self) -> None:
        self.response.close()


def open_stream(env: Env, job_id: str, key: str) -> requests.Response | Stream:
    """A live-status stream once it is served, or the refusal."""
    response = requests.get(
        f"{env.url}/v1/jobs/{job_id}/events",
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=LIVENESS_TIMEOUT,
    )
    if response.status_code != 200:
        response.content  # noqa: B018 - read the refusal, then let the connection go
        response.close()
        return response
    return Stream(response).wait_for_status()


def served(env: Env, job_id: str, key: str) -> Stream:
    stream = open_stream(env, job_id, key)
    assert isinstance(stream, Stream), stream.text
    return stream


def refused(env: Env, job_id: str, key: str) -> requests.Response:
    response = open_stream(env, job_id, key)
    assert isinstance(response, requests.Response), "the stream was served"
    return response


def slots(env: Env) -> StreamSlots:
    from secureflow.api.server.streams import StreamSlots

    found = env.app.state.streams
    assert isinstance(found, StreamSlots)
    return found


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_streams_are_capped_per_key_and_in_total_and_the_api_still_answers(capped: Env) -> None:
    env = capped
    job_id = submit(env)  # created, never finished: its streams stay open
    db = env.app.state.api_db
    alice = db.authenticate(env.keys["member"])
    assert alice is not None
    keys = [
        env.keys["member"],
        *(db.create_key(alice.member_id, f"k{i}")[1] for i in range(TOTAL // PER_KEY - 1)),
    ]
    with ExitStack() as streams:
        opened: dict[str, list[Stream]] = {}
        for key in keys:  # 6 keys x 8 streams: more streams than the old threadpool had threads
            for _ in range(PER_KEY):
                stream = served(env, job_id, key)
                streams.callback(stream.close)
                opened.setdefault(key, []).append(stream)

        # the key's next stream: 429 in the one error shape, with a hint and Retry-After
        response = refused(env, job_id, keys[0])
        error = assert_error(response, 429, "too_many_requests")
        assert f"the cap is {PER_KEY} per key" in error["message"] and response.headers["retry-after"]
        # another key (bob's): the process is at its cap
        error = assert_error(refused(env, job_id, env.keys["bob"]), 429, "too_many_requests")
        assert "SECUREFLOW_SSE_MAX_STREAMS" in error["message"]
        assert slots(env).open_total() == TOTAL

        # everything else still answers, within a client timeout
        health = requests.get(f"{env.url}/healthz", timeout=LIVENESS_TIMEOUT)
        assert health.status_code == 200
        jobs = requests.get(
            f"{env.url}/v1/jobs", headers={"Authorization": f"Bearer {keys[0]}"}, timeout=LIVENESS_TIMEOUT
        )
        assert jobs.status_code == 200 and [j["job_id"] for j in jobs.json()["items"]] == [job_id]

        # a client that goes away gives its slot back: the key may open a stream again
        opened[keys[0]].pop().close()
        assert slots(env).wait_until(lambda s: s.open_for(key_id(keys[0])) < PER_KEY, LIVENESS_TIMEOUT)
        again = served(env, job_id, keys[0])
        streams.callback(again.close)
        assert slots(env).open_for(key_id(keys[0])) == PER_KEY

    # every client gone: every slot back
    assert slots(env).wait_until(lambda s: s.open_total() == 0, LIVENESS_TIMEOUT)

    # a stream that ends (here: ?once=true) gives its slot back too: many more than the cap, one by one
    for _ in range(2 * PER_KEY):
        response = requests.get(
            f"{env.url}/v1/jobs/{job_id}/events?once=true",
            headers={"Authorization": f"Bearer {keys[0]}"},
            timeout=LIVENESS_TIMEOUT,
        )
        assert response.status_code == 200, response.text
        assert response.text.rstrip().endswith('data: {"reason": "once"}')
        assert slots(env).wait_until(lambda s: s.open_total() == 0, LIVENESS_TIMEOUT)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_suspended_member_loses_api_access(live: Env) -> None:
    """The registry's admin suspends alice on chain: her key (cached by the API a moment ago) is refused on
    the next request after the registry cache window (``registry_cache_seconds``, 0 here), reads included,
    and works again once she is reinstated."""
    env = live
    job_id = submit(env)
    for path in ("/v1/jobs", f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/steps", "/v1/me"):
        assert env.call("GET", path, "member").status_code == 200, path
    stream = served(env, job_id, env.keys["member"])  # a stream opened before the suspension ends with it
    registry = env.stack.registry()
    registry.suspend_member(ALICE)
    try:
        assert stream.end_reason() == "access_revoked"
    finally:
        stream.close()
    for path in ("/v1/jobs", f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/steps", "/v1/me"):
        error = assert_error(env.call("GET", path, "member"), 403, "forbidden")
        assert "suspended" in error["message"] and "reinstateMember" in error["message"], path
    assert_error(env.call("GET", f"/v1/jobs/{job_id}/events?once=true", "member"), 403, "forbidden")
    assert env.call("GET", "/v1/jobs", "bob").status_code == 200  # other members are not affected
    registry.reinstate_member(ALICE)
    assert env.call("GET", "/v1/jobs", "member").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_revoked_key_ends_its_open_stream(live: Env) -> None:
    env = live
    job_id = submit(env)
    stream = served(env, job_id, env.keys["auditor"])
    try:
        revoked = env.call("POST", f"/v1/keys/{key_id(env.keys['auditor'])}/revoke", "admin")
        assert revoked.status_code == 200, revoked.text
        assert stream.end_reason() == "access_revoked"
    finally:
        stream.close()
    assert_error(env.call("GET", "/v1/jobs", "auditor"), 401, "unauthorized")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_metrics_need_a_metrics_or_admin_key(live: Env) -> None:
    """``/metrics`` told anyone the queue depth, records by status and every route's traffic: now it needs a
    key of role ``metrics`` (Prometheus's, which may call nothing else) or ``admin``."""
    env = live
    assert_error(env.call("GET", "/metrics"), 401, "unauthorized")
    assert_error(env.call("GET", "/metrics", headers={"Authorization": "Bearer sfk_nope_x"}), 401)
    for who in ("member", "service", "auditor"):
        assert_error(env.call("GET", "/metrics", who), 403, "forbidden")
    for who in ("metrics", "admin"):  # Prometheus: authorization: {type: Bearer, credentials_file: ...}
        scraped = env.call("GET", "/metrics", who)
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        assert "secureflow_api_request_seconds_bucket" in scraped.text
    assert_error(env.call("GET", "/v1/jobs", "metrics"), 403, "forbidden")  # the scrape key reads nothing
    assert env.call("GET", "/healthz").status_code == env.call("GET", "/readyz").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_verifying_a_page_asks_the_node_a_bounded_number_of_times(live: Env) -> None:
    """``GET /v1/audit/records?verify=true&limit=100`` made one chain call per record (3.6 s a page): the
    node is now asked once for what the page's receipts share and in batches for each record's on-chain
    ``verify``, so the number of requests the node sees does not grow with the page."""
    env = live
    job_id = new_job(env.store, 11)
    open_job_on_chain(env.stack, job_id, 11)
    accept(env.store, job_id, 100, signed=True)
    anchor_and_index(env.stack, env.store)
    svc = env.app.state.services
    with RpcProxy(env.stack.rpc_url) as proxy:  # counts the HTTP requests the API sends its node
        svc.client = ChainClient(ChainConfig(rpc_url=proxy.url, expected_chain_id=DEV_CHAIN_ID))

        def requests_for_a_page(limit: int) -> int:
            before = proxy.requests
            page = env.call("GET", f"/v1/audit/records?job_id={job_id}&verify=true&limit={limit}", "auditor")
            assert page.status_code == 200, page.text
            items = page.json()["items"]
            assert len(items) == limit and all(item["verification"]["ok"] for item in items)
            assert len({item["batch_id"] for item in items}) == 1  # one batch: the same shared questions
            checks = {c["name"]: c["detail"] for c in items[-1]["verification"]["checks"]}
            assert "on-chain verify(leaf, proof, root) is true" in checks["root_anchored"]
            return proxy.requests - before

        small, large = requests_for_a_page(10), requests_for_a_page(100)
        assert large == small < 100, f"{small} requests to the node for 10 records, {large} for 100"
