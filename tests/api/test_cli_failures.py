"""The failure paths of the commands that start or set up something (`secureflow api`, `up`, `chain`,
`contracts compile`, `db upgrade`): each fails with its specific ``error:`` line and hint, exit code 1, no
traceback, and leaves nothing behind (no process, no rewritten artifact). The real console script in its
own process, as a user runs it; nothing here starts a chain or a worker that would stay up."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from secureflow.ledger.artifacts import ARTIFACTS_DIR

ROOT = Path(__file__).resolve().parents[2]
SECUREFLOW = str(ROOT / ".venv" / "bin" / "secureflow")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 something listens on for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(args: list[str], cwd: Path, **env: str) -> tuple[int, str, list[str]]:
    """Exit code, the output (stdout and stderr) and its lines starting with ``error:`` or ``  hint:``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SECUREFLOW_")}
    done = subprocess.run(
        [SECUREFLOW, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**clean, "COLUMNS": "400", **env},
    )
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    return (
        done.returncode,
        output,
        [line for line in output.splitlines() if line.startswith(("error:", "  hint:"))],
    )


def test_db_upgrade_names_the_unreachable_database_and_a_missing_folder(tmp_path: Path) -> None:
    port = closed_port()
    code, out, lines = run(
        ["db", "upgrade", "--url", f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"], tmp_path
    )
    assert code == 1, out
    assert lines[0].startswith(
        f"error: cannot use the ledger database at postgresql+psycopg://postgres@127.0.0.1:{port}/test"
    )
    assert "Connection refused" in lines[0] and lines[1].startswith("  hint: start the database server"), out
    code, out, lines = run(["db", "upgrade", "--url", f"sqlite:///{tmp_path}/missing/ledger.db"], tmp_path)
    assert code == 1, out
    assert lines == [
        f"error: the folder {tmp_path}/missing does not exist",
        "  hint: create it first, or fix --database-url",
    ]
    assert not (tmp_path / "missing").exists()


def test_api_names_an_unreachable_database_a_bad_deployment_file_and_a_taken_port(
    tmp_path: Path, taken_port: int
) -> None:
    port = closed_port()
    down = {"SECUREFLOW_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"}
    code, out, lines = run(["api"], tmp_path, **down)
    assert code == 1 and "cannot use the ledger database" in lines[0] and "Connection refused" in lines[0], (
        out
    )

    bad = tmp_path / "deployment.json"
    bad.write_text('{"chain_id": ')
    db = {"SECUREFLOW_DATABASE_URL": f"sqlite:///{tmp_path}/api.db", "SECUREFLOW_LOG_LEVEL": "WARNING"}
    code, out, lines = run(["api"], tmp_path, **db, SECUREFLOW_DEPLOYMENT=str(bad))
    assert code == 1, out
    assert lines[0].startswith(f"error: {bad} is not a valid deployment file"), out
    assert lines[1].startswith("  hint: run `secureflow deploy` to write a deployment file"), out

    # a taken port is named before anything starts (no "secureflow API on ..." line, no migration)
    code, out, lines = run(["api"], tmp_path, **db, SECUREFLOW_API_PORT=str(taken_port))
    assert code == 1, out
    assert lines == [
        f"error: port {taken_port} on 127.0.0.1 is already in use: the API cannot listen there",
        "  hint: stop what listens there, or choose another port (SECUREFLOW_API_PORT)",
    ], out
    assert "secureflow API on" not in out


def test_up_names_a_taken_port_and_a_file_as_workdir_before_starting_anything(
    tmp_path: Path, taken_port: int
) -> None:
    code, out, lines = run(["up", "--port", str(taken_port), "--workdir", str(tmp_path / "up")], tmp_path)
    assert code == 1, out
    assert lines == [
        f"error: port {taken_port} on 127.0.0.1 is already in use: the API cannot listen there",
        "  hint: stop what listens there, or choose another port (--port)",
    ], out
    assert not (tmp_path / "up").exists()  # no chain, database or party folder was started
    afile = tmp_path / "a-file"
    afile.write_text("")
    code, out, lines = run(["up", "--port", str(closed_port()), "--workdir", str(afile)], tmp_path)
    assert code == 1 and lines[0] == f"error: --workdir {afile} is a file, not a folder", out


def test_chain_names_a_taken_port_and_leaves_no_anvil(tmp_path: Path, taken_port: int) -> None:
    code, out, lines = run(["chain", "--port", str(taken_port)], tmp_path)
    assert code == 1, out
    assert lines == [
        f"error: anvil could not start: port {taken_port} on 127.0.0.1 is already in use",
        "  hint: stop what listens there, or choose another port (secureflow chain --port N)",
    ], out
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert f"--port {taken_port}" not in ps


def test_contracts_compile_without_node_says_so_and_rewrites_no_artifact(tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in ARTIFACTS_DIR.glob("*.json")}
    empty = tmp_path / "bin"
    empty.mkdir()
    code, out, lines = run(["contracts", "compile"], tmp_path, PATH=str(empty))
    assert code == 1, out
    assert lines == [
        "error: node is not on PATH",
        "  hint: install Node.js >= 18 (apt-get install nodejs)",
    ], out
    assert {p.name: p.read_bytes() for p in ARTIFACTS_DIR.glob("*.json")} == before
