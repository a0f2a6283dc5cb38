"""The FastAPI app factory: routes under ``/v1``, one error shape, request ids, body limit, metrics.

``create_app(settings, store=..., client=..., deployment=...)`` builds the app
around collaborators the caller owns (so tests and ``secureflow up`` can share
a store, chain and worker). On startup it migrates the API's tables; on
shutdown it lets an in-process anchoring worker drain what is pending (up to
``shutdown_drain_timeout``) before stopping it. Records are durable in the
database the moment ``POST /v1/jobs/{id}/steps`` returns, so stopping loses
none even if draining times out: the next worker run anchors them.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from secureflow.api.server.auth import assert_every_route_guarded
from secureflow.api.server.context import INDEXER_CHECKPOINT, Services
from secureflow.api.server.db import ApiDb
from secureflow.api.server.errors import ApiError, code_for_status, error_body, from_ledger_error
from secureflow.api.server.executor import JobExecutor
from secureflow.api.server.joblogs import JobLogSource, NodeJobLogs, load_log_reader_key
from secureflow.api.server.metrics import ApiMetrics, LedgerCollector
from secureflow.api.server.reads import HotReads
from secureflow.api.server.routes import admin, audit, console, docs, jobs, ops, search, settlements, ui
from secureflow.api.server.settings import ApiSettings
from secureflow.api.server.streams import StreamSlots
from secureflow.ledger.anchoring import AnchoringWorker
from secureflow.ledger.chain import ChainClient
from secureflow.ledger.deploy import Deployment
from secureflow.ledger.errors import LedgerError
from secureflow.ledger.store.base import LedgerStore

log = logging.getLogger("api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
API_VERSION = "1.0.0"


_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    """32 hex digits, unique: this process's random prefix and a counter (uuid4's urandom call per request
    showed in profiles under load)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & (2**64 - 1):016x}"


class _BodyTooLarge(Exception):
    pass


class RequestContextMiddleware:
    """Request id (``X-Request-ID``, generated if absent or unsafe), body size limit, latency, access log."""

    def __init__(self, app: ASGIApp, *, max_body: int, metrics: ApiMetrics) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else _new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = int(message["status"]), True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            length = 0
        try:
            if length > self.max_body:
                raise _BodyTooLarge
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body:
                        raise _BodyTooLarge
                return message

            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if status["started"]:
                raise
            response = JSONResponse(
                error_body(
                    "payload_too_large",
                    f"the request body is larger than {self.max_body} bytes "
                    "(send fewer records per request, or split the manifest)",
                    request_id,
                ),
                status_code=413,
            )
            await response(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.latency.labels(scope.get("method", ""), template, str(status["code"])).observe(
                elapsed
            )
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "route": template,
                    "status": status["code"],
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "-")


def _error(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, _request_id(request)), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "(request)"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (+{len(exc.errors()) - 5} more)" if len(exc.errors()) > 5 else ""
    return (
        "invalid request: "
        + "; ".join(problems)
        + more
        + " (fix these fields; the schema is at /openapi.json)"
    )


def allowed_methods(request: Request) -> list[str]:
    """The methods the app's routes take on the request's path (the ``Allow`` header of a 405), sorted."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] != Match.NONE:
            methods.update(route_methods)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Every error becomes ``{"error": {"code", "message", "request_id"}}``."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)  # noqa: S101 - invariant for the type checker, not input validation
        if exc.status >= 500:
            log.error(
                "request failed", extra={"request_id": _request_id(request), "error": type(exc).__name__}
            )
        return _error(request, exc.status, exc.code, exc.message, exc.headers)

    async def on_ledger_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LedgerError)  # noqa: S101 - invariant for the type checker, not input validation
        return await on_api_error(request, from_ledger_error(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - invariant for the type checker, not input validation
        return _error(request, 422, "invalid_request", _validation_message(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - invariant for the type checker, not input validation
        status = exc.status_code
        headers = dict(exc.headers) if exc.headers else {}
        if status == 404:
            message = f"no route {request.url.path} (the routes are listed at /openapi.json)"
        elif status == 405:
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            message = (
                f"{request.method} is not allowed on {request.url.path}: use {', '.join(allowed)} "
                "(see /openapi.json)"
            )
        elif status == 400:
            # FastAPI's answer to a request body it cannot decode (not UTF-8): the same error as a body that
            # is not JSON, so that every malformed body is one documented status
            status = 422
            message = (
                f"invalid request: {exc.detail} (send a UTF-8 JSON body; the schema is at /openapi.json)"
            )
        else:
            message = str(exc.detail)
        return _error(request, status, code_for_status(status), message, headers or None)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"request_id": _request_id(request)})
        return _error(
            request, 500, "internal_error", "the server failed; quote the request id when reporting it"
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(LedgerError, on_ledger_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


ROUTE_MODULES = (ops, jobs, console, search, audit, admin, settlements, ui, docs)
"""Every module of routes the app serves (each has a ``router``), in the order they are matched."""


def create_app(
    settings: ApiSettings,
    *,
    store: LedgerStore,
    client: ChainClient,
    deployment: Deployment,
    worker: AnchoringWorker | None = None,
    executor: JobExecutor | None = None,
    api_db: ApiDb | None = None,
    job_logs: JobLogSource | None = None,
) -> FastAPI:
    """The API around the given store, chain and (optional) in-process anchoring worker and executor.

    ``job_logs``: where the parties' job logs are read (None: from the parties' nodes when
    ``compute_redis_url`` and ``log_reader_key_file`` are set, else nowhere)."""
    engine = getattr(store, "engine", None)
    if api_db is None:
        if engine is None:
            raise TypeError("give create_app an api_db, or a SqlLedgerStore whose engine it can share")
        api_db = ApiDb(engine)
    api_db.migrate()
    if job_logs is None and settings.compute_redis_url and settings.log_reader_key_file is not None:
        job_logs = NodeJobLogs(
            settings.compute_redis_url,
            settings.compute_redis_prefix,
            load_log_reader_key(settings.log_reader_key_file),
            settings.node_log_timeout,
        )
    services = Services(settings, store, api_db, client, deployment, worker, executor, job_logs)
    metrics = ApiMetrics()
    metrics.add_ledger(
        LedgerCollector(
            store,
            client.block_number,
            INDEXER_CHECKPOINT,
            stuck_after_seconds=settings.stuck_after_seconds,
        )
    )
    if worker is not None:  # an in-process worker (api --with-worker, secureflow up): its metrics too
        metrics.add_registry(worker.anchorer.metrics.registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "api started",
            extra={"database": getattr(store, "masked_url", "?"), "chain_id": deployment.chain_id},
        )
        yield
        shutdown(services)

    app = FastAPI(
        title="secureflow audit API",
        version=API_VERSION,
        description=(
            "Blockchain-audited ledger of SecretFlow jobs: jobs, step records and their anchoring on chain, "
            "receipts with Merkle proofs, verification, audit queries, members and API keys. Authenticate "
            "with 'Authorization: Bearer <API key>'. Every error has the shape "
            '{"error": {"code", "message", "request_id"}}.'
        ),
        lifespan=lifespan,
        docs_url=None,  # served offline by routes/docs.py (no CDN)
        redoc_url=None,
    )
    app.state.services = services
    app.state.reads = HotReads(
        store, api_db, services.chain_id, services.ledger_address, trees=services.receipts.trees
    )
    app.state.api_db = api_db
    app.state.streams = StreamSlots(settings.sse_max_streams_per_key, settings.sse_max_streams)
    app.state.metrics = metrics
    install_error_handlers(app)
    for module in ROUTE_MODULES:
        # The routes themselves (not an included router), so that app.routes lists every APIRoute
        # for the deny-by-default check and the role x route test matrix.
        app.router.routes.extend(module.router.routes)
    app.add_middleware(RequestContextMiddleware, max_body=settings.max_body_bytes, metrics=metrics)
    assert_every_route_guarded(app)
    return app


def shutdown(services: Services) -> None:
    """Drain the in-process worker (bounded), then stop it; accepted records are already in the DB."""
    worker = services.worker
    if worker is None:
        return
    drained = worker.drain(timeout=services.settings.shutdown_drain_timeout)
    worker.stop()
    counts = services.store.count_records_by_status()
    log.info(
        "anchoring worker stopped",
        extra={
            "drained": drained,
            "pending": counts.get("pending", 0),
            "submitted": counts.get("submitted", 0),
        },
    )
