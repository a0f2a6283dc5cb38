"""A TCP forwarder in front of a local service (the Redis broker), switched down and up on cue.

Stalled, it accepts connections and never answers (a hung broker).
Down, it refuses new connections (its listening socket is closed, so a client gets "connection
refused", as from a stopped broker) and cuts the open ones; up, it listens again on the same port and
forwards bytes both ways unchanged. A test double for the network between the API and its broker,
used where a test needs a broker outage without stopping the machine's shared Redis.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from pathlib import Path
from types import TracebackType


def _free_port_below_the_ephemeral_range() -> int:
    """A free port the kernel never hands out as a client's own port: while the proxy is down, a client
    retrying a connection to an ephemeral port can be given that very port and connect to itself (TCP
    simultaneous open), and then holds the port the proxy needs to listen on again."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(max(1024, low - 12000), low), 200):
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            probe.close()
        return port
    raise RuntimeError("no free port below the ephemeral range")


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = _free_port_below_the_ephemeral_range()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.stalled = False  # accept connections and never answer (a hung broker), instead of forwarding

    @property
    def down(self) -> bool:
        return self._listener is None

    def up(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Go down: refuse new connections and cut every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._open = self._open, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: closing alone would not
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: down
            if self.stalled:
                with self._lock:
                    self._open.append(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.cut()
