"""The compute side of `secureflow doctor` against the real Redis (127.0.0.1:6379): the parties' nodes are
found by their own heartbeat keys (`compute.worker.link.node_alive_key`, written here as a node writes it),
a party whose node does not beat is named, an unreachable Redis fails its check with the fix, and without a
Redis configured both checks are skipped, not failed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from secureflow.compute.doctor import nodes_check, ports_check, redis_check
from secureflow.compute.worker.link import node_alive_key

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test only; its keys are deleted after it."""
    name = f"doctor-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)
    client.close()


def test_nodes_are_found_by_their_heartbeat_and_a_silent_one_is_named(prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        client.set(node_alive_key(prefix, "alice"), b'{"host": "127.0.0.2"}', px=60_000)
    assert redis_check(REDIS_URL).status == "ok"
    assert nodes_check(REDIS_URL, prefix, ["alice"]).status == "ok"
    listed = nodes_check(REDIS_URL, prefix, [])
    assert listed.status == "ok" and "alice" in listed.detail
    silent = nodes_check(REDIS_URL, prefix, ["alice", "bob"])
    assert silent.status == "fail" and "bob" in silent.detail and "alice" not in silent.detail
    assert "secureflow node --party" in silent.fix


def test_an_unreachable_or_unconfigured_redis() -> None:
    down = redis_check("redis://127.0.0.1:1/0")
    assert down.status == "fail" and "127.0.0.1:1" in down.detail and down.fix
    assert nodes_check("redis://127.0.0.1:1/0", "x", ["alice"]).status == "skip"
    assert redis_check(None).status == "skip" and nodes_check(None, "x", ["alice"]).status == "skip"
    assert ports_check(3).status == "ok"
