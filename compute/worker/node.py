"""``secureflow node``: one member's long-lived node, next to its data, taking work from its own queue.

The node reads only ``<prefix>:party:<party>:in`` (see `secureflow.compute.worker.link`
for the Redis layout). With a `QueueGuard` (``secureflow node --rpc-url --deployment``) it first drops
every entry that is not signed by a coordinator of its pinned registry, is addressed to another party or
replays a counter, and refuses a job's requests unless the job is open on chain with its consent
(`secureflow.compute.worker.trust`); the worker never sees either. It serves several engine
sessions at once (one per job the coordinators run, at most ``--max-sessions``), each with its own
party worker and its own scratch folder ``<data-dir>/sessions/<session>/`` (tmp/, work/, the worker's log).
For each session it:

1. on ``start``: drops it if the session's engine heartbeat is already gone; refuses
   it (a ``failed`` reply, ``NodeBusyError``) when ``--max-sessions`` are running;
   else picks free ports on this host and reports them with ``--host`` (``ports``);
2. on ``table`` (every party's host and ports, assembled by the engine):
   spawns the party worker (`secureflow.compute.worker.main`, the same process as in
   local mode) in the party folder with that table, and relays the worker's
   replies (hello, ready, step results) to the session's outbound list;
3. on ``msg``: forwards the request to the session's worker (SPMD steps, consent, sign, ...);
4. on ``stop``: stops the session's worker and removes its tmp/ and work/ (its log stays, until the
   retention below);
5. when the session's engine heartbeat (``<prefix>:coord:<session>:alive``)
   lapses (checked every second): stops that worker as on ``stop`` and logs why.

Every second the node rewrites each session's heartbeat key (short TTL), so the
engine notices a dead node or host; when a worker exits the node reports ``exit``
with its code. Entries of an unknown session, or past their expiry, are dropped
unread. SIGTERM/Ctrl-C stops every worker and the node.

Job logs (`secureflow.compute.joblogs`): the party's workers keep each job's log lines, scrubbed, in
``<data-dir>/joblogs/<job_id>.log``. The node answers a ``logs`` entry of its queue (no session) with the
lines of that one job, signed with its member key under ``LOG_REPLY_DOMAIN`` on
``<prefix>:logs:<party>:<request>:out``, only when the entry is signed under ``LOG_REQUEST_DOMAIN`` by an
account its policy lists in ``log_readers``, is addressed to this party, unexpired, not a replay of a
request id, and names a job whose log this node keeps (a job it ran); any other log request is dropped
unanswered (logged without its content). A request is checked in the queue loop, then read and answered by
one of `LOG_READERS` threads of its own (a slow or large read never holds up a session's job requests);
past `LOG_BACKLOG` waiting, more are dropped. Job logs and ``sessions/<id>/`` folders older than
``--log-retention-days`` are removed at start and every hour (running sessions are kept). The member key
and salt stay in ``<data-dir>/secrets``; nothing but names, metadata, digests and signatures goes through
Redis.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import shutil
import signal
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from secureflow.compute.errors import ComputeError
from secureflow.compute.joblogs import (
    DEFAULT_RETENTION_DAYS,
    JOB_ID,
    PRUNE_INTERVAL_S,
    REQUEST_ID,
    JobLogError,
    log_reply,
    log_reply_key,
    prune,
    read_job_log,
)
from secureflow.compute.policy import load_policy
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
    node_alive_key,
    outbound_key,
)
from secureflow.compute.worker.node_metrics import NodeMetrics
from secureflow.compute.worker.protocol import SPU_PROTOCOL_PROFILES, PartyPorts, is_loopback, protocol_of
from secureflow.compute.worker.standby import Standby
from secureflow.compute.worker.tls import TlsError, TlsIdentity, TlsTunnel, fingerprint, listen_socket
from secureflow.compute.worker.trust import JOB_OPS, QueueGuard, member_key
from secureflow.ledger.metrics_server import MetricsServer, serve_metrics
from secureflow.ledger.queue_signing import (
    LOG_REPLY_DOMAIN,
    LOG_REQUEST_DOMAIN,
    REPLY_DOMAIN,
    entry_signer,
    sign_entry,
)

log = logging.getLogger("compute.node")

DEFAULT_MAX_SESSIONS = 4
"""Engine sessions (jobs) one node runs at once by default (each is one SecretFlow worker, ~0.5-1.3 GB)."""
MAX_SPU_PROFILES = 8
"""SPU profiles (one port each) a session may ask a node for."""
ENTRY_OPS = ("start", "table", "msg", "stop")
"""The ops of a queue entry."""
SESSION_ID = re.compile(r"[0-9a-f]{32}")
"""An engine session id (`uuid4().hex`): also a folder name under ``<data-dir>/sessions``."""


@dataclass
class Session:
    """One engine session on this node: its party worker, the relay of its replies, its state."""

    session: str
    scratch: Path
    log_level: str = "warning"
    spu_profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    link: LocalLink | None = None
    relay: threading.Thread | None = None
    state: str = "starting"  # starting | running | exited
    exit_code: int | None = None
    table: tuple[str, ...] = ()
    """The party names of the session's cluster table (set by ``table``)."""
    nonce: str = field(default_factory=lambda: secrets.token_hex(16))
    """This node's own number for the session, sent (signed) with its ports: a checking node takes the
    session's later entries only with it, so entries copied from an earlier life of the node (before a
    restart) or of another node process are never acted on, whatever their counter."""
    public: dict[str, socket.socket] = field(default_factory=dict)
    """With TLS: link (``fed``, ``spu:<profile>``) -> the listening socket of its public port (reported)."""
    tunnel: TlsTunnel | None = None
    cert_signers: dict[str, str] = field(default_factory=dict)
    """With TLS: party -> the member address that signed the certificate this node's tunnel trusts for it."""


MAX_REPLY_COUNTERS = 4096
"""Sessions whose reply counter a node keeps (a session's replies are numbered 1, 2, ... for the engine)."""
MAX_LOG_REQUEST_S = 300.0
"""A log request expiring later than this from now is dropped (a signed request is short-lived)."""
LOG_REPLY_TTL_S = 60
"""A log answer nobody read is gone after this many seconds."""
LOG_READERS = 2
"""Log requests served at once, each in a thread of its own (never in the loop that takes job requests)."""
LOG_BACKLOG = 8
"""Log requests waiting for a reader beyond `LOG_READERS`; more are dropped (their reader times out)."""


class Node:
    """The relay between this party's Redis queue and its local party workers (one per engine session)."""

    def __init__(
        self,
        party: str,
        party_dir: str | Path,
        redis_url: str,
        *,
        host: str = "127.0.0.1",
        prefix: str = DEFAULT_PREFIX,
        heartbeat_ttl: float = HEARTBEAT_TTL_S,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        guard: QueueGuard | None = None,
        log_retention_days: float = DEFAULT_RETENTION_DAYS,
        tls: TlsIdentity | None = None,
        warm_worker: bool = True,
    ) -> None:
        if not party or ":" in party:
            raise ComputeError(f"invalid party name {party!r}", hint="use the party's name from the manifest")
        if max_sessions < 1:
            raise ComputeError(f"max_sessions must be at least 1, not {max_sessions}")
        self.party = party
        self.party_dir = Path(party_dir).resolve()
        self.host = host
        self.prefix = prefix
        self.heartbeat_ttl = heartbeat_ttl
        self.max_sessions = max_sessions
        self.guard = guard
        """Signature, coordinator-role and on-chain consent checks (None: every entry is trusted)."""
        self.tls = tls
        """This node's TLS identity: the links to its workers run through a `TlsTunnel` (None: plain TCP)."""
        self.standby = Standby(party, self.party_dir) if warm_worker else None
        """The warm spare worker a session takes (SecretFlow imported before the job; None: no spare)."""
        self._member_key = member_key(self.party_dir)
        """Signs every reply to the coordinator (`REPLY_DOMAIN`): its ports, its worker's replies, exits."""
        from eth_account import Account

        self.member = str(Account.from_key(self._member_key).address).lower()
        """This node's member address (the signer its own certificate must carry in a session's table)."""
        self._reply_ctr: dict[str, int] = {}
        self.client = redis.Redis.from_url(redis_url, socket_timeout=30.0)
        self.in_key = inbound_key(prefix, party)
        self.sessions: dict[str, Session] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._engine_checked = 0.0  # monotonic time of the last engine-heartbeat check
        self.metrics = NodeMetrics(party, self._state_view)
        self.queue_ok = False
        """Whether the last read of the queue succeeded (readiness)."""
        if not log_retention_days > 0:
            raise ComputeError(f"the log retention must be positive, not {log_retention_days} days")
        self.log_retention_days = log_retention_days
        self._pruned = time.monotonic()
        self._log_requests: dict[str, float] = {}
        """Log request ids answered or refused, with their expiry (a replay is dropped)."""
        self._log_pool = ThreadPoolExecutor(LOG_READERS, thread_name_prefix="secureflow-node-logs")
        self._log_slots = threading.BoundedSemaphore(LOG_READERS + LOG_BACKLOG)

    # -- compatibility views of the single-session API ----------------------------------------------
    @property
    def session(self) -> str | None:
        """The newest session's id (None when idle)."""
        with self._lock:
            return next(reversed(self.sessions), None)

    def _state_view(self) -> tuple[str, str | None]:
        """The newest session's worker state and id, for the metrics (idle without a session)."""
        with self._lock:
            newest = next(reversed(self.sessions.values()), None)
        return ("idle", None) if newest is None else (newest.state, newest.session)

    # -- outbound ------------------------------------------------------------------------------------
    def _push(self, session: str, op: str, **fields: Any) -> None:
        key = outbound_key(self.prefix, session)
        with self._lock:
            self._reply_ctr[session] = ctr = self._reply_ctr.get(session, 0) + 1
            if len(self._reply_ctr) > MAX_REPLY_COUNTERS:  # the oldest sessions' counters go first
                del self._reply_ctr[next(iter(self._reply_ctr))]
        entry = sign_entry(
            {"session": session, "party": self.party, "op": op, "ctr": ctr, **fields},
            self._member_key,
            REPLY_DOMAIN,
        )
        pipe = self.client.pipeline()
        pipe.rpush(key, encode(entry))
        pipe.expire(key, OUT_TTL_S)
        pipe.execute()

    def _beat_node(self) -> None:
        value = json.dumps(
            {
                "host": self.host,
                "sessions": len(self.sessions),
                "max_sessions": self.max_sessions,
                "warm": self.standby is not None and self.standby.warm(),
                "ts": time.time(),
            }
        )
        try:
            self.client.set(node_alive_key(self.prefix, self.party), value, px=int(self.heartbeat_ttl * 1000))
        except redis.RedisError as exc:
            log.warning("node heartbeat failed (%s); retrying", type(exc).__name__)

    def _beat(self) -> None:
        self.metrics.tick()
        self._beat_node()
        while not self.stopping.wait(HEARTBEAT_S):
            self.metrics.tick()
            self._beat_node()
            # under the lock, so a session that `check_engine` just dropped is not beaten again
            with self._lock:
                beats = [(s.session, s.state, s.exit_code) for s in self.sessions.values()]
                for session, state, code in beats:
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

    def _relay(self, sess: Session, link: LocalLink) -> None:
        """Worker -> Redis, until the worker's socket closes; then report its exit."""
        session = sess.session
        while True:
            try:
                msg = link.recv()
            except (EOFError, OSError):
                break
            self.metrics.replied(msg, key=session)
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
        self.metrics.worker_exit(code, key=session)
        with self._lock:
            if self.sessions.get(session) is sess:
                sess.state, sess.exit_code = "exited", code
        with suppress(redis.RedisError):
            self._push(session, "exit", code=code)

    # -- inbound -------------------------------------------------------------------------------------
    def _own_session_number(self, session: str, entry: dict[str, Any]) -> bool:
        """A checking node takes a session's entries after ``start`` only with its own number for the session
        (sent with its ports): checked before the signature and counter, so an entry copied before a
        restart (or meant for another node process) is dropped without touching the session's counters."""
        with self._lock:
            sess = self.sessions.get(session)
        if sess is not None and entry.get("node_nonce") == sess.nonce:
            return True
        op = entry.get("op")
        shown = op if op in ENTRY_OPS else "unknown"
        why = "unknown or stale session" if sess is None else "not this node's session number"
        log.warning("dropped a %s entry of session %s: %s", shown, session[:8], why)
        return False

    def handle(self, entry: dict[str, Any] | None) -> None:
        if entry is None:
            log.warning("dropped an entry that is not a JSON object")
            return
        if entry.get("op") == "logs":
            self.serve_logs(entry)
            return
        session, op = entry.get("session"), entry.get("op")
        if not isinstance(session, str) or not SESSION_ID.fullmatch(session):
            log.warning("dropped an entry without a valid session id")
            return
        exp = entry.get("exp", 0)
        if not isinstance(exp, int | float) or not math.isfinite(exp) or exp < time.time():
            log.info("dropped an expired %s of session %s", op, session[:8])
            return
        if self.guard is not None and op != "start" and not self._own_session_number(session, entry):
            return
        if self.guard is not None:
            reason = self.guard.admit(entry)
            if reason is not None:
                shown = op if op in ENTRY_OPS else "unknown"  # never echo what a queue writer chose
                log.warning("dropped a %s entry of session %s: %s", shown, session[:8], reason)
                return
        if op == "start":
            self._start(session, entry)
            return
        with self._lock:
            sess = self.sessions.get(session)
        if sess is None:
            log.info("dropped a %s of unknown or stale session %s", op, session[:8])
            return
        if op == "table":
            table = {p: PartyPorts.model_validate(v) for p, v in dict(entry["parties"]).items()}
            if self.party not in table:
                log.error("the cluster table does not name party %s", self.party)
                return
            if sess.link is not None:
                log.warning("dropped a second table of session %s", session[:8])
                return
            sess.table = tuple(table)
            worker_table = table
            if self.tls is not None:
                try:
                    worker_table = self._tunnel(sess, table, entry.get("proofs"))
                except TlsError as exc:
                    log.error("session %s: refused its table: %s", session[:8], exc)
                    failed = {"op": "failed", "error_class": "WorkerError", "message": str(exc)}
                    self._push(session, "msg", msg=failed)
                    return
            options: dict[str, Any] = {
                "log_level": sess.log_level,
                "spu_profiles": sess.spu_profiles,
                "scratch": sess.scratch,
                "require_consent": self.guard is not None,
            }
            link = None if self.standby is None else self.standby.take(worker_table, **options)
            if link is not None:
                self.metrics.warm_starts.inc()
                self.metrics.warm_worker.set(0)
            else:
                link = spawn_worker(self.party, self.party_dir, worker_table, **options)
            sess.link = link
            self.metrics.worker_starts.inc()
            with self._lock:
                sess.state = "running"
            sess.relay = threading.Thread(target=self._relay, args=(sess, link), daemon=True)
            sess.relay.start()
            log.info("session %s: worker started (pid %d)", session[:8], link.proc.pid)
        elif op == "msg":
            request = dict(entry.get("msg") or {})
            self.metrics.request(request.get("op"))
            if self.guard is not None and request.get("op") in JOB_OPS:
                refusal = self.guard.job_refusal(request, sess.table, entry.get("members"))
                if refusal is None and not self._certs_of_members(sess, entry.get("members")):
                    refusal = (
                        "the session's TLS certificates are not signed by the job's parties' member keys"
                    )
                if refusal is not None:
                    self._refuse(session, str(request.get("op")), refusal)
                    return
            if sess.link is None or not sess.link.alive():
                self._push(session, "exit", code=None if sess.link is None else sess.link.exit_code())
                return
            with suppress(OSError, EOFError):  # the relay reports the exit
                self.metrics.forwarding(request, key=session)
                sess.link.send(request)
        elif op == "stop":
            self.end_session(session)

    # -- job logs -----------------------------------------------------------------------------------
    def _log_request_refusal(self, entry: dict[str, Any]) -> str | None:
        """Why the log request ``entry`` is dropped unanswered (None: answer it)."""
        request, exp = entry.get("request"), entry.get("exp")
        if not isinstance(request, str) or not REQUEST_ID.fullmatch(request):
            return "no valid request id"
        now = time.time()
        if (
            not isinstance(exp, int | float)
            or not math.isfinite(exp)
            or not now <= exp <= now + MAX_LOG_REQUEST_S
        ):
            return "expired, or expiring too late"
        if entry.get("party") != self.party:
            return "addressed to another party"
        if not isinstance(entry.get("job_id"), str) or not JOB_ID.fullmatch(str(entry["job_id"])):
            return "no valid job id"
        after = entry.get("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            return "no valid line offset"
        signer = entry_signer(entry, LOG_REQUEST_DOMAIN)
        if signer is None:
            return "no valid signature"
        try:
            readers = {a.lower() for a in load_policy(self.party_dir).log_readers}
        except ComputeError as exc:
            return f"the policy cannot be read ({exc.error_class})"
        if signer not in readers:
            return f"signed by {signer}, which this node's policy does not list in log_readers"
        with self._lock:
            for old in [r for r, e in self._log_requests.items() if e < now]:
                del self._log_requests[old]
            if request in self._log_requests:
                return "a request id already answered (a replay)"
            self._log_requests[request] = float(exp)
        return None

    def serve_logs(self, entry: dict[str, Any]) -> None:
        """Answer a signed log request with this party's scrubbed lines of one job it ran (else drop it).

        The checks run here, in the queue loop, in the order the requests came (cheap: a signature and the
        policy file); the read and the answer run in a log reader thread (`LOG_READERS`), so a large or
        slow read never holds up the sessions' job requests. Past `LOG_BACKLOG` waiting it is dropped."""
        why = self._log_request_refusal(entry)
        if why is None and not self._log_slots.acquire(blocking=False):
            why = f"{LOG_READERS + LOG_BACKLOG} already in progress"
        if why is not None:
            self.metrics.log_requests.labels("dropped").inc()
            log.warning("dropped a log request: %s", why)
            return
        request, job_id, after = str(entry["request"]), str(entry["job_id"]), int(entry.get("after", 0))
        try:
            self._log_pool.submit(self._answer_logs, request, job_id, after)
        except RuntimeError:  # the node is stopping: its pool takes nothing more
            self._log_slots.release()

    def _answer_logs(self, request: str, job_id: str, after: int) -> None:
        """In a log reader thread: read the page and push the signed answer."""
        try:
            try:
                lines, nxt = read_job_log(self.party_dir, job_id, after)
                reply = log_reply(self.party, request, lines, nxt)
            except JobLogError:
                reply = log_reply(self.party, request, None, 0)
            key = log_reply_key(self.prefix, self.party, request)
            signed = sign_entry(reply, self._member_key, LOG_REPLY_DOMAIN)
            self.metrics.log_requests.labels("answered" if reply["ok"] else "no_log").inc()
            pipe = self.client.pipeline()
            pipe.rpush(key, encode(signed))
            pipe.expire(key, LOG_REPLY_TTL_S)
            pipe.execute()
            found = "found" if reply["ok"] else "no log"
            log.info("answered a log request for job %s (%s)", job_id[:10], found)
        except Exception as exc:  # a reader thread reports, never dies silently
            log.error("could not answer a log request (%s)", type(exc).__name__)
        finally:
            self._log_slots.release()

    def prune_logs(self) -> int:
        """Remove job logs and finished sessions' folders older than the retention (returns how many)."""
        with self._lock:
            running = list(self.sessions)
        removed = prune(self.party_dir, self.log_retention_days, keep_sessions=running)
        self._pruned = time.monotonic()
        if removed:
            log.info("removed %d job log(s) and session folder(s) past the retention", removed)
        return removed

    @staticmethod
    def _certs_of_members(sess: Session, members: Any) -> bool:
        """With TLS: each party's certificate the tunnel trusts was signed by the member the entry names
        for that party (whom the guard checked against the job's on-chain parties)."""
        if not sess.cert_signers:
            return True
        if not isinstance(members, dict):
            return False
        return all(str(members.get(p, "")).lower() == a for p, a in sess.cert_signers.items())

    def _tunnel(self, sess: Session, table: dict[str, PartyPorts], proofs: Any) -> dict[str, PartyPorts]:
        """Check every party's certificate (its node's signed ports reply), start the session's TLS tunnel,
        and return the table the worker gets: every link on 127.0.0.1 (its own listen ports, and one
        tunnel port per peer and link)."""
        assert self.tls is not None  # noqa: S101 - called only with TLS
        if not isinstance(proofs, dict):
            raise TlsError("the table carries no signed ports replies (a coordinator without TLS support?)")
        links = ["fed", *(f"spu:{p}" for p in sess.spu_profiles)]
        signers: dict[str, str] = {}
        for party, ports in table.items():
            proof = proofs.get(party)
            tls = proof.get("tls") if isinstance(proof, dict) else None
            if not isinstance(proof, dict) or not isinstance(tls, dict) or ports.tls_cert is None:
                raise TlsError(
                    f"party {party!r} has no TLS certificate in the table (its node runs without TLS?)"
                )
            signer = entry_signer(proof, REPLY_DOMAIN)
            try:
                reported = PartyPorts(host=str(proof.get("host")), **dict(proof.get("ports") or {}))
            except (TypeError, ValueError):
                raise TlsError(f"party {party!r}'s signed ports reply is malformed") from None
            if (
                signer is None
                or proof.get("session") != sess.session
                or proof.get("party") != party
                or proof.get("op") != "ports"
                or tls.get("cert") != ports.tls_cert
                or tls.get("fingerprint") != fingerprint(ports.tls_cert)
                or reported != ports.model_copy(update={"tls_cert": None})
            ):
                raise TlsError(f"party {party!r}'s certificate or ports are not those its node signed")
            signers[party] = signer
        if signers.get(self.party) != self.member or table[self.party].tls_cert != self.tls.cert_pem:
            raise TlsError("the table does not carry this node's own certificate")
        if (
            self.guard is not None
        ):  # a peer's link is admitted only with a certificate an active member signed
            for party, signer in signers.items():
                try:
                    member = party == self.party or self.guard.authority.is_active_member(signer)
                except Exception as exc:  # the chain is unreachable: never a guess
                    raise TlsError(
                        f"cannot check on chain who signed party {party!r}'s certificate "
                        f"({type(exc).__name__})"
                    ) from None
                if not member:
                    raise TlsError(
                        f"party {party!r}'s certificate is signed by {signer}, which is no active member of "
                        "the pinned registry"
                    )
        peers = {p: str(t.tls_cert) for p, t in table.items() if p != self.party}
        tunnel = TlsTunnel(self.tls, sess.session)
        sess.tunnel, sess.cert_signers = tunnel, signers
        inner = free_ports(len(links), "127.0.0.1")
        worker: dict[str, PartyPorts] = {}
        try:
            for name, port in zip(links, inner, strict=True):
                if peers:  # nobody else in the table: nobody may connect
                    tunnel.serve_inbound(sess.public[name], port, peers)
            for party, ports in table.items():
                if party == self.party:
                    fed, spu = inner[0], dict(zip(sess.spu_profiles, inner[1:], strict=True))
                else:
                    fed = tunnel.serve_outbound(peers[party], ports.host, ports.fed)
                    spu = {
                        p: tunnel.serve_outbound(peers[party], ports.host, ports.spu[p])
                        for p in sess.spu_profiles
                    }
                worker[party] = PartyPorts(host="127.0.0.1", fed=fed, spu=spu)
        except (ssl.SSLError, OSError, TlsError) as exc:
            raise TlsError(f"cannot start the session's TLS tunnel ({type(exc).__name__})") from None
        return worker

    def _refuse(self, session: str, op: str, reason: str) -> None:
        """Answer a job request this node will not act on (the worker never sees it)."""
        log.warning("session %s: refused %s: %s", session[:8], op, reason)
        message = f"the node of party {self.party!r} refused {op}: {reason}"
        self._push(session, "msg", msg={"ok": False, "error_class": "NodeRefusedError", "message": message})

    def _start(self, session: str, entry: dict[str, Any]) -> None:
        if not self.engine_alive(session):
            log.info("dropped a start of session %s: its engine's heartbeat is gone", session[:8])
            return
        with self._lock:
            known = session in self.sessions
            full = len(self.sessions) >= self.max_sessions
        if known:
            log.warning("dropped a second start of session %s", session[:8])
            return
        if full:
            log.warning(
                "session %s refused: %d sessions running (--max-sessions)", session[:8], self.max_sessions
            )
            self._push(
                session,
                "msg",
                msg={
                    "op": "failed",
                    "error_class": "NodeBusyError",
                    "message": f"the node of party {self.party!r} runs {self.max_sessions} jobs already "
                    "(its --max-sessions); try again later",
                },
            )
            return
        profiles = entry.get("spu_profiles", {})
        if not isinstance(profiles, dict) or len(profiles) > MAX_SPU_PROFILES:
            log.warning("session %s refused: more than %d SPU profiles", session[:8], MAX_SPU_PROFILES)
            return
        if not all(isinstance(v, dict) for v in profiles.values()) or protocol_of(profiles) is None:
            # The worker creates its SPU devices from these: only the runtime configs of a protocol this
            # version runs (SEMI2K, ABY3), never one a coordinator made up (REF2K shares nothing).
            log.warning("session %s refused: SPU runtime configs of no known protocol", session[:8])
            self._push(
                session,
                "msg",
                msg={
                    "op": "failed",
                    "error_class": "WorkerError",
                    "message": f"the node of party {self.party!r} runs SPU sessions only under the runtime "
                    f"configs of {' or '.join(SPU_PROTOCOL_PROFILES)} (this version's "
                    "compute.worker.protocol); it refused the ones asked for",
                },
            )
            return
        sess = Session(
            session=session,
            scratch=self.party_dir / "sessions" / session,
            log_level=str(entry.get("log_level", "warning")),
            spu_profiles={str(k): dict(v) for k, v in dict(entry.get("spu_profiles", {})).items()},
        )
        with self._lock:
            self.sessions[session] = sess
        self.metrics.sessions.inc()
        bind = self.host if is_loopback(self.host) else "0.0.0.0"  # noqa: S104 - a node on a non-loopback host serves its SPU/link ports to its peers
        extra: dict[str, Any] = {}
        if self.tls is not None:  # held open from now on: the tunnel serves them once the table came
            sess.public = {
                name: listen_socket(bind) for name in ["fed", *(f"spu:{p}" for p in sess.spu_profiles)]
            }
            ports = [int(s.getsockname()[1]) for s in sess.public.values()]
            extra["tls"] = self.tls.public()
        else:
            ports = free_ports(1 + len(sess.spu_profiles), bind)
        spu = dict(zip(sess.spu_profiles, ports[1:], strict=True))
        self._push(
            session, "ports", host=self.host, ports={"fed": ports[0], "spu": spu}, nonce=sess.nonce, **extra
        )
        log.info("session %s: reported ports (%d session(s) on this node)", session[:8], len(self.sessions))

    def engine_alive(self, session: str) -> bool:
        """Whether the engine of ``session`` still beats (True when Redis cannot tell: never a guess)."""
        try:
            return bool(self.client.exists(engine_alive_key(self.prefix, session)))
        except redis.RedisError as exc:
            log.warning("cannot check the engine's heartbeat (%s); retrying", type(exc).__name__)
            return True

    def check_engine(self) -> None:
        """Stop the workers of sessions whose engine's heartbeat lapsed (checked at most once a second)."""
        now = time.monotonic()
        if now - self._engine_checked < HEARTBEAT_S:
            return
        self._engine_checked = now
        with self._lock:
            sessions = list(self.sessions)
        for session in sessions:
            if self.engine_alive(session):
                continue
            log.warning(
                "session %s: the engine's heartbeat lapsed (engine gone without shutting down); "
                "stopping its worker",
                session[:8],
            )
            self.end_session(session)
            with suppress(redis.RedisError):  # nobody reads this session's replies any more
                self.client.delete(outbound_key(self.prefix, session))

    def end_session(self, session: str, timeout: float = 10.0) -> None:
        """Stop ``session``'s worker, forget the session, delete its heartbeat and its scratch tmp/work."""
        with self._lock:
            sess = self.sessions.pop(session, None)
        if sess is None:
            return
        self._stop_link(sess, timeout)
        if sess.tunnel is not None:
            sess.tunnel.close()
            sess.tunnel = None
        for sock in sess.public.values():
            sock.close()
        with suppress(redis.RedisError):
            self.client.delete(heartbeat_key(self.prefix, session, self.party))
        for sub in ("tmp", "work"):  # raw data must not linger; the session's log stays
            shutil.rmtree(sess.scratch / sub, ignore_errors=True)

    @staticmethod
    def _stop_link(sess: Session, timeout: float) -> None:
        link, sess.link = sess.link, None
        if link is None:
            return
        if link.alive():
            with suppress(OSError, EOFError):
                link.send({"op": "shutdown"})
            link.wait_exit(timeout)
        link.kill()
        if sess.relay is not None:
            sess.relay.join(10.0)
            sess.relay = None
        link.close()

    def stop_worker(self, timeout: float = 10.0) -> None:
        """Stop every session's worker (the node is stopping)."""
        with self._lock:
            sessions = list(self.sessions)
        for session in sessions:
            self.end_session(session, timeout)

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
        with self._lock:
            running = len(self.sessions)
        return True, f"{running} session(s) of at most {self.max_sessions}"

    def keep_warm(self) -> None:
        """Start a spare worker whenever there is none (at start, and as soon as a session took the last
        one, so the next job, concurrent or not, finds one warm); report whether one waits warm."""
        if self.standby is None or self.stopping.is_set():
            return
        try:
            if self.standby.due():
                self.standby.spawn()
        except Exception as exc:  # an optimisation: never what stops the node (disk full, no fork, …)
            log.warning("cannot start a warm spare worker (%s); jobs start their workers cold", exc)
        self.metrics.warm_worker.set(1 if self.standby.warm() else 0)

    def serve(self) -> None:
        """Take work from this party's queue until SIGTERM/SIGINT (or `stopping` is set)."""
        beat = threading.Thread(target=self._beat, daemon=True)
        beat.start()
        self.metrics.up.set(1)
        self.keep_warm()
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
                    try:
                        self.handle(decode(got[1]))
                    except Exception as exc:  # one bad entry must not take down every session of the node
                        log.error("dropped an entry that could not be handled (%s)", type(exc).__name__)
                self.check_engine()
                self.keep_warm()
                if time.monotonic() - self._pruned > PRUNE_INTERVAL_S:
                    self.prune_logs()
        finally:
            self.metrics.up.set(0)
            self.stopping.set()
            self._log_pool.shutdown(wait=False, cancel_futures=True)
            self.stop_worker()
            if self.standby is not None:
                self.standby.stop()
                self.metrics.warm_worker.set(0)
            with suppress(redis.RedisError):
                self.client.delete(node_alive_key(self.prefix, self.party))


def run_node(
    party: str,
    data_dir: Path,
    redis_url: str,
    *,
    host: str = "127.0.0.1",
    prefix: str = DEFAULT_PREFIX,
    log_level: str = "INFO",
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    guard: QueueGuard | None = None,
    log_retention_days: float = DEFAULT_RETENTION_DAYS,
    tls: TlsIdentity | None = None,
    warm_worker: bool = True,
) -> None:
    """``secureflow node``: serve ``party`` from ``data_dir`` until SIGTERM or Ctrl-C.

    ``warm_worker``: keep a spare party worker with SecretFlow imported for the next job
    (`secureflow.compute.worker.standby`), started at once and again whenever a job took it.

    ``guard``: the signature, coordinator-role and on-chain consent checks (None: trusts its Redis).
    ``tls``: the node's TLS identity; the links between the parties' workers then run over mutual TLS
    pinned to the session's parties (`secureflow.compute.worker.tls`; None: plain TCP).

    With ``metrics_port`` (0: any free port) also serves ``/metrics``, ``/healthz`` and ``/readyz``
    (`secureflow.compute.worker.node_metrics`) on ``metrics_host``.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    node = Node(
        party,
        data_dir,
        redis_url,
        host=host,
        prefix=prefix,
        max_sessions=max_sessions,
        guard=guard,
        log_retention_days=log_retention_days,
        tls=tls,
        warm_worker=warm_worker,
    )
    node.prune_logs()
    if tls is None:
        log.warning(
            "the links to this node's workers are plain TCP (--no-tls): anyone who reaches them can connect"
        )
    else:
        log.info("links over mutual TLS; this node's certificate fingerprint is sha256:%s", tls.fingerprint)
    if guard is None:
        log.warning("this node trusts its Redis: it acts on unsigned entries (--trust-redis; tests only)")
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
