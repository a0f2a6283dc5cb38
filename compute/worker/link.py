"""How the engine reaches one party worker: a `Link` (send, recv, wait, alive, kill, close).

Two transports, one engine:

* `LocalLink` (``launcher="local"``): the worker is a child process on this
  host; messages go over the inherited Unix socket pair
  (`multiprocessing.connection.Connection`), exactly as before the seam.
* `RedisLink` (``launcher="distributed"``): the worker runs under
  ``secureflow node`` on the member's own host (`secureflow.compute.worker.node`); the
  node relays between the worker's socket and Redis lists.

Redis layout (``prefix`` defaults to ``secureflow``), one *session* per
`Engine.start` (a fresh random id):

* ``<prefix>:party:<party>:in`` - the party's inbound queue; only that party's
  node reads it. Entries are JSON ``{"session", "exp", "party", "ctr", "op":
  "start" | "table" | "msg" | "stop", ..., "sig"}``; a node drops entries of a
  session it is not in and entries past ``exp`` (unix seconds), so a dead
  engine's leftovers are never run. With a coordinator key the engine signs
  each entry (`secureflow.ledger.queue_signing`: session, op, payload, expiry,
  target ``party`` and the session's increasing counter ``ctr``); a node that
  checks signatures (`secureflow.compute.worker.trust`) drops an unsigned one,
  one signed by a non-coordinator, one for another party and a replay. Once
  the workers said hello, entries also carry ``members`` (party name -> member
  address), which a node compares with the job's on-chain parties.
  The same queue also carries job log requests, which belong to no session: ``{"op": "logs", "request",
  "party", "job_id", "after", "exp", "sig"}``, signed under their own domain by a log reader the node's
  policy lists (`secureflow.compute.joblogs`, `secureflow.compute.worker.node`).
* ``<prefix>:logs:<party>:<request>:out`` - a party's node's answer to one log request (its lines of that
  job, signed by its member key; gone a minute after it was written).
* ``<prefix>:coord:<session>:out`` - what the nodes send back (JSON
  ``{"session", "party", "op": "ports" | "msg" | "exit", ...}``).
* ``<prefix>:coord:<session>:hb:<party>`` - the node's heartbeat, a key
  rewritten every second with a short TTL: when it vanishes the node (or its
  host) is gone, and the engine raises `WorkerError`.
* ``<prefix>:node:<party>:alive`` - the node's own heartbeat (JSON: host, sessions, max
  sessions), rewritten every second with a short TTL: the node is up and reads its queue.
  An engine starts a session only on parties whose node beats.
* ``<prefix>:coord:<session>:alive`` - the engine's heartbeat, rewritten every
  second with the same short TTL from a daemon thread while the session is
  open (`RedisSession.open`): when it vanishes the engine is gone, and the
  node stops that session's worker and drops the session's unread starts.

Messages are JSON (never pickle over the network); they carry names,
metadata, digests and signatures, never a party's cells, salt or key.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import suppress
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Protocol

from secureflow.compute.errors import WorkerError

if TYPE_CHECKING:  # redis is imported only in distributed mode
    import redis

log = logging.getLogger("compute.link")

DEFAULT_PREFIX = "secureflow"
HEARTBEAT_S = 1.0  # node and engine heartbeats are rewritten this often...
HEARTBEAT_TTL_S = 5.0  # ...and lapse this long after the last beat
OUT_TTL_S = 24 * 3600  # an engine that vanished leaves nothing behind for longer than this


def inbound_key(prefix: str, party: str) -> str:
    return f"{prefix}:party:{party}:in"


def outbound_key(prefix: str, session: str) -> str:
    return f"{prefix}:coord:{session}:out"


def heartbeat_key(prefix: str, session: str, party: str) -> str:
    return f"{prefix}:coord:{session}:hb:{party}"


def engine_alive_key(prefix: str, session: str) -> str:
    return f"{prefix}:coord:{session}:alive"


def node_alive_key(prefix: str, party: str) -> str:
    """A node's own heartbeat (whether or not it runs a session): it is up and reads its queue."""
    return f"{prefix}:node:{party}:alive"


def node_beat(client: redis.Redis, prefix: str, party: str) -> dict[str, Any] | None:
    """A node's last heartbeat (`node_alive_key`: host, sessions, max_sessions, warm, ts), None while it
    does not beat or the value cannot be read."""
    raw = client.get(node_alive_key(prefix, party))
    if raw is None:
        return None
    return decode(raw)


def node_warm(client: redis.Redis, prefix: str, party: str) -> bool:
    """Whether ``party``'s node beats with its spare worker warm (a job's worker starts without an import)."""
    beat = node_beat(client, prefix, party)
    return beat is not None and bool(beat.get("warm"))


def encode(message: dict[str, Any]) -> bytes:
    try:
        return json.dumps(message, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise WorkerError(
            f"a message for a remote party cannot be sent as JSON ({exc})",
            hint="send only JSON values (str, numbers, lists, dicts) to party workers",
        ) from None


def decode(raw: bytes | str) -> dict[str, Any] | None:
    """The JSON object in ``raw``, or None when it is not one (logged by the caller, never run)."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


class Link(Protocol):
    party: str

    def send(self, msg: dict[str, Any]) -> None: ...
    def recv(self) -> dict[str, Any]: ...
    def alive(self) -> bool: ...
    def exit_code(self) -> int | None: ...
    def wait_exit(self, timeout: float) -> None: ...
    def kill(self) -> None: ...
    def close(self) -> None: ...


class LocalLink:
    """A worker child process on this host and its end of the socket pair."""

    def __init__(self, party: str, proc: subprocess.Popen[bytes], conn: Connection) -> None:
        self.party, self.proc, self.conn = party, proc, conn

    def send(self, msg: dict[str, Any]) -> None:
        self.conn.send(msg)

    def recv(self) -> dict[str, Any]:
        msg: dict[str, Any] = self.conn.recv()
        return msg

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def wait_exit(self, timeout: float) -> None:
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGTERM, then SIGKILL, to the worker's process group (its children included)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.proc.wait(3.0)
                # the group may still hold children of the worker: kill the group anyway
                os.killpg(self.proc.pid, signal.SIGKILL)
            except subprocess.TimeoutExpired:
                continue
            except (ProcessLookupError, PermissionError):
                pass
            break
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(5.0)

    def close(self) -> None:
        self.conn.close()


class RedisSession:
    """The engine's side of one distributed session: pushes to the parties' queues, demultiplexes replies."""

    def __init__(
        self,
        client: redis.Redis,
        parties: Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        node_timeout: float = 5.0,
        expires_s: float = 300.0,
        signer: str | None = None,
        party_addresses: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.signer = signer
        """The coordinator's private key (0x + 64 hex) that signs every entry; None: entries are unsigned."""
        self.party_addresses = (
            None if party_addresses is None else {p: a.lower() for p, a in party_addresses.items()}
        )
        """Party name -> member address: each party's replies must be signed by that member's key (its
        node's), in increasing counter order; None: replies are taken unsigned (a node trusting Redis)."""
        self._reply_ctr: dict[str, int] = {}
        self.dropped_replies = 0
        self.port_proofs: dict[str, dict[str, Any]] = {}
        """Each party's ports reply as its node signed it (with its TLS certificate): sent to every node
        with the table, so each checks its peers' certificates against their member signatures itself."""
        self.node_nonces: dict[str, str] = {}
        """Each party's node's number for this session (from its ports reply), sent with every later entry."""
        self.members: dict[str, str] = {}
        """Party name -> member address, as the workers reported it (sent with every entry once known)."""
        self._ctr = 0
        self._ctr_lock = threading.Lock()
        self.prefix = prefix
        self.session = uuid.uuid4().hex
        self.parties = tuple(parties)
        self.node_timeout = node_timeout
        self.expires_s = expires_s
        self.out_key = outbound_key(prefix, self.session)
        self.buffers: dict[str, deque[dict[str, Any]]] = {p: deque() for p in parties}
        self.exited: dict[str, int | None] = {}
        self.started = time.monotonic()
        self.alive_key = engine_alive_key(prefix, self.session)
        self._beat_stop = threading.Event()
        self._beat_thread: threading.Thread | None = None

    # -- the engine's heartbeat ----------------------------------------------------------------------
    def _set_alive(self) -> None:
        value = json.dumps({"ts": time.time()})
        self.client.set(self.alive_key, value, px=int(HEARTBEAT_TTL_S * 1000))

    def _beat(self) -> None:
        import redis

        while not self._beat_stop.wait(HEARTBEAT_S):
            try:
                self._set_alive()
            except redis.RedisError as exc:
                log.warning("engine heartbeat failed (%s); retrying", type(exc).__name__)

    def open(self) -> None:
        """Write the engine's heartbeat now and keep rewriting it from a daemon thread until `close`.

        Call before the first `push`: a node starts (and keeps) a session's worker only while this
        heartbeat is fresh.
        """
        import redis

        try:
            self._set_alive()
        except redis.RedisError as exc:
            raise WorkerError(
                f"cannot reach the job queue to open a session ({type(exc).__name__})",
                hint="check that Redis is running and SECUREFLOW_COMPUTE_REDIS_URL points at it",
            ) from None
        self._beat_thread = threading.Thread(
            target=self._beat, name=f"secureflow-engine-heartbeat-{self.session[:8]}", daemon=True
        )
        self._beat_thread.start()

    def push(self, party: str, op: str, **fields: Any) -> None:
        import redis

        with self._ctr_lock:
            self._ctr += 1
            entry: dict[str, Any] = {
                "session": self.session,
                "op": op,
                "exp": time.time() + self.expires_s,
                "party": party,
                "ctr": self._ctr,
                **fields,
            }
        if self.members:
            entry["members"] = dict(self.members)
        if party in self.node_nonces:
            entry["node_nonce"] = self.node_nonces[party]
        if self.signer is not None:
            from secureflow.ledger.errors import LedgerError
            from secureflow.ledger.queue_signing import sign_entry

            try:
                entry = sign_entry(entry, self.signer)
            except LedgerError as exc:
                raise WorkerError(str(exc)) from None
        try:
            self.client.rpush(inbound_key(self.prefix, party), encode(entry))
        except redis.RedisError as exc:
            raise WorkerError(
                f"cannot reach the job queue to send party {party!r} its work ({type(exc).__name__})",
                hint="check that Redis is running and SECUREFLOW_COMPUTE_REDIS_URL points at it",
            ) from None

    def _take(self, raw: bytes | str) -> None:
        entry = decode(raw)
        if entry is None or entry.get("session") != self.session or entry.get("party") not in self.buffers:
            return  # not ours (a stale session or garbage): dropped, never delivered
        party = str(entry["party"])
        if self.party_addresses is not None and not self._from_node(party, entry):
            return
        op = entry.get("op")
        if op == "msg" and isinstance(entry.get("msg"), dict):
            self.buffers[party].append(entry["msg"])
        elif op == "ports":
            tls = entry.get("tls")
            if tls is not None and not _consistent_tls(tls):
                self.dropped_replies += 1
                log.warning(
                    "session %s: dropped a ports reply of party %s: its certificate does not match its "
                    "fingerprint",
                    self.session[:8],
                    party,
                )
                return
            if isinstance(entry.get("nonce"), str):
                self.node_nonces[party] = str(entry["nonce"])
            self.port_proofs[party] = entry
            self.buffers[party].append(
                {"op": "ports", "host": entry.get("host"), "ports": entry.get("ports"), "tls": tls}
            )
        elif op == "exit":
            code = entry.get("code")
            self.exited[party] = code if isinstance(code, int) else None

    def _from_node(self, party: str, entry: dict[str, Any]) -> bool:
        """Whether ``entry`` is ``party``'s node's own reply, new in this session (else dropped, logged
        without its content): signed by the party's member key under the reply domain, with a counter
        above the last one taken (no replay of a signed reply, no reordering)."""
        from secureflow.ledger.queue_signing import REPLY_DOMAIN, entry_signer

        assert self.party_addresses is not None  # noqa: S101 - invariant for the type checker, not input validation
        expected = self.party_addresses.get(party)
        ctr = entry.get("ctr")
        why = None
        if expected is None or entry_signer(entry, REPLY_DOMAIN) != expected:
            why = "not signed by the party's member key"
        elif not isinstance(ctr, int) or isinstance(ctr, bool) or ctr <= self._reply_ctr.get(party, 0):
            why = "a counter already taken (a replay)"
        if why is not None:
            self.dropped_replies += 1
            log.warning("session %s: dropped a reply claiming party %s: %s", self.session[:8], party, why)
            return False
        self._reply_ctr[party] = int(ctr) if isinstance(ctr, int) else 0
        return True

    def pump(self, timeout: float) -> None:
        """Move what the nodes sent into the per-party buffers, blocking up to ``timeout`` for the first."""
        import redis

        try:
            if timeout > 0:
                got = self.client.blpop([self.out_key], timeout=max(0.01, timeout))
                if got is None:
                    return
                self._take(got[1])
            while isinstance(raw := self.client.lpop(self.out_key), bytes | str):
                self._take(raw)
        except redis.RedisError as exc:
            raise WorkerError(
                f"lost the job queue while waiting for the party nodes ({type(exc).__name__})",
                hint="check that Redis is running and reachable from the API host",
            ) from None

    def wait(self, parties: Sequence[str], timeout: float) -> list[str]:
        """The parties among ``parties`` with a buffered message, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            ready = [p for p in parties if self.buffers[p]]
            now = time.monotonic()
            if ready or now >= deadline:
                return ready
            self.pump(min(1.0, deadline - now))
            if any(p in self.exited for p in parties):
                return [p for p in parties if self.buffers[p]]

    def node_up(self, party: str) -> bool:
        """Whether ``party``'s node beats (it is running and reads its queue)."""
        import redis

        try:
            return bool(self.client.exists(node_alive_key(self.prefix, party)))
        except redis.RedisError:
            return False

    def heartbeat(self, party: str) -> dict[str, Any] | None:
        import redis

        try:
            raw = self.client.get(heartbeat_key(self.prefix, self.session, party))
        except redis.RedisError:
            return None
        return None if raw is None else decode(raw)

    def close(self) -> None:
        """Stop the heartbeat (the nodes then drop this session) and delete the session's keys."""
        import redis

        self._beat_stop.set()
        if self._beat_thread is not None:
            self._beat_thread.join(HEARTBEAT_TTL_S)
            self._beat_thread = None
        with suppress(redis.RedisError):
            self.client.delete(self.out_key, self.alive_key)


def _consistent_tls(tls: Any) -> bool:
    """Whether a ports reply's ``tls`` is a certificate with its own SHA-256 fingerprint."""
    from secureflow.compute.worker.tls import TlsError, fingerprint

    if not isinstance(tls, dict) or not isinstance(tls.get("cert"), str):
        return False
    try:
        return fingerprint(tls["cert"]) == tls.get("fingerprint")
    except TlsError:
        return False


class RedisLink:
    """One party's worker behind its ``secureflow node``, reached through `RedisSession`."""

    def __init__(self, hub: RedisSession, party: str) -> None:
        self.hub, self.party = hub, party
        self.closed = False

    def send(self, msg: dict[str, Any]) -> None:
        if not self.alive():
            raise OSError(f"the node of party {self.party!r} is gone")
        self.hub.push(self.party, "msg", msg=msg)

    def recv(self) -> dict[str, Any]:
        buf = self.hub.buffers[self.party]
        if not buf:
            self.hub.pump(0.0)
        if buf:
            return buf.popleft()
        raise EOFError(f"no message from party {self.party!r}")

    def alive(self) -> bool:
        if self.closed or self.party in self.hub.exited:
            return False
        hb = self.hub.heartbeat(self.party)
        if hb is None:
            # no session heartbeat yet: a node that beats takes the start message within a second
            if self.hub.exited:
                return False
            return time.monotonic() - self.hub.started < self.hub.node_timeout or self.hub.node_up(self.party)
        return hb.get("worker") != "exited"

    def exit_code(self) -> int | None:
        if self.party in self.hub.exited:
            return self.hub.exited[self.party]
        hb = self.hub.heartbeat(self.party)
        code = None if hb is None else hb.get("code")
        return code if isinstance(code, int) else None

    def wait_exit(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            self.hub.pump(min(0.5, max(0.01, deadline - time.monotonic())))

    def kill(self) -> None:
        if not self.closed:
            with suppress(WorkerError):
                self.hub.push(self.party, "stop")

    def close(self) -> None:
        self.closed = True


def wait_links(links: Sequence[Link], timeout: float) -> list[Link]:
    """The links among ``links`` with a message to read (or EOF), waiting up to ``timeout`` seconds."""
    if all(isinstance(link, LocalLink) for link in links):
        by_conn = {link.conn: link for link in links if isinstance(link, LocalLink)}
        return [by_conn[c] for c in wait(list(by_conn), timeout=timeout) if isinstance(c, Connection)]
    remote = [link for link in links if isinstance(link, RedisLink)]
    if len(remote) != len(links) or len({id(link.hub) for link in remote}) != 1:
        raise WorkerError("links of one request must share one transport and session")
    by_party = {link.party: link for link in remote}
    ready = remote[0].hub.wait(list(by_party), timeout)
    if not ready:  # a node reported its worker's exit: let the caller read the EOF
        ready = [p for p in by_party if p in remote[0].hub.exited]
    return [by_party[p] for p in ready]
