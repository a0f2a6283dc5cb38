"""Slots for long-lived responses (the live-status streams): at most so many per API key and per process.

A stream is an async generator on the event loop (it holds no worker thread), but each one still reads
the database when woken and keeps a connection open: one key must not be able to open enough of them to
crowd out everybody else. `StreamSlots.acquire` refuses the next stream of a key that holds ``per_key``
of them, or any stream once ``total`` are open in this process, with a 429 in the API's error shape; the
slot goes back when the stream ends, the client disconnects, or the response fails
(`SlotStreamingResponse` releases it whatever happens).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Mapping

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from secureflow.api.server.errors import TooManyRequestsError
from secureflow.api.server.notify import StatusNotifier


class StreamSlot:
    """One open stream's slot; `release` is idempotent."""

    def __init__(self, slots: StreamSlots, key: str) -> None:
        self._slots, self.key = slots, key
        self._released = False

    def release(self) -> None:
        with self._slots._changed:
            if self._released:
                return
            self._released = True
            self._slots._release(self.key)


class StreamSlots:
    """Counts of open streams per API key and in total (thread-safe; one per app)."""

    def __init__(self, per_key: int, total: int, retry_after: int = 5) -> None:
        self.per_key, self.total, self.retry_after = per_key, total, retry_after
        self._open: dict[str, int] = {}
        self._changed = threading.Condition()

    def acquire(self, key: str) -> StreamSlot:
        """A slot for a new stream of ``key``, or `TooManyRequestsError` (429) if the key or the process is
        at its cap."""
        with self._changed:
            mine = self._open.get(key, 0)
            if mine >= self.per_key:
                raise TooManyRequestsError(
                    f"this API key has {mine} live-status streams open, the most one key may hold",
                    hint=f"close a stream (or follow fewer jobs at once) and retry; the cap is "
                    f"{self.per_key} per key (SECUREFLOW_SSE_MAX_STREAMS_PER_KEY)",
                    retry_after=self.retry_after,
                )
            if self.open_total() >= self.total:
                raise TooManyRequestsError(
                    f"this API process serves {self.total} live-status streams, its cap",
                    hint="retry later, or poll GET /v1/jobs/{job_id} instead "
                    "(SECUREFLOW_SSE_MAX_STREAMS sets the cap)",
                    retry_after=self.retry_after,
                )
            self._open[key] = mine + 1
            return StreamSlot(self, key)

    def _release(self, key: str) -> None:  # with self._changed held
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)
        self._changed.notify_all()

    def open_for(self, key: str) -> int:
        return self._open.get(key, 0)

    def open_total(self) -> int:
        return sum(self._open.values())

    def wait_until(self, predicate: Callable[[StreamSlots], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds after a release (or now); False after ``timeout`` s."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)


class SlotStreamingResponse(StreamingResponse):
    """A `StreamingResponse` that releases its stream slot when the response ends, however it ends
    (finished, client disconnected, cancelled, failed), even if its body was never iterated."""

    def __init__(
        self,
        content: AsyncIterator[str],
        *,
        slot: StreamSlot,
        media_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


def status_notifier(request: Request) -> StatusNotifier:
    """The app's `StatusNotifier` (built by `secureflow.api.server.app.create_app`)."""
    found = request.app.state.notifier
    assert isinstance(found, StatusNotifier)  # noqa: S101 - invariant for the type checker, not input validation
    return found


def stream_slots(request: Request) -> StreamSlots:
    """The app's `StreamSlots` (built by `secureflow.api.server.app.create_app`)."""
    found = request.app.state.streams
    assert isinstance(found, StreamSlots)  # noqa: S101 - invariant for the type checker, not input validation
    return found
