"""The requests-based client the job CLI still reads the API with: `ApiClient` (HTTP with one API key),
the response views it reads and its errors (replaced by the typed client of this package).

The CLI (``secureflow job``) is built on it; it imports nothing of the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, ValidationError

from secureflow.ledger.errors import LedgerError

API_URL_ENV = "SECUREFLOW_API_URL"
API_KEY_ENV = "SECUREFLOW_API_KEY"
DEFAULT_API_URL = "http://127.0.0.1:8000"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0  # the live-status stream sends a keep-alive every 15 s
MAX_STREAM_RETRIES = 5


# ------------------------------------------------------------------ errors


class JobCliError(LedgerError):
    """A ``secureflow job`` command cannot go ahead."""

    hint = "see `secureflow job --help`"


class ApiUnreachableError(JobCliError):
    """The API does not answer at the configured URL."""


_STATUS_HINTS = {
    401: f"the API key is missing, unknown or revoked: export {API_KEY_ENV}=<key> "
    "(`secureflow up` prints the keys; an admin creates one with POST /v1/members/{id}/keys)",
    403: "this key's role may not do this: submitting and cancelling need a member key of a party of the "
    "job; reading works with admin, auditor, member and service keys",
    404: "check the job id and step (`secureflow job list`); members see only jobs they are party to",
    409: "the job's state does not allow this now: check it with `secureflow job status JOB_ID`",
    422: "the request was refused: fix what the message names (manifest fields, parties that are active "
    "members on chain, the submitting member a party) and try again",
}
_CODE_HINTS = {
    "not_anchored": "the step is not anchored yet: wait for the anchoring worker "
    "(`secureflow job status JOB_ID --follow`), then ask again",
}


class ApiResponseError(JobCliError):
    """The API answered with an error (the one JSON error shape: code, message, request id)."""

    def __init__(self, status: int, code: str, message: str, request_id: str) -> None:
        self.status, self.code, self.api_message, self.request_id = status, code, message, request_id
        hint = _CODE_HINTS.get(code) or _STATUS_HINTS.get(status)
        if hint is None:
            hint = (
                "the API or one of its dependencies (database, chain node) failed: retry, and quote the "
                "request id to its operator if it persists"
                if status >= 500
                else "see the message"
            )
        super().__init__(f"HTTP {status} {code}: {message} [request id {request_id}]", hint=hint)


# ------------------------------------------------------------------ what the CLI reads from the API


class _In(BaseModel):
    """A response body the CLI reads (fields it needs; the API may add more)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class JobView(_In):
    job_id: str
    manifest_hash: str
    creator: str
    parties: list[str]
    status: str
    chain_status: str
    created_tx_hash: str | None = None
    created_at: datetime
    updated_at: datetime


class SubmittedView(_In):
    job: JobView
    execution: str
    message: str


class StepView(_In):
    seq: int
    algorithm: str
    chain_status: str
    batch_id: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    confirmed_at: datetime | None = None


class CountsView(_In):
    pending: int = 0
    submitted: int = 0
    confirmed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.submitted + self.confirmed + self.failed

    @property
    def settled(self) -> bool:
        return self.pending == 0 and self.submitted == 0


class StatusEvent(_In):
    job_id: str
    status: str
    chain_status: str
    records: CountsView

    @property
    def finished(self) -> bool:
        """The job has ended and no record is still on its way to the chain (the stream ends here)."""
        return self.status in TERMINAL and self.records.settled

    @property
    def succeeded(self) -> bool:
        return self.status == "completed" and self.records.failed == 0


class ErrorView(_In):
    code: str
    message: str
    request_id: str


# ------------------------------------------------------------------ HTTP


class ApiClient:
    """The audit API at ``base_url`` with one API key (sent as a bearer token, never shown)."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {api_key}", "User-Agent": "secureflow-cli"})

    def _unreachable(self, exc: requests.RequestException) -> ApiUnreachableError:
        if isinstance(exc, requests.Timeout):
            why = "it did not answer in time"
        elif "refused" in str(exc).lower():
            why = "connection refused"
        elif isinstance(exc, requests.exceptions.SSLError):
            why = "the TLS handshake failed (check the certificate or use the right scheme)"
        elif "NameResolutionError" in str(exc) or "Name or service not known" in str(exc):
            why = "the host name does not resolve"
        else:
            why = f"{type(exc).__name__}"
        return ApiUnreachableError(
            f"cannot reach the secureflow API at {self.base_url}: {why}",
            hint="start it with `secureflow up` (the embedded stack) or `secureflow api`, or point "
            f"{API_URL_ENV} / --api-url at a running API",
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request; a non-2xx answer raises `ApiResponseError`, no answer `ApiUnreachableError`."""
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=json_body,
                stream=stream,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise self._unreachable(exc) from None
        except requests.RequestException as exc:  # e.g. an invalid URL: its message could carry the header
            raise ApiUnreachableError(
                f"cannot send the request to {self.base_url}: {type(exc).__name__}",
                hint=f"check {API_URL_ENV} / --api-url",
            ) from None
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def get_json(self, path: str, **params: Any) -> Any:
        return _json_of(self.request("GET", path, params=params))

    def events(self, job_id: str) -> Iterator[dict[str, Any]]:
        """The job's live-status events (the ``data`` of each ``event: status``) until ``event: end``."""
        response = self.request("GET", f"/v1/jobs/{job_id}/events", stream=True)
        with response:
            event, data = "message", []
            for raw in response.iter_lines(chunk_size=None):
                line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
                if line.startswith(":"):
                    continue  # keep-alive comment
                if line:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    continue
                if event == "end":
                    return
                if event == "status" and data:
                    try:
                        yield json.loads("\n".join(data))
                    except ValueError:
                        raise JobCliError(
                            "the API's live-status stream sent an event that is not JSON",
                            hint="use a `secureflow` CLI of the same version as the API",
                        ) from None
                event, data = "message", []


def _json_of(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise JobCliError(
            f"the API at {response.url.split('?')[0]} answered HTTP {response.status_code} with no JSON",
            hint=f"check that {API_URL_ENV} points at the secureflow API, not another service",
        ) from None


def _api_error(response: requests.Response) -> ApiResponseError:
    request_id = response.headers.get("x-request-id", "-")
    try:
        error = ErrorView.model_validate(response.json()["error"])
        return ApiResponseError(response.status_code, error.code, error.message, error.request_id)
    except (ValueError, KeyError, TypeError, ValidationError):
        text = " ".join(response.text.split())[:200] or response.reason or "no body"
        return ApiResponseError(response.status_code, f"http_{response.status_code}", text, request_id)
