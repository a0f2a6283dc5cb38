"""The exception root of the API (`ApiError`) and how every error becomes the one JSON error shape.

Every error response, whatever raised it (a route, authentication, request
validation, an unknown path, a method not allowed, an oversized body, a ledger
error), has the body ``{"error": {"code", "message", "request_id"}}``. The
message says what went wrong and what to do; it never contains a key, a
database password or raw data.
"""

from __future__ import annotations

from typing import Any

from secureflow.ledger.errors import (
    ChainError,
    ConfigurationError,
    LedgerError,
    StoreConflictError,
    StoreNotFoundError,
    StoreUnavailableError,
)
from secureflow.ledger.receipts import InconsistentBatchError, ReceiptError, RecordNotAnchoredError


class ApiError(Exception):
    """Root of every error the API raises on purpose; ``status`` and ``code`` become the response."""

    status: int = 500
    code: str = "internal_error"
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None, headers: dict[str, str] | None = None):
        if hint is not None:
            self.hint = hint
        self.headers = headers or {}
        super().__init__(message)

    @property
    def message(self) -> str:
        text = str(self.args[0]) if self.args else self.code
        return f"{text} ({self.hint})" if self.hint else text


class BadRequestError(ApiError):
    status, code = 400, "bad_request"


class UnauthorizedError(ApiError):
    status, code = 401, "unauthorized"
    hint = (
        "send a valid API key as 'Authorization: Bearer <key>' "
        "(an admin creates keys: POST /v1/members/{id}/keys)"
    )

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, headers={"WWW-Authenticate": "Bearer"})


class ForbiddenError(ApiError):
    status, code = 403, "forbidden"


class NotFoundError(ApiError):
    status, code = 404, "not_found"


class ConflictError(ApiError):
    status, code = 409, "conflict"


class PayloadTooLargeError(ApiError):
    status, code = 413, "payload_too_large"


class InvalidRequestError(ApiError):
    status, code = 422, "invalid_request"


class RefusedError(ApiError):
    """A write the contract would refuse, refused by the API first with the contract's reason."""

    status, code = 422, "refused_by_contract_rules"


class RegistryConflictError(RefusedError):
    """A well-formed write the on-chain registry's current state refuses (e.g. the address is not an active
    member yet): 409, as it succeeds once the registry changes; the code names the contract rules."""

    status = 409


class TooManyRequestsError(ApiError):
    """Over a cap (e.g. live-status streams per API key); ``Retry-After`` says when to try again."""

    status, code = 429, "too_many_requests"

    def __init__(self, message: str, *, hint: str | None = None, retry_after: int = 5) -> None:
        super().__init__(message, hint=hint, headers={"Retry-After": str(retry_after)})


class UnavailableError(ApiError):
    status, code = 503, "unavailable"


class QueueUnavailableError(UnavailableError):
    """The job queue (the Celery broker) did not take a job: it is unreachable or refused the message."""


_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def code_for_status(status: int) -> str:
    return _STATUS_CODES.get(status, "error" if status < 500 else "internal_error")


def from_ledger_error(exc: LedgerError) -> ApiError:
    """The API error for a ledger error: not found 404, conflict 409, unavailable 503, else 500."""
    message, hint = str(exc.args[0]) if exc.args else type(exc).__name__, exc.hint or None
    if isinstance(exc, StoreNotFoundError):
        return NotFoundError(message, hint=hint)
    if isinstance(exc, RecordNotAnchoredError):
        err: ApiError = ConflictError(message, hint=hint)
        err.code = "not_anchored"
        return err
    if isinstance(exc, StoreConflictError):
        return ConflictError(message, hint=hint)
    if isinstance(exc, (StoreUnavailableError, ChainError)):
        return UnavailableError(message, hint=hint)
    if isinstance(exc, (InconsistentBatchError, ReceiptError, ConfigurationError)):
        return ApiError(message, hint=hint)
    return ApiError(
        "the ledger failed while handling the request", hint="retry; if it persists, see the logs"
    )


def error_body(code: str, message: str, request_id: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "request_id": request_id}}
