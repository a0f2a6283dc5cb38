"""What every ``secureflow`` command prints when it fails, and the consoles it prints with.

One handler (`friendly_errors`) for every command group: an error of the ledger, the compute engine, the
API client or the CLI itself (`CliError`), or an invalid setting, is shown as one red line with the message
and, on the next line, the hint that says what to do; the exit code is 1; never a traceback. Text from
errors is escaped, so square brackets in it are shown, not read as Rich markup.

The consoles never wrap long lines (``soft_wrap``): job ids, keys, paths and commands stay whole when the
output is piped or logged. Commands that print no styling use `plain_console`, which reads no markup, so a
user's file name such as ``out[bold].json`` is printed as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from secureflow.api.client import (
    API_KEY_ENV,
    API_URL_ENV,
    ApiResponseError,
    ApiUnreachableError,
    ClientError,
    StreamLostError,
    UnexpectedResponseError,
)
from secureflow.compute.errors import ComputeError
from secureflow.ledger.errors import ConfigurationError, LedgerError

console = Console(soft_wrap=True, highlight=False)
plain_console = Console(soft_wrap=True, highlight=False, markup=False)  # prints paths and names as they are
err_console = Console(stderr=True, soft_wrap=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


class CliError(LedgerError):
    """Root of the errors the CLI raises itself (a file exists, an argument is malformed, ...)."""

    hint = "see `secureflow --help`"


def _message(exc: BaseException) -> str:
    """The message without the hint (the errors' ``__str__`` appends it in parentheses)."""
    return Exception.__str__(exc)


def report(exc: BaseException) -> None:
    """Print ``exc`` as the one-line error and, if it has one, its hint."""
    hint = getattr(exc, "hint", "") or ""
    err_console.print(f"[bold red]error:[/] {escape(_message(exc))}")
    if hint:
        err_console.print(f"  [dim]hint:[/] {escape(hint)}")


_STATUS_HINTS = {
    401: f"the API key is missing, unknown or revoked: export {API_KEY_ENV}=<key> "
    "(`secureflow up` prints the keys; an admin creates one with POST /v1/members/{id}/keys)",
    403: "this key's role may not do this: submitting and cancelling need a member key of a party of the "
    "job; reading works with admin, auditor, member and service keys",
    404: "check the job id and step (`secureflow job list`); members see only jobs they are party to",
    409: "the job's state does not allow this now: check it with `secureflow job status JOB_ID`",
    422: "the request was refused: fix what the message names (manifest fields, parties that are active "
    "members on chain, the submitting member a party) and try again",
}
_CODE_HINTS = {
    "refused_by_contract_rules": "the contracts' rules refuse this (the message names the rule): check "
    "that the parties and the submitting member are active members on chain (`secureflow members list`; an "
    "admin adds or reinstates them, and grants the ANCHOR role a named service needs) or fix what it names, "
    "then retry",
    "not_anchored": "the step is not anchored yet: wait for the anchoring worker "
    "(`secureflow job status JOB_ID --follow`), then ask again",
}


def client_hint(exc: ClientError) -> str:
    """What to do about an error of the API client."""
    if isinstance(exc, StreamLostError):
        return f"check that the API is running, then run `secureflow job status {exc.job_id} --follow` again"
    if isinstance(exc, ApiUnreachableError):
        return (
            "start it with `secureflow up` (the embedded stack) or `secureflow api`, or point "
            f"{API_URL_ENV} / --api-url at a running API"
        )
    if isinstance(exc, ApiResponseError):
        hint = _CODE_HINTS.get(exc.code) or _STATUS_HINTS.get(exc.status)
        if hint is not None:
            return hint
        if exc.status >= 500:
            return (
                "the API or one of its dependencies (database, chain node) failed: retry, and quote the "
                "request id to its operator if it persists"
            )
        return "see the message"
    if isinstance(exc, UnexpectedResponseError):
        return f"use a `secureflow` CLI of the API's version, and check that {API_URL_ENV} points at it"
    return f"check {API_URL_ENV} / --api-url and {API_KEY_ENV}"


def friendly_errors(fn: F) -> F:
    """Run a command; show an expected failure as `report` does and exit with code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (LedgerError, ComputeError) as exc:
            report(exc)
        except ClientError as exc:  # the API client's errors carry no hint of their own: the CLI's advice
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
            err_console.print(f"  [dim]hint:[/] {escape(client_hint(exc))}")
        except ValidationError as exc:  # settings read from the environment
            report(
                ConfigurationError(f"invalid setting: {exc.errors()[0]['msg']}", hint=ConfigurationError.hint)
            )
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]
