"""The typed Python client of the secureflow audit API (also importable as ``secureflow.client``).

    from secureflow.client import Client

    with Client("http://127.0.0.1:8000", api_key=key) as api:  # or Client.from_env()
        job = api.jobs.get(job_id)                          # a JobOut
        for step in api.steps.iterate(job_id):              # every page, fetched as needed
            print(step.seq, step.chain_status)
        for event in api.jobs.follow(job_id):               # live status until finished, resuming
            print(event.status, event.records.confirmed)

`AsyncClient` is the same for asyncio (``await api.jobs.get(...)``, ``async for``). One resource per
attribute (``ops``, ``jobs``, ``steps``, ``bundles``, ``audit``, ``verification``, ``models``,
``members``, ``keys``, ``roles``, ``settlements``) with one typed method per route of the API
(`ROUTES` is the table; a test holds it equal to the server's OpenAPI). Answers are the pydantic models the
server declares its OpenAPI with (`secureflow.api.client.models`); the formats of the ledger (receipts,
audit bundles, the settlement contract's state, history and transactions) are models generated from the
server's OpenAPI (`secureflow.api.client.formats`): a `Receipt` goes back to `Verification.verify` as it
came, and ``receipt.model_dump_json(exclude_unset=True)`` is the file for ``secureflow verify``.

Idempotent calls are retried on 429 and 503, honouring ``Retry-After`` (`RetryPolicy`). Every error is a
`ClientError`; an error answer is an `ApiResponseError` with the server's code, message and request id.
Depends on httpx and pydantic only: importing it loads no SecretFlow, web3 or SQLAlchemy.
"""

from __future__ import annotations

from secureflow.api.client._http import (
    API_KEY_ENV,
    API_KEY_PATTERN,
    API_URL_ENV,
    DEFAULT_API_URL,
    NO_RETRY,
    RetryEvent,
    RetryPolicy,
    ServerSentEvent,
)
from secureflow.api.client.aio import AsyncClient, AsyncJobFollow
from secureflow.api.client.errors import (
    ApiResponseError,
    ApiUnreachableError,
    BadRequestError,
    ClientConfigError,
    ClientError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    StreamLostError,
    UnauthorizedError,
    UnavailableError,
    UnexpectedResponseError,
)
from secureflow.api.client.formats import (
    AuditBundle,
    BundleJob,
    Format,
    MemberBalance,
    PreparedTransaction,
    Receipt,
    SettlementEvent,
    SettlementHistory,
    SettlementOut,
    SubmittedTransaction,
    UnsignedTransaction,
)
from secureflow.api.client.models import (
    ETH,
    AcceptedStep,
    ApprovalAccepted,
    ApprovalIn,
    ApprovalState,
    AuditItem,
    CheckOut,
    ErrorDetail,
    Health,
    JobLogs,
    JobOut,
    JobStatusEvent,
    JobSubmitted,
    KeyCreated,
    KeyOut,
    Me,
    MemberOut,
    ModelOut,
    OffsetPage,
    Page,
    PartyLog,
    ProposalCreated,
    ProposalOut,
    ProposalState,
    Readiness,
    ReadinessCheck,
    RecordCounts,
    Role,
    RoleOut,
    SettlementAction,
    StepDetail,
    StepOut,
    VerdictOut,
    WeightsOut,
)
from secureflow.api.client.routes import ROUTES, Route
from secureflow.api.client.sync import Client, JobFollow

__all__ = [
    "API_KEY_ENV",
    "API_KEY_PATTERN",
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "ETH",
    "NO_RETRY",
    "ROUTES",
    "AcceptedStep",
    "ApiResponseError",
    "ApiUnreachableError",
    "ApprovalAccepted",
    "ApprovalIn",
    "ApprovalState",
    "AsyncClient",
    "AsyncJobFollow",
    "AuditBundle",
    "AuditItem",
    "BadRequestError",
    "BundleJob",
    "CheckOut",
    "Client",
    "ClientConfigError",
    "ClientError",
    "ConflictError",
    "ErrorDetail",
    "ForbiddenError",
    "Format",
    "Health",
    "InvalidRequestError",
    "JobFollow",
    "JobLogs",
    "JobOut",
    "JobStatusEvent",
    "JobSubmitted",
    "KeyCreated",
    "KeyOut",
    "Me",
    "MemberBalance",
    "MemberOut",
    "ModelOut",
    "NotFoundError",
    "OffsetPage",
    "Page",
    "PartyLog",
    "PayloadTooLargeError",
    "PreparedTransaction",
    "ProposalCreated",
    "ProposalOut",
    "ProposalState",
    "RateLimitedError",
    "Readiness",
    "ReadinessCheck",
    "Receipt",
    "RecordCounts",
    "RetryEvent",
    "RetryPolicy",
    "Role",
    "RoleOut",
    "Route",
    "ServerError",
    "ServerSentEvent",
    "SettlementAction",
    "SettlementEvent",
    "SettlementHistory",
    "SettlementOut",
    "StepDetail",
    "StepOut",
    "StreamLostError",
    "SubmittedTransaction",
    "UnauthorizedError",
    "UnavailableError",
    "UnexpectedResponseError",
    "UnsignedTransaction",
    "VerdictOut",
    "WeightsOut",
]
