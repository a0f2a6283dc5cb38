"""The API-key cache across API processes: a key revoked (or a role changed) through one process is refused
(or seen with its new role) by another once that process's cache window (``AUTH_CACHE_SECONDS``) has
passed, and until then that process answers only from its cache, never from a stale read of the database.

Two processes on one PostgreSQL database (a fresh schema): this test's, which changes keys and roles as the
API's routes do (`ApiDb`), and a second Python process holding its own `ApiDb`, asked over a pipe what it
makes of a key. CLOCK_MONOTONIC is one clock for both processes on Linux, so the window is measured from the
second process's own answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from secureflow.api.server.db import AUTH_CACHE_SECONDS, ApiDb
from secureflow.compute.worker.engine import REPO_ROOT
from secureflow.ledger.store import open_store

OTHER_PROCESS = """
import json, sys, time
from secureflow.api.server.db import ApiDb
from secureflow.ledger.store import open_store
store = open_store(sys.argv[1], migrate=False)
db = ApiDb(store.engine)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    key = line.strip()
    cached = db.cached_principal(key) is not None
    principal = db.authenticate(key)
    role = principal.role if principal is not None else None
    print(json.dumps({"role": role, "cached": cached, "at": time.monotonic()}), flush=True)
"""


class Other:
    """The second API process: ``ask(key)`` -> its answer (role or None, whether from its cache, when)."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", OTHER_PROCESS, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(REPO_ROOT),
        )
        assert self.proc.stdout is not None
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def ask(self, key: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


@pytest.fixture
def dbs(postgres_schema_url: str) -> Iterator[tuple[ApiDb, Other]]:
    store = open_store(postgres_schema_url)
    db = ApiDb(store.engine)
    db.migrate()
    other = Other(postgres_schema_url)
    try:
        yield db, other
    finally:
        other.close()
        store.close()


def _until_window_ends(other: Other, key: str, cached_at: float) -> dict[str, Any]:
    """Ask ``other`` about ``key`` until its cache entry (made at ``cached_at``) has expired; each answer in
    the window must come from its cache. Returns the first answer after the window."""
    while True:
        answer = other.ask(key)
        if answer["at"] > cached_at + AUTH_CACHE_SECONDS:
            return answer
        assert answer["cached"], answer  # inside the window: only the cache, never a stale read
        time.sleep(min(0.2, max(0.0, cached_at + AUTH_CACHE_SECONDS - answer["at"])))  # to the window's end


@pytest.mark.postgres
def test_a_key_revoked_in_one_process_is_refused_by_another_after_its_cache_window(
    dbs: tuple[ApiDb, Other],
) -> None:
    db, other = dbs
    alice = db.create_member("alice", "0x" + "a1" * 20, "member")
    info, key = db.create_key(alice.id, "default")
    first = other.ask(key)
    assert (first["role"], first["cached"]) == ("member", False)  # read from the database, now cached

    assert db.authenticate(key) is not None  # cached in this process too
    db.revoke_key(info.key_id)
    assert db.authenticate(key) is None  # the revoking process refuses at once
    after = _until_window_ends(other, key, first["at"])
    assert after["role"] is None and not after["cached"], after  # the other refuses once its window passed
    assert other.ask(key)["role"] is None  # and keeps refusing

    # a role change travels the same way: the other process sees the new role after its window
    bob = db.create_member("bob", "0x" + "b2" * 20, "member")
    _info, bob_key = db.create_key(bob.id, "default")
    seen = other.ask(bob_key)
    assert seen["role"] == "member"
    db.set_role(bob.id, "auditor")
    assert db.authenticate(bob_key).role == "auditor"  # type: ignore[union-attr]
    assert _until_window_ends(other, bob_key, seen["at"])["role"] == "auditor"
