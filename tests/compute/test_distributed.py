"""Distributed mode: two real `secureflow node` processes, work through Redis, real SecretFlow.

One pair of nodes (alice, bob; own party folders) and one distributed engine
serve the whole module, on a key prefix of their own in the Redis at
127.0.0.1:6379. The job is compared with the same job on the local-mode
session engine; then the queue's isolation, stale sessions, a node killed
mid-job, an engine that vanishes without shutting down and a node's SIGTERM
are checked. Every command Redis runs on the module's keys during the job (a
MONITOR connection: the entries of the nodes' queues and the replies) is
scanned for the parties' cell values (tests/leaks.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from cf_helpers import joined, put, vertical_data
from dist_nodes import REDIS_URL, Nodes
from eth_account import Account
from leaks import scan_sinks, table_renderings
from sinks import RedisMonitor
from tls_probe import refused

from secureflow.compute.errors import ComputeError, WorkerError
from secureflow.compute.joblogs import job_log_path, request_node_logs
from secureflow.compute.policy import PartyPolicy, write_policy
from secureflow.compute.runner import JobResult, run_job
from secureflow.compute.worker.engine import REPO_ROOT, Engine
from secureflow.compute.worker.link import (
    HEARTBEAT_TTL_S,
    engine_alive_key,
    heartbeat_key,
    inbound_key,
    node_alive_key,
    node_warm,
    outbound_key,
)
from secureflow.compute.worker.tls import load_identity, make_identity
from secureflow.ledger.records import StepRecord
from secureflow.ledger.signing import verify_party_signature

PARTIES = ("alice", "bob")


@pytest.fixture(scope="module")
def rds(redis_service: None) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, rds: redis.Redis) -> Iterator[Nodes]:
    n = Nodes(tmp_path_factory.mktemp("nodes"), f"sftest-{uuid.uuid4().hex[:12]}")
    for party in PARTIES:
        n.start(party)
    try:
        n.wait_up(rds, PARTIES)
        yield n
    finally:
        n.stop_all()
        keys = list(rds.scan_iter(f"{n.prefix}:*"))
        if keys:
            rds.delete(*keys)


@pytest.fixture(scope="module")
def dengine(nodes: Nodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    eng = Engine(
        PARTIES,
        tmp_path_factory.mktemp("coord"),
        launcher="distributed",
        redis_url=REDIS_URL,
        redis_prefix=nodes.prefix,
        step_timeout=300.0,
        start_timeout=180.0,
        node_timeout=5.0,
    )
    eng.start()
    try:
        yield eng
    finally:
        eng.shutdown()


def _job(addresses: dict[str, str], datasets: dict[str, dict[str, str]], out: str = "out") -> dict[str, Any]:
    """PSI then fillna, saving both tables under ``out/`` (a job never overwrites a file: a new folder)."""
    return {
        "name": "distributed",
        "parties": [{"name": p, "address": addresses[p]} for p in PARTIES],
        "datasets": datasets,
        "models": {},
        "steps": [
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "raw"},
                "outputs": {"table": "j"},
                "save": {"table": f"{out}/j.csv"},
            },
            {
                "algorithm": "fillna",
                "params": {"strategy": "mean", "columns": ["a1", "b2"]},
                "inputs": {"table": "j"},
                "outputs": {"table": "f"},
                "save": {"table": f"{out}/f.csv"},
            },
        ],
    }


def _shape(rec: StepRecord) -> list[tuple[list[str], list[str], bool]]:
    return [(sorted(p.inputs), sorted(p.outputs), bool(p.signature)) for p in rec.parties]


def test_job_runs_on_the_nodes_like_local_mode(dengine, nodes, engine, recorder, rds) -> None:  # type: ignore[no-untyped-def]
    alice, bob = vertical_data(200, seed=5)
    alice.loc[alice.index[:5], "a1"] = np.nan
    bob.loc[bob.index[:4], "b2"] = np.nan
    data = {"alice": alice, "bob": bob}
    dist_ds = {"raw": {p: nodes.put(p, "dist_cmp.csv", data[p]) for p in PARTIES}}
    with RedisMonitor(REDIS_URL, nodes.prefix) as traffic:
        res = run_job(dengine, _job(dengine.addresses, dist_ds), recorder)
    assert res.succeeded, (res.error_class, res.error_message)
    _no_cell_value_in_redis_traffic(traffic, nodes.prefix, data)
    _each_node_keeps_and_serves_its_own_job_log(nodes, rds, dengine.addresses, res.job_id, data)
    # the nodes ran their links over TLS (their default), each with the certificate of its own folder
    assert dengine.tls_fingerprints == {p: _node_tls(nodes, p).fingerprint for p in PARTIES}

    engine.ensure_healthy()
    local_ds = {"raw": {p: put(engine, p, "dist_cmp.csv", data[p]) for p in PARTIES}}
    ref = run_job(engine, _job(engine.addresses, local_ds, out="out/dist-local"), recorder)
    assert ref.succeeded, (ref.error_class, ref.error_message)

    # the same outputs in each member's own folder (and none in the coordinator's root)
    for p in PARTIES:
        for name in ("j.csv", "f.csv"):
            got = pd.read_csv(nodes.dir(p) / "data" / "out" / name)
            want = pd.read_csv(engine.data_dir(p) / "out" / "dist-local" / name)
            pd.testing.assert_frame_equal(got, want)
    assert (
        pd.read_csv(nodes.dir("alice") / "data/out/j.csv")["id"].tolist() == joined(alice, bob)["id"].tolist()
    )
    assert not any(dengine.root.rglob("*.csv"))

    # records: same steps and digest shape, co-signed by both members' keys (each node's own key)
    assert [s.record.algorithm for s in res.steps] == [s.record.algorithm for s in ref.steps]
    rows = recorder.store.records_for_job(res.job_id)
    assert [r.seq for r in rows] == [0, 1]
    for row, step, local in zip(rows, res.steps, ref.steps, strict=True):
        rec = StepRecord.model_validate_json(row.record_json)
        assert rec == step.record and rec.status == "succeeded"
        assert _shape(rec) == _shape(local.record)
        assert [p.party for p in rec.parties] == [dengine.addresses[p] for p in PARTIES]
        assert all(p.signature and verify_party_signature(rec, p) for p in rec.parties)
    for p in PARTIES:  # the member key stays in the node's folder
        assert (nodes.dir(p) / "secrets" / "member.key").stat().st_mode & 0o777 == 0o600

    # warm across jobs: a second job runs on the same workers
    pids = {p: w.pid for p, w in dengine.workers.items()}
    again = run_job(dengine, _job(dengine.addresses, dist_ds, out="out/again"), recorder)
    assert again.succeeded and {p: w.pid for p, w in dengine.workers.items()} == pids


def _each_node_keeps_and_serves_its_own_job_log(
    nodes: Nodes, rds: redis.Redis, addresses: dict[str, str], job_id: str, data: dict[str, pd.DataFrame]
) -> None:
    """Each party's worker wrote the job's lines in its node's folder, with none of the party's cells; the
    node serves them, signed by its member key, to a reader its policy lists (and to nobody before)."""
    reader = Account.create()
    for p in PARTIES:
        text = job_log_path(nodes.dir(p), job_id).read_text()
        assert "step 0 (psi) done" in text and "step 1 (fillna) done" in text
        assert scan_sinks({p: text}, table_renderings([data[p]])) == {}
        write_policy(nodes.dir(p), PartyPolicy(log_readers=(reader.address,)))
        page = request_node_logs(
            rds,
            prefix=nodes.prefix,
            party=p,
            member=addresses[p],
            job_id=job_id,
            signer="0x" + bytes(reader.key).hex(),
            timeout=20.0,
        )
        assert page.lines == text.splitlines()


def _no_cell_value_in_redis_traffic(
    traffic: RedisMonitor, prefix: str, data: dict[str, pd.DataFrame]
) -> None:
    """No cell of either party (every column, every rendering of tests/leaks.py) in any command on the
    module's keys while the job ran: the entries pushed to each node's queue, the replies to the engine, the
    heartbeats; and a value planted in a copy of any of them is found there."""
    sinks = traffic.sinks()
    assert inbound_key(prefix, "alice") in " ".join(sinks) and inbound_key(prefix, "bob") in " ".join(sinks)
    assert any("run_step" in text for text in sinks.values()), sinks.keys()
    secrets = table_renderings(data.values())
    assert scan_sinks(sinks, secrets) == {}
    bob_id = int(data["bob"]["id"].max())  # one of bob's extra ids, 8 digits
    b1 = float(data["bob"].loc[data["bob"]["b1"] != 0, "b1"].iloc[5])  # a real row (extras hold 0.0)
    planted = [str(bob_id), repr(float(data["alice"]["a0"].iloc[3])), f"{b1:.6f}"]
    for index, name in enumerate(sorted(sinks)):
        value = planted[index % len(planted)]
        lines = sinks[name].split("\n")
        at = max((i for i, line in enumerate(lines) if "}" in line), default=len(lines) - 1)
        if "}" in lines[at]:  # inside the last JSON entry of that key, as a field of its own
            lines[at] = lines[at].replace("}", f', "x": {value}}}', 1)
        else:
            lines[at] += f" {value}"
        tampered = {**sinks, name: "\n".join(lines)}
        assert scan_sinks(tampered, secrets) == {name: [value]}, (name, lines[at][:300])


def _node_tls(nodes: Nodes, party: str):  # type: ignore[no-untyped-def]
    folder = nodes.dir(party) / "secrets" / "tls"
    return load_identity(folder / "node.crt", folder / "node.key")


def test_only_the_session_s_parties_reach_a_worker_s_links(dengine, nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A process that is not a party, on the network of the nodes, connects to every SecretFlow and SPU
    port the nodes published for the running session: in plain TCP (speaking brpc's HTTP) and over TLS
    with a self-signed certificate of its own. Both fail at the TLS handshake and reach no worker; the
    same port completes the handshake for another party's certificate, and the workers carry on."""
    dengine.ensure_healthy()
    assert dengine.session is not None
    pids = {p: w.pid for p, w in dengine.workers.items()}
    mallory = make_identity(tmp_path / "mallory", "mallory")
    ports = {
        p: (str(proof["host"]), [int(proof["ports"]["fed"]), *map(int, proof["ports"]["spu"].values())])
        for p, proof in dengine.session.port_proofs.items()
    }
    assert set(ports) == set(PARTIES)
    assert all(len(numbers) == 1 + len(dengine.spu_profiles) for _, numbers in ports.values())
    for party, (host, numbers) in ports.items():
        peer = _node_tls(nodes, "bob" if party == "alice" else "alice")
        for port in numbers:
            assert refused(host, port, None), (party, port)  # plain TCP
            assert refused(host, port, mallory), (party, port)  # TLS, a certificate that is no party's
            assert not refused(host, port, peer), (party, port)  # the other party's node certificate
    replies = dengine.ping(timeout=30)
    assert {p: r["pid"] for p, r in replies.items()} == pids and dengine.healthy


def test_each_node_reads_only_its_own_queue(dengine, nodes, rds) -> None:  # type: ignore[no-untyped-def]
    assert dengine.session is not None
    session = dengine.session.session
    carol = inbound_key(nodes.prefix, "carol")
    entry = {"session": session, "op": "msg", "exp": time.time() + 60, "msg": {"op": "ping"}}
    rds.rpush(carol, json.dumps(entry))
    assert dengine.ping(timeout=20)  # both nodes take their own work meanwhile
    assert dengine.ping(timeout=20)  # and again (each node went round its loop after carol's entry arrived)
    assert rds.llen(carol) == 1  # nobody took carol's work
    assert (
        rds.llen(inbound_key(nodes.prefix, "alice")) == 0 and rds.llen(inbound_key(nodes.prefix, "bob")) == 0
    )
    keys = {k.decode() for k in rds.scan_iter(f"{nodes.prefix}:*")}
    assert keys <= {
        carol,
        inbound_key(nodes.prefix, "alice"),
        inbound_key(nodes.prefix, "bob"),
        outbound_key(nodes.prefix, session),
        heartbeat_key(nodes.prefix, session, "alice"),
        heartbeat_key(nodes.prefix, session, "bob"),
        engine_alive_key(nodes.prefix, session),
        node_alive_key(nodes.prefix, "alice"),
        node_alive_key(nodes.prefix, "bob"),
    }, keys
    assert heartbeat_key(nodes.prefix, session, "alice") in keys
    assert node_alive_key(nodes.prefix, "bob") in keys  # each node beats, session or not
    assert engine_alive_key(nodes.prefix, session) in keys  # the engine beats while started
    rds.delete(carol)


def test_stale_session_messages_are_ignored(dengine, nodes, rds) -> None:  # type: ignore[no-untyped-def]
    assert dengine.session is not None
    session = dengine.session.session
    pids = {p: w.pid for p, w in dengine.workers.items()}
    stale = uuid.uuid4().hex
    alice_in = inbound_key(nodes.prefix, "alice")
    # to the node: another session's shutdown and stop, and an expired start, must not touch the worker
    for entry in (
        {"session": stale, "op": "msg", "exp": time.time() + 60, "msg": {"op": "shutdown"}},
        {"session": stale, "op": "stop", "exp": time.time() + 60},
        {"session": stale, "op": "start", "exp": time.time() - 1, "spu_profiles": {}},
        {"session": session, "op": "stop", "exp": time.time() - 1},
        # malformed entries are dropped, never the node: an expiry that is no number, a table without parties
        {"session": stale, "op": "start", "exp": "x", "spu_profiles": {}},
        {"session": session, "op": "table", "exp": time.time() + 60},
    ):
        rds.rpush(alice_in, json.dumps(entry))
    # to the engine: a reply tagged with another session must not be taken for alice's answer
    bogus = {"session": stale, "party": "alice", "op": "msg", "msg": {"ok": True, "bogus": True}}
    rds.rpush(outbound_key(nodes.prefix, session), json.dumps(bogus))
    # the ping goes into alice's queue behind the stale entries (FIFO): its reply means she read them all
    replies = dengine.ping(timeout=20)
    assert all("bogus" not in r and r["pid"] == pids[p] for p, r in replies.items()), replies
    assert dengine.healthy and all(w.alive() for w in dengine.workers.values())
    assert all(proc.poll() is None for proc in nodes.procs.values())


@pytest.mark.parametrize(
    "runtime",
    [
        {"protocol": "REF2K", "field": "FM64", "fxp_fraction_bits": 18},  # SPU's plaintext reference protocol
        {
            "protocol": "SEMI2K",
            "field": "FM128",
            "fxp_fraction_bits": 2,
        },  # a known protocol, made-up precision
    ],
    ids=["ref2k", "semi2k-other-precision"],
)
def test_a_node_refuses_an_spu_session_of_no_known_protocol(nodes, rds, runtime) -> None:  # type: ignore[no-untyped-def]
    """Attack: a coordinator (or whoever writes to a node's queue) asks the node's worker for an SPU under a
    runtime config of its own making: REF2K would put every party's inputs in the clear at the others. The
    node answers with a refusal naming the protocols it runs, and starts no worker for the session."""
    session = uuid.uuid4().hex
    rds.set(engine_alive_key(nodes.prefix, session), "1", ex=60)
    start = {
        "session": session,
        "op": "start",
        "exp": time.time() + 60,
        "spu_profiles": {"default": runtime, "precise": runtime},
    }
    rds.rpush(inbound_key(nodes.prefix, "alice"), json.dumps(start))
    popped = rds.blpop([outbound_key(nodes.prefix, session)], timeout=30)
    assert popped is not None, "the node never answered the start of an SPU session it must refuse"
    reply = json.loads(popped[1])
    assert reply["party"] == "alice" and reply["op"] == "msg", reply
    assert reply["msg"]["op"] == "failed" and "SEMI2K or ABY3" in reply["msg"]["message"], reply
    assert rds.get(heartbeat_key(nodes.prefix, session, "alice")) is None  # no worker beats for it
    rds.delete(engine_alive_key(nodes.prefix, session))


def test_a_session_takes_the_node_s_warm_worker(nodes, rds, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each node keeps a spare party worker that imported SecretFlow before any job asked (its heartbeat
    says ``warm``): a new session's worker is that spare (its ready message says ``prewarmed``)."""

    def wait_warm(timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(node_warm(rds, nodes.prefix, p) for p in PARTIES):
            assert time.monotonic() < deadline, [nodes.log(p).read_text()[-2000:] for p in PARTIES]
            time.sleep(0.2)

    wait_warm()
    eng = Engine(
        PARTIES,
        tmp_path / "coord",
        launcher="distributed",
        redis_url=REDIS_URL,
        redis_prefix=nodes.prefix,
        start_timeout=180.0,
        node_timeout=5.0,
    )
    eng.start()
    try:
        assert {p: w.timings.get("prewarmed") for p, w in eng.workers.items()} == {p: 1.0 for p in PARTIES}
        assert eng.ping(timeout=20)
    finally:
        eng.shutdown()
    assert "a warm party worker is ready" in nodes.log("alice").read_text()


def test_a_node_killed_mid_job_fails_the_job_without_hanging(dengine, nodes, recorder, rds) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    n = 2000
    a = pd.DataFrame({"id": np.arange(n), "a0": rng.normal(size=n), "y": rng.integers(0, 2, n)})
    b = pd.DataFrame({"id": np.arange(n), "b0": rng.normal(size=n)})
    m = {
        "name": "killed",
        "parties": [{"name": p, "address": dengine.addresses[p]} for p in PARTIES],
        "datasets": {"t": {"alice": nodes.put("alice", "k.csv", a), "bob": nodes.put("bob", "k.csv", b)}},
        "models": {},
        "steps": [
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "t"},
                "outputs": {"table": "j"},
            },
            {
                "algorithm": "ss_lr",
                "params": {"label": "y", "features": ["a0", "b0"], "epochs": 200, "batch_size": 8},
                "inputs": {"table": "j"},
            },
        ],
    }
    bob_worker = dengine.workers["bob"].pid
    killer = threading.Timer(1.0, lambda: nodes.procs["bob"].send_signal(signal.SIGKILL))
    real_all = dengine.all

    def all_then_kill(msg, **kw):  # type: ignore[no-untyped-def]
        if msg.get("op") == "run_step" and msg.get("algorithm") == "ss_lr":
            killer.start()  # bob's node dies one second into the training step
        return real_all(msg, **kw)

    dengine.all = all_then_kill  # type: ignore[method-assign]
    results: list[JobResult] = []
    runner = threading.Thread(target=lambda: results.append(run_job(dengine, m, recorder)), daemon=True)
    try:
        runner.start()
        runner.join(timeout=300)  # a generous deadline for "without hanging", not a duration
        assert not runner.is_alive(), "the job hangs after its node was killed"
    finally:
        killer.cancel()
        del dengine.all
    (res,) = results
    print(f"node killed mid-step: job failed: {res.error_message}")
    assert nodes.procs["bob"].poll() is not None, "the job ended before the node was killed"
    # bob's dead node is noticed (its heartbeat stops); alice may have failed first on the broken link
    assert not res.succeeded and res.error_class in ("WorkerError", "StepExecutionError"), res.error_class
    assert "party 'bob' worker died" in (res.error_message or ""), res.error_message
    assert [s.record.status for s in res.steps] == ["succeeded", "failed"]
    assert dengine.workers == {}
    deadline = time.monotonic() + 10
    while Path(f"/proc/{bob_worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the worker dies with its node
    assert (
        not Path(f"/proc/{bob_worker}/status").exists()
        or "zombie" in Path(f"/proc/{bob_worker}/status").read_text()
    )

    # a restarted node serves the next job (the engine restarts the cluster on new ports)
    nodes.start("bob")
    nodes.wait_up(rds, ("bob",))
    dengine.ensure_healthy()
    assert dengine.ping(timeout=30)


def _gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" in status.read_text()
    except OSError:
        return True


def test_a_vanished_engine_s_workers_are_stopped_by_their_nodes(dengine, nodes, rds, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # an engine in its own process starts a session on both nodes beside dengine's (a node serves several
    # sessions at once, each with its own worker), then is SIGKILLed
    script = (
        "import json, time\n"
        "from secureflow.compute.worker.engine import Engine\n"
        f"eng = Engine({PARTIES!r}, {str(tmp_path)!r}, launcher='distributed', redis_url={REDIS_URL!r}, "
        f"redis_prefix={nodes.prefix!r}, start_timeout=180.0)\n"
        "eng.start()\n"
        "assert eng.session is not None\n"
        "pids = {p: w.pid for p, w in eng.workers.items()}\n"
        "print(json.dumps({'session': eng.session.session, 'pids': pids}), flush=True)\n"
        "time.sleep(600)\n"
    )
    env = dict(os.environ)
    with open(tmp_path / "engine.log", "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=err, env=env, cwd=str(REPO_ROOT)
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, (tmp_path / "engine.log").read_text()[-3000:]
        info = json.loads(line)
        session, pids = str(info["session"]), {p: int(v) for p, v in info["pids"].items()}
        assert rds.exists(engine_alive_key(nodes.prefix, session))
        assert not any(_gone(pid) for pid in pids.values())
        # both sessions run at once: dengine's workers are other processes and still answer
        assert {p: r["pid"] for p, r in dengine.ping(timeout=30).items()}.keys() == pids.keys()
        assert not {r["pid"] for r in dengine.ping(timeout=30).values()} & set(pids.values())
    finally:
        proc.kill()  # no shutdown: the engine and its heartbeat thread vanish at once
        proc.wait(10)
    t = time.monotonic()
    hbs = [heartbeat_key(nodes.prefix, session, p) for p in PARTIES]
    deadline = t + HEARTBEAT_TTL_S + 15
    while time.monotonic() < deadline:
        if all(_gone(pid) for pid in pids.values()) and not rds.exists(*hbs):
            break
        time.sleep(0.2)
    took = time.monotonic() - t
    print(f"engine killed: its workers stopped by the nodes after {took:.1f} s")
    assert all(_gone(pid) for pid in pids.values()), f"workers still running {took:.1f} s after the kill"
    # each node dropped the dead session (no heartbeat for it, nothing left behind) but keeps running
    assert not rds.exists(*hbs, outbound_key(nodes.prefix, session), engine_alive_key(nodes.prefix, session))
    assert all(nodes.procs[p].poll() is None for p in PARTIES)
    for p in PARTIES:
        assert "heartbeat lapsed" in (nodes.root / f"{p}-node.log").read_text()

    # a start whose engine is already gone is dropped unread (no ports reply, no worker, no session)
    ghost = uuid.uuid4().hex
    start = {"session": ghost, "op": "start", "exp": time.time() + 60, "spu_profiles": {}}
    rds.rpush(inbound_key(nodes.prefix, "alice"), json.dumps(start))

    # dengine's session still runs; its ping queues behind the ghost's start (FIFO), so once it
    # answers, alice has read the ghost's start
    dengine.ensure_healthy()
    assert dengine.ping(timeout=30)
    assert rds.llen(inbound_key(nodes.prefix, "alice")) == 0
    assert not rds.exists(outbound_key(nodes.prefix, ghost), heartbeat_key(nodes.prefix, ghost, "alice"))


def test_sigterm_stops_the_node_and_its_worker(dengine, nodes) -> None:  # type: ignore[no-untyped-def]
    dengine.ensure_healthy()
    worker = dengine.workers["alice"].pid
    proc = nodes.procs["alice"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text()
    with pytest.raises(Exception, match="alice"):
        dengine.ping(timeout=30)


def test_no_node_running_is_a_worker_error_not_a_hang(rds) -> None:  # type: ignore[no-untyped-def]
    prefix = f"sftest-{uuid.uuid4().hex[:12]}"
    eng = Engine(PARTIES, "/nonexistent", launcher="distributed", redis_url=REDIS_URL, redis_prefix=prefix)
    with pytest.raises(WorkerError, match="alice, bob are not running"):
        eng.start()  # raises after node_timeout (pytest-timeout fails a hang)
    assert eng.workers == {} and eng.session is None
    with pytest.raises(ComputeError, match="on its node's host"):
        eng.data_dir("alice")
    assert list(rds.scan_iter(f"{prefix}:*")) == []  # nothing was sent to nodes that do not run
