"""``secureflow doctor``: check one installation end to end and say how to fix what fails.

It reads the settings every other command reads (``SECUREFLOW_*`` variables, e.g. the ``secureflow.env``
that `secureflow up` writes) and runs, in order: the chain's checks (`secureflow.ledger.doctor`: node
reachable, chain id, deployment, contract code against the checked-in artifacts, the configured keys'
roles, clock skew), the ledger's and the API's database migrations, then the compute side's
(`secureflow.compute.doctor`: SecretFlow importable, its ports free, Redis and the parties' nodes when a
Redis is configured). Each check prints as one line with its result and, if it did not pass, the fix;
``--json`` prints the list instead. The exit code is 1 if any check failed (``warn`` and ``skip`` do not
fail). Keys are read only to derive their addresses; nothing secret is printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from secureflow.api.cli.errors import console
from secureflow.api.server.db import ApiDb
from secureflow.api.server.db import current_revision as api_revision
from secureflow.api.server.db import head_revision as api_head
from secureflow.compute.doctor import nodes_check, ports_check, redis_check, secretflow_check
from secureflow.ledger.checks import Check, failed, passed, skipped
from secureflow.ledger.doctor import KeyToCheck, chain_checks, ledger_db_check
from secureflow.ledger.settings import LedgerSettings
from secureflow.ledger.store.engine import make_engine

SYMBOLS = {
    "ok": "[green]ok  [/]",
    "warn": "[yellow]warn[/]",
    "fail": "[bold red]FAIL[/]",
    "skip": "[dim]skip[/]",
}


class DoctorSettings(LedgerSettings):
    """The ledger's settings plus the keys and the Redis the doctor checks (``SECUREFLOW_*``)."""

    model_config = SettingsConfigDict(env_prefix="SECUREFLOW_", env_file=".env", extra="ignore")

    member_key: SecretStr | None = None
    member_key_file: Path | None = None
    coordinator_key_file: Path | None = None
    compute_redis_url: str | None = None
    compute_redis_prefix: str = "secureflow"
    broker_url: str | None = None

    def redis_url(self) -> str | None:
        if self.compute_redis_url:
            return self.compute_redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None


def _key_file(path: Path, variable: str) -> tuple[str, Check | None]:
    """The private key in ``path`` (a key file of this installation), or a failed ``keys`` check: the file
    cannot be read, or others may read it."""
    try:
        mode = path.stat().st_mode
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return "", failed(
            "keys", f"cannot read {variable} {path}: {exc.strerror}", f"point {variable} at the key file"
        )
    if mode & 0o077:
        return key, failed(
            "keys",
            f"{variable} {path} may be read by other users (mode {mode & 0o777:o})",
            f"chmod 600 {path}",
        )
    return key, None


def _keys(settings: DoctorSettings) -> tuple[list[KeyToCheck], list[Check]]:
    """The configured keys' addresses and the role each must hold; a key that cannot be read is a check."""
    from eth_account import Account

    keys: list[KeyToCheck] = []
    problems: list[Check] = []
    member = settings.member_key.get_secret_value() if settings.member_key else ""
    if not member and settings.member_key_file is not None:
        member, problem = _key_file(settings.member_key_file, "SECUREFLOW_MEMBER_KEY_FILE")
        problems.extend([problem] if problem else [])
    coordinator = ""
    if settings.coordinator_key_file is not None:
        coordinator, problem = _key_file(settings.coordinator_key_file, "SECUREFLOW_COORDINATOR_KEY_FILE")
        problems.extend([problem] if problem else [])
    for label, key, role in (
        ("member key", member, "member"),
        ("anchor key", settings.anchor_key.get_secret_value() if settings.anchor_key else "", "anchor"),
        ("coordinator key", coordinator, "coordinator"),
    ):
        if not key:
            continue
        try:
            keys.append(KeyToCheck(label, str(Account.from_key(key).address), role))
        except (ValueError, TypeError):
            problems.append(failed("keys", f"the {label} is not a private key", f"fix the {label} setting"))
    return keys, problems


def api_db_check(database_url: str | None) -> Check:
    """``api_db``: the API's tables, where the API ran on this database, are at their newest migration."""
    if not database_url:
        return skipped("api_db", "SECUREFLOW_DATABASE_URL is not set")
    engine = make_engine(database_url)
    try:
        if ApiDb.if_present(engine) is None:
            return skipped("api_db", "the API has not run on this database")
        revision = api_revision(engine)
    except SQLAlchemyError as exc:
        return failed("api_db", f"cannot read the API tables ({type(exc).__name__})", "check the database")
    finally:
        engine.dispose()
    if revision != api_head():
        return failed(
            "api_db",
            f"the API tables are at {revision}, the code at {api_head()}",
            "restart the API (`secureflow api` migrates its tables on start)",
        )
    return passed("api_db", f"migrations at head ({revision})")


def run_checks(
    settings: DoctorSettings, *, parties: list[str], skip: set[str], max_skew_s: float
) -> list[Check]:
    keys, key_problems = _keys(settings)
    checks = [
        *key_problems,
        *chain_checks(settings.chain_config(), settings.deployment, keys, max_skew_s=max_skew_s),
    ]
    checks.append(ledger_db_check(settings.database_url))
    checks.append(api_db_check(settings.database_url))
    checks.append(secretflow_check() if "secretflow" not in skip else skipped("secretflow", "--skip"))
    checks.append(ports_check(max(2, len(parties))))
    redis_url = settings.redis_url()
    checks.append(redis_check(redis_url))
    checks.append(nodes_check(redis_url, settings.compute_redis_prefix, parties))
    return [check if check.name not in skip else skipped(check.name, "--skip") for check in checks]


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="print the checks as a JSON list")] = False,
    party: Annotated[
        list[str] | None, typer.Option(help="a party whose node must beat in Redis (repeat for each)")
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option(help="a check not to run, e.g. secretflow (repeat)")
    ] = None,
    max_skew: Annotated[float, typer.Option(help="seconds of clock skew against the chain allowed")] = 30.0,
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url", envvar="SECUREFLOW_RPC_URL", help="the chain node's JSON-RPC URL", show_default=False
        ),
    ] = None,
) -> None:
    """Check this installation end to end (chain, contracts, keys, databases, SecretFlow, Redis, nodes)."""
    if rpc_url:  # the checks read their settings from the environment (DoctorSettings)
        os.environ["SECUREFLOW_RPC_URL"] = rpc_url
    os.environ.setdefault("COLUMNS", "200")
    checks = run_checks(DoctorSettings(), parties=party or [], skip=set(skip or []), max_skew_s=max_skew)
    if as_json:
        typer.echo(json.dumps([check.model_dump() for check in checks], indent=2))
    else:
        for check in checks:
            console.print(f"{SYMBOLS[check.status]} {check.name:<17} {escape(check.detail)}")
            if check.fix and check.status != "ok":
                console.print(f"      [dim]fix:[/] {escape(check.fix)}")
        bad = [check.name for check in checks if check.failed]
        console.print(f"[bold red]failed: {', '.join(bad)}[/]" if bad else "[bold green]all checks passed[/]")
    if any(check.failed for check in checks):
        raise typer.Exit(1)
