"""`secureflow job` against the real API on a loopback port, real anvil and real SQLite/PostgreSQL.

Submit a manifest as a member, anchor its steps through the service route and the real anchoring
worker, read them back (`status`, `list`, `receipt`), download the audit bundle and verify it against
anvil alone, follow the live status while a background thread anchors (exit code = the job's result),
cancel, and the failures: wrong key, unreachable API, API errors with their hints; the key never shows.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account
from rich.console import Console
from sqlalchemy import text
from stack import ALICE, BOB, SERVICE, LedgerStack, anchor_and_index, create_job_on_chain, step
from test_api_service import live_app
from typer.testing import CliRunner, Result

import secureflow.api.cli.job as job_cli
import secureflow.api.client as api_client
import secureflow.api.client.sync as client_sync
from secureflow.api.cli.main import app as cli_app
from secureflow.compute.runner import failed_step_reason
from secureflow.ledger.devchain import DEV_PRIVATE_KEYS, free_port
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import job_id_for
from secureflow.ledger.store import SqlLedgerStore
from secureflow.ledger.verify import PinnedDeployment, verify_file, verify_receipt
from tools.live_server import LiveServer

AUDITOR = Account.from_key(DEV_PRIVATE_KEYS[4]).address
JOB_ID = re.compile(r"0x[0-9a-f]{64}")
SSE_MAX_SECONDS = 1.0  # live-status streams end after a second: a longer --follow must reconnect


def manifest(steps: int = 3) -> dict[str, Any]:
    return {
        "name": "cli",
        "parties": [{"name": "alice", "address": ALICE}, {"name": "bob", "address": BOB}],
        "datasets": {"raw": {"alice": "a.csv", "bob": "b.csv"}},
        "steps": [{"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}}] * steps,
    }


@dataclass
class Env:
    url: str
    store: SqlLedgerStore
    keys: dict[str, str]
    stack: LedgerStack

    def call(self, method: str, path: str, who: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def job(self, args: list[str], who: str = "member", ok: bool = True, **env: str) -> Result:
        """Run `secureflow job ARGS` with the key of ``who`` in SECUREFLOW_API_KEY (never on the line)."""
        variables = {"SECUREFLOW_API_URL": self.url, "SECUREFLOW_API_KEY": self.keys[who], **env}
        result = CliRunner().invoke(cli_app, ["job", *args], env=variables)
        print(f"$ secureflow job {' '.join(args)}\n{result.output}")  # shown when a test fails
        assert "Traceback" not in result.output
        assert all(key not in result.output for key in self.keys.values()), "an API key was printed"
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    def anchor_steps(self, job_id: str, seqs: range) -> None:
        """Accept records through the service route, then run the real anchorer + indexer until settled."""
        for seq in seqs:
            posted = self.call(
                "POST",
                f"/v1/jobs/{job_id}/steps",
                "service",
                json=step(job_id, seq, signed=True).model_dump(mode="json"),
            )
            assert posted.status_code == 201, posted.text
        anchor_and_index(self.stack, self.store)


@pytest.fixture
def env(ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None) -> Iterator[Env]:
    app, store, keys = live_app(ledger_stack, ledger_db_url, sse_max_seconds=SSE_MAX_SECONDS)
    try:
        with LiveServer(app) as server:
            yield Env(server.url, store, keys, ledger_stack)
    finally:
        store.close()


def write_manifest(tmp_path: Path, steps: int = 3, name: str = "manifest.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(manifest(steps)), encoding="utf-8")
    return path


def submit(env: Env, tmp_path: Path, steps: int = 3) -> str:
    result = env.job(["submit", str(write_manifest(tmp_path, steps)), "--service", SERVICE, "--json"])
    body = json.loads(result.stdout)
    assert body["job"]["status"] == "created" and body["execution"] == "not_configured"
    return str(body["job"]["job_id"])


def create_on_chain(env: Env, job_id: str) -> None:
    """createJob sent by alice (the creator) with the job's manifest hash and salt, as the API shows them,
    and both parties' consents (the verifier's ``job_header`` and ``consents`` checks); the chain derives
    the same id."""
    job = env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()
    assert job_id_for(job["creator"], job["manifest_hash"], job["salt"]) == job_id
    create_job_on_chain(env.stack, job_id, job["manifest_hash"], job["salt"], creator=job["creator"])


# -- the flow ----------------------------------------------------------------------------------------


def test_submit_list_status_receipt_bundle_cancel(env: Env, tmp_path: Path) -> None:
    submitted = env.job(["submit", str(write_manifest(tmp_path)), "--service", SERVICE])
    job_id = JOB_ID.search(submitted.stdout).group(0)  # type: ignore[union-attr]
    assert "created" in submitted.stdout and "not_configured" in submitted.stdout
    assert f"secureflow job status {job_id} --follow" in submitted.stdout

    listed = env.job(["list"])
    assert job_id in listed.stdout
    assert [
        j["job_id"] for j in json.loads(env.job(["list", "--json", "--status", "created"]).stdout)["items"]
    ] == [job_id]
    assert json.loads(env.job(["list", "--json", "--status", "completed"]).stdout)["items"] == []
    assert "no jobs with status running" in env.job(["list", "--status", "running"]).stdout

    not_yet = env.job(["receipt", job_id, "0"], who="auditor", ok=False)
    assert not_yet.exit_code == 1
    assert "HTTP 404 not_found" in not_yet.stderr and "request id" in not_yet.stderr

    create_on_chain(env, job_id)
    env.anchor_steps(job_id, range(2))
    pending = env.job(["status", job_id, "--json"])
    assert [s["chain_status"] for s in json.loads(pending.stdout)["steps"]] == ["confirmed"] * 2
    env.call(
        "POST",
        f"/v1/jobs/{job_id}/steps",
        "service",
        json=step(job_id, 2, signed=True).model_dump(mode="json"),
    )
    unanchored = env.job(["receipt", job_id, "2"], ok=False)
    assert unanchored.exit_code == 1 and "HTTP 409 not_anchored" in unanchored.stderr
    assert "wait for the anchoring worker" in unanchored.stderr
    env.anchor_steps(job_id, range(3, 3))  # anchors the pending step 2

    shown = env.job(["status", job_id], who="auditor")
    assert job_id in shown.stdout and "running" in shown.stdout
    assert "3: 3 confirmed" in shown.stdout
    assert len(re.findall(r"^\s*\d+\s+psi\s+confirmed", shown.stdout, re.M)) == 3
    as_json = json.loads(env.job(["status", job_id, "--json"]).stdout)
    assert as_json["job"]["job_id"] == job_id and [s["seq"] for s in as_json["steps"]] == [0, 1, 2]
    assert {s["chain_status"] for s in as_json["steps"]} == {"confirmed"}

    pin = PinnedDeployment.of_deployment(env.stack.deployment)
    printed = json.loads(env.job(["receipt", job_id, "1"]).stdout)
    assert verify_receipt(printed, env.stack.rpc_url, pin).ok
    receipt_file = tmp_path / "receipt.json"
    wrote = env.job(["receipt", job_id, "1", "--out", str(receipt_file)])
    assert f"secureflow verify {receipt_file} --rpc-url URL --deployment DEPLOYMENT.json" in wrote.stdout
    assert json.loads(receipt_file.read_text()) == printed

    bundle_file = tmp_path / "out" / "bundle.json"
    downloaded = env.job(["bundle", job_id, "--out", str(bundle_file)], who="auditor")
    assert "3 records, 3 receipts" in downloaded.stdout
    assert f"secureflow verify {bundle_file} --rpc-url URL --deployment DEPLOYMENT.json" in downloaded.stdout
    verdict = verify_file(bundle_file, env.stack.rpc_url, pin)
    assert verdict.bundle is not None and len(verdict.bundle.receipts) == 3
    assert all(receipt.ok for receipt in verdict.bundle.receipts), verdict.lines()
    # Every record is signed, anchored and receipted, but the running job is not closed on chain: the bundle
    # does not prove the job complete. The bundle carries the job secret the API chose, so the manifest
    # commitment checks; this test's records commit to other parameters than the manifest's steps (made
    # without the job secret), and the verifier says so.
    assert verdict.bundle.check("manifest_commitment").ok
    assert not verdict.ok and verdict.bundle.failed_checks == [
        "final_record",
        "job_closed",
        "params_commitments",
        "step_count",
    ]

    before = bundle_file.read_bytes()
    bundle_file.write_bytes(b"mine")
    refused = env.job(["bundle", job_id, "--out", str(bundle_file)], ok=False)
    assert refused.exit_code == 1 and "exists" in refused.stderr and "--force" in refused.stderr
    assert bundle_file.read_bytes() == b"mine"
    env.job(["bundle", job_id, "--out", str(bundle_file), "--force"])
    assert bundle_file.read_bytes() == before
    assert [p.name for p in bundle_file.parent.iterdir()] == ["bundle.json"]  # no temporary file left

    cancelled = env.job(["cancel", job_id])
    assert f"job {job_id} is cancelled: cancelled by alice (member {ALICE})" in cancelled.stdout
    assert f"reason      cancelled by alice (member {ALICE})" in env.job(["status", job_id]).stdout
    again = env.job(["cancel", job_id], ok=False)
    assert again.exit_code == 1
    assert "HTTP 409 conflict" in again.stderr and "already cancelled" in again.stderr
    assert "secureflow job status JOB_ID" in again.stderr
    assert json.loads(env.job(["list", "--json"]).stdout)["items"][0]["status"] == "cancelled"


# -- following the live status -------------------------------------------------------------------------


@dataclass
class Streams:
    """The CLI's subscriptions to the live-status stream (job ids); ``first_event``: it has shown one."""

    subscriptions: list[str]
    first_event: threading.Event
    changed: threading.Condition

    def wait_for_subscriptions(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.subscriptions) >= n, timeout=60), self.subscriptions


def watch_streams(monkeypatch: pytest.MonkeyPatch) -> Streams:
    """Count the CLI's subscriptions to the live-status stream and signal the first event it shows."""
    streams = Streams([], threading.Event(), threading.Condition())
    original: Callable[..., Iterator[Any]] = client_sync.Jobs.events

    def events(self: client_sync.Jobs, job_id: str, **options: Any) -> Iterator[Any]:
        with streams.changed:
            streams.subscriptions.append(job_id)
            streams.changed.notify_all()
        for event in original(self, job_id, **options):
            yield event
            streams.first_event.set()

    monkeypatch.setattr(client_sync.Jobs, "events", events)
    return streams


def in_background(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised by the test after the CLI returned
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def test_status_follow_returns_once_every_record_is_confirmed(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = submit(env, tmp_path, steps=3)
    streams = watch_streams(monkeypatch)
    subscriptions = streams.subscriptions

    def run_the_job() -> None:
        assert streams.first_event.wait(60), "the CLI never showed the first status"
        env.anchor_steps(job_id, range(2))
        streams.wait_for_subscriptions(2)  # the stream ended (its time limit): the CLI subscribed again
        env.anchor_steps(job_id, range(2, 3))
        env.store.update_job(job_id, status="completed")

    thread, errors = in_background(run_the_job)
    followed = env.job(["status", job_id, "--follow"])
    thread.join(60)
    assert not errors, errors
    lines = [line for line in followed.stdout.splitlines() if line.startswith("job ")]
    assert lines[0].startswith("job created") and "steps 0/3" in lines[0] and "confirmed 0" in lines[0]
    assert followed.stdout.count("waiting for the first step") == 1  # the start-up wait is explained once
    assert any("job running" in line for line in lines)
    done = next(i for i, line in enumerate(lines) if line.startswith("job completed ("))
    assert "steps 3/3 · anchored 3 · confirmed 3" in lines[done]
    assert len(set(lines[: done + 1])) == done + 1  # a re-subscription does not repeat a state
    assert len(subscriptions) >= 2
    assert "job completed: 3 records, all confirmed on chain" in followed.stdout
    assert len(re.findall(r"^\s*\d+\s+psi\s+confirmed", followed.stdout, re.M)) == 3
    whole = r"^\s*\d+\s+psi\s+confirmed\s+0x[0-9a-f]{64}\s+0x[0-9a-f]{64}\s"  # piped: batch and tx not cut
    assert len(re.findall(whole, followed.stdout, re.M)) == 3, followed.stdout

    as_json = env.job(["status", job_id, "--follow", "--json"])  # finished: one event, then the exit code
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert events[-1]["status"] == "completed" and events[-1]["records"]["confirmed"] == 3

    terminal = io.StringIO()  # on a terminal: rich progress bars instead of one line per change
    monkeypatch.setattr(
        job_cli, "console", Console(file=terminal, force_terminal=True, color_system=None, width=120)
    )
    env.job(["status", job_id, "--follow"])
    shown = terminal.getvalue()
    assert "steps recorded" in shown and "confirmed" in shown and "3/3" in shown
    assert "job completed: 3 records, all confirmed on chain" in shown


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_submit_follow_exits_1_when_the_job_fails(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = watch_streams(monkeypatch)
    subscriptions = streams.subscriptions

    why = failed_step_reason(1, "psi", "EmptyResultError", "the parties' key columns hold no common id")

    def run_and_fail() -> None:
        assert streams.first_event.wait(60), "the CLI never showed the first status"
        env.anchor_steps(subscriptions[0], range(1))
        OutboxRecorder(env.store).close_job(subscriptions[0], succeeded=False, reason=why)

    thread, errors = in_background(run_and_fail)
    followed = env.job(
        ["submit", str(write_manifest(tmp_path, 2)), "--service", SERVICE, "--follow"], ok=False
    )
    thread.join(60)
    assert not errors, errors
    assert followed.exit_code == 1, followed.output
    assert f"job {subscriptions[0]} submitted" in followed.stdout
    assert "steps 1/2 · anchored 1 · confirmed 1" in followed.stdout
    assert followed.stdout.rstrip().endswith(f"job failed: {why}")


def test_status_shows_why_a_step_failed(env: Env, tmp_path: Path) -> None:
    """The compute runner closes a job whose step failed with the step, its error class and its message
    (`failed_step_reason`, through the ledger recorder); `status`, `status --json` and `list` show it."""
    job_id = submit(env, tmp_path, steps=2)
    env.anchor_steps(job_id, range(1))
    why = failed_step_reason(1, "psi", "SchemaError", "party 'bob' has no column 'id' (check the key column)")
    assert why == ("step 1 (psi) failed: SchemaError: party 'bob' has no column 'id' (check the key column)")
    OutboxRecorder(env.store).close_job(job_id, succeeded=False, reason=why)
    shown = env.job(["status", job_id], who="auditor")
    assert "failed" in shown.stdout and f"reason      {why}" in shown.stdout
    assert json.loads(env.job(["status", job_id, "--json"]).stdout)["job"]["reason"] == why
    listed = env.job(["list", "--status", "failed"])
    assert job_id in listed.stdout and "reason" in listed.stdout and "step 1 (psi) failed" in listed.stdout
    assert env.call("GET", f"/v1/jobs/{job_id}", "member").json()["reason"] == why


def test_status_shows_a_quarantined_step_and_why(env: Env, tmp_path: Path) -> None:
    """A stored record altered behind the store's back (its leaf no longer its record's) is quarantined by
    the real anchoring worker, the other step anchored; `status` names the step and the check it failed."""
    job_id = submit(env, tmp_path, steps=2)
    for seq in range(2):
        posted = env.call(
            "POST",
            f"/v1/jobs/{job_id}/steps",
            "service",
            json=step(job_id, seq, signed=True).model_dump(mode="json"),
        )
        assert posted.status_code == 201, posted.text
    with env.store.engine.begin() as connection:
        connection.execute(
            text("UPDATE step_records SET leaf = :leaf WHERE job_id = :job AND seq = 1"),
            {"leaf": "0x" + "ab" * 32, "job": job_id},
        )
    anchor_and_index(env.stack, env.store)
    shown = env.job(["status", job_id], who="auditor").stdout
    assert "1 confirmed, 1 failed" in shown
    assert (
        "step 1 will not be anchored: quarantined: the stored leaf is not leaf_hash(job_id, seq, record_hash)"
        in " ".join(shown.split())
    )


def test_list_stuck_shows_the_jobs_that_stopped_moving(
    ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None, tmp_path: Path
) -> None:
    app, store, keys = live_app(ledger_stack, ledger_db_url, stuck_after_seconds=0)
    try:
        with LiveServer(app) as server:
            env = Env(server.url, store, keys, ledger_stack)
            submit(env, tmp_path)  # created: not stuck
            assert "no stuck jobs" in env.job(["list", "--stuck"]).stdout
            job_id = submit(env, tmp_path)
            env.anchor_steps(job_id, range(1))
            listed = env.job(["list", "--stuck"])
            assert job_id in listed.stdout and "running (stuck)" in listed.stdout
            assert [
                j["job_id"] for j in json.loads(env.job(["list", "--stuck", "--json"]).stdout)["items"]
            ] == [job_id]
            assert "stuck       running, but no status change" in env.job(["status", job_id]).stdout
    finally:
        store.close()


# -- failures --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_errors_are_one_line_with_a_hint_and_never_show_the_key(env: Env, tmp_path: Path) -> None:
    job_id = submit(env, tmp_path)
    wrong = "sfk_" + "0" * 12 + "_" + "x" * 43  # well-formed, unknown to the API
    for args in (["list"], ["status", job_id], ["status", job_id, "--follow"], ["bundle", job_id, "-o", "x"]):
        denied = env.job(args, ok=False, SECUREFLOW_API_KEY=wrong)
        assert denied.exit_code == 1
        first = denied.stderr.splitlines()[0]
        assert first.startswith("error: HTTP 401 unauthorized:") and "request id" in first
        assert f"export {api_client.API_KEY_ENV}=<key>" in denied.stderr
        assert wrong not in denied.output
    assert not (Path.cwd() / "x").exists()
    mangled = "sfk_" + "0" * 12 + "_SECRETPART\nx"  # a pasted key with a line break inside
    refused = env.job(["list"], ok=False, SECUREFLOW_API_KEY=mangled)
    assert refused.exit_code == 1 and "SECRETPART" not in refused.output and "Traceback" not in refused.output
    assert "not of the form sfk_" in refused.stderr

    dead = f"http://127.0.0.1:{free_port()}"
    for args in (["list"], ["status", job_id, "--follow"], ["submit", str(write_manifest(tmp_path))]):
        unreachable = env.job(args, ok=False, SECUREFLOW_API_URL=dead)
        assert unreachable.exit_code == 1
        assert f"cannot reach the secureflow API at {dead}: connection refused" in unreachable.stderr
        assert "secureflow up" in unreachable.stderr and "secureflow api" in unreachable.stderr

    missing = env.job(["status", "0x" + "00" * 32], ok=False)
    assert "HTTP 404 not_found" in missing.stderr and "secureflow job list" in missing.stderr
    forbidden = env.job(["submit", str(write_manifest(tmp_path))], who="auditor", ok=False)
    assert "HTTP 403 forbidden" in forbidden.stderr and "member key" in forbidden.stderr
    outsider = manifest()
    outsider["parties"][1]["address"] = AUDITOR
    (tmp_path / "outsider.json").write_text(json.dumps(outsider))
    refused = env.job(["submit", str(tmp_path / "outsider.json")], ok=False)
    assert (
        "HTTP 409 refused_by_contract_rules" in refused.stderr
        and f"NotActiveMember({AUDITOR})" in refused.stderr
    )
    assert "active members on chain" in refused.stderr

    not_an_id = env.job(["status", "42"], ok=False)
    assert "'42' is not a job id" in not_an_id.stderr
    no_file = env.job(["submit", str(tmp_path / "none.json")], ok=False)
    assert "cannot read the manifest" in no_file.stderr
    no_key = CliRunner().invoke(
        cli_app, ["job", "list", "--api-url", env.url], env={"SECUREFLOW_API_KEY": ""}
    )
    assert no_key.exit_code == 1 and "no API key" in no_key.stderr and "Traceback" not in no_key.output
    bad_url = env.job(["list", "--api-url", "localhost:8000"], ok=False)
    assert "is not an http(s) URL" in bad_url.stderr
    assert len(env.store.list_jobs(limit=100)) == 1  # nothing that failed changed anything


def test_the_cli_reads_the_apis_own_models() -> None:
    """The CLI reads answers into the models the API declares its OpenAPI with (no copies to drift)."""
    from secureflow.api.server import schemas

    for name in ("JobOut", "JobSubmitted", "StepOut", "JobStatusEvent", "RecordCounts"):
        assert getattr(api_client, name) is getattr(schemas, name)
    assert job_cli.JobOut is schemas.JobOut and job_cli.JobStatusEvent is schemas.JobStatusEvent
