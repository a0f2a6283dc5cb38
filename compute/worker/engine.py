"""The coordinator side of the party workers: start, keep warm, restart, shut down (`Engine`).

``Engine(["alice", "bob"], root)`` gives each party a directory ``root/<party>``
(its data, models, secrets, private temp dir and log) and, on `start`, one OS
process per party on 127.0.0.1 with fresh free ports for the SecretFlow
cross-silo link and one SPU link per SPU profile. Each worker runs in its own
session (process group): `shutdown` asks politely, then kills the groups, so no
process outlives the engine; a worker also exits by itself when the
coordinator dies. The workers stay warm across jobs (SecretFlow and SPU are
initialised once); `ensure_healthy` restarts all of them when one has died or
a step failed (a SecretFlow cluster restarts as a unit, on new ports).

Every request has a timeout, and a dead worker is noticed within a second:
the caller gets a `WorkerError`, never a hang.

``launcher="distributed"`` keeps this API but reaches each party's worker
through its ``secureflow node`` on the member's own host, over Redis
(`secureflow.compute.worker.link`, `secureflow.compute.worker.node`): `start` asks every node for
its free ports, sends all of them the cluster table, and waits for the
workers' hello/ready as in local mode; a node whose heartbeat stops counts as
a dead worker (noticed within ``node_timeout``). While started, the engine
keeps its own heartbeat key fresh (a daemon thread, stopped on `shutdown`), so
the nodes stop the workers of an engine that vanished without shutting down.
With ``coordinator_key`` every entry it puts on a node's queue is signed; nodes
that check signatures act only on entries signed by a coordinator of their
pinned deployment (`secureflow.compute.worker.trust`). With ``party_addresses`` (each party's member
address, from the job's manifest) it takes a party's replies (its ports, its worker's answers, its exit)
only when signed by that member's key, so nobody else who can write Redis can answer for a party (e.g.
point the other parties' links at a host of its choice).
The party folders (data, models, secrets) then live on the members' hosts, not
under ``root``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from secureflow.compute.errors import ComputeError, WorkerError, WorkerTimeoutError
from secureflow.compute.joblogs import DEFAULT_RETENTION_DAYS, PRUNE_INTERVAL_S, job_log_path, prune
from secureflow.compute.worker.link import (
    DEFAULT_PREFIX,
    Link,
    LocalLink,
    RedisLink,
    RedisSession,
    wait_links,
)
from secureflow.compute.worker.protocol import PartyPorts, WorkerSettings, protocol_of, spu_profiles_for

MAX_PARTIES = 8
"""The most parties one job (and so one engine) has: SEMI2K runs any number; 8 is what is supported."""

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free TCP ports on ``host`` (held open together so they differ)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind((host, 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def spawn_worker(
    party: str,
    pdir: Path,
    table: dict[str, PartyPorts],
    *,
    log_level: str,
    spu_profiles: dict[str, dict[str, Any]],
    scratch: Path | None = None,
    require_consent: bool = False,
) -> LocalLink:
    """Start ``party``'s worker process (`compute.worker.main`) in ``pdir`` with the cluster ``table``.

    ``scratch`` (a node's session folder): the worker's tmp/, work/, settings file and log go there
    instead of ``pdir``, so several workers of one party (concurrent jobs) never share them.
    ``require_consent`` (a checking node's worker): job requests only for a job it consented to itself."""
    parent_sock, child_sock = socket.socketpair()
    settings_path = write_worker_settings(
        party,
        pdir,
        table,
        fd=child_sock.fileno(),
        log_level=log_level,
        spu_profiles=spu_profiles,
        scratch=scratch,
        require_consent=require_consent,
    )
    home = scratch or pdir
    env = dict(os.environ)
    env["TMPDIR"] = str(home / "tmp")
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(home / "logs" / "worker.log", "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv: our own executable and module, no shell
            [sys.executable, "-m", "secureflow.compute.worker.main", str(settings_path)],
            pass_fds=(child_sock.fileno(),),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(home / "work"),
            env=env,
        )
    child_sock.close()
    return LocalLink(party, proc, Connection(parent_sock.detach()))


def write_worker_settings(
    party: str,
    pdir: Path,
    table: dict[str, PartyPorts],
    *,
    fd: int,
    log_level: str,
    spu_profiles: dict[str, dict[str, Any]],
    scratch: Path | None = None,
    require_consent: bool = False,
) -> Path:
    """Make the party's folders (and the session's, ``scratch``) and write the worker's settings file;
    returns its path."""
    for sub in ("data", "models", "logs", "secrets"):
        (pdir / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(pdir / "secrets", 0o700)
    home = scratch or pdir
    for sub in ("tmp", "work", "logs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    settings = WorkerSettings(
        party=party,
        parties=table,
        party_dir=str(pdir),
        scratch_dir=None if scratch is None else str(scratch),
        fd=fd,
        coordinator_pid=os.getpid(),
        log_level=log_level,
        spu_profiles=spu_profiles,
        require_consent=require_consent,
    )
    settings_path = home / "worker.json"
    settings_path.write_text(settings.model_dump_json())
    return settings_path


@dataclass
class WorkerHandle:
    party: str
    party_dir: Path
    link: Link
    address: str = ""
    pid: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.link.alive()

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The local worker process (local mode only)."""
        if not isinstance(self.link, LocalLink):
            raise ComputeError(f"party {self.party!r} runs on its node's host, not here")
        return self.link.proc


class Engine:
    """One warm SecretFlow party worker per party, and the request plumbing to reach them."""

    def __init__(
        self,
        parties: Sequence[str],
        root: str | Path,
        *,
        start_timeout: float = 300.0,
        step_timeout: float = 3600.0,
        log_level: str = "warning",
        spu_profiles: Mapping[str, Mapping[str, Any]] | None = None,
        spu_protocol: str = "SEMI2K",
        launcher: Literal["local", "distributed"] = "local",
        redis_url: str | None = None,
        redis_prefix: str = DEFAULT_PREFIX,
        node_timeout: float = 5.0,
        coordinator_key: str | None = None,
        party_addresses: Mapping[str, str] | None = None,
        log_retention_days: float = DEFAULT_RETENTION_DAYS,
        require_tls: bool = False,
    ) -> None:
        if not 2 <= len(set(parties)) == len(parties) <= MAX_PARTIES:
            raise ComputeError(
                f"the engine runs 2 to {MAX_PARTIES} distinct parties, not {list(parties)}",
                hint="name each party once",
            )
        if launcher not in ("local", "distributed"):
            raise ComputeError(f"unknown launcher {launcher!r}", hint="use 'local' or 'distributed'")
        if launcher == "distributed" and not redis_url:
            raise ComputeError(
                "the distributed launcher needs the job queue's Redis URL",
                hint="pass redis_url= (SECUREFLOW_COMPUTE_REDIS_URL), e.g. redis://127.0.0.1:6379/0",
            )
        self.launcher = launcher
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self.node_timeout = node_timeout
        self.coordinator_key = coordinator_key
        """Distributed mode: the key that signs every entry on the nodes' queues (a coordinator's)."""
        self.party_addresses = None if party_addresses is None else dict(party_addresses)
        """Distributed mode: party -> member address; each node's replies must be signed by that key."""
        self.require_tls = require_tls
        """Distributed mode: refuse to start unless every party's node runs its links over TLS."""
        self.tls_fingerprints: dict[str, str] = {}
        """Distributed mode: each party's TLS certificate fingerprint, from its node's signed ports reply."""
        self.session: RedisSession | None = None
        self.parties = tuple(parties)
        self.root = Path(root).resolve()  # workers run with their own cwd: paths must be absolute
        self.start_timeout = start_timeout
        self.step_timeout = step_timeout
        self.log_level = log_level
        try:
            profiles = spu_profiles_for(spu_protocol) if spu_profiles is None else spu_profiles
        except ValueError as exc:
            raise ComputeError(str(exc), hint="pass spu_protocol='SEMI2K' or 'ABY3'") from None
        self.spu_profiles = {k: dict(v) for k, v in profiles.items()}
        protocol = protocol_of(self.spu_profiles)
        self.spu_protocol = protocol or spu_protocol
        """The SPU protocol of the jobs this engine runs (a job's manifest must name it)."""
        if spu_protocol == "ABY3" and len(parties) != 3:
            raise ComputeError(
                f"the SPU protocol ABY3 runs exactly three parties, not {len(parties)}",
                hint="use spu_protocol='SEMI2K' (any number of parties)",
            )
        self.workers: dict[str, WorkerHandle] = {}
        self.log_retention_days = log_retention_days
        """Local mode: the parties' job logs older than this are removed when the workers start (and at
        most hourly before a job, `ensure_healthy`)."""
        self._pruned = time.monotonic()
        # once one party has failed a step, how long the others may still take before they count as stuck
        self.failure_grace = 30.0
        self.healthy = False
        self.starts = 0
        self.last_start_s = 0.0

    # -- paths ---------------------------------------------------------------------------------------
    def party_dir(self, party: str) -> Path:
        if self.launcher == "distributed":
            raise ComputeError(
                f"party {party!r}'s folder is on its node's host",
                hint="read and write a member's files on that member's host (`secureflow node --data-dir`)",
            )
        return self.root / party

    def data_dir(self, party: str) -> Path:
        return self.party_dir(party) / "data"

    def models_dir(self, party: str) -> Path:
        return self.party_dir(party) / "models"

    def log_path(self, party: str) -> Path:
        return self.party_dir(party) / "logs" / "worker.log"

    def job_log_path(self, party: str, job_id: str) -> Path:
        """``party``'s scrubbed log of job ``job_id`` (`secureflow.compute.joblogs`; local mode)."""
        return job_log_path(self.party_dir(party), job_id)

    @property
    def addresses(self) -> dict[str, str]:
        return {p: w.address for p, w in self.workers.items()}

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn every party worker and wait until SecretFlow and SPU are initialised in all of them."""
        if self.workers:
            raise ComputeError("engine already started", hint="call shutdown() or ensure_healthy()")
        t0 = time.monotonic()
        if self.launcher == "distributed":
            try:
                self._start_nodes()
                self._await_ready()
                assert self.session is not None  # noqa: S101 - set by _start_nodes
                self.session.members = {p: w.address for p, w in self.workers.items()}
            except BaseException:
                self._kill_all()
                raise
            self.healthy = True
            self.starts += 1
            self.last_start_s = time.monotonic() - t0
            return
        ports = free_ports(len(self.parties) * (1 + len(self.spu_profiles)))
        it = iter(ports)
        table = {
            p: PartyPorts(fed=next(it), spu={prof: next(it) for prof in self.spu_profiles})
            for p in self.parties
        }
        self.prune_logs()
        try:
            for party in self.parties:
                self.workers[party] = self._spawn(party, table)
            self._await_ready()
        except BaseException:
            self._kill_all()
            raise
        self.healthy = True
        self.starts += 1
        self.last_start_s = time.monotonic() - t0

    def prune_logs(self) -> int:
        """Local mode: remove the parties' job logs older than ``log_retention_days`` (returns how many)."""
        self._pruned = time.monotonic()
        return sum(prune(self.party_dir(p), self.log_retention_days) for p in self.parties)

    def _spawn(self, party: str, table: dict[str, PartyPorts]) -> WorkerHandle:
        pdir = self.party_dir(party)
        link = spawn_worker(party, pdir, table, log_level=self.log_level, spu_profiles=self.spu_profiles)
        return WorkerHandle(party=party, party_dir=pdir, link=link)

    def _start_nodes(self) -> None:
        """Distributed start: each node reports free ports, gets the cluster table, starts its worker."""
        import redis

        assert self.redis_url is not None  # noqa: S101 - invariant for the type checker, not input validation
        client = redis.Redis.from_url(self.redis_url, socket_timeout=30.0)
        hub = RedisSession(
            client,
            self.parties,
            prefix=self.redis_prefix,
            node_timeout=self.node_timeout,
            expires_s=self.start_timeout,
            signer=self.coordinator_key,
            party_addresses=self.party_addresses,
        )
        self.session = hub
        self._await_nodes(hub)
        hub.open()  # the engine's heartbeat: nodes serve this session only while it is fresh
        for party in self.parties:
            self.workers[party] = WorkerHandle(party=party, party_dir=Path(), link=RedisLink(hub, party))
            hub.push(party, "start", log_level=self.log_level, spu_profiles=self.spu_profiles)
        table: dict[str, PartyPorts] = {}
        deadline = time.monotonic() + self.start_timeout
        while len(table) < len(self.parties):
            missing = set(self.parties) - set(table)
            try:
                msgs = self._collect(missing, deadline, what="node start")
            except WorkerError as exc:
                raise type(exc)(
                    f"no answer from the node(s) of {', '.join(sorted(missing))}: {exc}",
                    hint=f"run `secureflow node --party NAME --redis-url ... --prefix {self.redis_prefix}` "
                    "on each member's host, against the same Redis",
                ) from None
            for party, msg in msgs.items():
                if msg.get("op") == "failed":
                    raise WorkerError(f"party {party!r}'s node refused the session: {msg.get('message')}")
                if msg.get("op") != "ports":
                    raise WorkerError(f"party {party!r}'s node answered {msg.get('op')!r} to start")
                tls = msg.get("tls")
                cert = str(tls["cert"]) if isinstance(tls, dict) else None
                table[party] = PartyPorts(host=str(msg["host"]), tls_cert=cert, **msg["ports"])
        with_tls = sorted(p for p in self.parties if table[p].tls_cert is not None)
        if (with_tls and len(with_tls) < len(self.parties)) or (self.require_tls and not with_tls):
            without = sorted(set(self.parties) - set(with_tls))
            raise WorkerError(
                f"the node(s) of {', '.join(without)} run their links without TLS"
                + (f", those of {', '.join(with_tls)} with TLS" if with_tls else ""),
                hint="run every member's `secureflow node` with TLS (its default; drop --no-tls)",
            )
        self.tls_fingerprints = {p: str(hub.port_proofs[p]["tls"]["fingerprint"]) for p in with_tls}
        ordered = {p: table[p].model_dump() for p in self.parties}
        proofs = {p: hub.port_proofs[p] for p in with_tls}
        for party in self.parties:
            if proofs:
                hub.push(party, "table", parties=ordered, proofs=proofs)
            else:
                hub.push(party, "table", parties=ordered)

    def _await_nodes(self, hub: RedisSession) -> None:
        """Every party's node must beat (be running and reading its queue) within ``node_timeout``."""
        deadline = time.monotonic() + self.node_timeout
        while True:
            missing = [p for p in self.parties if not hub.node_up(p)]
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise WorkerError(
                    f"the node(s) of {', '.join(missing)} are not running (no heartbeat under "
                    f"{self.redis_prefix}:node:<party>:alive for {self.node_timeout:.0f} s)",
                    hint=f"start `secureflow node --party NAME --redis-url ... --prefix {self.redis_prefix}` "
                    "on each member's host, against the same Redis",
                )
            time.sleep(0.2)

    def _await_ready(self) -> None:
        pending = {p: {"hello", "ready"} for p in self.parties}
        deadline = time.monotonic() + self.start_timeout
        while any(pending.values()):
            msgs = self._collect({p for p, v in pending.items() if v}, deadline, what="start")
            for party, msg in msgs.items():
                w = self.workers[party]
                op = msg.get("op")
                if op == "hello":
                    w.address, w.pid = msg["address"], msg["pid"]
                elif op == "ready":
                    w.timings = dict(msg["timings"])
                elif op == "failed":
                    raise WorkerError(f"party {party!r} worker failed to start: {msg.get('message')}")
                pending[party].discard(op)

    def ensure_healthy(self) -> None:
        """Start the workers, or restart all of them if one died or a step left them unusable."""
        if self.workers and self.healthy and all(w.alive() for w in self.workers.values()):
            if self.launcher == "local" and time.monotonic() - self._pruned > PRUNE_INTERVAL_S:
                self.prune_logs()  # a long-running stack: before a job, at most hourly
            return
        self.shutdown()
        self.start()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every worker (polite request, then SIGTERM/SIGKILL to its process group)."""
        for w in self.workers.values():
            if w.alive():
                with suppress(OSError, WorkerError):
                    w.link.send({"op": "shutdown"})
        deadline = time.monotonic() + timeout
        for w in self.workers.values():
            remaining = max(0.1, deadline - time.monotonic())
            w.link.wait_exit(remaining)
        self._kill_all()

    def _kill_all(self) -> None:
        for w in self.workers.values():
            w.link.kill()
            w.link.close()
        self.workers.clear()
        if self.session is not None:
            self.session.close()
            self.session = None
        self.healthy = False

    def __enter__(self) -> Engine:
        self.ensure_healthy()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    # -- requests ------------------------------------------------------------------------------------
    def _collect(
        self, parties: set[str], deadline: float, *, what: str, failure_grace: float | None = None
    ) -> dict[str, dict[str, Any]]:
        """One message from each of ``parties``; WorkerError on death, WorkerTimeoutError at the deadline.

        With ``failure_grace``, once one party has answered ``ok: False`` the others get only that
        many more seconds (a party that failed alone leaves its peers waiting inside SecretFlow).
        """
        out: dict[str, dict[str, Any]] = {}
        by_link: dict[Link, str] = {self.workers[p].link: p for p in parties}
        while by_link:
            now = time.monotonic()
            if now >= deadline:
                self.healthy = False
                exc = WorkerTimeoutError(
                    f"party worker(s) {', '.join(sorted(by_link.values()))} did not answer {what} in time"
                )
                exc.replies = dict(out)
                raise exc
            ready = wait_links(list(by_link), timeout=min(1.0, deadline - now))
            for link in ready:
                party = by_link[link]
                try:
                    out[party] = link.recv()
                    if failure_grace is not None and out[party].get("ok") is False:
                        deadline = min(deadline, time.monotonic() + failure_grace)
                except (EOFError, OSError):
                    self.healthy = False
                    code = link.exit_code()
                    raise WorkerError(
                        f"party {party!r} worker died during {what} (exit code {code})"
                    ) from None
                del by_link[link]
            for party in list(by_link.values()):
                if not self.workers[party].alive():
                    self.healthy = False
                    code = self.workers[party].link.exit_code()
                    raise WorkerError(f"party {party!r} worker died during {what} (exit code {code})")
        return out

    def broadcast(
        self,
        messages: Mapping[str, Mapping[str, Any]],
        *,
        timeout: float | None = None,
        what: str = "request",
        failure_grace: float | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Send each party its message, then wait for every reply (SPMD: all parties run together)."""
        if not self.workers:
            raise WorkerError("the engine is not started", hint="call Engine.start() or use it as a context")
        for party, msg in messages.items():
            try:
                self.workers[party].link.send(dict(msg))
            except (OSError, EOFError):
                self.healthy = False
                raise WorkerError(f"party {party!r} worker is gone") from None
        deadline = time.monotonic() + (self.step_timeout if timeout is None else timeout)
        return self._collect(set(messages), deadline, what=what, failure_grace=failure_grace)

    def all(
        self,
        msg: Mapping[str, Any],
        *,
        timeout: float | None = None,
        what: str = "request",
        failure_grace: float | None = None,
    ) -> dict[str, Any]:
        return self.broadcast(
            {p: msg for p in self.parties}, timeout=timeout, what=what, failure_grace=failure_grace
        )

    def ping(self, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
        return self.all({"op": "ping"}, timeout=timeout, what="ping")

    def list_models(self, party: str) -> list[dict[str, Any]]:
        reply = self.broadcast({party: {"op": "list_models"}}, timeout=30.0, what="list_models")[party]
        models: list[dict[str, Any]] = reply.get("models", [])
        return models

    def rss_bytes(self) -> dict[str, int]:
        """Current and peak resident memory of each worker (from /proc), in bytes."""
        out = {}
        for party, w in self.workers.items():
            if not isinstance(w.link, LocalLink):
                continue  # a node's worker runs on its member's host
            try:
                status = Path(f"/proc/{w.link.proc.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    out[f"{party}.peak"] = int(line.split()[1]) * 1024
                elif line.startswith("VmRSS:"):
                    out[party] = int(line.split()[1]) * 1024
        return out
