"""Every ``secureflow`` command group fails the same way: one red ``error:`` line with the message as text
(square brackets shown, not eaten as markup), the hint on the next line, exit code 1, no traceback."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from secureflow.api.cli.errors import CliError, friendly_errors
from secureflow.api.cli.main import app
from secureflow.compute.errors import ComputeError
from secureflow.ledger.errors import LedgerError


def _app_raising(exc: Exception) -> typer.Typer:
    scratch = typer.Typer()

    @scratch.command()
    @friendly_errors
    def fail() -> None:
        raise exc

    @scratch.command()
    def other() -> None:  # a second command, so that typer keeps `fail` as a subcommand
        pass

    return scratch


def test_errors_of_every_package_print_message_and_hint_as_text() -> None:
    for exc in (
        LedgerError("ledger said [no]", hint="fix [this]"),
        ComputeError("compute said [no]", hint="fix [that]"),
        CliError("the CLI said [no]", hint="pass [--force]"),
    ):
        result = CliRunner().invoke(_app_raising(exc), ["fail"])
        assert result.exit_code == 1
        lines = result.output.splitlines()
        assert lines[0] == f"error: {Exception.__str__(exc)}"
        assert lines[1] == f"  hint: {exc.hint}"
        assert "Traceback" not in result.output


def test_an_unexpected_error_is_not_hidden() -> None:
    result = CliRunner().invoke(_app_raising(KeyError("bug")), ["fail"])
    assert isinstance(result.exception, KeyError)


def test_node_command_reports_a_compute_error_with_its_hint(tmp_path: Path) -> None:
    """`secureflow node` (compute errors) goes through the same handler as the other groups."""
    result = CliRunner().invoke(
        app,
        [
            "node",
            "--party",
            "alice",
            "--data-dir",
            str(tmp_path),
            "--redis-url",
            "redis://127.0.0.1:1",
        ],
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ")
    assert "\n  hint: " in result.output
    assert "Traceback" not in result.output


def test_every_command_of_every_group_goes_through_the_one_error_handler() -> None:
    """Each command registered on the root app and on every group under it is wrapped by `friendly_errors`,
    so no command group prints errors its own way (or a traceback for an expected failure)."""
    handler = friendly_errors(lambda: None).__code__

    def commands(group: typer.Typer, prefix: str) -> list[tuple[str, object]]:
        found = [
            (f"{prefix}{info.name or info.callback.__name__}", info.callback)
            for info in group.registered_commands
        ]
        for sub in group.registered_groups:
            assert sub.typer_instance is not None
            found += commands(sub.typer_instance, f"{prefix}{sub.name} ")
        return found

    found = commands(app, "")
    assert len(found) > 30 and {"job submit", "settle propose", "members add", "verify"} <= {
        n for n, _ in found
    }
    unwrapped = [name for name, callback in found if getattr(callback, "__code__", None) is not handler]
    assert unwrapped == []


def test_node_refuses_a_tls_key_others_can_read_and_a_certificate_without_its_key(tmp_path: Path) -> None:
    """The operator's TLS key must be its owner's only; the refusal names the fix, never the key."""
    from secureflow.compute.worker.tls import make_identity

    ident = make_identity(tmp_path / "tls", "alice")
    key = ident.key_path.read_text()
    ident.key_path.chmod(0o644)
    base = [
        "node",
        "--party",
        "alice",
        "--data-dir",
        str(tmp_path / "alice"),
        "--redis-url",
        "redis://127.0.0.1:1",
    ]
    loose = CliRunner().invoke(
        app, [*base, "--tls-cert", str(ident.cert_path), "--tls-key", str(ident.key_path)]
    )
    assert loose.exit_code == 1 and "can be read by others" in loose.output and "chmod 600" in loose.output
    assert key.strip().splitlines()[1] not in loose.output
    half = CliRunner().invoke(app, [*base, "--tls-cert", str(ident.cert_path)])
    assert half.exit_code == 1 and "go together" in half.output
