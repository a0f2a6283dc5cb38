"""``secureflow up`` and ``secureflow demo --keep-chain`` as services are stopped: with SIGTERM (systemd,
containers, CI). Each test starts the real command, reads its output until it is ready, collects the
processes it spawned (its descendants in /proc: anvil, the SecretFlow party workers), sends SIGTERM and
checks the command exits and none of them remains. ``up`` is also run twice on the same workdir: the
second run must start (a fresh chain, database and nonces, said so), not wait for ever behind the nonces
the first run's chain used."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
def command(*args: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``secureflow ARGS`` with its output piped; killed (with what it spawned) if the test fails."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "secureflow.api", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
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


def test_up_twice_on_one_workdir_and_sigterm_takes_anvil(tmp_path: Path) -> None:
    workdir = tmp_path / "up"
    for run in (1, 2):
        port = free_port()
        with command("up", "--port", str(port), "--workdir", str(workdir)) as proc:
            output = read_until(proc, UP_READY)
            if run == 2:  # a fresh chain, database and nonces, and it says where the first run's files went
                assert "held a previous run whose chain is gone" in output, output
                assert "starting a fresh chain, database and nonces" in output
                assert len(list((workdir / "previous").iterdir())) == 1
            spawned = descendants(proc.pid)
            assert any("anvil" in cmdline for cmdline in spawned.values()), spawned
            wait_serving(port, proc)
            stop_with_sigterm(proc, spawned)


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
