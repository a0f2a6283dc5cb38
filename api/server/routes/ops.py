"""Operations: ``/healthz`` (process up) and ``/readyz`` (DB, chain, worker), public; ``/metrics`` for a key
of role ``metrics`` or ``admin`` (Prometheus scrapes it with ``authorization: credentials``)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from secureflow.api.server.auth import allow, public
from secureflow.api.server.context import Services, services
from secureflow.api.server.schemas import ERROR_RESPONSES, Health, Readiness, ReadinessCheck

router = APIRouter(tags=["operations"], responses=ERROR_RESPONSES)


@router.get("/healthz", dependencies=[Depends(public())], response_model=Health)
def healthz() -> Health:
    """The process is up (no dependency is checked)."""
    return Health(status="ok")


def _check(name: str, probe: object) -> ReadinessCheck:
    try:
        detail = probe() if callable(probe) else str(probe)
        return ReadinessCheck(name=name, ok=True, detail=str(detail))
    except Exception as exc:  # readiness reports any failure, it never raises
        return ReadinessCheck(name=name, ok=False, detail=f"{type(exc).__name__}: {str(exc)[:300]}")


def _database(svc: Services) -> str:
    check = getattr(svc.store, "check", None)
    if callable(check):
        check()
    svc.db.check()
    return "reachable, schema current"


def _chain(svc: Services) -> str:
    chain_id = svc.client.check()
    if chain_id != svc.deployment.chain_id:
        raise RuntimeError(f"node serves chain {chain_id}, deployment is on {svc.deployment.chain_id}")
    return f"chain {chain_id} at block {svc.client.block_number()}"


def _worker(svc: Services) -> str:
    worker = svc.worker
    if worker is not None:
        thread = getattr(worker, "_thread", None)
        if thread is None or not thread.is_alive():
            raise RuntimeError("the in-process anchoring worker is not running")
        if worker.last_error:
            raise RuntimeError(f"the anchoring worker is paused: {worker.last_error}")
    oldest = svc.store.pending_leaves(1)
    if oldest:
        waited = (datetime.now(timezone.utc) - oldest[0].accepted_at).total_seconds()
        if waited > svc.settings.worker_stall_seconds:
            raise RuntimeError(
                f"the oldest pending record has waited {waited:.0f} s to be anchored "
                f"(limit {svc.settings.worker_stall_seconds:.0f} s): is `secureflow anchor-worker` running?"
            )
    return "in-process, running" if worker is not None else "external; nothing waits too long"


@router.get(
    "/readyz",
    dependencies=[Depends(public())],
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready: see which check failed"}},
)
def readyz(request: Request) -> JSONResponse:
    """Ready when the database, the chain node and the anchoring worker all answer; says which failed."""
    svc = services(request)
    started = time.monotonic()
    checks = [
        _check("database", lambda: _database(svc)),
        _check("chain", lambda: _chain(svc)),
        _check("worker", lambda: _worker(svc)),
    ]
    ready = all(c.ok for c in checks)
    body = Readiness(ready=ready, checks=checks).model_dump()
    body["seconds"] = round(time.monotonic() - started, 4)
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", dependencies=[Depends(allow("admin", "metrics"))], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics: request latency, anchoring queue depth, records by status, stuck jobs, chain head
    lag.

    Needs an API key of role ``metrics`` (made for Prometheus: it may call nothing else) or ``admin``."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
