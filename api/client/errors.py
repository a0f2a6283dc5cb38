"""What the client raises: one root, `ClientError`, and below it what went wrong.

- `ApiResponseError`: the API answered with an error, in its one shape ``{"error": {"code", "message",
  "request_id"}}``: the HTTP status, the server's code, message and request id are attributes; subclasses
  by status (`NotFoundError`, `ConflictError`, ...) so that callers can catch what they handle;
- `ApiUnreachableError`: no answer (connection refused, timeout, TLS, name resolution);
- `StreamLostError`: following a job's live status lost the stream too many times in a row;
- `UnexpectedResponseError`: an answer that is not what the API declares (not JSON, another shape);
- `ClientConfigError`: the client cannot be built as asked (not an http(s) URL, a malformed API key).

No message ever contains the API key.
"""

from __future__ import annotations


class ClientError(Exception):
    """Root of every error the secureflow client raises."""


class ClientConfigError(ClientError, ValueError):
    """The client cannot be built as asked (the API URL, the API key)."""


class ApiUnreachableError(ClientError):
    """The API did not answer at ``base_url`` (``reason`` says why: connection refused, timeout, ...)."""

    def __init__(self, base_url: str, reason: str) -> None:
        self.base_url, self.reason = base_url, reason
        super().__init__(f"cannot reach the secureflow API at {base_url}: {reason}")


class StreamLostError(ApiUnreachableError):
    """The live status of a job was lost ``attempts`` times in a row (the last cause is ``__cause__``)."""

    def __init__(self, base_url: str, job_id: str, attempts: int) -> None:
        self.job_id, self.attempts = job_id, attempts
        super().__init__(base_url, f"lost the live status of job {job_id} {attempts} times in a row")
        self.args = (f"lost the live status of job {job_id} at {base_url} {attempts} times in a row",)


class UnexpectedResponseError(ClientError):
    """The API answered something that is not what it declares (not JSON, another shape, a broken stream):
    usually a client of another version, or a URL that is not the secureflow API."""


class ApiResponseError(ClientError):
    """The API answered with an error: the HTTP ``status`` and the server's ``code``, ``message`` and
    ``request_id`` (quote it to the API's operator); ``retry_after`` is the server's ``Retry-After`` in
    seconds, if it sent one."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status, self.code, self.message, self.request_id = status, code, message, request_id
        self.retry_after = retry_after
        super().__init__(f"HTTP {status} {code}: {message} [request id {request_id}]")


class BadRequestError(ApiResponseError):
    """400."""


class UnauthorizedError(ApiResponseError):
    """401: no API key, or an unknown or revoked one."""


class ForbiddenError(ApiResponseError):
    """403: the key's role (or the member's party) may not do this."""


class NotFoundError(ApiResponseError):
    """404: not found, or not visible to this key's member."""


class ConflictError(ApiResponseError):
    """409: the state does not allow it now (code ``not_anchored``: the record is not anchored yet)."""


class PayloadTooLargeError(ApiResponseError):
    """413."""


class InvalidRequestError(ApiResponseError):
    """422: the request was refused (the message names the fields, or the contract rule)."""


class RateLimitedError(ApiResponseError):
    """429: too many requests (retried by the client for idempotent calls, honouring Retry-After)."""


class ServerError(ApiResponseError):
    """5xx: the API or one of its dependencies failed."""


class UnavailableError(ServerError):
    """503: the database or the chain node is unavailable (retried for idempotent calls)."""


_BY_STATUS: dict[int, type[ApiResponseError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidRequestError,
    429: RateLimitedError,
    503: UnavailableError,
}


def error_for_status(
    status: int, code: str, message: str, request_id: str, *, retry_after: float | None = None
) -> ApiResponseError:
    """The `ApiResponseError` subclass of ``status``."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiResponseError)
    return cls(status, code, message, request_id, retry_after=retry_after)
