"""Probe a live port as a non-party would: plain TCP, or TLS with a certificate of its own."""

from __future__ import annotations

import socket
import ssl

from secureflow.compute.worker.tls import TlsIdentity


def refused(host: str, port: int, identity: TlsIdentity | None) -> bool:
    """Whether a client is turned away at the TLS handshake (``identity`` None: plain TCP, speaking HTTP)."""
    with socket.create_connection((host, port), timeout=30) as raw:
        if identity is None:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = raw.recv(100)
            except ConnectionResetError:
                return True
            return not answer.startswith(b"HTTP")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.load_cert_chain(str(identity.cert_path), str(identity.key_path))
        try:
            with ctx.wrap_socket(raw) as tls:  # TLS 1.3: the server's verdict on our certificate comes next
                tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                return tls.recv(100) == b""
        except (ssl.SSLError, ConnectionResetError):
            return True
