"""The compute side of ``secureflow doctor``: SecretFlow, the ports its workers listen on, Redis and the
other parties' nodes.

``secretflow`` imports SecretFlow and SPU in a child process (as a party worker does; a broken install
fails there, not in the caller). ``secretflow_ports`` binds as many free TCP ports on the workers' host as
one session of ``parties`` parties takes (each worker listens on one port per SPU profile plus its link).
``redis`` pings the configured Redis; ``party_nodes`` reads the nodes' own heartbeats there
(``<prefix>:node:<party>:alive``, rewritten every second with a short TTL, see `compute.worker.link`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from secureflow.compute.worker.engine import free_ports
from secureflow.compute.worker.link import node_alive_key
from secureflow.compute.worker.protocol import SPU_PROFILES
from secureflow.ledger.checks import Check, failed, passed, skipped

SECRETFLOW_IMPORT_TIMEOUT_S = 300.0


def secretflow_check(timeout_s: float = SECRETFLOW_IMPORT_TIMEOUT_S) -> Check:
    """``secretflow``: ``import secretflow, spu`` works in a fresh interpreter of this environment."""
    started = time.monotonic()
    fix = "run scripts/bootstrap.sh (it installs secretflow-lite into .venv with Python 3.10)"
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import secretflow, spu"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return failed("secretflow", f"importing SecretFlow took longer than {timeout_s:.0f} s", fix)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        return failed("secretflow", f"importing SecretFlow failed: {last}", fix)
    return passed("secretflow", f"SecretFlow and SPU import ({time.monotonic() - started:.1f} s)")


def ports_check(parties: int = 2, host: str = "127.0.0.1") -> Check:
    """``secretflow_ports``: one session's worth of free ports can be bound on ``host``."""
    count = parties * (1 + len(SPU_PROFILES))
    try:
        free_ports(count, host)
    except OSError as exc:
        return failed(
            "secretflow_ports",
            f"cannot bind {count} free TCP ports on {host}: {exc.strerror or type(exc).__name__}",
            "free ports on this host (or widen net.ipv4.ip_local_port_range); the workers need "
            "one port per party and SPU profile",
        )
    return passed(
        "secretflow_ports", f"{count} free ports bound on {host} (one session of {parties} parties)"
    )


def redis_check(url: str | None) -> Check:
    """``redis``: the configured Redis answers PING."""
    if not url:
        return skipped("redis", "no Redis configured (SECUREFLOW_COMPUTE_REDIS_URL, or a redis:// broker)")
    import redis

    parts = urlsplit(url)
    shown = f"{parts.hostname}:{parts.port or 6379}"  # never the password
    try:
        with redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        return failed(
            "redis",
            f"Redis at {shown} does not answer ({type(exc).__name__})",
            "start Redis or point SECUREFLOW_COMPUTE_REDIS_URL (SECUREFLOW_BROKER_URL) at it",
        )
    return passed("redis", f"Redis at {shown} answers")


def nodes_check(url: str | None, prefix: str, parties: Sequence[str]) -> Check:
    """``party_nodes``: each party's node beats in Redis (no ``parties``: lists every node that beats)."""
    if not url:
        return skipped("party_nodes", "no Redis configured: the parties' nodes are not reached through one")
    import redis

    try:
        with redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3) as client:
            if not parties:
                pattern = node_alive_key(prefix, "*")
                found = sorted(
                    key.decode().removeprefix(f"{prefix}:node:").removesuffix(":alive")
                    for key in client.scan_iter(match=pattern, count=1000)
                )
                if not found:
                    return skipped(
                        "party_nodes", f"no node beats under prefix {prefix!r}; name them with --party"
                    )
                return passed("party_nodes", f"nodes beating: {', '.join(found)}")
            missing = [party for party in parties if not client.exists(node_alive_key(prefix, party))]
    except redis.RedisError as exc:
        return skipped("party_nodes", f"needs redis ({type(exc).__name__})")
    if missing:
        return failed(
            "party_nodes",
            f"no heartbeat from the node of {', '.join(missing)} (prefix {prefix!r})",
            "start `secureflow node --party NAME` on that member's host with the same Redis and prefix, "
            "or check its network to Redis",
        )
    return passed("party_nodes", f"the nodes of {', '.join(parties)} beat")
