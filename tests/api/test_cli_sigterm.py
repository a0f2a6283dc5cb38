"""``secureflow up`` and ``secureflow demo --keep-chain`` as services are stopped: with SIGTERM (systemd,
containers, CI). Each test starts the real command, reads its output until it is ready, collects the
processes it spawned (its descendants in /proc: anvil, the SecretFlow party workers), sends SIGTERM and
checks the command exits and none of them remains. ``up`` is also run twice on the same workdir: the second
run goes on with the first's chain state, database and deployment (the first run's job still verifies),
and ``secureflow doctor`` is checked against it (it shares this stack: ``up`` takes ~30 s to start)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from click.testing import Result
from eth_account import Account
from typer.testing import CliRunner

from secureflow.api.cli.main import app as cli_app
from secureflow.api.dev.up import build_embedded
from secureflow.ledger.devchain import free_port

UP_READY = "Ctrl-C stops everything"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def descendants(root: int) -> dict[int, str]:
    """Every live descendant of ``root`` (pid -> command line)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[1], []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except FileNotFoundError:
                continue
            todo.append(child)
    return found


def alive(pids: dict[int, str]) -> dict[int, str]:
    """Those of ``pids`` still running (not gone, not a zombie) with the same command line."""
    left = {}
    for pid, cmdline in pids.items():
        stat = _stat(pid)
        if stat is None or stat[0] == "Z":
            continue
        try:
            now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except FileNotFoundError:
            continue
        if now == cmdline:
            left[pid] = cmdline
    return left


@contextmanager
def command(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Run ``secureflow ARGS`` (in ``cwd``, with ``env``: default this environment, 300 columns) with its
    output piped; killed (with what it spawned) if the test fails."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "secureflow.api", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "300"} if env is None else env,
        start_new_session=True,
    )
    spawned: dict[int, str] = {}
    try:
        yield proc
    finally:
        if proc.poll() is None:
            spawned = descendants(proc.pid)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in alive(spawned):  # what a failed test left: never other processes
            os.kill(pid, signal.SIGKILL)


def read_until(proc: subprocess.Popen[str], marker: str) -> str:
    """The command's output up to the line holding ``marker`` (fails with the output if it exits first)."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            return "".join(lines)
    proc.wait(30)
    raise AssertionError(f"exited {proc.returncode} before {marker!r}:\n{''.join(lines)}")


def stop_with_sigterm(proc: subprocess.Popen[str], spawned: dict[int, str]) -> str:
    """SIGTERM, wait for the exit (code 0), check nothing it spawned is left; the rest of its output."""
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    assert_none_left(spawned)
    assert proc.returncode == 0, rest
    return rest


def assert_none_left(spawned: dict[int, str]) -> None:
    """None of ``spawned`` is running; those that are get killed (the test's own leftovers) and named."""
    left = alive(spawned)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"left running after SIGTERM: {left}"


def wait_serving(port: int, proc: subprocess.Popen[str]) -> None:
    """Wait until the API answers /healthz (uvicorn listens a moment after the keys are printed)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
                assert response.status == 200
                return
        except urllib.error.URLError:
            assert proc.poll() is None and time.monotonic() < deadline, "the API never answered /healthz"
            time.sleep(0.05)


def read_env(workdir: Path) -> dict[str, str]:
    """The variables of the ``secureflow.env`` that ``up`` wrote (what a user ``source``s)."""
    text = (workdir / "secureflow.env").read_text()
    return dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in text.splitlines()
        if line.startswith("export ")
    )


def cli(env: dict[str, str], *args: str) -> Result:
    """``secureflow ARGS`` in this process with ``env``'s settings (as after ``source secureflow.env``)."""
    return CliRunner().invoke(cli_app, list(args), env=env)


def run_job(env: dict[str, str], manifest: Path) -> str:
    """Submit ``manifest`` as alice, follow it until every record is confirmed, wait until the anchoring
    service closed it on chain; its id."""
    submitted = cli(env, "job", "submit", str(manifest), "--follow", "--json")
    assert submitted.exit_code == 0, submitted.output
    job_id = str(json.loads(submitted.stdout.splitlines()[0])["job"]["job_id"])
    headers = {"Authorization": f"Bearer {Path(env['SECUREFLOW_API_KEY_FILE']).read_text().strip()}"}
    deadline = time.monotonic() + 120
    while True:  # the close is the anchoring service's next transaction after the last record's
        job = requests.get(
            f"{env['SECUREFLOW_API_URL']}/v1/jobs/{job_id}", headers=headers, timeout=30
        ).json()
        if job["close_status"] == "confirmed":
            return job_id
        assert job["close_status"] != "failed" and time.monotonic() < deadline, job
        time.sleep(0.2)


def doctor(env: dict[str, str], *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    """``secureflow doctor --json ARGS``: its exit code and its checks by name."""
    result = cli(env, "doctor", "--json", *args)
    return result.exit_code, {check["name"]: check for check in json.loads(result.stdout)}


def test_up_restarted_on_its_workdir_keeps_every_job_verifiable_and_doctor_checks_it(tmp_path: Path) -> None:
    """`up`, a job closed on chain, SIGTERM (anvil saves its state), `up` again on the same workdir: the
    earlier job's bundle verifies against the pinned deployment on the restarted chain, `doctor` passes,
    and a new job runs. `doctor` then names the failing check for a deployment address without code and
    for the stopped chain; a lost chain state is refused at start with the fix (`--fresh`), which sets the
    old files aside."""
    workdir = tmp_path / "up"
    bundle = tmp_path / "bundle.json"
    for run in (1, 2):
        port = free_port()
        with command("up", "--port", str(port), "--workdir", str(workdir)) as proc:
            output = read_until(proc, UP_READY)
            spawned = descendants(proc.pid)
            assert any("anvil" in cmdline for cmdline in spawned.values()), spawned
            wait_serving(port, proc)
            env = read_env(workdir)
            if run == 1:
                first_key = Path(env["SECUREFLOW_API_KEY_FILE"]).read_text().strip()
                job_id = run_job(env, workdir / "example-manifest.json")
                fetched = cli(env, "job", "bundle", job_id, "--out", str(bundle))
                assert fetched.exit_code == 0, fetched.output
            else:
                assert "going on with the previous run" in output, output
                assert not (workdir / "previous").exists()
                # the keys the first run printed are revoked; the key file holds this run's key
                api = env["SECUREFLOW_API_URL"] + "/v1/jobs"
                old = requests.get(api, headers={"Authorization": f"Bearer {first_key}"}, timeout=30)
                assert old.status_code == 401, old.text
                key = Path(env["SECUREFLOW_API_KEY_FILE"]).read_text().strip()
                assert requests.get(api, headers={"Authorization": f"Bearer {key}"}, timeout=30).ok
                pinned = ["--deployment", env["SECUREFLOW_DEPLOYMENT"]]  # the RPC URL is the new chain's
                verified = cli(env, "verify", str(bundle), *pinned)
                assert "VALID" in verified.output and "INVALID" not in verified.output, verified.output
                code, checks = doctor(env)
                assert code == 0, checks
                assert {name for name, c in checks.items() if c["status"] == "ok"} >= {
                    "chain_reachable", "chain_id", "deployment", "contract_code", "key_roles",
                    "ledger_db", "api_db", "secretflow", "secretflow_ports",
                }, checks  # fmt: skip
                _doctor_names_what_is_wrong(env, tmp_path)
                again = json.loads((workdir / "example-manifest.json").read_text())
                again["name"] = "after-restart"
                again["steps"][-2]["save"] = {"table": "out/scores-after-restart.csv"}
                second = tmp_path / "after-restart.json"
                second.write_text(json.dumps(again))
                run_job(env, second)
            rest = stop_with_sigterm(proc, spawned)
            assert "chain state saved in" in rest, rest
        assert (workdir / "chain-state.json").stat().st_size > 0
        assert not (workdir / "chain-state.json.partial").exists()

    code, checks = doctor(env, "--skip", "secretflow")  # the chain is stopped
    assert code == 1 and checks["chain_reachable"]["status"] == "fail", checks
    assert "secureflow up" in checks["chain_reachable"]["fix"]
    printed = cli(env, "doctor", "--skip", "secretflow")  # for a person: each check, its fix, what failed
    assert printed.exit_code == 1 and "failed: chain_reachable" in printed.stdout, printed.output
    assert "fix: start the node" in printed.stdout, printed.output

    (workdir / "chain-state.json").rename(tmp_path / "lost-state.json")  # the saved chain state is lost
    with command("up", "--port", str(free_port()), "--workdir", str(workdir)) as proc:
        spawned = descendants(proc.pid)
        refused, _ = proc.communicate(timeout=120)
        assert proc.returncode == 1, refused
        assert "do not match the chain" in refused and "secureflow up --fresh" in refused, refused
        assert_none_left(spawned)
    assert not (workdir / "chain-state.json").exists()  # a refused start saves no state over the lost one

    fresh = build_embedded(workdir, fresh=True)  # what `up --fresh` does first: nothing is deleted
    fresh.close()
    (previous,) = (workdir / "previous").iterdir()
    assert {p.name for p in previous.iterdir()} >= {"secureflow.db", "deployment.json", "anvil.log"}


def _doctor_names_what_is_wrong(env: dict[str, str], tmp_path: Path) -> None:
    """A deployment address without code fails ``contract_code``; a member key the registry does not know
    fails ``key_roles``; the other checks still pass."""
    deployment = json.loads(Path(env["SECUREFLOW_DEPLOYMENT"]).read_text())
    deployment["contracts"]["AuditLedger"]["address"] = "0x" + "11" * 20
    wrong = tmp_path / "wrong-deployment.json"
    wrong.write_text(json.dumps(deployment))
    code, checks = doctor({**env, "SECUREFLOW_DEPLOYMENT": str(wrong)}, "--skip", "secretflow")
    assert code == 1 and checks["contract_code"]["status"] == "fail", checks
    assert "AuditLedger: no code at 0x1111" in checks["contract_code"]["detail"], checks
    assert checks["chain_reachable"]["status"] == "ok", checks
    stranger = tmp_path / "stranger.member-key"
    stranger.write_text(Account.create().key.hex())
    stranger.chmod(0o600)
    code, checks = doctor({**env, "SECUREFLOW_MEMBER_KEY_FILE": str(stranger)}, "--skip", "secretflow")
    assert code == 1 and checks["key_roles"]["status"] == "fail", checks
    assert "lacks the member role" in checks["key_roles"]["detail"], checks
    assert checks["contract_code"]["status"] == "ok", checks


def test_demo_keep_chain_sigterm_while_the_job_runs_takes_anvil_and_the_party_workers(tmp_path: Path) -> None:
    with command("demo", "--keep-chain", "--workdir", str(tmp_path / "demo")) as proc:
        read_until(proc, "running the job on SecretFlow")
        spawned = descendants(proc.pid)
        assert any("anvil" in cmdline for cmdline in spawned.values()), spawned
        workers = [pid for pid, cmdline in spawned.items() if "anvil" not in cmdline]
        assert len(workers) >= 2, spawned  # one SecretFlow worker process per party
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
        assert_none_left(spawned)
        assert proc.returncode != 0  # stopped before it finished: not a success


def test_demo_keep_chain_sigterm_stops_the_kept_chain(tmp_path: Path) -> None:
    with command("demo", "--keep-chain", "--workdir", str(tmp_path / "demo")) as proc:
        read_until(proc, "anvil keeps running at")
        spawned = descendants(proc.pid)
        assert any("anvil" in cmdline for cmdline in spawned.values()), spawned
        rest = stop_with_sigterm(proc, spawned)
        assert "demo finished" in rest
