"""Job logs kept per party: each party's worker writes the log lines of each job to its own file, scrubbed.

Where: ``<party_dir>/joblogs/<job_id>.log`` (folder mode 0700, files 0600), on the party's own host (its
``secureflow node --data-dir`` in distributed mode, its folder under the workdir in the embedded stack). The
party worker (`secureflow.compute.worker.main`) attaches a `JobLogHandler` to its loggers: while it handles a
request of a job, every record it logs (its own, SecretFlow's) goes to that job's file, and nowhere else
when it comes from the job logger (`JOB_LOGGER`: step starts with their parameters, each request's
outcome). A line is scrubbed before it is written (`Scrubber`): every cell of the party's own datasets of
the job, in any rendering the leak scanner knows (`secureflow.compute.scrub`), and every run of 64 or more
hex digits (a private key, a salt, a digest) other than the job's id, becomes ``[redacted]``. A dataset's
scanner (`Scanner.of_tables`: its float cells sorted, its integer and text cells in sets; ~0.1 s for 51k
rows x 10 columns) is built once per load of that dataset, cached by its content digest.

Retention (`prune`): job log files and the node's ``sessions/<id>/`` folders (a session's worker log) whose
last change is older than the retention are removed; ``secureflow node --log-retention-days`` (default
`DEFAULT_RETENTION_DAYS`) prunes at start and every `PRUNE_INTERVAL_S`, the local engine at start.

Reading (`read_job_log`): lines from a 0-based line offset, a page at a time. A party's node serves its own
job's lines to a signed request (`secureflow.compute.worker.node`; the request and reply are signed under
their own domains, `secureflow.ledger.queue_signing.LOG_REQUEST_DOMAIN` / ``LOG_REPLY_DOMAIN``);
`request_node_logs` is the reader's side (the API's).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secureflow.compute.errors import ComputeError
from secureflow.compute.scrub import Scanner

if TYPE_CHECKING:
    import redis

JOBLOGS = "joblogs"
"""The folder of a party's job logs, in its party folder."""
JOB_LOGGER = "secureflow.joblog"
"""A worker's logger whose records go to the current job's log only (never to the rolling worker log)."""
DEFAULT_RETENTION_DAYS = 30.0
PRUNE_INTERVAL_S = 3600.0
MAX_PAGE_LINES = 1000
"""Lines one read returns at most (the next read starts at the ``next`` offset it returned)."""
MAX_LINE_CHARS = 4000
MAX_REPLY_BYTES = 2 * MAX_PAGE_LINES * MAX_LINE_CHARS * 4 + 65_536
"""The largest log reply the API parses (a full page of the longest lines, JSON-escaped, with room)."""
"""Characters of one line a read returns (a longer one, e.g. a huge repr in a library's message, is cut)."""
REDACTED = "[redacted]"
LONG_HEX = re.compile(r"(?<![0-9A-Za-z])(?:0x)?[0-9a-fA-F]{64,}(?![0-9A-Za-z])")
"""A private key, salt, secret or digest written as hex (an address, 40 digits, stays)."""
JOB_ID = re.compile(r"0x[0-9a-f]{64}")
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
LOG_FILE_NAME = re.compile(r"0x[0-9a-f]{64}\.log")
SESSION_NAME = re.compile(r"[0-9a-f]{32}")
"""A session id (`secureflow.compute.worker.link`: ``uuid4().hex``): the only folders pruning removes."""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JobLogError(ComputeError):
    """A job's log cannot be read (the party's node did not answer, or the request is invalid)."""


class NodeLogsUnavailableError(JobLogError):
    """A party's node did not answer a log request in time (it is down, or refused the request)."""

    def __init__(self, party: str, why: str) -> None:
        super().__init__(
            f"the node of party {party!r} did not answer for its job logs ({why})",
            hint=f"party {party!r}'s node serves its own job logs: ask its operator to start "
            "`secureflow node`, then retry",
        )
        self.party = party


def job_log_path(party_dir: Path, job_id: str) -> Path:
    """The log file of job ``job_id`` in ``party_dir`` (``job_id``: 0x + 64 hex, checked)."""
    job = job_id.lower()
    if not JOB_ID.fullmatch(job):
        raise JobLogError(f"{job_id[:80]!r} is not a job id", hint="pass the job id: 0x + 64 hex digits")
    return party_dir / JOBLOGS / f"{job}.log"


class Scrubber:
    """Redacts a party's cells (its datasets' `Scanner`s) and long hex runs (but ``keep``) in text."""

    def __init__(self, scanners: Iterable[Scanner] = (), keep: Iterable[str] = ()) -> None:
        self.scanners = list(scanners)
        self.keep = {k.lower() for k in keep}

    def scrub(self, text: str) -> str:
        spans = [span for scanner in self.scanners for span in scanner.spans(text)]
        spans += [m.span() for m in LONG_HEX.finditer(text) if m.group().lower() not in self.keep]
        if not spans:
            return text
        out, at = [], 0
        for start, end in sorted(spans):
            if end <= at:
                continue
            out.append(text[at : max(at, start)])
            out.append(REDACTED)
            at = end
        out.append(text[at:])
        return "".join(out)


class JobLogHandler(logging.Handler):
    """A party worker's per-job log: the records logged while a job's request is handled, scrubbed."""

    def __init__(self, party_dir: Path) -> None:
        super().__init__(logging.DEBUG)
        self.root = party_dir / JOBLOGS
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self.job: str | None = None
        self._scanners: dict[bytes, Scanner] = {}  # dataset content digest -> the scanner of its cells
        self._scrubbers: dict[str, Scrubber] = {}
        self._write = threading.Lock()

    @contextmanager
    def job_context(self, job_id: str | None) -> Iterator[None]:
        """Records logged inside go to ``job_id``'s log (None: to no job log)."""
        previous, self.job = self.job, None if job_id is None else job_id.lower()
        try:
            yield
        finally:
            self.job = previous

    def set_datasets(self, job_id: str, tables: Mapping[bytes, object]) -> None:
        """The job's datasets of this party (content digest -> DataFrame): their cells are scrubbed."""
        for digest, df in tables.items():
            if digest not in self._scanners:
                self._scanners[digest] = Scanner.of_tables([df])
        scanners = [self._scanners[digest] for digest in tables]
        self._scrubbers[job_id.lower()] = Scrubber(scanners, keep=[job_id])

    def end_job(self, job_id: str) -> None:
        """The job is closed on this worker: forget its scanner (its file stays until retention)."""
        self._scrubbers.pop(job_id.lower(), None)

    def scrubber(self, job_id: str) -> Scrubber:
        return self._scrubbers.get(job_id.lower()) or Scrubber(keep=[job_id])

    def emit(self, record: logging.LogRecord) -> None:
        job = self.job
        if job is None:
            return
        try:
            line = self.scrubber(job).scrub(self.format(record))
            self.write(job, line)
        except Exception:  # a log line must never fail a request
            self.handleError(record)

    def write(self, job_id: str, text: str) -> None:
        path = job_log_path(self.root.parent, job_id)
        with self._write:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(text.rstrip("\n") + "\n")


def read_job_log(
    party_dir: Path, job_id: str, after: int = 0, limit: int = MAX_PAGE_LINES
) -> tuple[list[str], int]:
    """Lines ``after``.. of the job's log in ``party_dir`` (at most ``limit``) and the offset of the next.

    Raises `JobLogError` when this party has no log of the job (it did not run it, or the log expired)."""
    path = job_log_path(party_dir, job_id)
    if not path.is_file():
        raise JobLogError(
            f"this party keeps no log of job {job_id.lower()}",
            hint="it did not run the job, or the log is older than the retention",
        )
    lines: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh):
            if n < after:
                continue
            if len(lines) >= limit:
                break
            line = line.rstrip("\n")
            lines.append(line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…")
    return lines, max(after, 0) + len(lines)


def prune(
    party_dir: Path, retention_days: float, *, keep_sessions: Iterable[str] = (), now: float | None = None
) -> int:
    """Remove job logs and ``sessions/<id>/`` folders last changed more than ``retention_days`` ago.

    ``keep_sessions``: sessions running now (never removed). Returns how many were removed."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400.0
    keep = set(keep_sessions)
    removed = 0
    logs = party_dir / JOBLOGS
    if logs.is_dir() and not logs.is_symlink():  # never follow a link out of the party's folder
        for path in logs.iterdir():
            if not LOG_FILE_NAME.fullmatch(path.name) or path.is_symlink():
                continue  # only the job logs the worker wrote: nothing an operator put there
            with suppress(OSError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
    sessions = party_dir / "sessions"
    if sessions.is_dir() and not sessions.is_symlink():
        for path in sessions.iterdir():
            if path.name in keep or not SESSION_NAME.fullmatch(path.name) or path.is_symlink():
                continue
            if not path.is_dir():
                continue
            with suppress(OSError):
                if _newest_mtime(path) < cutoff:
                    shutil.rmtree(path)
                    removed += 1
    return removed


def _newest_mtime(folder: Path) -> float:
    """The latest change of ``folder`` or anything in it (a session's log may be written long after start)."""
    newest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        with suppress(OSError):
            newest = max(newest, path.stat().st_mtime)
    return newest


# -- reading through a party's node (distributed mode) -----------------------------------------------------


def log_reply_key(prefix: str, party: str, request: str) -> str:
    """Where ``party``'s node answers one log request (``request``: its random id).

    Per party: the replies of two parties never share a key, and a Redis ACL can let each node write only
    ``<prefix>:logs:<its party>:*`` (the reply itself names the party and is signed by its member key)."""
    return f"{prefix}:logs:{party}:{request}:out"


@dataclass(frozen=True)
class LogPage:
    party: str
    lines: list[str]
    next: int


def request_node_logs(
    client: redis.Redis,
    *,
    prefix: str,
    party: str,
    member: str,
    job_id: str,
    signer: str,
    after: int = 0,
    timeout: float = 5.0,
) -> LogPage:
    """Ask ``party``'s node for lines ``after``.. of job ``job_id``: a request signed with ``signer`` under
    the log-request domain on the party's queue, and the node's answer, taken only when signed by
    ``member`` (the party's member address) for this request. Raises `NodeLogsUnavailableError` when
    the node does not beat, does not answer within ``timeout``, or answers that it keeps no such log."""
    import redis as redis_errors

    from secureflow.compute.worker.link import decode, encode, inbound_key, node_alive_key
    from secureflow.ledger.queue_signing import LOG_REPLY_DOMAIN, LOG_REQUEST_DOMAIN, entry_signer, sign_entry

    request = secrets.token_hex(16)
    entry = sign_entry(
        {
            "op": "logs",
            "request": request,
            "party": party,
            "job_id": job_id.lower(),
            "after": int(after),
            "exp": time.time() + timeout + 5.0,
        },
        signer,
        LOG_REQUEST_DOMAIN,
    )
    reply_key = log_reply_key(prefix, party, request)
    deadline = time.monotonic() + timeout
    try:
        if not client.exists(node_alive_key(prefix, party)):
            raise NodeLogsUnavailableError(party, "its node is not running")
        client.rpush(inbound_key(prefix, party), encode(entry))
        while (left := deadline - time.monotonic()) > 0:
            got = client.blpop([reply_key], timeout=max(0.01, min(left, 1.0)))
            if got is None:
                continue
            if len(got[1]) > MAX_REPLY_BYTES:  # never parsed: a page is at most 1000 lines of 4000 chars
                logging.getLogger(__name__).warning(
                    "dropped a log reply claiming party %s: %d bytes", party, len(got[1])
                )
                continue
            reply = decode(got[1])
            if (
                reply is None
                or reply.get("request") != request
                or reply.get("party") != party
                or entry_signer(reply, LOG_REPLY_DOMAIN) != member.lower()
            ):
                logging.getLogger(__name__).warning(
                    "dropped a log reply claiming party %s: not signed by its member key for this request",
                    party,
                )
                continue
            if reply.get("ok") is not True:
                raise NodeLogsUnavailableError(party, "it keeps no log of this job")
            lines = [
                line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…"
                for line in (str(x) for x in list(reply.get("lines") or [])[:MAX_PAGE_LINES])
            ]
            nxt = reply.get("next")
            return LogPage(party, lines, int(nxt) if isinstance(nxt, int) else after + len(lines))
    except redis_errors.RedisError as exc:
        raise NodeLogsUnavailableError(party, f"the job queue is unreachable: {type(exc).__name__}") from None
    finally:
        with suppress(redis_errors.RedisError):
            client.delete(reply_key)
    raise NodeLogsUnavailableError(party, f"no signed answer within {timeout:g} s")


def log_reply(party: str, request: str, lines: list[str] | None, nxt: int) -> dict[str, Any]:
    """A node's (unsigned) answer to a log request: ``lines`` None when it keeps no log of the job."""
    if lines is None:
        return {"op": "logs", "request": request, "party": party, "ok": False}
    return {"op": "logs", "request": request, "party": party, "ok": True, "lines": lines, "next": nxt}
