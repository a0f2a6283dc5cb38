"""Prometheus metrics and health checks over plain HTTP, for any long-running secureflow process.

The API serves ``/metrics``, ``/healthz`` and ``/readyz`` through FastAPI; the other processes (the
anchoring worker, the party nodes, the coordinator) have no web framework and use this instead::

    from prometheus_client import CollectorRegistry, Counter
    from secureflow.ledger.metrics_server import serve_metrics

    registry = CollectorRegistry()
    jobs = Counter("secureflow_example_jobs_total", "Jobs taken", registry=registry)
    handle = serve_metrics(registry, "127.0.0.1", 9101, ready=lambda: (True, "serving"))
    try:
        ...  # the process's own loop
    finally:
        handle.close()

``serve_metrics`` binds at once (a port in use is a `ConfigurationError` saying so) and answers on a
daemon thread, so a scrape never waits for the process's own work:

* ``GET /metrics``: every metric of ``registry`` in the Prometheus text format (OpenMetrics when the
  scraper asks for it in ``Accept``);
* ``GET /healthz``: 200 ``ok`` while the process serves (liveness: restart it when this fails);
* ``GET /readyz``: 200 ``ready: <why>`` or 503 ``not ready: <why>`` from ``ready()`` (readiness: it
  is working as it should). ``ready`` runs on the server's thread for every request: keep it cheap and
  thread-safe (read a flag or a timestamp, do not call the chain or the database). An exception
  in it answers 503 with the exception's class name only.

Port 0 binds a free port (read it back from ``handle.port``). The process owns the registry: use a
registry of its own (``CollectorRegistry()``), not prometheus_client's global one, so that several
servers (tests) can live in one interpreter. Nothing here knows web3, SQL or SecretFlow: compute and
api processes use it too.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from secureflow.ledger.errors import ConfigurationError

log = logging.getLogger(__name__)

Readiness = Callable[[], tuple[bool, str]]
"""Answers (ready, why) for ``/readyz``; ``why`` is one short line with no secret in it."""


class MetricsServer:
    """A running metrics/health server (returned by `serve_metrics`); ``close()`` stops it."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:9101`` (append ``/metrics``, ``/healthz``, ``/readyz``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self, timeout: float = 5.0) -> None:
        """Stop answering and release the port (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _ThreadingHTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _handler(registry: CollectorRegistry, ready: Readiness) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "secureflow-metrics"
        sys_version = ""

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                try:
                    body = encoder(registry)
                except Exception as exc:  # a collector failed: say which kind, never a traceback
                    log.warning("metrics: a collector failed (%s)", type(exc).__name__)
                    self._answer(500, f"a metrics collector failed: {type(exc).__name__}\n".encode())
                    return
                self._answer(200, body, content_type)
            elif path == "/healthz":
                self._answer(200, b"ok\n")
            elif path == "/readyz":
                try:
                    ok, why = ready()
                except Exception as exc:
                    ok, why = False, f"the readiness check failed ({type(exc).__name__})"
                self._answer(200 if ok else 503, f"{'ready' if ok else 'not ready'}: {why}\n".encode())
            else:
                self._answer(404, b"not found: this server answers /metrics, /healthz and /readyz\n")

        do_HEAD = do_GET

        def log_message(self, format: str, *args: object) -> None:  # scrapes every few seconds: no log
            return

    return Handler


def serve_metrics(registry: CollectorRegistry, host: str, port: int, ready: Readiness) -> MetricsServer:
    """Serve ``/metrics`` (``registry``), ``/healthz`` and ``/readyz`` (``ready``) on ``host:port``.

    Returns at once with the server answering on a daemon thread; ``close()`` stops it. Raises
    `ConfigurationError` if the address cannot be bound.
    """
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"metrics port {port} is not a TCP port", hint="use 1-65535, or 0 for any")
    server_class = _ThreadingHTTPServer6 if ":" in host else ThreadingHTTPServer
    try:
        server = server_class((host, port), _handler(registry, ready))
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
            hint="choose another metrics port (SECUREFLOW_METRICS_PORT / --metrics-port), 0 for any free "
            "port, or stop the process that holds it",
        ) from None
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="secureflow-metrics", daemon=True
    )
    thread.start()
    handle = MetricsServer(server, thread)
    log.info("metrics on %s/metrics (health: /healthz, /readyz)", handle.url)
    return handle
