"""Fixtures for compute tests: ONE pair of warm party workers (alice, bob) for the whole session.

SecretFlow here only runs with one OS process per party, and a worker costs
~10 s to start and ~0.5 GB: every test shares the session's `engine`. Tests
that break the workers on purpose leave them to the next `run_job`, which
restarts them (`Engine.ensure_healthy`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from secureflow.compute.worker.engine import Engine
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.store import open_store

PARTIES = ("alice", "bob")


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    eng = Engine(PARTIES, tmp_path_factory.mktemp("engine"), step_timeout=600.0)
    eng.start()
    try:
        yield eng
    finally:
        eng.shutdown()


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[OutboxRecorder]:
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        yield OutboxRecorder(store)
    finally:
        store.close()
