"""A party's node serves its own job logs, only to a signed request of a log reader its policy lists.

One real `secureflow node` (alice) whose data folder holds the scrubbed logs its workers wrote for two jobs
(written here as the worker writes them, `JobLogHandler`), an expired job log and session folder, and a
fresh one. The node prunes what is past ``--log-retention-days`` at start. A reader (the API's side,
`request_node_logs`) gets one job's lines, signed by alice's member key; a forged request (unsigned,
signed by a key the policy does not list, signed under the queue-entry domain, or a replay) is dropped
unanswered: the queue is FIFO, so once a valid request sent after them is answered, the node has handled
them, and their reply keys stay empty. A node that is down, or somebody answering in its place without its
member key, gives the reader `NodeLogsUnavailableError` naming the party.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from dist_nodes import REDIS_URL, Nodes
from eth_account import Account
from eth_account.signers.local import LocalAccount
from scrape import metrics_url_in, scrape, value

import secureflow.compute.worker.node as node_module
from secureflow.compute.joblogs import (
    JobLogHandler,
    NodeLogsUnavailableError,
    job_log_path,
    log_reply,
    log_reply_key,
    request_node_logs,
)
from secureflow.compute.policy import PartyPolicy, write_policy
from secureflow.compute.worker.link import (
    decode,
    encode,
    engine_alive_key,
    inbound_key,
    node_alive_key,
    outbound_key,
)
from secureflow.compute.worker.trust import member_address
from secureflow.ledger.queue_signing import DOMAIN, LOG_REPLY_DOMAIN, LOG_REQUEST_DOMAIN, sign_entry

JOB, OTHER, OLD, NEVER = ("0x" + secrets.token_hex(32) for _ in range(4))
LINES = 1500
OLD_SESSION, FRESH_SESSION = secrets.token_hex(16), secrets.token_hex(16)
DAY = 86400.0


def key_of(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


READER: LocalAccount = Account.create()
STRANGER: LocalAccount = Account.create()


def _age(path: Path, days: float) -> None:
    """Set the last change of ``path`` (and all in it) ``days`` ago: the clock of the retention."""
    when = time.time() - days * DAY
    for p in [*path.rglob("*"), path] if path.is_dir() else [path]:
        os.utime(p, (when, when))


@pytest.fixture(scope="module")
def rds() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="module")
def lnodes(tmp_path_factory: pytest.TempPathFactory, rds: redis.Redis) -> Iterator[Nodes]:
    n = Nodes(tmp_path_factory.mktemp("lnodes"), f"sftest-logs-{uuid.uuid4().hex[:12]}")
    alice = n.dir("alice")
    alice.mkdir(parents=True)
    write_policy(alice, PartyPolicy(log_readers=(READER.address,)))
    handler = JobLogHandler(alice)  # as alice's worker writes its job logs
    for i in range(LINES):
        handler.write(JOB, f"job line {i}")
    handler.write(OTHER, "other job line")
    handler.write(OLD, "an old job's line")
    _age(job_log_path(alice, OLD), 40)
    for session in (OLD_SESSION, FRESH_SESSION):
        (alice / "sessions" / session / "logs").mkdir(parents=True)
        (alice / "sessions" / session / "logs" / "worker.log").write_text("worker line\n")
    _age(alice / "sessions" / OLD_SESSION, 40)
    _age(alice / "sessions" / FRESH_SESSION, 2)
    n.start("alice", "--log-retention-days", "30", "--metrics-port", "0")
    try:
        n.wait_up(rds, ("alice",))
        yield n
    finally:
        n.stop_all()
        for key in rds.scan_iter(f"{n.prefix}:*"):
            rds.delete(key)


def _read(
    n: Nodes, rds: redis.Redis, job: str, after: int = 0, party: str = "alice", member: str = ""
) -> list[str]:
    page = request_node_logs(
        rds,
        prefix=n.prefix,
        party=party,
        member=member or member_address(n.dir("alice")),
        job_id=job,
        signer=key_of(READER),
        after=after,
        timeout=20.0,
    )
    assert page.party == party
    assert page.next == after + len(page.lines)
    return page.lines


def test_retention_removes_expired_job_logs_and_session_folders_at_start(lnodes: Nodes) -> None:
    alice = lnodes.dir("alice")
    assert not job_log_path(alice, OLD).exists()
    assert not (alice / "sessions" / OLD_SESSION).exists()
    assert job_log_path(alice, JOB).is_file() and job_log_path(alice, OTHER).is_file()
    assert (alice / "sessions" / FRESH_SESSION / "logs" / "worker.log").is_file()


def test_node_serves_one_jobs_lines_to_a_listed_reader_page_by_page(lnodes: Nodes, rds: redis.Redis) -> None:
    first = _read(lnodes, rds, JOB)
    rest = _read(lnodes, rds, JOB, after=len(first))
    assert first + rest == [f"job line {i}" for i in range(LINES)] and len(first) < LINES
    assert _read(lnodes, rds, OTHER) == ["other job line"]
    assert _read(lnodes, rds, JOB, after=LINES) == []
    with pytest.raises(NodeLogsUnavailableError, match=r"'alice'.*keeps no log"):
        _read(lnodes, rds, NEVER)  # a job this node did not run
    with pytest.raises(NodeLogsUnavailableError, match=r"'alice'.*keeps no log"):
        _read(lnodes, rds, OLD)  # expired


def _request(job: str, **fields: object) -> dict[str, object]:
    return {
        "op": "logs",
        "request": secrets.token_hex(16),
        "party": "alice",
        "job_id": job,
        "after": 0,
        "exp": time.time() + 60,
        **fields,
    }


def test_forged_log_requests_are_dropped_unanswered(lnodes: Nodes, rds: redis.Redis) -> None:
    queue = inbound_key(lnodes.prefix, "alice")
    valid = sign_entry(_request(JOB), key_of(READER), LOG_REQUEST_DOMAIN)
    forged = [
        _request(JOB),  # unsigned
        sign_entry(_request(JOB), key_of(STRANGER), LOG_REQUEST_DOMAIN),  # a key the policy does not list
        sign_entry(_request(JOB), key_of(READER), DOMAIN),  # the reader's key, but as a queue entry
        sign_entry(_request(JOB, party="bob"), key_of(READER), LOG_REQUEST_DOMAIN),  # for another party
        # a listed reader asking for a file that is no job's log (the member key): no job id
        sign_entry(_request("../secrets/member.key"), key_of(READER), LOG_REQUEST_DOMAIN),
        # valid for ten days: a signed request is short-lived
        sign_entry(_request(JOB, exp=time.time() + 10 * DAY), key_of(READER), LOG_REQUEST_DOMAIN),
    ]
    rds.rpush(queue, encode(valid))
    answered = rds.blpop([log_reply_key(lnodes.prefix, "alice", str(valid["request"]))], timeout=20)
    assert answered is not None
    reply = decode(answered[1])
    assert reply is not None and reply["ok"] and reply["lines"][0] == "job line 0"
    for entry in [*forged, valid]:  # ... and the valid one again: a replay
        rds.rpush(queue, encode(entry))
    assert _read(lnodes, rds, OTHER) == ["other job line"]  # sent after them: they were all handled
    for entry in [*forged, valid]:
        assert not rds.exists(log_reply_key(lnodes.prefix, "alice", str(entry["request"])))
    log = lnodes.log("alice").read_text()
    for why in (
        "no valid signature",
        f"signed by {STRANGER.address.lower()}, which this node's policy does not list in log_readers",
        "addressed to another party",
        "no valid job id",
        "expired, or expiring too late",
        "a request id already answered (a replay)",
    ):
        assert f"dropped a log request: {why}" in log
    assert "job line" not in log and "member.key" not in log  # nor what a request asked for
    samples = scrape(metrics_url_in(lnodes.log("alice"), 30))
    assert value(samples, "secureflow_node_log_requests_total", result="dropped") == len(forged) + 1
    assert (value(samples, "secureflow_node_log_requests_total", result="answered") or 0) >= 2


def test_a_node_that_is_down_is_named(lnodes: Nodes, rds: redis.Redis) -> None:
    with pytest.raises(NodeLogsUnavailableError, match=r"party 'carol'.*not running"):
        _read(lnodes, rds, JOB, party="carol")


def test_an_answer_not_signed_by_the_partys_member_key_is_not_taken(lnodes: Nodes, rds: redis.Redis) -> None:
    """Somebody with Redis write access beats for carol's node and answers its log requests with its key."""
    alive = node_alive_key(lnodes.prefix, "carol")
    rds.set(alive, "{}", ex=60)
    stop = threading.Event()

    def impostor() -> None:
        client = redis.Redis.from_url(REDIS_URL)
        while not stop.is_set():
            got = client.blpop([inbound_key(lnodes.prefix, "carol")], timeout=1)
            if got is None:
                continue
            entry = decode(got[1]) or {}
            forged = log_reply("carol", str(entry.get("request")), ["forged line"], 1)
            client.rpush(log_reply_key(lnodes.prefix, "carol", str(entry.get("request"))),
                         encode(sign_entry(forged, key_of(STRANGER), LOG_REPLY_DOMAIN)))  # fmt: skip
        client.close()

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    try:
        with pytest.raises(NodeLogsUnavailableError, match=r"party 'carol'.*no signed answer"):
            request_node_logs(
                rds,
                prefix=lnodes.prefix,
                party="carol",
                member=Account.create().address,  # carol's member address (the manifest's)
                job_id=JOB,
                signer=key_of(READER),
                timeout=3.0,
            )
    finally:
        stop.set()
        thread.join(5)
        rds.delete(alive)


def test_a_log_read_in_progress_does_not_hold_up_a_job_request(
    tmp_path: Path, rds: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding F5: a node in this process whose log read blocks (a stand-in for a slow disk or a huge
    log, which cannot be made on cue: ``read_job_log`` waits on an Event) still answers a session's start
    with its ports; once the read is let go, the log request is answered too."""
    prefix = f"sftest-logs-{uuid.uuid4().hex[:12]}"
    alice = tmp_path / "alice"
    alice.mkdir()
    write_policy(alice, PartyPolicy(log_readers=(READER.address,)))
    JobLogHandler(alice).write(JOB, "job line 0")
    reading, release = threading.Event(), threading.Event()
    real_read = node_module.read_job_log

    def slow_read(party_dir: Path, job_id: str, after: int = 0) -> tuple[list[str], int]:
        reading.set()
        assert release.wait(60)
        return real_read(party_dir, job_id, after)

    monkeypatch.setattr(node_module, "read_job_log", slow_read)
    node = node_module.Node("alice", alice, REDIS_URL, prefix=prefix)
    loop = threading.Thread(target=node.serve, daemon=True)
    loop.start()
    session = secrets.token_hex(16)
    try:
        request = sign_entry(_request(JOB), key_of(READER), LOG_REQUEST_DOMAIN)
        rds.rpush(inbound_key(prefix, "alice"), encode(request))
        assert reading.wait(20)  # the node is reading the log now
        rds.set(engine_alive_key(prefix, session), "1", ex=60)
        start = {"session": session, "op": "start", "exp": time.time() + 60, "spu_profiles": {}}
        rds.rpush(inbound_key(prefix, "alice"), encode(start))
        ports = rds.blpop([outbound_key(prefix, session)], timeout=20)
        assert ports is not None and (decode(ports[1]) or {}).get("op") == "ports"
        assert not release.is_set()  # answered while the log read was still held
        release.set()
        answer = rds.blpop([log_reply_key(prefix, "alice", str(request["request"]))], timeout=20)
        assert answer is not None and (decode(answer[1]) or {}).get("lines") == ["job line 0"]
    finally:
        release.set()
        node.stopping.set()
        loop.join(15)
        for key in rds.scan_iter(f"{prefix}:*"):
            rds.delete(key)


def test_a_reply_of_another_party_is_never_taken_as_this_partys(lnodes: Nodes, rds: redis.Redis) -> None:
    """Review finding F8: each party's node answers under a key of its own party, so the replies of two
    parties to one reader never share a key and a Redis ACL per node can keep bob's node to bob's keys.
    Bob's node, with its real member key, answers a log request meant for carol: under carol's key (his
    ACL would refuse it; here it is written anyway) it is not signed by carol's member key, and under his
    own key nobody reads it for carol."""
    request = "ab" * 16
    assert log_reply_key(lnodes.prefix, "alice", request) != log_reply_key(lnodes.prefix, "bob", request)
    bob = Account.create()
    alive = node_alive_key(lnodes.prefix, "carol")
    rds.set(alive, "{}", ex=60)
    stop = threading.Event()

    def bob_answers_for_carol() -> None:
        client = redis.Redis.from_url(REDIS_URL)
        while not stop.is_set():
            got = client.blpop([inbound_key(lnodes.prefix, "carol")], timeout=1)
            if got is None:
                continue
            asked = str((decode(got[1]) or {}).get("request"))
            for party in ("carol", "bob"):  # claiming carol's reply, and bob's own to the same request
                reply = sign_entry(log_reply(party, asked, ["bob's line"], 1), key_of(bob), LOG_REPLY_DOMAIN)
                for key_party in ("carol", "bob"):
                    client.rpush(log_reply_key(lnodes.prefix, key_party, asked), encode(reply))
        client.close()

    thread = threading.Thread(target=bob_answers_for_carol, daemon=True)
    thread.start()
    try:
        with pytest.raises(NodeLogsUnavailableError, match=r"party 'carol'.*no signed answer"):
            request_node_logs(
                rds,
                prefix=lnodes.prefix,
                party="carol",
                member=Account.create().address,  # carol's member address (the manifest's)
                job_id=JOB,
                signer=key_of(READER),
                timeout=3.0,
            )
    finally:
        stop.set()
        thread.join(5)
        rds.delete(alive)


def test_a_nodes_redis_acl_can_keep_it_to_its_own_partys_reply_keys(lnodes: Nodes, rds: redis.Redis) -> None:
    """What the per-party key makes possible (F8): a Redis ACL user for bob's node that may write only
    ``<prefix>:logs:bob:*`` cannot put anything where alice's replies are read."""
    user, password = f"sftest-bob-{uuid.uuid4().hex[:8]}", secrets.token_hex(16)
    rds.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=[f"{lnodes.prefix}:logs:bob:*"],
        commands=["+rpush", "+expire"],
    )
    try:
        as_bob = redis.Redis.from_url(REDIS_URL, username=user, password=password)
        assert as_bob.rpush(log_reply_key(lnodes.prefix, "bob", "cd" * 16), "x") == 1
        with pytest.raises(redis.exceptions.NoPermissionError):
            as_bob.rpush(log_reply_key(lnodes.prefix, "alice", "cd" * 16), "x")
        as_bob.close()
    finally:
        rds.acl_deluser(user)
        rds.delete(log_reply_key(lnodes.prefix, "bob", "cd" * 16))
