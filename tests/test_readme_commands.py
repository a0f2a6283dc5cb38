"""Every command the README names exists, with the options the README shows (the CLI's own command tree).

The README writes commands as code spans: ``secureflow job submit MANIFEST.json [--service ADDRESS]``;
siblings of one group as ``submit …/status JOB_ID/list`` inside a span, or as further spans after
`` / `` (``secureflow settle measure …` / `propose JOB_ID …``). Each is resolved against the typer app:
the words name a command group by group, and every ``--option`` must be an option of that command.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from secureflow.api.cli.main import app

README = Path(__file__).resolve().parent.parent / "README.md"
CHAIN = re.compile(r"`secureflow ([^`]*)`((?:\s*/\s*`[^`]*`)*)")


def _root() -> Any:
    """The root command group (typer's own click: groups have ``commands``, commands ``params``)."""
    command = typer.main.get_command(app)
    assert _is_group(command)
    return command


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def _resolve(words: list[str], start: Any) -> tuple[Any, list[str], str]:
    """The command the leading words name (descending groups), the words left, and its path."""
    command, path = start, []
    while _is_group(command) and words and words[0] in command.commands:
        path.append(words[0])
        command = command.commands[words.pop(0)]
    return command, words, " ".join(path)


def _options(text: str) -> list[str]:
    return re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text)


def _commands_named() -> list[tuple[str, str]]:
    """(command words, the text that follows them) for every command the README names."""
    found: list[tuple[str, str]] = []
    for line in README.read_text(encoding="utf-8").splitlines():
        for match in CHAIN.finditer(line):
            first, rest = match.group(1), match.group(2)
            spans = [first, *re.findall(r"`([^`]*)`", rest)]
            words = first.split()
            group_words: list[str] = []
            root = _root()
            command, left, _ = _resolve(list(words), root)
            if _is_group(command):
                group_words = words[: len(words) - len(left)]
            else:
                group_words = words[: len(words) - len(left) - 1]
            for span in spans:
                text = span if span is first else " ".join([*group_words, span])
                # siblings inside one span: "submit M [--x]/status JOB_ID/list"
                pieces = re.split(r"/(?=[a-z][a-z-]*(?:\s|$|/))", text)
                head = pieces[0]
                found.append((head, head))
                for piece in pieces[1:]:
                    sibling = " ".join([*group_words, piece]) if group_words else piece
                    found.append((sibling, sibling))
    return found


NAMED = _commands_named()


def test_the_readme_names_commands() -> None:
    assert len(NAMED) > 30, NAMED  # the parser still finds the README's commands


def _problem(text: str) -> str | None:
    """What is wrong with `secureflow TEXT` (None: the command exists with every option shown)."""
    words = [w for w in re.split(r"\s+", text.replace("…", " ")) if w]
    command, left, path = _resolve(list(words), _root())
    if not path:
        return f"`secureflow {text}`: no such command"
    if _is_group(command) and left and not left[0].startswith(("-", "[")):
        return f"`secureflow {text}`: {path} has no command {left[0]!r}"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    missing = [option for option in _options(" ".join(left)) if option not in known]
    if missing:
        return f"`secureflow {path}` has no option {', '.join(missing)} (it has {sorted(known)})"
    return None


def test_the_check_catches_a_missing_command_or_option() -> None:
    assert _problem("job submit M.json --follow") is None
    assert "has no option --nope" in str(_problem("job submit M.json [--nope X]"))
    assert "has no command 'launch'" in str(_problem("job launch X"))
    assert "no such command" in str(_problem("frobnicate"))


@pytest.mark.parametrize(("text", "_"), NAMED, ids=[t for t, _ in NAMED])
def test_each_command_in_the_readme_exists_with_its_options(text: str, _: str) -> None:
    problem = _problem(text)
    assert problem is None, problem
