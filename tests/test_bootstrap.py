"""The two README commands: the bootstrap they share is idempotent, and CI runs exactly the test command."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_second_bootstrap_changes_nothing() -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap.sh"), "--test-tools"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    # Everything is in place (this very test runs in the bootstrapped venv): no sync, no npm ci.
    assert "syncing" not in result.stderr
    assert "npm ci" not in result.stderr


def test_demo_bootstrap_leaves_out_the_test_only_tools() -> None:
    """The demo's bootstrap never reaches apt-get (chromium, promtool) or the slither venv: no root needed."""
    result = subprocess.run(
        ["bash", "-x", str(ROOT / "scripts" / "bootstrap.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "CHROMIUM_BIN" not in result.stderr and "SLITHER_VENV" not in result.stderr
    assert "promtool" not in result.stderr
    usage = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap.sh"), "--bogus"], capture_output=True, text=True
    )
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(\./scripts/\S+)\n```", readme)
    assert commands[:2] == ["./scripts/demo.sh", "./scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec ./scripts/test.sh" in ci
    assert "export CI=true" in ci
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    for check in ("ruff check .", "ruff format --check .", "mypy", "lint-imports"):
        assert check in test_sh


def test_test_command_treats_no_tests_as_failure(tmp_path: Path) -> None:
    (tmp_path / "test_nothing.py").write_text("")
    result = subprocess.run(
        [str(ROOT / "scripts" / "test.sh"), str(tmp_path / "test_nothing.py"), "-p", "no:cacheprovider"],
        env={**os.environ, "SECUREFLOW_TEST_PYTEST_ONLY": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "collected no tests" in result.stderr
