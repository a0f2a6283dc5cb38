"""One style across every ``secureflow`` command: usage lines as shell manuals write them (``JOB_ID``, not
``{job_id}``), one name per concept (``--rpc-url`` for a chain node, ``--database-url`` for the ledger
database; the old spellings still work, hidden from the help), and ``--json`` where a script reads the
answer. Read from the CLI's own command tree, so a new command is checked too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from secureflow.api.cli.main import app

USAGE = re.compile(r"^Usage: secureflow(?: [a-z][a-z-]*)+ \[OPTIONS\](?: \[?[A-Z][A-Z_]*\]?(?:\.\.\.)?)*$")


def _commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    command = command or typer.main.get_command(app)
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


COMMANDS = dict(_commands())


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="secureflow", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_usage_lines_are_in_cli_style(path: tuple[str, ...]) -> None:
    usage = next(line.strip() for line in _help(path).splitlines() if "Usage:" in line)
    assert USAGE.match(usage), usage


def test_a_missing_argument_is_named_in_cli_style() -> None:
    result = CliRunner().invoke(app, ["job", "status"], prog_name="secureflow")
    assert result.exit_code == 2 and "JOB_ID" in result.output and "{job_id}" not in result.output


def _options(command: Any) -> dict[str, Any]:
    return {opt: param for param in command.params for opt in param.opts}


def test_one_name_per_concept() -> None:
    """An option of a chain node's URL is --rpc-url, of the ledger database --database-url (by the variable
    each reads); old spellings are accepted but hidden."""
    by_envvar: dict[str, set[str]] = {}
    for path, command in COMMANDS.items():
        for param in command.params:
            if getattr(param, "envvar", None) in ("SECUREFLOW_RPC_URL", "SECUREFLOW_DATABASE_URL"):
                by_envvar.setdefault(param.envvar, set()).update(param.opts)
                assert len(param.opts) == 1, (path, param.opts)  # an alias, if any, is its own hidden option
        for old in ("--rpc", "--url", "--node"):
            if old in _options(command):
                assert _options(command)[old].hidden, (path, old)
    assert by_envvar == {"SECUREFLOW_RPC_URL": {"--rpc-url"}, "SECUREFLOW_DATABASE_URL": {"--database-url"}}
    assert "--rpc " not in _help(("verify",)) and "--url " not in _help(("db", "upgrade"))


def test_the_old_spelling_still_works(tmp_path: Path) -> None:
    old = CliRunner().invoke(app, ["db", "upgrade", "--url", f"sqlite:///{tmp_path / 'old.db'}"])
    new = CliRunner().invoke(app, ["db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'new.db'}"])
    assert old.exit_code == new.exit_code == 0, (old.output, new.output)
    assert (tmp_path / "old.db").exists() and (tmp_path / "new.db").exists()


READ_BY_SCRIPTS = [
    ("job", "submit"),
    ("job", "status"),
    ("job", "list"),
    ("verify",),
    ("audit", "reconcile"),
    ("members", "list"),
    ("doctor",),
    ("settle", "balances"),
    ("settle", "history"),
    ("model", "verify"),
    ("algorithms",),
]


@pytest.mark.parametrize("path", READ_BY_SCRIPTS, ids=[" ".join(p) for p in READ_BY_SCRIPTS])
def test_what_a_script_reads_has_json(path: tuple[str, ...]) -> None:
    assert "--json" in _options(COMMANDS[path]), f"secureflow {' '.join(path)} has no --json"
