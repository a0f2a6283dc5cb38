"""The isolation check of tests/isolation.py catches a cell that crosses to a place it must not reach.

No job runs here: three members' folders as their nodes keep them, the real Redis (MONITOR, as the
consortium test captures it), a SQLite database and this process's log records. A clean run is clean; then
a product function on a coordinator-visible path is monkeypatched to carry one cell of alice's (a node's
log reply, which reaches the API through Redis), and a cell of carol's is written to bob's host and to the
coordinator side's database and log: each is reported for exactly the viewers that can read it. And a
cell serialised as SecretFlow sends objects between parties (pickled numpy) is found in link bytes.
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from isolation import (
    COORDINATOR,
    Views,
    binary_leaks,
    float_patterns,
    isolation_leaks,
    node_view,
    redis_view,
)
from leaks import table_renderings
from sinks import LogCapture, RedisMonitor, sqlite_rows

from secureflow.api.dev.consortium import consortium_data
from secureflow.compute import joblogs
from secureflow.compute.joblogs import log_reply_key
from secureflow.compute.worker.link import encode, inbound_key

REDIS = "redis://127.0.0.1:6379/0"
PARTIES = ("alice", "bob", "carol")


def _hosts(root: Path, tables: dict[str, pd.DataFrame]) -> dict[str, Path]:
    hosts = {}
    for party, table in tables.items():
        (root / party / "data").mkdir(parents=True)
        (root / party / "secrets").mkdir()
        (root / party / "secrets" / "member.key").write_text("ab" * 32)
        table.to_csv(root / party / "data" / "t3.csv", index=False)
        hosts[party] = root / party
    return hosts


def _views(hosts: dict[str, Path], traffic: RedisMonitor, db: Path, api_log: LogCapture) -> Views:
    views = Views()
    redis_sinks = traffic.sinks()
    for party, host in hosts.items():
        views.add(party, node_view(host, own=["t3.csv"]))
        views.add(party, redis_view(redis_sinks, party))
    views.add(COORDINATOR, {**redis_sinks, **sqlite_rows(db), "api log": api_log.text()})
    return views


def test_a_cell_planted_on_a_coordinator_visible_path_and_on_another_host_is_caught(
    tmp_path: Path, redis_service: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = consortium_data(60, seed=9)
    secrets = {p: table_renderings([t]) for p, t in tables.items()}
    hosts = _hosts(tmp_path / "hosts", tables)
    db = tmp_path / "api.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE jobs (job_id TEXT, reason TEXT)")
        conn.execute("INSERT INTO jobs VALUES ('0x01', 'completed')")
    prefix = f"iso-{uuid.uuid4().hex[:12]}"
    rds = redis.Redis.from_url(REDIS)
    logger = logging.getLogger("secureflow.api.isolation-test")
    cell_of_alice = repr(float(tables["alice"]["a0"].iloc[3]))
    cell_of_carol = str(int(tables["carol"]["id"].iloc[5]))  # also alice's: an id is no leak to her
    feature_of_carol = repr(float(tables["carol"]["c0"].iloc[5]))

    def reply(lines: list[str]) -> None:  # what a node's log reply puts on Redis for the API to read
        entry = joblogs.log_reply("alice", "r1", lines, len(lines))
        rds.rpush(log_reply_key(prefix, "alice", "r1"), encode(entry))
        rds.rpush(inbound_key(prefix, "bob"), encode({"op": "ping", "lines": lines}))

    try:
        with LogCapture() as api_log, RedisMonitor(REDIS, prefix) as traffic:
            reply(["step 0 (psi) started", "rows in: [redacted]"])
            logger.info("job queued")
        clean = _views(hosts, traffic, db, api_log)
        assert {"t3.csv"} & {Path(n).name for n in clean.names("bob")} == set()  # its own data: not scanned
        assert f"redis {inbound_key(prefix, 'bob')}" in clean.names("bob")
        assert isolation_leaks(clean, secrets) == {}, "a clean run must be clean"

        real = joblogs.log_reply
        monkeypatch.setattr(
            joblogs,
            "log_reply",
            lambda party, request, lines, nxt: real(party, request, [*(lines or []), cell_of_alice], nxt),
        )
        with LogCapture() as api_log, RedisMonitor(REDIS, prefix) as traffic:
            reply(["step 0 (psi) started"])
            logger.info("job failed: %s", cell_of_carol)
        (hosts["bob"] / "data" / "out").mkdir()
        (hosts["bob"] / "data" / "out" / "joined.csv").write_text(f"b0,c0\n0.5,{feature_of_carol}\n")
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO jobs VALUES ('0x02', ?)", (f"failed at {cell_of_alice}",))
        found = isolation_leaks(_views(hosts, traffic, db, api_log), secrets)
    finally:
        rds.delete(log_reply_key(prefix, "alice", "r1"), inbound_key(prefix, "bob"))
        rds.close()
    assert found == {
        COORDINATOR: {
            f"redis {log_reply_key(prefix, 'alice', 'r1')}": [cell_of_alice],
            "api log": [cell_of_carol],
            "api.db jobs": [cell_of_alice],
        },
        "bob": {"data/out/joined.csv": [feature_of_carol]},
    }, found
    # a party's own cell in its own host is not a leak; the same cell in another party's is
    own = Views({"alice": {"out": cell_of_alice}, "bob": {"out": cell_of_alice}})
    assert isolation_leaks(own, secrets) == {"bob": {"out": [cell_of_alice]}}


def test_a_cell_serialised_on_a_link_between_parties_is_found_in_the_bytes() -> None:
    """What a party's worker receives on its links is binary: a cell sent as SecretFlow sends a PYU object
    (a pickled numpy array, here inside bytes of another message) is found as its IEEE double; the
    receiver's own cells and an integer id are not looked for there (the text scan covers those)."""
    tables = consortium_data(60, seed=9)
    foreign = float_patterns([tables["alice"], tables["carol"]])  # what bob must not receive
    cell = float(tables["carol"]["c1"].iloc[7])
    clean = pickle.dumps(np.asarray(tables["bob"][["b0", "b1"]]), protocol=5)
    leaking = pickle.dumps(np.asarray([0.25, cell, 0.5]), protocol=5)
    noise = bytes(range(256)) * 40
    assert binary_leaks(noise + clean + noise, foreign) == []
    assert binary_leaks(noise + leaking + noise, foreign) == [repr(cell)]
    assert binary_leaks(pickle.dumps(np.asarray([cell]).astype(">f8")), foreign) == [repr(cell)]
