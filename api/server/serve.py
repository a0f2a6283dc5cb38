"""Serving the API: ``secureflow api`` (production: configured DB and chain); ``secureflow up`` builds on it.

Both run a `uvicorn.Server` in the foreground, which stops cleanly on Ctrl-C
or SIGTERM: it stops accepting connections, finishes in-flight requests, then
the app's shutdown drains the in-process anchoring worker (bounded by
``SECUREFLOW_SHUTDOWN_DRAIN_TIMEOUT``) and stops it. Accepted step records are
already in the database, so none is lost either way.

``secureflow up`` (the embedded stack for trying the API) lives in
`api.dev.up` and uses these helpers.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn
from eth_account import Account
from fastapi import FastAPI

from secureflow.api.server.app import create_app
from secureflow.api.server.db import ApiDb, Role
from secureflow.api.server.executor import JobExecutor
from secureflow.api.server.jobqueue import CeleryJobExecutor, QueueSweeper, celery_app
from secureflow.api.server.listen import ensure_port_free
from secureflow.api.server.logs import configure_logging
from secureflow.api.server.notify import RedisStatusNotifier
from secureflow.api.server.settings import ApiSettings
from secureflow.api.server.watchdog import LeaseWatchdog
from secureflow.ledger.anchoring import AnchoringWorker
from secureflow.ledger.chain import ChainClient
from secureflow.ledger.deploy import load_deployment
from secureflow.ledger.errors import ConfigurationError
from secureflow.ledger.runtime import build_runtime
from secureflow.ledger.store.sql import SqlLedgerStore, open_store

log = logging.getLogger("secureflow.api.server.serve")
Printer = Callable[[str], None]


def ensure_admin_key(db: ApiDb, address: str, name: str = "admin") -> str | None:
    """If the API has no admin yet, create one (mapped to ``address``) and return its key; else None."""
    if db.count_members("admin") > 0:
        return None
    member = db.create_member(name, address, "admin")
    return db.create_key(member.id, "bootstrap")[1]


def add_member_key(db: ApiDb, name: str, address: str, role: Role) -> str:
    member = db.create_member(name, address, role)
    return db.create_key(member.id, "default")[1]


def freeze_startup_objects() -> None:
    """Take every object alive after start-up out of the cyclic garbage collector's reach (``gc.freeze``).

    An API process holds a few hundred thousand long-lived objects (web3, pydantic, SQLAlchemy, FastAPI),
    and every full collection walked all of them: up to ~230 ms with the whole process stopped, measured
    under the API benchmark, which was most of its p99. Frozen, they are never walked again; what requests
    allocate is still collected as before. Call it once the app is built, before serving.
    """
    gc.collect()
    gc.freeze()


def uvicorn_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the app (its own logging off: the API logs each request as JSON)."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    return uvicorn.Server(config)


@dataclass
class ApiProcess:
    """What `build_api` assembled; ``close`` releases it after the server stopped."""

    app: FastAPI
    store: SqlLedgerStore
    admin_key: str | None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def build_api(
    settings: ApiSettings, *, with_worker: bool = False, executor: JobExecutor | None = None
) -> ApiProcess:
    """The API against the configured DB and chain (``SECUREFLOW_*``); optionally the anchoring worker too.

    With ``SECUREFLOW_BROKER_URL`` and no other executor, accepted jobs go to the coordinators' queue."""
    if executor is None and settings.broker_url:
        executor = CeleryJobExecutor(
            celery_app(
                settings.broker_url,
                queue=settings.queue_name,
                visibility_timeout=settings.queue_visibility_timeout,
            )
        )
    store = open_store(settings.database_url)
    worker: AnchoringWorker | None = None
    if with_worker:
        runtime = build_runtime(settings, store=store)
        client, deployment, worker = runtime.client, runtime.deployment, runtime.worker
    else:
        deployment = load_deployment(settings.deployment)
        client = ChainClient(settings.chain_config())
        client.check()
    app = create_app(
        settings, store=store, client=client, deployment=deployment, worker=worker, executor=executor
    )
    admin_key = None
    if settings.deployer_key is not None:
        admin_address = Account.from_key(settings.deployer_key.get_secret_value()).address
        admin_key = ensure_admin_key(app.state.api_db, admin_address)
    if worker is not None:
        worker.start()
    closers: list[Callable[[], None]] = [store.close, app.state.notifier.close, app.state.stop_announcing]
    if isinstance(executor, CeleryJobExecutor):
        if not isinstance(app.state.notifier, RedisStatusNotifier):
            log.warning(
                "live status: no Redis for status notices (the broker is not Redis and neither "
                "SECUREFLOW_STATUS_REDIS_URL nor SECUREFLOW_COMPUTE_REDIS_URL is set): the coordinators' "
                "changes reach the live-status streams at their poll (every %.0f s) only",
                settings.sse_poll_interval,
            )
        sweeper = QueueSweeper(executor, app.state.api_db, store, interval=settings.queue_sweep_interval)
        closers += [executor.close, sweeper.start().stop]
    watchdog = LeaseWatchdog(
        app.state.api_db,
        store,
        interval=settings.watchdog_interval,
        grace=settings.lease_grace_seconds,
        unanchored_fail_after=settings.unanchored_fail_after,
    )
    closers.append(watchdog.start().stop)
    return ApiProcess(app, store, admin_key, closers)


def run_api(
    settings: ApiSettings | None = None,
    *,
    with_worker: bool = False,
    executor: JobExecutor | None = None,
    echo: Printer = print,
) -> None:
    """``secureflow api``: serve until Ctrl-C/SIGTERM, then drain and stop cleanly."""
    settings = settings or ApiSettings()
    configure_logging(settings.log_level, settings.log_format)
    ensure_port_free(settings.api_host, settings.api_port)
    workers = api_processes(settings, hosts_worker=with_worker or executor is not None)
    if workers > 1:
        settings = settings.model_copy(update={"api_workers": workers})
        _run_api_processes(settings, with_worker=with_worker, executor=executor, echo=echo)
        return
    process = build_api(settings, with_worker=with_worker, executor=executor)
    try:
        echo(f"secureflow API on http://{settings.api_host}:{settings.api_port} (OpenAPI at /docs)")
        if process.admin_key:
            echo(f"first admin API key (shown once, store it now): {process.admin_key}")
        freeze_startup_objects()
        uvicorn_server(process.app, settings.api_host, settings.api_port).run()
    finally:
        process.close()


MAX_DEFAULT_PROCESSES = 4


def api_processes(settings: ApiSettings, *, hosts_worker: bool) -> int:
    """How many API processes to serve with: ``SECUREFLOW_API_WORKERS`` if set; else one per CPU (at most
    MAX_DEFAULT_PROCESSES), or one if this process hosts the anchoring worker or a compute executor.

    One process serves on one core (the GIL): measured with the API benchmark on 2 cores, 2 processes
    served about 2.5x the requests of one with a third of its p99.
    """
    if "api_workers" in settings.model_fields_set:
        return settings.api_workers
    if hosts_worker:
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_PROCESSES))


def app_from_env() -> FastAPI:
    """The app of one API process, built from ``SECUREFLOW_*`` (uvicorn factory for several processes)."""
    settings = ApiSettings()
    configure_logging(settings.log_level, settings.log_format)
    app = build_api(settings).app
    freeze_startup_objects()
    return app


def _run_api_processes(
    settings: ApiSettings, *, with_worker: bool, executor: JobExecutor | None, echo: Printer
) -> None:
    """Several API processes on one port (uvicorn's supervisor); SQLite WAL or PostgreSQL serve them all."""
    if with_worker or executor is not None:
        raise ConfigurationError(
            f"SECUREFLOW_API_WORKERS={settings.api_workers} cannot host the anchoring worker or an executor",
            hint="run `secureflow anchor-worker` as its own process, or serve with one API process",
        )
    process = build_api(settings)  # migrates once and creates the first admin key before forking
    admin_key = process.admin_key
    process.close()
    echo(
        f"secureflow API on http://{settings.api_host}:{settings.api_port} with {settings.api_workers} "
        "processes (OpenAPI at /docs)"
    )
    if admin_key:
        echo(f"first admin API key (shown once, store it now): {admin_key}")
    uvicorn.run(
        "secureflow.api.server.serve:app_from_env",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_config=None,
        access_log=False,
    )
