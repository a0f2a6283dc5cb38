"""Whether the API can listen where it is told to, checked before anything is built (light: the CLI's
``secureflow up`` asks before it starts a chain and party workers)."""

from __future__ import annotations

import errno
import socket

from secureflow.ledger.errors import ConfigurationError


def ensure_port_free(host: str, port: int, *, setting: str = "SECUREFLOW_API_PORT") -> None:
    """Raise `ConfigurationError` if the API could not listen on ``host:port`` (something else holds it),
    before anything is built: a clear error instead of uvicorn's log line after start-up."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigurationError(
            f"cannot listen on {host}: {exc.strerror}", hint="fix SECUREFLOW_API_HOST"
        ) from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
            raise ConfigurationError(
                f"port {port} on {host} is already in use: the API cannot listen there",
                hint=f"stop what listens there, or choose another port ({setting})",
            ) from None
