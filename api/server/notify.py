"""Live job status: every writer of job or step state announces the change, live-status streams wait for it.

The database stays the source of truth. A notice says only *that* a job changed (its id, its status if
the write touched the job's row, and a sequence number of the publishing process: no record, reason,
address or secret); a woken stream reads the job's state from the database, as it does when it connects.
A notice that is lost (Redis restarted, a subscriber reconnecting, a publisher that could not reach Redis)
therefore delays a status but never loses it: each stream also reads the database every
``sse_poll_interval`` seconds (a slow poll); a stream whose notifier is not connected (Redis down) gets
its statuses from that poll only.

Who announces: the ledger store calls its job listeners after each commit that changed a job or its step
records (`secureflow.ledger.store.sqlbase.SqlStoreBase.add_job_listener`), so every writer is covered
without naming it: the coordinator (opening, steps, the end status), the API's routes (cancel, step
records), the lease watchdog, the embedded executor, the anchoring worker and indexer (records submitted
and confirmed, the close on chain).

Two notifiers with one interface (`StatusNotifier`):

- `RedisStatusNotifier` (``secureflow api`` with ``SECUREFLOW_STATUS_REDIS_URL``, or a Redis broker): each
  process publishes its notices on one Redis channel (``SECUREFLOW_STATUS_CHANNEL``) from a background
  thread (a slow or unreachable Redis never holds a write); an API process subscribes ONCE (one connection
  whatever the number of streams) and wakes the streams of the job named. It reconnects with backoff after
  an error (``secureflow_status_pubsub_reconnects_total``).
- `LocalStatusNotifier` (no Redis configured: the embedded ``secureflow up`` on SQLite, tests): writes in
  this process wake this process's streams directly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Literal

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge

from secureflow.api.server.settings import ApiSettings

log = logging.getLogger("secureflow.api.server.notify")

DEFAULT_CHANNEL = "secureflow:job-status"
WakeSource = Literal["pubsub", "local"]
_RECONNECT_MAX = 5.0
_REDIS_TIMEOUT = 2.0


class StatusMetrics:
    """Counters of one notifier (its own registry: several apps may live in one test process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.wakes = Counter(
            "secureflow_status_wakes",
            "Live-status streams woken by a notice, by its origin (pubsub: Redis; local: this process)",
            ["source"],
            registry=self.registry,
        )
        self.published = Counter(
            "secureflow_status_notices_published", "Job status notices published", registry=self.registry
        )
        self.publish_failures = Counter(
            "secureflow_status_publish_failures",
            "Job status notices dropped because Redis did not take them (streams see the change at their "
            "next poll)",
            registry=self.registry,
        )
        self.reconnects = Counter(
            "secureflow_status_pubsub_reconnects",
            "Times the live-status subscriber lost its Redis connection and connected again",
            registry=self.registry,
        )
        self.connected = Gauge(
            "secureflow_status_pubsub_connected",
            "1 while the live-status subscriber holds its Redis subscription, else 0",
            registry=self.registry,
        )


class StatusWaiter:
    """One stream's subscription to one job's notices (made before the stream's first read of the job, so
    that a change between the read and the wait is not missed)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._source: WakeSource | None = None

    def _wake(self, source: WakeSource) -> None:  # on the waiter's loop
        self._source = self._source or source
        self._event.set()

    def wake_threadsafe(self, source: WakeSource) -> None:
        with suppress(RuntimeError):  # a RuntimeError: the stream's loop has closed, nobody waits any more
            self._loop.call_soon_threadsafe(self._wake, source)

    async def wait(self, timeout: float) -> WakeSource | None:
        """Until a notice for the job (its source) or ``timeout`` seconds (None: read the DB anyway)."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        source, self._source = self._source, None
        self._event.clear()
        return source


class StatusNotifier:
    """Publishes job change notices and wakes the local streams waiting for them (base of both kinds)."""

    source: WakeSource = "local"

    def __init__(self, metrics: StatusMetrics | None = None) -> None:
        self.metrics = metrics or StatusMetrics()
        self._waiters: dict[str, set[StatusWaiter]] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    @property
    def live(self) -> bool:
        """Whether notices reach this process now (False: streams rely on their poll)."""
        return True

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[StatusWaiter]:
        """A waiter for ``job_id``'s notices while the block runs (call on the stream's event loop)."""
        waiter = StatusWaiter(job_id.lower())
        with self._lock:
            self._waiters.setdefault(waiter.job_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                left = self._waiters.get(waiter.job_id)
                if left is not None:
                    left.discard(waiter)
                    if not left:
                        del self._waiters[waiter.job_id]

    def waiting(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    def _wake(self, job_id: str, source: WakeSource) -> None:
        with self._lock:
            waiters = list(self._waiters.get(job_id.lower(), ()))
        for waiter in waiters:
            self.metrics.wakes.labels(source=source).inc()
            waiter.wake_threadsafe(source)

    def publish(self, changes: Mapping[str, str | None]) -> None:
        """Announce that these jobs changed (job id -> its status, or None); called after the commit."""
        for job_id in changes:
            self.metrics.published.inc()
            self._wake(job_id, "local")

    def close(self) -> None:
        """Stop background threads (the local notifier has none)."""


class LocalStatusNotifier(StatusNotifier):
    """No Redis: the writes of this process wake the streams of this process."""


class RedisStatusNotifier(StatusNotifier):
    """Notices over Redis pub/sub: published from a background thread; with ``subscribe``, one subscriber
    thread (one connection) wakes this process's streams. See the module docstring."""

    source: WakeSource = "pubsub"

    def __init__(
        self,
        url: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        subscribe: bool = True,
        metrics: StatusMetrics | None = None,
    ) -> None:
        super().__init__(metrics)
        self.url, self.channel = url, channel
        self._client = redis.Redis.from_url(
            url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT
        )
        self._outbox: queue.Queue[Mapping[str, object] | None] = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._threads = [threading.Thread(target=self._publishing, name="secureflow-status-pub", daemon=True)]
        if subscribe:
            self._threads.append(
                threading.Thread(target=self._subscribing, name="secureflow-status-sub", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    @property
    def live(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until the subscriber holds its subscription (tests, start-up); False after ``timeout``."""
        return self._connected.wait(timeout)

    def publish(self, changes: Mapping[str, str | None]) -> None:
        for job_id, status in changes.items():
            notice = {"job_id": job_id.lower(), "status": status, "seq": next(self._seq)}
            try:
                self._outbox.put_nowait(notice)
            except queue.Full:  # Redis has not answered for a long while: the streams' poll covers it
                self.metrics.publish_failures.inc()

    def _publishing(self) -> None:
        down = False
        while True:
            notice = self._outbox.get()
            if notice is None:
                return
            try:
                self._client.publish(self.channel, json.dumps(notice, separators=(",", ":")))
            except redis.RedisError as exc:
                self.metrics.publish_failures.inc()
                if not down:
                    log.warning(
                        "live status: Redis did not take a notice (%s); streams poll", type(exc).__name__
                    )
                down = True
                continue
            self.metrics.published.inc()
            if down:
                log.info("live status: Redis takes notices again")
                down = False

    def _subscribing(self) -> None:
        delay, first = 0.2, True
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self.channel)
                self._connected.set()
                self.metrics.connected.set(1)
                if not first:
                    self.metrics.reconnects.inc()
                    log.info("live status: subscribed to Redis again")
                first, delay = False, 0.2
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message.get("data"))
            except (redis.RedisError, OSError) as exc:
                if self._connected.is_set():
                    log.warning("live status: Redis subscription lost (%s); streams poll", type(exc).__name__)
                first = False
            finally:
                self._connected.clear()
                self.metrics.connected.set(0)
                with suppress(redis.RedisError, OSError):
                    pubsub.close()
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, _RECONNECT_MAX)

    def _dispatch(self, data: object) -> None:
        try:
            notice = json.loads(data if isinstance(data, (str, bytes)) else b"")
            job_id = notice["job_id"]
        except (ValueError, KeyError, TypeError):
            return  # not one of ours: ignored
        if isinstance(job_id, str):
            self._wake(job_id, "pubsub")

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(5.0)
        self._client.close()


def status_redis_url(settings: ApiSettings) -> str | None:
    """The Redis of live status: ``status_redis_url`` if set, else the broker's if it is Redis, else the
    nodes' Redis (``compute_redis_url``), else None (in-process notices only)."""
    if settings.status_redis_url:
        return settings.status_redis_url
    broker = settings.broker_url
    if broker and broker.startswith(("redis://", "rediss://")):
        return broker
    return settings.compute_redis_url


def notifier_for(
    settings: ApiSettings, *, subscribe: bool, registry: CollectorRegistry | None = None
) -> StatusNotifier:
    """The notifier of a process with these settings: Redis pub/sub if a Redis is configured (an API
    process subscribes; coordinators and anchoring workers only publish), else in-process."""
    url = status_redis_url(settings)
    metrics = StatusMetrics(registry)
    if url is None:
        return LocalStatusNotifier(metrics)
    return RedisStatusNotifier(url, channel=settings.status_channel, subscribe=subscribe, metrics=metrics)


def announce_changes(store: object, notifier: StatusNotifier) -> Callable[[], None]:
    """Let ``store``'s commits publish on ``notifier`` (a store without job listeners: nothing to do);
    returns what stops it."""
    add = getattr(store, "add_job_listener", None)
    if add is None:
        return lambda: None
    remove: Callable[[], None] = add(notifier.publish)
    return remove
