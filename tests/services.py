"""The services the suite needs running before it starts (README, "Run the whole test suite"): PostgreSQL
(127.0.0.1:5432, database ``test``), Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672, guest/guest).

`require_service` ends a test whose service is unreachable with a message naming it: a failure under
``CI`` (a CI run must never pass by skipping), and for Redis and RabbitMQ always (their tests are few and
name no alternative); only PostgreSQL's tests are skipped on a developer's machine without ``CI``.
"""

from __future__ import annotations

import os
import socket

import pytest

REDIS = ("Redis", "127.0.0.1", 6379)
RABBITMQ = ("RabbitMQ", "127.0.0.1", 5672)


def tcp_unreachable(host: str, port: int) -> str | None:
    """Why nothing answers on ``host:port``, or None if something accepts connections there."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def require_service(name: str, unreachable: str | None, *, skip_outside_ci: bool = False) -> None:
    """Fail (or, with ``skip_outside_ci`` and no ``CI``, skip) the test if ``unreachable`` says why ``name``
    cannot be used; return if it is None."""
    if unreachable is None:
        return
    reason = f"{name} is not reachable ({unreachable})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so {name} tests must run (start the server)")
    if skip_outside_ci:
        pytest.skip(f"{reason}; start the server to run these tests")
    pytest.fail(f"{reason}; these tests need it: start the server (see README, the test command)")
