"""A node's warm spare worker (`secureflow.compute.worker.standby`) when things go wrong: the spare is an
optimisation, so failing to start one never stops the node, and a spare that keeps dying (a SecretFlow that
cannot import, the OOM killer) is restarted with a growing delay, never in a loop. A node in this process on
the Redis at 127.0.0.1:6379 (a key prefix of its own); the spare is a real worker process."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from dist_nodes import REDIS_URL
from scrape import wait_for

from secureflow.compute.worker.node import Node


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[_Lines]:
    handler = _Lines()
    logger = logging.getLogger("compute.node")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[Node, threading.Thread]]:
    prefix = f"sftest-standby-{uuid.uuid4().hex[:10]}"
    node = Node("alice", tmp_path / "alice", REDIS_URL, prefix=prefix, warm_worker=True)
    thread = threading.Thread(target=node.serve, daemon=True)
    yield node, thread
    node.stopping.set()
    if thread.is_alive():
        thread.join(30)  # its spare worker stopped with it
    rds = redis.Redis.from_url(REDIS_URL)
    keys = list(rds.scan_iter(f"{prefix}:*"))
    if keys:
        rds.delete(*keys)


def test_a_node_that_cannot_start_a_spare_keeps_serving(
    serving: tuple[Node, threading.Thread], lines: _Lines
) -> None:
    node, thread = serving
    (node.party_dir / "standby").parent.mkdir(parents=True, exist_ok=True)
    (node.party_dir / "standby").write_text(
        "a file where the spare's folder goes (as a full disk would fail)"
    )
    thread.start()
    assert wait_for(lambda: any("cannot start a warm spare worker" in line for line in lines.lines), 30)
    ticks = node.metrics.last_tick
    assert wait_for(lambda: node.metrics.last_tick != ticks, 30)  # its loop goes on
    assert thread.is_alive() and not node.stopping.is_set()
    assert node.standby is not None and not node.standby.spawning()


def test_a_spare_that_dies_is_restarted_only_after_a_growing_delay(
    serving: tuple[Node, threading.Thread], lines: _Lines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake"
    (fake / "secretflow").mkdir(parents=True)
    (fake / "secretflow" / "__init__.py").write_text("raise ImportError('a SecretFlow that cannot import')\n")
    monkeypatch.setenv("PYTHONPATH", str(fake))  # the spare's environment only: this process has imported
    node, thread = serving
    assert node.standby is not None
    thread.start()
    died = lambda n: sum("the warm spare worker exited" in line for line in lines.lines) >= n  # noqa: E731
    assert wait_for(lambda: died(1), 120)
    first = node.standby._next_spawn - time.monotonic()
    assert 0 < first <= 5.0 and "starts in 5 s" in lines.lines[-1], lines.lines[-1]
    assert not node.standby.spawning()  # nothing runs during the delay
    assert (
        "a SecretFlow that cannot import" in (node.party_dir / "standby" / "logs" / "standby.log").read_text()
    )
    assert wait_for(lambda: died(2), 120)
    assert "starts in 10 s" in lines.lines[-1], lines.lines[-1]  # doubled
    assert thread.is_alive() and not node.stopping.is_set()
