"""Mutual TLS, pinned to the job's parties, on the SecretFlow and SPU links between nodes.

Why not SecretFlow's own TLS options (measured on secretflow-lite 1.13 / spu 0.9.4, see
tests/compute/test_link_tls.py):

* ``sf.init(tls_config=...)`` with ``cross_silo_comm_backend="brpc_link"`` fills the link's
  ``server_ssl_opts``/``client_ssl_opts`` but never sets ``enable_ssl``, and yacl's
  ``FactoryBrpc`` applies the SSL options only when ``enable_ssl`` is set: the cross-silo link stays
  plain TCP, silently.
* SPU's ``tls_opts`` (``server_ssl_opts``/``client_ssl_opts``: certificate_path, private_key_path,
  ca_file_path, verify_depth) do enable TLS, and a TLS client without a trusted certificate is
  refused at the handshake; but yacl starts its brpc server without ``force_ssl``, so the same port
  still serves plain TCP: a client with no certificate at all pushes a message that the party
  receives as coming from its peer.

So the node puts its own TLS in front of both: the worker's brpc servers listen on 127.0.0.1 only,
and every link between two nodes runs through the nodes' tunnels (`TlsTunnel`):

* inbound, on the public port the node reports: a TLS server that requires a client certificate,
  trusts exactly the certificates of the session's other parties (a CA file of those certificates,
  nothing else) and checks the peer's SHA-256 fingerprint again, then forwards the bytes to the
  worker's loopback port. A plain TCP client, or a TLS client with any other certificate, fails the
  handshake and never reaches the worker;
* outbound, one loopback port per peer and link: the worker connects there, the tunnel connects to
  the peer's public port over TLS with this node's certificate and accepts only that peer's
  certificate (by fingerprint).

Each node's certificate is self-signed (made at start, or the operator's ``--tls-cert/--tls-key``);
its fingerprint travels in the node's ``ports`` reply, which the node signs with its member key, so the
coordinator binds certificate, member address and on-chain party; every node gets every party's
signed ``ports`` reply in the table and checks those signatures itself
(`secureflow.compute.worker.node`). The private key stays in ``<data-dir>/secrets/tls/`` (mode 0600)
and is never sent or logged; certificates and fingerprints are public.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from secureflow.compute.errors import ComputeError

log = logging.getLogger("compute.tls")

HANDSHAKE_TIMEOUT_S = 60.0
"""A peer's handshake may wait this long (its tunnel starts serving once its node got the table)."""
CERT_DAYS = 30
"""Validity of a certificate a node makes itself (a new one at every start)."""


class TlsError(ComputeError):
    """A TLS certificate or key cannot be made, read or used."""


def fingerprint(cert_pem: str) -> str:
    """SHA-256 of the certificate's DER bytes, lower-case hex (what nodes pin peers by)."""
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_pem.strip() + "\n")
    except (ValueError, TypeError):
        raise TlsError("not a PEM certificate") from None
    return hashlib.sha256(der).hexdigest()


def der_fingerprint(der: bytes | None) -> str | None:
    return None if der is None else hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class TlsIdentity:
    """This node's certificate (public) and the path of its private key (0600, never sent)."""

    cert_path: Path
    key_path: Path
    cert_pem: str
    fingerprint: str

    def public(self) -> dict[str, str]:
        """What the node sends with its ports (signed): the certificate and its fingerprint."""
        return {"cert": self.cert_pem, "fingerprint": self.fingerprint}


def _private_file(path: Path) -> None:
    """An empty file only its owner can read (openssl then writes the key into it, keeping the mode)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def make_identity(folder: Path, name: str) -> TlsIdentity:
    """A new P-256 key and self-signed certificate in ``folder`` (0700; the key 0600), via ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsError(
            "cannot make this node's TLS certificate: the openssl command is not installed",
            hint="install openssl (apt-get install openssl), or pass --tls-cert and --tls-key",
        )
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the node's secrets/ folder
    folder.mkdir(exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    key, cert = folder / "node.key", folder / "node.crt"
    _private_file(key)
    subject = "/CN=secureflow-node-" + "".join(c for c in name if c.isalnum() or c in "-_.")[:40]
    proc = subprocess.run(  # noqa: S603 - fixed argv, no shell; only names we built
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", str(CERT_DAYS), "-subj", subject],
        capture_output=True,
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise TlsError(
            f"openssl could not make this node's TLS certificate (exit code {proc.returncode})",
            hint="check that `openssl req -x509 -newkey ec` works on this host, or pass --tls-cert/--tls-key",
        )
    os.chmod(key, 0o600)
    return load_identity(cert, key)


def load_identity(cert: Path, key: Path) -> TlsIdentity:
    """The operator's certificate and key (the key must be readable by its owner only)."""
    try:
        mode = key.stat().st_mode
        cert_pem = cert.read_text()
    except OSError as exc:
        raise TlsError(
            f"cannot read the TLS certificate or key ({type(exc).__name__})",
            hint="pass readable files with --tls-cert and --tls-key",
        ) from None
    if mode & 0o077:
        raise TlsError(
            f"the TLS private key {key} can be read by others (mode {mode & 0o777:o})",
            hint=f"chmod 600 {key}",
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError):
        raise TlsError(
            "the TLS certificate and key do not load together",
            hint="pass a PEM certificate and its own PEM private key (unencrypted)",
        ) from None
    return TlsIdentity(cert.resolve(), key.resolve(), cert_pem, fingerprint(cert_pem))


def server_context(identity: TlsIdentity, peers: Mapping[str, str]) -> ssl.SSLContext:
    """TLS server side: a client certificate is required and must be one of ``peers`` (party -> PEM)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(identity.cert_path), str(identity.key_path))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata="\n".join(pem.strip() for pem in peers.values()) + "\n")
    return ctx


def client_context(identity: TlsIdentity, peer_pem: str) -> ssl.SSLContext:
    """TLS client side: presents this node's certificate, trusts exactly the peer's certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # pinned to the peer's certificate instead (hosts may be NATed)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(identity.cert_path), str(identity.key_path))
    ctx.load_verify_locations(cadata=peer_pem.strip() + "\n")
    return ctx


def listen_socket(bind: str) -> socket.socket:
    """A listening socket on a free port of ``bind`` (held from the ports reply until the tunnel serves)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Half(asyncio.Protocol):
    """One side of a spliced connection: what it receives goes to its peer's transport at once (no task
    switch per message: MPC traffic is many small round trips, so each hop's latency counts)."""

    def __init__(self, count: list[int], halves: set[_Half]) -> None:
        self.count = count
        self.halves = halves
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.early: list[bytes] = []
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a stream transport (TCP or TLS)
        self.transport = transport
        self.halves.add(self)

    def data_received(self, data: bytes) -> None:
        self.count[0] += len(data)
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.early.append(data)

    def eof_received(self) -> bool | None:
        self.close_pair()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.halves.discard(self)
        self.close_pair()

    def pause_writing(self) -> None:  # our transport's buffer is full: stop reading from the peer
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def close_pair(self) -> None:
        for half in (self, self.peer):
            if half is not None and half.transport is not None and not half.transport.is_closing():
                half.transport.close()

    def join(self, other: _Half) -> None:
        self.peer, other.peer = other, self
        for src, dst in ((self, other), (other, self)):
            if src.early and dst.transport is not None:
                dst.transport.write(b"".join(src.early))
                src.early.clear()
        if self.lost or other.lost:
            self.close_pair()


def _peer_fingerprint(transport: asyncio.BaseTransport) -> str | None:
    obj = transport.get_extra_info("ssl_object")
    return der_fingerprint(obj.getpeercert(binary_form=True)) if isinstance(obj, ssl.SSLObject) else None


class TlsTunnel:
    """One session's inbound TLS terminators and outbound TLS connectors, on a thread of their own."""

    def __init__(self, identity: TlsIdentity, session: str) -> None:
        self.identity = identity
        self.session = session
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._loop_error)
        self.thread = threading.Thread(target=self._run, name=f"secureflow-tls-{session[:8]}", daemon=True)
        self.servers: list[asyncio.base_events.Server] = []
        self.refused = 0
        """Inbound connections refused (a failed handshake or a certificate that is not a peer's)."""
        self.accepted = 0
        self.carried = [0]
        """Bytes the tunnel carried, both ways (logged when the session ends)."""
        self.halves: set[_Half] = set()
        """The open connections (closed with the tunnel)."""
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        exc = context.get("exception")
        log.warning(
            "session %s: TLS tunnel: %s (%s)",
            self.session[:8],
            str(context.get("message", "error"))[:120],
            type(exc).__name__ if exc is not None else "-",
        )

    def _call(self, coro: object) -> object:
        assert asyncio.iscoroutine(coro)  # noqa: S101 - internal use only
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30.0)

    def serve_inbound(self, public: socket.socket, inner_port: int, peers: Mapping[str, str]) -> None:
        """Take TLS on ``public`` from ``peers`` (party -> PEM) only; forward to 127.0.0.1:``inner_port``."""
        allowed = {fingerprint(pem) for pem in peers.values()}
        ctx = server_context(self.identity, peers)
        tunnel = self

        class Inbound(_Half):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)  # after the handshake: a certificate the CA file admits
                if _peer_fingerprint(transport) not in allowed:  # ...and, belt and braces, a peer's own
                    tunnel.refused += 1
                    transport.close()
                    return
                tunnel.accepted += 1
                tunnel.loop.create_task(self.connect())

            async def connect(self) -> None:
                inner = _Half(tunnel.carried, tunnel.halves)
                try:
                    await tunnel.loop.create_connection(lambda: inner, "127.0.0.1", inner_port)
                except OSError:
                    self.close_pair()
                    return
                self.join(inner)

        async def start() -> None:
            server = await self.loop.create_server(
                lambda: Inbound(self.carried, self.halves),
                sock=public,
                ssl=ctx,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
            )
            self.servers.append(server)

        self._call(start())

    def serve_outbound(self, peer_pem: str, host: str, port: int) -> int:
        """A loopback port that connects, over TLS pinned to ``peer_pem``, to ``host:port``; its number."""
        expected = fingerprint(peer_pem)
        ctx = client_context(self.identity, peer_pem)
        tunnel = self

        class Outbound(_Half):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                tunnel.loop.create_task(self.connect())

            async def connect(self) -> None:
                remote = _Half(tunnel.carried, tunnel.halves)
                try:
                    transport, _ = await asyncio.wait_for(
                        tunnel.loop.create_connection(
                            lambda: remote, host, port, ssl=ctx, server_hostname="",
                            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
                        ),
                        HANDSHAKE_TIMEOUT_S,
                    )  # fmt: skip
                except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
                    log.warning(
                        "session %s: TLS connection to a peer at %s:%d failed (%s)",
                        tunnel.session[:8], host, port, type(exc).__name__,
                    )  # fmt: skip
                    self.close_pair()
                    return
                if _peer_fingerprint(transport) != expected:
                    transport.close()
                    self.close_pair()
                    return
                self.join(remote)

        async def start() -> int:
            server = await self.loop.create_server(
                lambda: Outbound(self.carried, self.halves), "127.0.0.1", 0
            )
            self.servers.append(server)
            return int(server.sockets[0].getsockname()[1])

        got = self._call(start())
        assert isinstance(got, int)  # noqa: S101 - what start() returns
        return got

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
            for half in list(self.halves):
                half.close_pair()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with suppress(Exception):
            self._call(stop())
        log.info("session %s: the TLS tunnel carried %.1f MB", self.session[:8], self.carried[0] / 1e6)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10.0)
        with suppress(Exception):
            self.loop.close()
