"""``secureflow consortium``: one command starts three members' nodes, a coordinator, the API and anvil.

As a new user would (issue 15's acceptance): start it, ``source`` the settings it writes, submit its
example 3-party manifest with alice's key and ``--follow``, wait for the on-chain close, fetch the audit
bundle and ``secureflow verify`` it pinned to the deployment file; the chain's step count equals the
bundle's. Each node listens on its own loopback address (127.0.0.2-4) with its own folder. Then SIGTERM:
the command exits and nothing it started (nodes, their SecretFlow workers, the coordinator, anvil) is
left running.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from test_cli_sigterm import assert_none_left, command, descendants, read_until, wait_serving

from secureflow.ledger.devchain import free_port

READY = "ready. Ctrl-C stops everything"


def _settings(env_file: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines of the settings file, as `source` would set them."""
    out = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            out[name] = shlex.split(value)[0]
    return out


def _cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "secureflow.api", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "COLUMNS": "300"},
        timeout=timeout,
        check=False,
    )


def test_one_command_runs_a_three_member_consortium_whose_job_closes_on_chain(
    tmp_path: Path, redis_service: None
) -> None:
    workdir, port = tmp_path / "consortium", free_port()
    with command("consortium", "--port", str(port), "--workdir", str(workdir)) as proc:
        started = read_until(proc, READY)
        wait_serving(port, proc)
        for party, host in (("alice", "127.0.0.2"), ("bob", "127.0.0.3"), ("carol", "127.0.0.4")):
            assert f"node {party}: member" in started and f"on {host}" in started, started
        spawned = descendants(proc.pid)
        nodes = [c for c in spawned.values() if " node --party " in c]
        assert len(nodes) == 3 and any(" coordinator" in c for c in spawned.values()), spawned
        assert all(str(workdir / "nodes") in c for c in nodes)  # each node serves its own folder

        env = _settings(workdir / "secureflow.env")
        submitted = _cli(env, "job", "submit", str(workdir / "example-manifest.json"), "--follow", "--json")
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        first = json.loads(submitted.stdout.splitlines()[0])  # the submission; then the live events
        job_id = str(first["job"]["job_id"])
        assert json.loads(submitted.stdout.splitlines()[-1])["status"] == "completed", submitted.stdout[
            -2000:
        ]
        headers = {"Authorization": f"Bearer {Path(env['SECUREFLOW_API_KEY_FILE']).read_text().strip()}"}
        deadline = time.monotonic() + 300
        while True:
            job = requests.get(
                f"{env['SECUREFLOW_API_URL']}/v1/jobs/{job_id}", headers=headers, timeout=30
            ).json()
            if job["close_status"] in ("confirmed", "failed"):
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert (job["status"], job["close_status"]) == ("completed", "confirmed"), job
        assert (workdir / "nodes" / "alice" / "data" / "out" / "scores.csv").exists()  # on alice's host only
        assert not (workdir / "nodes" / "bob" / "data" / "out" / "scores.csv").exists()

        # each member's node serves its own log of the job to the API (its policy lists the API's reader key)
        logs = _cli(env, "job", "logs", job_id)
        assert logs.returncode == 0, logs.stdout + logs.stderr
        for party in ("alice", "bob", "carol"):
            assert f"[{party}] " in logs.stdout and f"party {party}: step 0 (psi) done" in logs.stdout

        bundle = workdir / "bundle.json"
        fetched = _cli(env, "job", "bundle", job_id, "--out", str(bundle))
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        verified = _cli(env, "verify", str(bundle), "--deployment", env["SECUREFLOW_DEPLOYMENT"])
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "VALID" in verified.stdout and "4/4" in verified.stdout, verified.stdout
        assert "step_count" in verified.stdout, verified.stdout

        # the terminal that started it is gone (its output pipe closed, as when a supervisor or an ssh
        # session dies): SIGTERM still takes every process it started with it (its "stopping" line failed
        # to print and skipped the clean-up before)
        everything = {**spawned, **descendants(proc.pid)}
        assert proc.stdout is not None
        proc.stdout.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        assert_none_left(everything)
