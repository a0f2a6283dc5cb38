"""The services the suite needs are named in the README, and a missing one fails the suite under ``CI``
(`.ci/run` sets it) instead of skipping: tests/services.py, used by tests/conftest.py's fixtures."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from services import RABBITMQ, REDIS, require_service, tcp_unreachable

ROOT = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_readme_names_every_service_the_tests_need_and_ci_sets_ci() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start = text.index("Run the whole test suite")
    section = text[start : text.index("\n## ", start)]
    for name, host, port in (("PostgreSQL", "127.0.0.1", 5432), REDIS, RABBITMQ):
        assert re.search(rf"\*\*{name}\*\* at `{re.escape(host)}:{port}`", section), name
    assert "CI=true" in section
    ci = (ROOT / ".ci" / "run").read_text()
    assert "export CI=true" in ci and "./scripts/test.sh" in ci


def test_a_missing_service_fails_under_ci_and_only_postgresql_skips_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    why = tcp_unreachable("127.0.0.1", _closed_port())
    assert why is not None and "refused" in why.lower()
    monkeypatch.setenv("CI", "true")
    for name, skips in (("PostgreSQL", True), ("Redis", False), ("RabbitMQ", False)):
        with pytest.raises(pytest.fail.Exception, match=f"{name} is not reachable .*CI is set"):
            require_service(name, why, skip_outside_ci=skips)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not reachable"):
        require_service("PostgreSQL", why, skip_outside_ci=True)
    for name in ("Redis", "RabbitMQ"):
        with pytest.raises(pytest.fail.Exception, match=f"{name} is not reachable .*start the server"):
            require_service(name, why)
    require_service("Redis", tcp_unreachable(*REDIS[1:]))  # the real one answers: nothing raised
