"""``secureflow job``: submit, follow and audit jobs through the audit API (on the API client
`secureflow.api.client`; no DB or chain).

Commands: ``submit MANIFEST.json [--follow]``, ``status JOB_ID [--follow]``, ``list``, ``cancel``,
``bundle JOB_ID --out FILE``, ``receipt JOB_ID SEQ`` and ``logs JOB_ID [--party P] [--follow]`` (each
party's scrubbed log lines of the job, read from that party). ``--follow`` subscribes to the job's live-status
stream (server-sent events, ``GET /v1/jobs/{id}/events``) and shows steps recorded / anchored / confirmed
until the job has finished and every record is settled on chain (reconnecting, and resuming after the
last event shown, when the stream ends early or drops); the exit code is 0 for a completed job
with every record confirmed, 1 otherwise. ``--json`` prints the API's JSON for scripts.

Settings: ``SECUREFLOW_API_URL`` (default ``http://127.0.0.1:8000``) and ``SECUREFLOW_API_KEY``, or
``--api-url`` / ``--api-key`` (prefer the environment for the key: an option lands in the shell history).
The key is sent only as ``Authorization: Bearer`` and is never printed. Every failure is one red line
(API errors: HTTP status, code, message and request id) plus a hint, and exit code 1; never a traceback.
Register on the root CLI with ``app.add_typer(job_app, name="job")``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from secureflow.api.cli.errors import CliError, console, err_console, friendly_errors
from secureflow.api.client import (
    API_KEY_ENV,
    API_KEY_PATTERN,
    API_URL_ENV,
    DEFAULT_API_URL,
    AuditBundle,
    Client,
    JobLogs,
    JobOut,
    JobStatusEvent,
    NotFoundError,
    StepOut,
)
from secureflow.ledger.errors import ConfigurationError
from secureflow.ledger.store.schemas import TERMINAL_JOB_STATUSES
from secureflow.ledger.text import plural

job_app = typer.Typer(no_args_is_help=True, help="Submit, follow and audit jobs through the audit API.")

JOB_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
MAX_STREAM_RETRIES = 5  # failed connections in a row to the live status before --follow gives up


# ------------------------------------------------------------------ errors


class JobCliError(CliError):
    """A ``secureflow job`` command cannot go ahead."""

    hint = "see `secureflow job --help`"


class OutputExistsError(JobCliError):
    """The output file exists and ``--force`` was not given."""

    hint = "pass --force to overwrite it, or choose another --out"


API_KEY_FILE_ENV = "SECUREFLOW_API_KEY_FILE"
"""A file holding the API key (what ``secureflow up``'s ``secureflow.env`` points at), read when
``SECUREFLOW_API_KEY`` is not set."""


def _key_from_file(variable: str) -> str | None:
    """The key in the file named by the environment variable ``variable`` (None when it is not set)."""
    path = os.environ.get(variable, "").strip()
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the key file {path} ({variable}): {exc.strerror or exc}",
            hint=f"point {variable} at an existing key file, or set the key itself",
        ) from None


def _client(api_url: str, api_key: str | None) -> Client:
    """The API client for these settings (checked first: a malformed key is refused before any request)."""
    if not re.match(r"^https?://[^/\s]+", api_url):
        raise ConfigurationError(
            f"the API URL {api_url!r} is not an http(s) URL",
            hint=f"set {API_URL_ENV} or --api-url, e.g. {DEFAULT_API_URL}",
        )
    if not api_key or not api_key.strip():
        api_key = _key_from_file(API_KEY_FILE_ENV)
    if not api_key or not api_key.strip():
        raise ConfigurationError(
            "no API key",
            hint=f"export {API_KEY_ENV}=<key> or {API_KEY_FILE_ENV}=<file> (`secureflow up` prints the keys "
            "and writes secureflow.env; the environment keeps them out of your shell history)",
        )
    if not API_KEY_PATTERN.fullmatch(api_key.strip()):  # checked here so that no library error ever echoes it
        raise ConfigurationError(
            "the API key is not of the form sfk_<12 hex digits>_<secret>",
            hint=f"copy the whole key, on one line, into {API_KEY_ENV}",
        )
    return Client(api_url, api_key.strip(), user_agent="secureflow-cli")


def _job_id(value: str) -> str:
    if not JOB_ID.match(value):
        raise JobCliError(
            f"{value!r} is not a job id",
            hint="a job id is 0x followed by 64 hex digits; `secureflow job list` shows them",
        )
    return value.lower()


# ------------------------------------------------------------------ output


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


_COLOURS = {"confirmed": "green", "completed": "green", "submitted": "yellow", "running": "yellow"}
_COLOURS |= {"failed": "red", "cancelled": "red", "rejected": "red", "pending": "dim", "created": "dim"}


def _coloured(text: str, status: str | None = None) -> str:
    """``text`` in the colour of ``status`` (default: the text itself is the status)."""
    colour = _COLOURS.get(status if status is not None else text.strip())
    return f"[{colour}]{escape(text)}[/]" if colour else escape(text)


def _short(value: str | None, keep: int = 10) -> str:
    return "-" if not value else (value if len(value) <= keep + 4 else f"{value[:keep]}…")


def _print_job(job: JobOut) -> None:
    console.print(f"job [bold]{job.job_id}[/]")
    created_tx = f", tx {job.created_tx_hash}" if job.created_tx_hash else ""
    console.print(
        f"  status      {_coloured(job.status)} (on chain: {_coloured(job.chain_status)}{created_tx})"
    )
    console.print(f"  creator     {job.creator}")
    console.print(f"  parties     {', '.join(job.parties)}")
    console.print(f"  manifest    {job.manifest_hash}")
    console.print(f"  created     {job.created_at.isoformat()}   updated {job.updated_at.isoformat()}")
    if job.reason:
        console.print(f"  reason      {escape(job.reason)}")
    if job.stuck:
        console.print(
            f"  [bold red]stuck[/]       running, but no status change and no new step since "
            f"{job.updated_at.isoformat()} (longer than the API's stuck_after_seconds)"
        )
    if job.close_reason:
        console.print(f"  close       {escape(job.close_status or '-')}: {escape(job.close_reason)}")


def _print_rows(headers: list[str], rows: list[list[str]], status_columns: set[int]) -> None:
    """Aligned columns, never truncated or wrapped (ids stay whole for copying and for scripts)."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    console.print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), style="bold")
    for row in rows:
        cells = [
            (_coloured(cell) if i in status_columns else escape(cell)) + " " * (width - len(cell))
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        console.print("  ".join(cells).rstrip())


def _print_steps(steps: list[StepOut]) -> None:
    counts = {s: sum(1 for step in steps if step.chain_status == s) for s in ("confirmed", "submitted")}
    counts |= {s: sum(1 for step in steps if step.chain_status == s) for s in ("pending", "failed")}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    console.print(f"  records     {len(steps)}" + (f": {summary}" if summary else ""))
    if not steps:
        return
    # shortened for a person on a terminal; whole when piped or logged, where a script or a reader copies them
    short = _short if console.is_terminal else (lambda value: value or "-")
    rows = [
        [
            str(step.seq),
            step.algorithm,
            step.chain_status,
            short(step.batch_id),
            short(step.tx_hash),
            "-" if step.block_number is None else str(step.block_number),
            step.confirmed_at.strftime("%Y-%m-%d %H:%M:%S") if step.confirmed_at else "-",
        ]
        for step in steps
    ]
    _print_rows(["seq", "algorithm", "chain status", "batch", "tx", "block", "confirmed at"], rows, {2})
    for step in steps:
        if step.chain_status == "failed":
            why = step.failure_reason or "no reason stored"
            console.print(f"  step {step.seq} will not be anchored: {escape(why)}", style="red")


def _show_status(client: Client, job_id: str, as_json: bool) -> JobOut:
    job = client.jobs.get(job_id)
    steps = list(client.steps.iterate(job_id, page_size=1000))
    if as_json:
        _print_json({"job": job.model_dump(mode="json"), "steps": [s.model_dump(mode="json") for s in steps]})
    else:
        _print_job(job)
        _print_steps(steps)
    return job


def _write_file(path: Path, data: bytes, force: bool) -> None:
    """Write ``data`` atomically; without ``force`` an existing file is never replaced (not even racing)."""
    if path.is_dir():
        raise JobCliError(f"{path} is a directory", hint="pass a file name to --out")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise OutputExistsError(f"{path} exists") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _verify_hint(path: Path) -> str:
    """The command an auditor runs: against a node of its choice and the deployment it pins (not this API)."""
    rpc = os.environ.get("SECUREFLOW_RPC_URL") or "URL"
    deployment = os.environ.get("SECUREFLOW_DEPLOYMENT") or "DEPLOYMENT.json"
    file, pin = shlex.quote(str(path)), shlex.quote(deployment)
    return f"secureflow verify {file} --rpc-url {rpc} --deployment {pin}"


# ------------------------------------------------------------------ following a job


class _FollowView:
    """Progress of a followed job: rich bars on a terminal, one plain line per change otherwise."""

    def __init__(self, job_id: str, total_steps: int | None, as_json: bool) -> None:
        self.job_id, self.total_steps, self.as_json = job_id, total_steps, as_json
        self.live = console.is_terminal and not as_json
        self._told_wait = False
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._last_status: tuple[str, str] | None = None
        self._last_event: JobStatusEvent | None = None
        self._last_line: str | None = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _FollowView:
        if self.live:
            self.progress.start()
            self._tasks = {
                "steps": self.progress.add_task("steps recorded", total=self.total_steps),
                "anchored": self.progress.add_task("anchored      ", total=None),
                "confirmed": self.progress.add_task("confirmed     ", total=None),
            }
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live:
            self.progress.stop()

    def update(self, event: JobStatusEvent) -> None:
        if event == self._last_event:  # the state already shown (an API that does not resume streams)
            return
        self._last_event = event
        if self.as_json:
            typer.echo(json.dumps(event.model_dump(mode="json")))
            return
        counts = event.records
        total = f"/{max(self.total_steps, counts.total)}" if self.total_steps is not None else ""
        if not self.live:
            line = (
                f"job {event.status} (on chain: {event.chain_status}) · steps {counts.total}{total} · "
                f"anchored {counts.submitted + counts.confirmed} · confirmed {counts.confirmed}"
                + (f" · failed to anchor {counts.failed}" if counts.failed else "")
            )
            # a reconnected stream starts with the state already shown (its raw event may differ only
            # in fields this line does not show): print each state once
            if line != self._last_line:
                self._last_line = line
                console.print(line)
                if counts.total == 0 and event.status in ("created", "running") and not self._told_wait:
                    self._told_wait = True  # the longest silence: consents and SecretFlow start-up
                    console.print(
                        "  waiting for the first step: each party consents and its SecretFlow worker starts "
                        "(~10-30 s when cold) …"
                    )
            return
        status = (event.status, event.chain_status)
        if status != self._last_status:
            self._last_status = status
            self.progress.console.print(
                f"job {_coloured(event.status)} (on chain: {_coloured(event.chain_status)})"
            )
        steps_total = max(self.total_steps or 0, counts.total) or None
        self.progress.update(self._tasks["steps"], completed=counts.total, total=steps_total)
        for name, done in (
            ("anchored", counts.submitted + counts.confirmed),
            ("confirmed", counts.confirmed),
        ):
            self.progress.update(self._tasks[name], completed=done, total=counts.total or None)


def _manifest_steps(client: Client, job_id: str) -> int | None:
    try:
        manifest = client.jobs.manifest(job_id)
    except NotFoundError:  # not submitted through the API: the total is unknown
        return None
    steps = manifest.get("steps")
    return len(steps) if isinstance(steps, list) else None


def follow(client: Client, job_id: str, *, as_json: bool = False) -> JobStatusEvent:
    """Follow the job's live status until it has finished and its records are settled on chain.

    The client reconnects when the stream ends early (the API's ``sse_max_seconds``) or drops, resuming
    after the last event shown; it gives up after `MAX_STREAM_RETRIES` failed connections in a row.
    """
    total = _manifest_steps(client, job_id)
    with _FollowView(job_id, total, as_json) as view:
        stream = client.jobs.follow(job_id, max_failures=MAX_STREAM_RETRIES)
        for event in stream:
            view.update(event)
    if stream.last is None:
        raise JobCliError(
            f"the live status of job {job_id} ended without a state",
            hint="use a `secureflow` CLI of the same version as the API",
        )
    return stream.last


def _follow_and_report(client: Client, job_id: str, as_json: bool) -> None:
    try:
        final = follow(client, job_id, as_json=as_json)
    except KeyboardInterrupt:
        err_console.print(
            f"stopped following job {job_id}; it goes on (`secureflow job status {job_id} --follow`)"
        )
        raise typer.Exit(130) from None
    if not as_json:
        _show_status(client, job_id, as_json=False)
        counts = final.records
        if final.succeeded:
            console.print(
                f"[bold green]job {final.status}[/]: {plural(counts.total, 'record')}, all confirmed on chain"
            )
            bundle = f"secureflow job bundle {job_id} --out bundle.json"
            console.print(f"its audit bundle, for an auditor: {bundle}")
        else:
            why = f"job {final.status}"
            if final.reason:
                why += f": {final.reason}"
            if counts.failed:
                why += f"; {counts.failed} of {plural(counts.total, 'record')} failed to anchor"
            console.print(f"[bold red]{escape(why)}[/]")
    if not final.succeeded:
        raise typer.Exit(1)


# ------------------------------------------------------------------ commands

ApiUrl = Annotated[str, typer.Option("--api-url", envvar=API_URL_ENV, help="base URL of the secureflow API")]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=API_KEY_ENV,
        show_default=False,
        help=f"API key (prefer the {API_KEY_ENV} environment variable: an option lands in shell history)",
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="print the API's JSON (for scripts)")]
Follow = Annotated[
    bool,
    typer.Option(
        "--follow", "-f", help="follow the live status until the job has finished and its records settled"
    ),
]
JobIdArg = Annotated[str, typer.Argument(help="the job id (0x + 64 hex digits)", show_default=False)]


@job_app.command("submit")
@friendly_errors
def submit(
    manifest: Annotated[Path, typer.Argument(help="the job manifest (JSON)", show_default=False)],
    service: Annotated[
        str | None,
        typer.Option(
            "--service",
            help="address of the anchoring service that will post the job's steps (only it may); "
            "leave out when the API's own executor runs the job",
            show_default=False,
        ),
    ] = None,
    follow_: Follow = False,
    json_output: JsonOutput = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Submit a job manifest as a member; prints the job id, its status and how it is executed."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JobCliError(
            f"cannot read the manifest {manifest}: {exc.strerror or exc}", hint="check the path"
        ) from None
    except ValueError as exc:
        raise JobCliError(f"the manifest {manifest} is not JSON: {exc}", hint="fix the file") from None
    if not isinstance(data, dict):
        raise JobCliError(
            f"the manifest {manifest} is not a JSON object", hint="see README.md for its format"
        )
    body = data["manifest"] if set(data) == {"manifest"} else data
    if not isinstance(body, dict):
        raise JobCliError(
            f"the manifest in {manifest} is not a JSON object", hint="see README.md for its format"
        )
    with _client(api_url, api_key) as client:
        submitted = client.jobs.submit(body, service=service)
        job = submitted.job
        if json_output:
            typer.echo(json.dumps(submitted.model_dump(mode="json")))
        else:
            console.print(f"job [bold]{job.job_id}[/] submitted")
            console.print(f"  status      {_coloured(job.status)} (on chain: {_coloured(job.chain_status)})")
            console.print(f"  execution   {submitted.execution}: {escape(submitted.message)}")
            if job.service is not None:
                console.print(f"  service     {job.service} (the only service that may post its steps)")
        if follow_:
            _follow_and_report(client, job.job_id, json_output)
        elif not json_output:
            console.print(f"follow it with: secureflow job status {job.job_id} --follow")


@job_app.command("status")
@friendly_errors
def status(
    job_id: JobIdArg,
    follow_: Follow = False,
    json_output: JsonOutput = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """The job and every step with its chain status; --follow shows live progress until it has finished
    (exit code 0: completed with every record confirmed; 1: failed, cancelled, or a record failed)."""
    with _client(api_url, api_key) as client:
        job_id = _job_id(job_id)
        if follow_:
            client.jobs.get(job_id)  # a wrong id or key fails here, before any display
            _follow_and_report(client, job_id, json_output)
        else:
            _show_status(client, job_id, json_output)


@job_app.command("list")
@friendly_errors
def list_jobs(
    status_: Annotated[
        str | None,
        typer.Option("--status", help="created, running, completed, failed or cancelled", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many jobs")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="skip this many (newest first)")] = 0,
    stuck: Annotated[
        bool,
        typer.Option(
            "--stuck",
            help="only running jobs that stopped moving (longer than the API's stuck_after_seconds)",
        ),
    ] = False,
    json_output: JsonOutput = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Jobs newest first (a member key sees the jobs it is party to); --stuck: the jobs that stopped moving,
    longest idle first."""
    with _client(api_url, api_key) as client:
        page = client.jobs.list(status=status_, limit=limit, offset=offset, stuck=stuck)
    if json_output:
        _print_json(page.model_dump(mode="json"))
        return
    jobs = page.items
    if not jobs:
        console.print(
            "no " + ("stuck " if stuck else "") + "jobs" + (f" with status {status_}" if status_ else "")
        )
        return
    rows = [
        [
            job.job_id,
            job.status + (" (stuck)" if job.stuck else ""),
            job.chain_status,
            str(len(job.parties)),
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            job.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            _short(job.reason, 60),
        ]
        for job in jobs
    ]
    _print_rows(["job id", "status", "on chain", "parties", "created", "updated", "reason"], rows, {1, 2})
    if page.next_offset is not None:
        console.print(f"more: --offset {page.next_offset}")


LOG_POLL_SECONDS = 2.0
"""How often ``job logs --follow`` asks for new lines while the job runs."""


CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
"""Control characters other than tab (newlines, carriage returns, escape sequences, OSC): shown as \\xNN."""


def _visible(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group(0)):02x}"


def _print_log_lines(logs: JobLogs, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(logs.model_dump(mode="json")))
        return
    for party in logs.parties:
        for line in party.lines:  # a party's own text: no terminal control sequences reach the reader
            typer.echo(f"[{party.party}] {CONTROL.sub(_visible, line)}")


@job_app.command("logs")
@friendly_errors
def logs(
    job_id: JobIdArg,
    party: Annotated[
        str | None,
        typer.Option("--party", "-p", help="one party (name or member address); default: all"),
    ] = None,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="print new lines as they are written, until the job ends")
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="print the API's JSON (--follow: one object per read)"),
    ] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """The job's log lines as each party keeps them (scrubbed by the party when written), read from each
    party (its node in consortium mode: a party whose node does not answer is named, exit code 1)."""
    with _client(api_url, api_key) as client:
        job_id = _job_id(job_id)
        page = client.jobs.logs(job_id, party=party)
        _print_log_lines(page, json_output)
        if not follow_:
            return
        offsets = {p.party: p.next for p in page.parties}
        try:
            while True:
                ended = client.jobs.get(job_id).status in TERMINAL_JOB_STATUSES
                for name, after in offsets.items():
                    more = client.jobs.logs(job_id, party=name, after=after)
                    if any(p.lines for p in more.parties):
                        _print_log_lines(more, json_output)
                    offsets[name] = more.parties[0].next if more.parties else after
                if ended:  # read once more after the job ended: its last lines are in
                    return
                time.sleep(LOG_POLL_SECONDS)
        except KeyboardInterrupt:
            err_console.print(f"stopped following the logs of job {job_id}")
            raise typer.Exit(130) from None


@job_app.command("cancel")
@friendly_errors
def cancel(
    job_id: JobIdArg,
    json_output: JsonOutput = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Cancel an unfinished job (admin, or a member party); its accepted records stay on the audit trail."""
    with _client(api_url, api_key) as client:
        job = client.jobs.cancel(_job_id(job_id))
    if json_output:
        _print_json(job.model_dump(mode="json"))
        return
    console.print(
        f"job {job.job_id} is {_coloured(job.status)}" + (f": {escape(job.reason)}" if job.reason else "")
    )


@job_app.command("bundle")
@friendly_errors
def bundle(
    job_id: JobIdArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="file to write the audit bundle to")],
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Download the job's audit bundle (manifest, job, records, a receipt per anchored record)."""
    with _client(api_url, api_key) as client:
        job_id = _job_id(job_id)
        if out.exists() and not force:
            raise OutputExistsError(f"{out} exists")
        content = client.bundles.download(job_id)
    try:  # the file is written as the API sent it; read as the client's model to check and count it
        body = AuditBundle.model_validate_json(content)
    except ValidationError:
        raise JobCliError(
            "the API answered something that is not an audit bundle",
            hint="use a `secureflow` CLI of the same version as the API",
        ) from None
    _write_file(out, content, force)
    records, receipts = len(body.records), len(body.receipts)
    console.print(
        f"wrote the audit bundle of job {job_id} to {out}: {plural(records, 'record')}, "
        f"{plural(receipts, 'receipt')}"
    )
    if receipts < records:
        console.print(
            f"[yellow]warning:[/] {plural(records - receipts, 'record')} not anchored yet (no receipt); "
            f"`verify` reports them (wait with `secureflow job status {job_id} --follow`, "
            "then download again)"
        )
    console.print(f"verify it against any node of the chain: {_verify_hint(out)}")


@job_app.command("receipt")
@friendly_errors
def receipt(
    job_id: JobIdArg,
    seq: Annotated[int, typer.Argument(min=0, help="the step's sequence number", show_default=False)],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write it to this file instead of stdout")
    ] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """A step's receipt (record, leaf, Merkle proof, batch root, transaction, block) as JSON."""
    with _client(api_url, api_key) as client:
        job_id = _job_id(job_id)
        if out is not None and out.exists() and not force:
            raise OutputExistsError(f"{out} exists")
        data = client.steps.receipt(job_id, seq)
    text = data.model_dump_json(exclude_unset=True, indent=2)  # the receipt's fields as the API sent them
    if out is None:
        typer.echo(text)
        return
    _write_file(out, text.encode("utf-8") + b"\n", force)
    console.print(f"wrote the receipt of job {job_id} step {seq} to {out}")
    console.print(f"verify it against any node of the chain: {_verify_hint(out)}")
