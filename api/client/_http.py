"""What the sync and the async client share: settings checks, one call's description (`Call`), retries,
error decoding, server-sent events and the state of following a job's live status."""

from __future__ import annotations

import email.utils
import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from secureflow.api.client.errors import (
    ApiResponseError,
    ApiUnreachableError,
    ClientConfigError,
    StreamLostError,
    UnexpectedResponseError,
    error_for_status,
)
from secureflow.api.client.formats import Format
from secureflow.api.client.models import JobStatusEvent
from secureflow.api.client.routes import Route, route

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API_URL_ENV = "SECUREFLOW_API_URL"
API_KEY_ENV = "SECUREFLOW_API_KEY"
DEFAULT_API_URL = "http://127.0.0.1:8000"
USER_AGENT = "secureflow-client"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
"""60 s to read (the live-status stream sends a keep-alive every 15 s), 5 s to connect."""

API_KEY_PATTERN = re.compile(r"^sfk_[0-9a-f]{12}_[A-Za-z0-9_-]+$")
"""The form of an API key: ``sfk_<key id: 12 hex digits>_<secret>``."""
_HTTP_URL = re.compile(r"^https?://[^/\s]+\S*$")


def check_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash; `ClientConfigError` unless it is an http(s) URL."""
    if not isinstance(base_url, str) or not _HTTP_URL.match(base_url.strip()):
        raise ClientConfigError(f"the API URL {base_url!r} is not an http(s) URL, e.g. {DEFAULT_API_URL}")
    return base_url.strip().rstrip("/")


def check_api_key(api_key: str | None) -> str | None:
    """The key, stripped; `ClientConfigError` (never showing it) unless it is ``sfk_<12 hex>_<secret>``."""
    if api_key is None:
        return None
    key = api_key.strip()
    if not API_KEY_PATTERN.fullmatch(key):
        raise ClientConfigError("the API key is not of the form sfk_<12 hex digits>_<secret>")
    return key


def headers_for(api_key: str | None, user_agent: str) -> dict[str, str]:
    headers = {"User-Agent": user_agent, "Accept": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


# ------------------------------------------------------------------ one call


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request to a route of the table and how to read its answer."""

    route: Route
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    answers: frozenset[int] = frozenset()
    """Error statuses that are an answer of this route, not an error (``/readyz``: 503 with its checks)."""

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        params = {k: _param(v) for k, v in (self.params or {}).items() if v is not None}
        return http.build_request(
            self.route.method, self.path, params=params, json=self.json, headers=self.headers
        )


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def call(
    method: str,
    template: str,
    parse: Callable[[httpx.Response], T],
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    answers: frozenset[int] = frozenset(),
    **path: str | int,
) -> Call[T]:
    """The call of the route ``method template`` with its path parameters filled in (each one escaped)."""
    filled = template.format(**{name: quote(str(value), safe="") for name, value in path.items()})
    return Call(route(method, template), filled, parse, params, json, headers, answers)


def body_of(value: Mapping[str, Any] | BaseModel) -> Any:
    """A JSON body from a pydantic model (by alias, JSON mode) or a mapping. A format of the ledger received
    from the API (`Format`: a receipt) goes back with exactly the fields it came with."""
    if isinstance(value, Format):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    return dict(value)


# ------------------------------------------------------------------ answers


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise UnexpectedResponseError(
            f"the API at {response.request.url.copy_with(query=None)} answered HTTP {response.status_code} "
            "with no JSON: is the URL the secureflow API?"
        ) from None


def as_model(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        try:
            return model.model_validate(json_of(response))
        except ValidationError as exc:
            raise UnexpectedResponseError(
                f"the API answered {response.request.method} {response.request.url.path} in an unexpected "
                f"shape ({model.__name__}: {exc.errors()[0]['msg']}): use a client of the API's version"
            ) from None

    return parse


def as_json_object(response: httpx.Response) -> dict[str, Any]:
    body = json_of(response)
    if not isinstance(body, dict):
        raise UnexpectedResponseError(
            f"the API answered {response.request.method} {response.request.url.path} with JSON that is not "
            "an object"
        )
    return body


def as_bytes(response: httpx.Response) -> bytes:
    return response.content


def as_text(response: httpx.Response) -> str:
    return response.text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (None if absent or unreadable)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def error_from(response: httpx.Response) -> ApiResponseError:
    """The API's error answer (read first) as an `ApiResponseError` with its code, message and request id."""
    request_id = response.headers.get("x-request-id", "-")
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
        request_id = str(detail.get("request_id") or request_id)
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:200] or response.reason_phrase or "no body"
        code, message = f"http_{response.status_code}", text
    return error_for_status(response.status_code, code, message, request_id, retry_after=retry_after)


def unreachable(base_url: str, exc: httpx.TransportError) -> ApiUnreachableError:
    """Why there is no answer, in words, without the request (its headers hold the key)."""
    text = str(exc)
    if isinstance(exc, httpx.TimeoutException):
        why = "it did not answer in time"
    elif "refused" in text.lower():
        why = "connection refused"
    elif "ssl" in text.lower() or "certificate" in text.lower():
        why = "the TLS handshake failed (check the certificate or use the right scheme)"
    elif "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        why = "the host name does not resolve"
    elif isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        why = "the connection was cut"
    else:
        why = type(exc).__name__
    return ApiUnreachableError(base_url, why)


# ------------------------------------------------------------------ retries


@dataclass(frozen=True)
class RetryEvent:
    """A retry about to happen: after ``attempt`` answered ``error``, wait ``delay`` seconds."""

    method: str
    path: str
    attempt: int
    delay: float
    error: ApiResponseError


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of idempotent calls (GET, PUT and the POSTs the server makes idempotent) on 429 and 503.

    ``attempts`` counts the first try. The wait is the server's ``Retry-After`` when it sends one (no retry
    if it asks for more than ``max_retry_after`` seconds), else exponential backoff from ``backoff``
    seconds (capped at ``max_backoff``, jittered down by up to half). ``on_retry`` sees each retry first.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 20.0
    max_retry_after: float = 120.0
    statuses: frozenset[int] = frozenset({429, 503})
    on_retry: Callable[[RetryEvent], None] | None = field(default=None, compare=False)

    def delay(self, call: Call[Any], attempt: int, error: ApiResponseError) -> float | None:
        """Seconds to wait before trying ``call`` again after ``attempt`` failed, or None: do not retry."""
        if not call.route.idempotent or attempt >= self.attempts or error.status not in self.statuses:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return float(ceiling * random.uniform(0.5, 1.0))  # noqa: S311 - jitter spreads retries, guards nothing

    def next_wait(self, call: Call[Any], attempt: int, error: ApiResponseError) -> float | None:
        """`delay`, and tell ``on_retry`` about a retry about to happen."""
        wait = self.delay(call, attempt, error)
        if wait is not None and self.on_retry is not None:
            self.on_retry(RetryEvent(call.route.method, call.path, attempt, wait, error))
        return wait


NO_RETRY = RetryPolicy(attempts=1)


# ------------------------------------------------------------------ server-sent events


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event of a ``text/event-stream`` (``id``: the stream's last event id so far)."""

    event: str
    data: str
    id: str | None
    retry: int | None = None


class SseDecoder:
    """The event-stream format, line by line (WHATWG HTML, "Interpreting an event stream")."""

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self._event: str = ""
        self._data: list[str] = []
        self._retry: int | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """The event a blank line dispatches, else None."""
        if not line:
            event = None
            if self._data:
                data = "\n".join(self._data)
                event = ServerSentEvent(self._event or "message", data, self.last_event_id, self._retry)
            self._event, self._data, self._retry = "", [], None
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None


@dataclass
class FollowState:
    """Following a job's live status across connections: the last event, its id, failures in a row."""

    base_url: str
    job_id: str
    last_event_id: str | None = None
    once: bool = False
    max_failures: int = 5
    last: JobStatusEvent | None = None
    connections: int = 0
    failures: int = 0
    done: bool = False
    _ended: str | None = field(default=None, init=False, repr=False)

    def connected(self) -> None:
        self.connections += 1
        self._ended = None

    def on_event(self, sse: ServerSentEvent) -> JobStatusEvent | None:
        """The status event ``sse`` carries (None for other events; ``end`` is noted)."""
        if sse.event == "end":
            try:
                reason = json.loads(sse.data or "{}").get("reason")
            except (ValueError, AttributeError):
                reason = None
            self._ended = str(reason) if reason else "end"
            return None
        if sse.event != "status":
            return None
        try:
            event = JobStatusEvent.model_validate_json(sse.data)
        except ValidationError:
            raise UnexpectedResponseError(
                f"the live status of job {self.job_id} sent an event that is not a job status: use a client "
                "of the API's version"
            ) from None
        self.last, self.failures = event, 0
        if sse.id is not None:
            self.last_event_id = sse.id
        return event

    def stream_ended(self) -> float:
        """The server closed the stream: done (the job has finished, or ``once``), or the seconds to wait
        before connecting again (none after the server's time limit; backoff after a stream cut short)."""
        if self._ended is None:  # closed without an end event: a lost stream
            return self.on_failure(None)
        self.failures = 0
        finished = self.last is not None and self.last.finished
        self.done = self.once or self._ended in ("finished", "once") or finished
        return 0.0

    def on_failure(self, exc: BaseException | None) -> float:
        """Seconds to wait before connecting again; `StreamLostError` once too many failed in a row."""
        self.failures += 1
        if self.failures > self.max_failures:
            raise StreamLostError(self.base_url, self.job_id, self.failures) from exc
        return min(0.25 * (1 << min(self.failures, 8)), 5.0)
