"""A node's warm spare party worker: SecretFlow imported before a job asks for it.

A party worker spends most of its start importing SecretFlow (~6-9 s, measured: DESIGN.md); a node
starts a worker per job session, so without a spare every job of the consortium waited that long before
its first step. `Standby` keeps one worker process that has imported SecretFlow and knows nothing yet (no
party settings, ports, key or data: it runs ``compute.worker.main --standby``) and hands it to the next
session that needs a worker (`Standby.take` writes the session's settings and sends ``configure``); from
then on it is that session's worker, exactly as one spawned for it. The node starts a new spare as soon
as the last one was taken (its import then runs beside the job that took it, off the job's critical path)
and kills the spare when it stops.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from secureflow.compute.worker.engine import write_worker_settings
from secureflow.compute.worker.link import LocalLink
from secureflow.compute.worker.protocol import PartyPorts

log = logging.getLogger("compute.node")

MAX_BACKOFF_S = 600.0
"""The longest wait before a new spare after spares kept dying (a broken install, the OOM killer)."""


class Standby:
    """At most one warm spare worker of ``party`` (its files under ``party_dir/standby/``)."""

    def __init__(self, party: str, party_dir: Path) -> None:
        self.party = party
        self.party_dir = party_dir
        self.home = party_dir / "standby"
        self._link: LocalLink | None = None
        self._warm = threading.Event()
        self._lock = threading.Lock()
        self.import_s: float | None = None
        """How long the current spare took to import SecretFlow (None until it said so)."""
        self._failures = 0
        self._next_spawn = 0.0

    def warm(self) -> bool:
        """Whether a spare is alive and has imported SecretFlow."""
        with self._lock:
            link = self._link
        return link is not None and link.alive() and self._warm.is_set()

    def spawning(self) -> bool:
        """Whether a spare is alive (warm or still importing)."""
        with self._lock:
            link = self._link
        return link is not None and link.alive()

    def due(self) -> bool:
        """Whether a spare should be started now: none is alive and the backoff after failed ones is over."""
        return not self.spawning() and time.monotonic() >= self._next_spawn

    def spawn(self) -> None:
        """Start a spare unless one is alive. A spare that died before it was warm (or while it waited)
        is reaped, logged with its exit code, and delays the next one: 5 s doubling to 10 min, reset by
        a spare that got warm, so a SecretFlow that cannot import never keeps a core busy."""
        with self._lock:
            if self._link is not None and self._link.alive():
                return
            old, self._link = self._link, None
        if old is not None:  # died on its own: reap it
            code = old.exit_code()
            old.kill()
            old.close()
            self._failures += 1
            delay = min(5.0 * 2 ** (self._failures - 1), MAX_BACKOFF_S)
            self._next_spawn = time.monotonic() + delay
            log.warning(
                "the warm spare worker exited (code %s); the next one starts in %.0f s (its log: %s)",
                code,
                delay,
                self.home / "logs" / "standby.log",
            )
            return
        for sub in ("tmp", "work", "logs"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["TMPDIR"] = str(self.home / "tmp")
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = [sys.executable, "-m", "secureflow.compute.worker.main", "--standby"]
        try:
            with open(self.home / "logs" / "standby.log", "wb") as out:  # this spare's output only
                proc = subprocess.Popen(  # noqa: S603 - fixed argv: our own executable and module, no shell
                    [*argv, str(child_sock.fileno()), str(os.getpid())],
                    pass_fds=(child_sock.fileno(),),
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=str(self.home / "work"),
                    env=env,
                )
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        link = LocalLink(self.party, proc, Connection(parent_sock.detach()))
        with self._lock:
            self._warm.clear()
            self._link = link
        threading.Thread(target=self._await_warm, args=(link,), daemon=True).start()

    def _await_warm(self, link: LocalLink) -> None:
        try:
            msg = link.recv()
        except (EOFError, OSError):
            return
        with self._lock:  # set under the lock: a spare that replaced this one is never marked warm by it
            if self._link is not link or not isinstance(msg, dict) or msg.get("op") != "standby":
                return
            self.import_s = float(msg.get("import_s", 0.0))
            self._failures = 0
            self._warm.set()
        log.info("a warm party worker is ready (SecretFlow imported in %.1f s)", self.import_s)

    def take(
        self,
        table: dict[str, PartyPorts],
        *,
        log_level: str,
        spu_profiles: dict[str, dict[str, Any]],
        scratch: Path,
        require_consent: bool,
    ) -> LocalLink | None:
        """The spare, configured as this session's worker; None when there is no warm spare (the caller
        spawns a worker as before). A spare still importing stays for a later session: until it said it
        is warm, its socket is read by the thread waiting for that word, never by a session's relay."""
        with self._lock:
            if not self._warm.is_set() or self._link is None:
                return None
            link, self._link = self._link, None
            self._warm.clear()
        if not link.alive():
            link.kill()
            link.close()
            return None
        self._failures = 0
        settings = write_worker_settings(
            self.party,
            self.party_dir,
            table,
            fd=-1,  # the spare keeps the socket it was started with
            log_level=log_level,
            spu_profiles=spu_profiles,
            scratch=scratch,
            require_consent=require_consent,
        )
        try:
            link.send({"op": "configure", "settings": str(settings)})
        except (OSError, EOFError):
            link.kill()
            link.close()
            return None
        return link

    def stop(self) -> None:
        """Kill the spare (the node is stopping)."""
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            with suppress(OSError):
                link.kill()
            link.close()
