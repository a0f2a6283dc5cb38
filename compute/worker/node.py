"""``secureflow node``: one member's long-lived node, next to its data, taking work from its own queue.

The node reads only ``<prefix>:party:<party>:in`` (see `secureflow.compute.worker.link`
for the Redis layout). For each engine session it:

1. on ``start``: drops it if the session's engine heartbeat is already gone;
   else stops any worker of an older session, picks free ports on this host
   and reports them with ``--host`` (``ports``);
2. on ``table`` (every party's host and ports, assembled by the engine):
   spawns the party worker (`secureflow.compute.worker.main`, the same process as in
   local mode) in the party folder with that table, and relays the worker's
   replies (hello, ready, step results) to the session's outbound list;
3. on ``msg``: forwards the request to the worker (SPMD steps, sign, ...);
4. on ``stop``: stops the worker;
5. when the session's engine heartbeat (``<prefix>:coord:<session>:alive``)
   lapses (checked every second): stops the worker as on ``stop``, logs why,
   and waits for a new session.

The worker stays warm across jobs of a session. Every second the node rewrites
its heartbeat key (short TTL), so the engine notices a dead node or host; when
the worker exits the node reports ``exit`` with its code. Entries of another
session, or past their expiry, are dropped unread. SIGTERM/Ctrl-C stops the
worker and the node. The member key and salt stay in ``<data-dir>/secrets``;
nothing but names, metadata, digests and signatures goes through Redis.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from contextlib import suppress
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from secureflow.compute.errors import ComputeError
from secureflow.compute.worker.engine import free_ports, spawn_worker
from secureflow.compute.worker.link import (
    DEFAULT_PREFIX,
    HEARTBEAT_S,
    HEARTBEAT_TTL_S,
    OUT_TTL_S,
    LocalLink,
    decode,
    encode,
    engine_alive_key,
    heartbeat_key,
    inbound_key,
    outbound_key,
)
from secureflow.compute.worker.node_metrics import NodeMetrics
from secureflow.compute.worker.protocol import PartyPorts
from secureflow.ledger.metrics_server import MetricsServer, serve_metrics

log = logging.getLogger("compute.node")

LOOPBACK = ("127.0.0.1", "localhost")


class Node:
    """The relay between this party's Redis queue and its local party worker."""

    def __init__(
        self,
        party: str,
        party_dir: str | Path,
        redis_url: str,
        *,
        host: str = "127.0.0.1",
        prefix: str = DEFAULT_PREFIX,
        heartbeat_ttl: float = HEARTBEAT_TTL_S,
    ) -> None:
        if not party or ":" in party:
            raise ComputeError(f"invalid party name {party!r}", hint="use the party's name from the manifest")
        self.party = party
        self.party_dir = Path(party_dir).resolve()
        self.host = host
        self.prefix = prefix
        self.heartbeat_ttl = heartbeat_ttl
        self.client = redis.Redis.from_url(redis_url, socket_timeout=30.0)
        self.in_key = inbound_key(prefix, party)
        self.session: str | None = None
        self.link: LocalLink | None = None
        self.relay: threading.Thread | None = None
        self.state = "idle"  # idle | starting | running | exited
        self.exit_code: int | None = None
        self.log_level = "warning"
        self.spu_profiles: dict[str, dict[str, Any]] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._engine_checked = 0.0  # monotonic time of the last engine-heartbeat check
        self.metrics = NodeMetrics(party, lambda: (self.state, self.session))
        self.queue_ok = False
        """Whether the last read of the queue succeeded (readiness)."""

    # -- outbound ------------------------------------------------------------------------------------
    def _push(self, session: str, op: str, **fields: Any) -> None:
        key = outbound_key(self.prefix, session)
        entry = {"session": session, "party": self.party, "op": op, **fields}
        pipe = self.client.pipeline()
        pipe.rpush(key, encode(entry))
        pipe.expire(key, OUT_TTL_S)
        pipe.execute()

    def _beat(self) -> None:
        self.metrics.tick()
        while not self.stopping.wait(HEARTBEAT_S):
            self.metrics.tick()
            # under the lock, so a session that `check_engine` just dropped is not beaten again
            with self._lock:
                session, state, code = self.session, self.state, self.exit_code
                if session is None:
                    continue
                value = json.dumps({"worker": state, "code": code, "ts": time.time()})
                try:
                    self.client.set(
                        heartbeat_key(self.prefix, session, self.party),
                        value,
                        px=int(self.heartbeat_ttl * 1000),
                    )
                    self.metrics.heartbeats.labels("ok").inc()
                except redis.RedisError as exc:
                    self.metrics.heartbeats.labels("error").inc()
                    log.warning("heartbeat failed (%s); retrying", type(exc).__name__)

    def _relay(self, session: str, link: LocalLink) -> None:
        """Worker -> Redis, until the worker's socket closes; then report its exit."""
        while True:
            try:
                msg = link.recv()
            except (EOFError, OSError):
                break
            self.metrics.replied(msg)
            try:
                self._push(session, "msg", msg=msg)
            except Exception as exc:  # never let a bad message kill the relay silently
                log.error("cannot relay a reply of the worker (%s)", type(exc).__name__)
                with suppress(Exception):
                    failed = {
                        "ok": False,
                        "error_class": "WorkerError",
                        "message": "the node could not relay a reply",
                    }
                    self._push(session, "msg", msg=failed)
        link.wait_exit(5.0)
        code = link.exit_code()
        self.metrics.worker_exit(code)
        with self._lock:
            if self.session == session:
                self.state, self.exit_code = "exited", code
        with suppress(redis.RedisError):
            self._push(session, "exit", code=code)

    # -- inbound -------------------------------------------------------------------------------------
    def handle(self, entry: dict[str, Any] | None) -> None:
        if entry is None:
            log.warning("dropped an entry that is not a JSON object")
            return
        session, op = entry.get("session"), entry.get("op")
        if not isinstance(session, str):
            return
        if float(entry.get("exp", 0)) < time.time():
            log.info("dropped an expired %s of session %s", op, session[:8])
            return
        if op == "start":
            if not self.engine_alive(session):
                log.info("dropped a start of session %s: its engine's heartbeat is gone", session[:8])
                return
            self.stop_worker()
            with self._lock:
                self.session, self.state, self.exit_code = session, "starting", None
            self.metrics.sessions.inc()
            self.log_level = str(entry.get("log_level", "warning"))
            self.spu_profiles = {str(k): dict(v) for k, v in dict(entry.get("spu_profiles", {})).items()}
            bind = self.host if self.host in LOOPBACK else "0.0.0.0"  # noqa: S104 - a node on a non-loopback host serves its SPU/link ports to its peers
            ports = free_ports(1 + len(self.spu_profiles), bind)
            spu = dict(zip(self.spu_profiles, ports[1:], strict=True))
            self._push(session, "ports", host=self.host, ports={"fed": ports[0], "spu": spu})
            log.info("session %s: reported ports", session[:8])
            return
        if session != self.session:
            log.info("dropped a %s of stale session %s", op, session[:8])
            return
        if op == "table":
            table = {p: PartyPorts.model_validate(v) for p, v in dict(entry["parties"]).items()}
            if self.party not in table:
                log.error("the cluster table does not name party %s", self.party)
                return
            link = spawn_worker(
                self.party, self.party_dir, table, log_level=self.log_level, spu_profiles=self.spu_profiles
            )
            self.link = link
            self.metrics.worker_starts.inc()
            with self._lock:
                self.state = "running"
            self.relay = threading.Thread(target=self._relay, args=(session, link), daemon=True)
            self.relay.start()
            log.info("session %s: worker started (pid %d)", session[:8], link.proc.pid)
        elif op == "msg":
            request = dict(entry.get("msg") or {})
            self.metrics.request(request.get("op"))
            if self.link is None or not self.link.alive():
                self._push(session, "exit", code=None if self.link is None else self.link.exit_code())
                return
            with suppress(OSError, EOFError):  # the relay reports the exit
                self.metrics.forwarding(request)
                self.link.send(request)
        elif op == "stop":
            self.stop_worker()
            with self._lock:
                self.session, self.state = None, "idle"

    def engine_alive(self, session: str) -> bool:
        """Whether the engine of ``session`` still beats (True when Redis cannot tell: never a guess)."""
        try:
            return bool(self.client.exists(engine_alive_key(self.prefix, session)))
        except redis.RedisError as exc:
            log.warning("cannot check the engine's heartbeat (%s); retrying", type(exc).__name__)
            return True

    def check_engine(self) -> None:
        """Stop the current session's worker if its engine's heartbeat has lapsed (at most once a second)."""
        now = time.monotonic()
        if now - self._engine_checked < HEARTBEAT_S:
            return
        self._engine_checked = now
        session = self.session
        if session is None or self.engine_alive(session):
            return
        log.warning(
            "session %s: the engine's heartbeat lapsed (engine gone without shutting down); "
            "stopping its worker and waiting for a new session",
            session[:8],
        )
        self.stop_worker()
        with self._lock, suppress(redis.RedisError):  # nobody reads this session's replies any more
            self.session, self.state, self.exit_code = None, "idle", None
            self.client.delete(
                outbound_key(self.prefix, session), heartbeat_key(self.prefix, session, self.party)
            )

    def stop_worker(self, timeout: float = 10.0) -> None:
        link, self.link = self.link, None
        if link is None:
            return
        if link.alive():
            with suppress(OSError, EOFError):
                link.send({"op": "shutdown"})
            link.wait_exit(timeout)
        link.kill()
        if self.relay is not None:
            self.relay.join(10.0)
            self.relay = None
        link.close()

    def readiness(self) -> tuple[bool, str]:
        """For ``/readyz``: ready while the node reads its queue and its heartbeat loop ticks."""
        if self.stopping.is_set():
            return False, "stopping"
        tick = self.metrics.last_tick
        if tick is None:
            return False, "starting"
        if time.monotonic() - tick > 3 * HEARTBEAT_S + 1:
            return False, f"the heartbeat loop has not ticked for {time.monotonic() - tick:.0f}s"
        if not self.queue_ok:
            return False, "the job queue (Redis) is unreachable; retrying"
        return True, f"worker {self.state}" + (f", session {self.session[:8]}" if self.session else "")

    def serve(self) -> None:
        """Take work from this party's queue until SIGTERM/SIGINT (or `stopping` is set)."""
        beat = threading.Thread(target=self._beat, daemon=True)
        beat.start()
        self.metrics.up.set(1)
        try:
            while not self.stopping.is_set():
                try:
                    got = self.client.blpop([self.in_key], timeout=1)
                except redis.ConnectionError:
                    self.queue_ok = False
                    self.metrics.queue_up.set(0)
                    log.warning("job queue unreachable; retrying in 1 s")
                    time.sleep(1.0)
                    continue
                self.queue_ok = True
                self.metrics.queue_up.set(1)
                if got is not None:
                    self.handle(decode(got[1]))
                self.check_engine()
        finally:
            self.metrics.up.set(0)
            self.stopping.set()
            self.stop_worker()
            with self._lock:
                session, self.session = self.session, None
            if session is not None:
                with suppress(redis.RedisError):
                    self.client.delete(heartbeat_key(self.prefix, session, self.party))


def run_node(
    party: str,
    data_dir: Path,
    redis_url: str,
    *,
    host: str = "127.0.0.1",
    prefix: str = DEFAULT_PREFIX,
    log_level: str = "INFO",
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
) -> None:
    """``secureflow node``: serve ``party`` from ``data_dir`` until SIGTERM or Ctrl-C.

    With ``metrics_port`` (0: any free port) also serves ``/metrics``, ``/healthz`` and ``/readyz``
    (`secureflow.compute.worker.node_metrics`) on ``metrics_host``.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    node = Node(party, data_dir, redis_url, host=host, prefix=prefix)
    try:
        node.client.ping()
    except redis.RedisError as exc:
        raise ComputeError(
            f"cannot reach the job queue at the given Redis URL ({type(exc).__name__})",
            hint="start Redis or pass the right --redis-url (e.g. redis://127.0.0.1:6379/0)",
        ) from None

    def stop(signum: int, frame: FrameType | None) -> None:
        node.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server: MetricsServer | None = None
    if metrics_port is not None:
        server = serve_metrics(node.metrics.registry, metrics_host, metrics_port, node.readiness)
    log.info("node of party %s serving %s (queue %s)", party, node.party_dir, node.in_key)
    try:
        node.serve()
    finally:
        if server is not None:
            server.close()
