"""Where the API reads a job's logs from: each party's own, never a copy the API made.

Every party keeps its job logs itself, scrubbed with its own data at write time
(`secureflow.compute.joblogs`). The API reads them through a `JobLogSource`:

* `NodeJobLogs` (production: ``SECUREFLOW_COMPUTE_REDIS_URL`` and ``SECUREFLOW_LOG_READER_KEY_FILE``):
  asks the party's ``secureflow node`` over its queue with a request signed by the API's *log-reader* key
  (its own key, not the coordinator's; the signature is under the log-request domain, so it is never a
  queue entry a node acts on), and takes only the answer signed by that party's member key. A member's node
  answers only when its policy lists this key in ``log_readers``. No answer in time: the party is named in
  a 503; the API keeps nothing.
* `PartyFolderLogs` (the embedded stack, `secureflow up`): the parties' folders are on the API's host, under
  its workdir, and their workers wrote the files there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from secureflow.compute.joblogs import (
    JobLogError,
    LogPage,
    NodeLogsUnavailableError,
    read_job_log,
    request_node_logs,
)
from secureflow.ledger.errors import ConfigurationError


class JobLogSource(Protocol):
    def read(self, job_id: str, party: str, member: str, after: int) -> LogPage:
        """Lines ``after``.. of ``party``'s log of job ``job_id`` (``member``: its member address);
        raises `NodeLogsUnavailableError` when the party's node does not answer."""


class PartyFolderLogs:
    """The embedded stack: each party's folder on this host (party name -> folder)."""

    def __init__(self, folders: Mapping[str, Path]) -> None:
        self.folders = dict(folders)

    def read(self, job_id: str, party: str, member: str, after: int) -> LogPage:
        folder = self.folders.get(party)
        if folder is None:
            raise NodeLogsUnavailableError(party, "this stack runs no worker of it")
        try:
            lines, nxt = read_job_log(folder, job_id, after)
        except JobLogError:
            raise NodeLogsUnavailableError(party, "it keeps no log of this job") from None
        return LogPage(party, lines, nxt)


class NodeJobLogs:
    """Production: each party's node answers a signed request over its queue (see the module docstring)."""

    def __init__(self, redis_url: str, prefix: str, key: str, timeout: float) -> None:
        import redis

        self.client = redis.Redis.from_url(redis_url, socket_timeout=timeout + 5.0)
        self.prefix, self.key, self.timeout = prefix, key, timeout

    def read(self, job_id: str, party: str, member: str, after: int) -> LogPage:
        return request_node_logs(
            self.client,
            prefix=self.prefix,
            party=party,
            member=member,
            job_id=job_id,
            signer=self.key,
            after=after,
            timeout=self.timeout,
        )


def load_log_reader_key(path: Path) -> str:
    """The API's log-reader key from ``SECUREFLOW_LOG_READER_KEY_FILE`` (0x + 64 hex); never logged."""
    from eth_account import Account

    try:
        key = path.read_text(encoding="utf-8").strip()
        Account.from_key(key)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the log-reader key file {path} ({exc.strerror or type(exc).__name__})",
            hint="point SECUREFLOW_LOG_READER_KEY_FILE at a readable file",
        ) from None
    except ValueError:
        raise ConfigurationError(
            f"the log-reader key file {path} holds no private key",
            hint="write the key as 0x + 64 hex digits on one line",
        ) from None
    return key
