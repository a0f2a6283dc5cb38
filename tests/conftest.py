"""Shared fixtures: one real anvil node per test session, and a ledger database on SQLite and PostgreSQL.

``evm_chain`` runs a test on anvil and on hardhat's node (`HardhatChain`: failing transactions
mined with status 0, as Besu/GoQuorum do), each started once per session; ``tests/contracts``
make it their ``devchain``. Tests that need ``anvil_*`` methods (reorgs, dropped transactions,
state dumps) take ``devchain`` and run on anvil only.

Tests that change chain state take ``chain_snapshot`` so every test starts from
the same state (``evm_snapshot`` / ``evm_revert``) without restarting anvil.

``ledger_db_url`` / ``store`` are parametrised over ``sqlite`` (a fresh file under
tmp_path) and ``postgresql`` (a fresh schema ``sf_test_<uuid>`` on the server
named by ``SECUREFLOW_TEST_POSTGRES_URL``, default the local test database,
dropped afterwards). If PostgreSQL is unreachable its tests fail when ``CI`` is
set and are skipped otherwise. ``redis_service`` and ``rabbitmq_service``: Redis and RabbitMQ
answer, else the test fails naming the service (always; see tests/services.py).

Hypothesis runs without its per-example deadline (200 ms by default): that is a duration assert, and
a loaded machine fails it; how long things take is measured by ``scripts/bench_*.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import cast

import psycopg
import pytest
from hypothesis import settings
from services import RABBITMQ, REDIS, require_service, tcp_unreachable
from sqlalchemy.engine import make_url
from stack import LedgerStack, deploy_ledger_stack
from web3 import Web3

from secureflow.ledger.devchain import DevChain, HardhatChain, rpc_call
from secureflow.ledger.store import SqlLedgerStore, open_store

settings.register_profile("secureflow", deadline=None)
settings.load_profile("secureflow")


@pytest.fixture(scope="session")
def anvil_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevChain]:
    log = Path(tmp_path_factory.mktemp("anvil")) / "anvil.log"
    with DevChain(log_path=log) as chain:
        yield chain


@pytest.fixture(scope="session")
def hardhat_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HardhatChain]:
    log = Path(tmp_path_factory.mktemp("hardhat")) / "hardhat.log"
    with HardhatChain(log_path=log) as chain:
        yield chain


@pytest.fixture(scope="session")
def devchain(anvil_chain: DevChain) -> DevChain:
    """The session's anvil (``tests/contracts`` override it with `evm_chain`: both clients)."""
    return anvil_chain


@pytest.fixture(scope="session", params=["anvil", "hardhat"])
def evm_chain(request: pytest.FixtureRequest) -> DevChain:
    """Each EVM client in turn: anvil, then hardhat's node set up like Besu/GoQuorum (one per session)."""
    return cast(DevChain, request.getfixturevalue(f"{request.param}_chain"))


@pytest.fixture(scope="session")
def w3(devchain: DevChain) -> Web3:
    return Web3(Web3.HTTPProvider(devchain.rpc_url, request_kwargs={"timeout": 30}))


@pytest.fixture
def chain_snapshot(devchain: DevChain) -> Iterator[None]:
    """Revert every chain change the test makes."""
    snapshot = rpc_call(devchain.rpc_url, "evm_snapshot")
    yield
    assert rpc_call(devchain.rpc_url, "evm_revert", [snapshot]) is True


@pytest.fixture(scope="session")
def ledger_stack(devchain: DevChain) -> LedgerStack:
    return deploy_ledger_stack(devchain.rpc_url)


DEFAULT_TEST_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_base_url() -> str:
    return os.environ.get("SECUREFLOW_TEST_POSTGRES_URL", "").strip() or DEFAULT_TEST_POSTGRES_URL


def _libpq_url(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


@cache
def _postgres_unreachable_reason() -> str | None:
    try:
        with psycopg.connect(_libpq_url(postgres_base_url()), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        masked = make_url(postgres_base_url()).render_as_string(hide_password=True)
        return f"at {masked}: {str(exc).strip().splitlines()[0]}; set SECUREFLOW_TEST_POSTGRES_URL"
    return None


def _require_postgres() -> None:
    require_service("PostgreSQL", _postgres_unreachable_reason(), skip_outside_ci=True)


@pytest.fixture(scope="session")
def redis_service() -> None:
    """Redis at 127.0.0.1:6379 answers, else the test fails naming it (tests/services.py)."""
    name, host, port = REDIS
    require_service(f"{name} at {host}:{port}", tcp_unreachable(host, port))


@pytest.fixture(scope="session")
def rabbitmq_service() -> None:
    """RabbitMQ at 127.0.0.1:5672 answers, else the test fails naming it (tests/services.py)."""
    name, host, port = RABBITMQ
    require_service(f"{name} at {host}:{port}", tcp_unreachable(host, port))


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections use a fresh, private schema (search_path) that is dropped afterwards."""
    yield from _fresh_schema()


@pytest.fixture(scope="module")
def postgres_module_url() -> Iterator[str]:
    """As `postgres_schema_url`, one schema for a whole test module (its processes share the database)."""
    yield from _fresh_schema()


def _fresh_schema() -> Iterator[str]:
    _require_postgres()
    schema = f"sf_test_{uuid.uuid4().hex}"
    admin = _libpq_url(postgres_base_url())
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(postgres_base_url()).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database for the ledger store on the parametrised backend."""
    if backend == "sqlite":
        return f"sqlite:///{(tmp_path / 'ledger' / 'secureflow.db').as_posix()}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def store(ledger_db_url: str) -> Iterator[SqlLedgerStore]:
    """A migrated ledger store on the parametrised backend, closed afterwards."""
    opened = open_store(ledger_db_url)
    try:
        yield opened
    finally:
        opened.close()
