"""`GET /v1/jobs/{id}/logs` and `secureflow job logs` against the real API, a real `secureflow node` (alice)
and Redis: each party's lines come from that party's node, which answers the API's signed log request.

The API holds its own log-reader key (SECUREFLOW_LOG_READER_KEY_FILE), listed in alice's policy; alice's node
signs its answer with alice's member key, the manifest's address for alice. Bob runs no node: any read that
needs bob's lines is a 503 naming bob, never a copy the API made. Parties and auditors read; a member that
is not a party of the job gets a 404, as for every other route of the job.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from eth_account import Account
from stack import ALICE, BOB, LedgerStack
from test_api_service import assert_error, live_app, manifest
from typer.testing import CliRunner, Result

from secureflow.api.cli.job import _print_log_lines
from secureflow.api.cli.main import app as cli_app
from secureflow.api.client.models import JobLogs
from secureflow.api.server.serve import add_member_key
from secureflow.compute.joblogs import JobLogHandler
from secureflow.compute.policy import PartyPolicy, write_policy
from secureflow.compute.worker.engine import REPO_ROOT
from secureflow.compute.worker.link import node_alive_key
from secureflow.ledger.devchain import DEV_PRIVATE_KEYS
from secureflow.ledger.store import SqlLedgerStore
from tools.live_server import LiveServer

REDIS_URL = "redis://127.0.0.1:6379/0"
CAROL = Account.create().address  # registered as an active member; not a party of the job
READER = Account.create()  # the API's log-reader key


@dataclass
class Env:
    url: str
    store: SqlLedgerStore
    keys: dict[str, str]
    alice_dir: Path

    def call(self, path: str, who: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        return requests.get(self.url + path, headers=headers, timeout=60)

    def cli(self, args: list[str], who: str = "member") -> Result:
        variables = {"SECUREFLOW_API_URL": self.url, "SECUREFLOW_API_KEY": self.keys[who]}
        result = CliRunner().invoke(cli_app, ["job", *args], env=variables)
        print(f"$ secureflow job {' '.join(args)}\n{result.output}")  # shown when a test fails
        assert "Traceback" not in result.output
        return result


def _start_node(party_dir: Path, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "secureflow.api", "node", "--party", "alice", "--data-dir", str(party_dir),
             "--redis-url", REDIS_URL, "--prefix", prefix, "--trust-redis"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(REPO_ROOT),
        )  # fmt: skip


@pytest.fixture
def env(ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None, tmp_path: Path) -> Iterator[Env]:
    prefix = f"sftest-apilogs-{uuid.uuid4().hex[:12]}"
    key_file = tmp_path / "log-reader.key"
    key_file.write_text("0x" + bytes(READER.key).hex())
    key_file.chmod(0o600)
    alice_dir = tmp_path / "alice"
    (alice_dir / "secrets").mkdir(parents=True)
    (alice_dir / "secrets" / "member.key").write_text(DEV_PRIVATE_KEYS[1])  # alice's own member key
    write_policy(alice_dir, PartyPolicy(log_readers=(READER.address,)))
    ledger_stack.registry().register_member(CAROL)
    app, store, keys = live_app(
        ledger_stack,
        ledger_db_url,
        compute_redis_url=REDIS_URL,
        compute_redis_prefix=prefix,
        log_reader_key_file=key_file,
        node_log_timeout=10.0,
    )
    keys["carol"] = add_member_key(app.state.api_db, "carol", CAROL, "member")
    rds = redis.Redis.from_url(REDIS_URL)
    node = _start_node(alice_dir, prefix, tmp_path / "alice-node.log")
    try:
        deadline = time.monotonic() + 120
        while not rds.exists(node_alive_key(prefix, "alice")):
            assert node.poll() is None, (tmp_path / "alice-node.log").read_text()
            assert time.monotonic() < deadline, "alice's node did not beat"
            time.sleep(0.1)
        with LiveServer(app) as server:
            yield Env(server.url, store, keys, alice_dir)
    finally:
        node.terminate()
        try:
            node.wait(20)
        except subprocess.TimeoutExpired:
            node.kill()
        for key in rds.scan_iter(f"{prefix}:*"):
            rds.delete(key)
        rds.close()
        store.close()


def _submit(env: Env) -> str:
    headers = {"Authorization": f"Bearer {env.keys['member']}"}
    body: dict[str, Any] = {"manifest": manifest("logs")}
    response = requests.post(env.url + "/v1/jobs", json=body, headers=headers, timeout=60)
    assert response.status_code == 201, response.text
    job_id = str(response.json()["job"]["job_id"])
    writer = JobLogHandler(env.alice_dir)  # as alice's worker wrote them while it ran the job
    for i in range(3):
        writer.write(job_id, f"alice line {i}")
    return job_id


def test_parties_and_auditors_read_each_partys_lines_from_its_node(env: Env) -> None:
    job_id = _submit(env)
    want = {
        "party": "alice",
        "address": ALICE.lower(),
        "lines": [f"alice line {i}" for i in range(3)],
        "next": 3,
    }
    for who in ("member", "auditor"):
        got = env.call(f"/v1/jobs/{job_id}/logs?party=alice", who)
        assert got.status_code == 200, got.text
        assert got.json() == {"job_id": job_id, "parties": [want]}
    by_address = env.call(f"/v1/jobs/{job_id}/logs?party={ALICE}&after=2", "bob")
    assert by_address.json()["parties"][0]["lines"] == ["alice line 2"]

    assert_error(env.call(f"/v1/jobs/{job_id}/logs?party=alice", "carol"), 404, "not_found")
    assert_error(env.call(f"/v1/jobs/{job_id}/logs?party=dave", "member"), 404, "not_found")
    for path in (
        f"/v1/jobs/{job_id}/logs?party=bob",
        f"/v1/jobs/{job_id}/logs",
        f"/v1/jobs/{job_id}/logs?party={BOB}",
    ):
        error = assert_error(env.call(path, "member"), 503, "unavailable")
        assert "party 'bob'" in error["message"] and "secureflow node" in error["message"]
        assert "alice line" not in error["message"]


def test_cli_prints_and_follows_a_partys_lines(env: Env) -> None:
    job_id = _submit(env)
    shown = env.cli(["logs", job_id, "--party", "alice"])
    assert shown.exit_code == 0 and shown.stdout.splitlines() == [f"[alice] alice line {i}" for i in range(3)]
    as_json = json.loads(env.cli(["logs", job_id, "--party", "alice", "--json"]).stdout)
    assert as_json["parties"][0]["lines"][0] == "alice line 0"
    refused = env.cli(["logs", job_id], who="auditor")
    assert refused.exit_code == 1 and "party 'bob'" in refused.stderr and "alice line" not in refused.output
    not_party = env.cli(["logs", job_id, "--party", "alice"], who="carol")
    assert not_party.exit_code == 1 and "HTTP 404" in not_party.stderr

    headers = {"Authorization": f"Bearer {env.keys['member']}"}
    cancelled = requests.post(f"{env.url}/v1/jobs/{job_id}/cancel", headers=headers, timeout=60)
    assert cancelled.status_code == 200, cancelled.text
    JobLogHandler(env.alice_dir).write(job_id, "alice last line")
    followed = env.cli(["logs", job_id, "--party", "alice", "--follow"])  # ends: the job has ended
    assert followed.exit_code == 0
    assert followed.stdout.splitlines()[-1] == "[alice] alice last line"
    assert len(followed.stdout.splitlines()) == 4  # each line once


def test_a_node_that_does_not_answer_in_time_is_named_and_nothing_is_served(env: Env) -> None:
    """Alice's node beats but no longer lists the API's key (its operator changed the policy): it drops the
    request; after SECUREFLOW_NODE_LOG_TIMEOUT the API answers 503 naming alice, with none of her lines."""
    job_id = _submit(env)
    assert env.call(f"/v1/jobs/{job_id}/logs?party=alice", "auditor").status_code == 200
    write_policy(env.alice_dir, PartyPolicy())
    error = assert_error(env.call(f"/v1/jobs/{job_id}/logs?party=alice", "auditor"), 503, "unavailable")
    assert "party 'alice'" in error["message"] and "no signed answer" in error["message"]
    assert "alice line" not in error["message"]


def test_log_reads_of_a_silent_node_are_bounded_and_the_api_keeps_answering(env: Env) -> None:
    """The attack (review): each log read holds a worker thread while the party's node answers (up to
    node_log_timeout); alice's node beats but lists no log reader, so every read waits the whole timeout,
    and 60 reads at once from one member key stalled every route, /healthz included. Now at most
    job_log_concurrency (4) reads are served at once per process, the others answered 429 with
    Retry-After at once, and /healthz and the job answer meanwhile."""
    job_id = _submit(env)
    write_policy(env.alice_dir, PartyPolicy())  # alice's node beats, but answers no log request
    headers = {"Authorization": f"Bearer {env.keys['member']}"}
    url = f"{env.url}/v1/jobs/{job_id}/logs?party=alice"
    refused = threading.Event()
    codes: list[int] = []

    def read() -> None:
        response = requests.get(url, headers=headers, timeout=120)
        codes.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            refused.set()

    threads = [threading.Thread(target=read, daemon=True) for _ in range(60)]
    for t in threads:
        t.start()
    assert refused.wait(60), codes  # the reads over the cap came back at once
    health = requests.get(f"{env.url}/healthz", timeout=5)
    job = requests.get(
        f"{env.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {env.keys['auditor']}"}, timeout=5
    )
    assert (health.status_code, job.status_code) == (200, 200)
    for t in threads:
        t.join(120)
    assert sorted(set(codes)) == [429, 503] and codes.count(503) <= 60, codes  # 503: the silent node


def test_log_lines_reach_the_terminal_without_control_sequences(capsys: pytest.CaptureFixture[str]) -> None:
    """A party's lines are its own text (its node answers them): a line that erased its '[alice]' prefix
    to pass as bob's, or wrote the reader's clipboard (OSC 52), is printed with its control characters
    shown as \\xNN."""
    evil = "\x1b[2K\r[bob] step 3 (ss_lr) done in 0.10 s \x1b]52;c;cm0gLXJmIH4K\x07\n[bob] forged"
    page = JobLogs.model_validate(
        {
            "job_id": "0x" + "ab" * 32,
            "parties": [{"party": "alice", "address": ALICE, "lines": [evil], "next": 1}],
        }
    )
    _print_log_lines(page, as_json=False)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("[alice] \\x1b[2K\\x0d[bob]"), repr(out)
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out
