"""A pass run every few seconds in a daemon thread of the API process (the queue sweeper, the job watchdog).

`Periodic` owns the thread: `start` runs ``sweep()`` every ``interval`` seconds until `stop`; a pass that
raises (a database outage) is logged and handed to ``after_failed_pass()``, and the next pass tries again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("secureflow.api.server.periodic")


class Periodic:
    """Base of the API's periodic passes: subclasses set ``interval``, ``thread_name`` and ``sweep``."""

    interval: float
    thread_name: str

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> Any:
        raise NotImplementedError

    def after_failed_pass(self) -> None:
        """Called after a pass that raised (before the next one)."""

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception:  # a DB outage: the next pass tries again
                self.after_failed_pass()
                log.exception("%s: pass failed", self.thread_name)

    def start(self) -> Periodic:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
