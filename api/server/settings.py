"""Settings of the API service: the ledger's plus the HTTP side, from ``SECUREFLOW_*`` env or ``.env``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from secureflow.ledger.settings import LedgerSettings


class ApiSettings(LedgerSettings):
    """Where to listen, request limits, live-status polling and shutdown behaviour."""

    model_config = SettingsConfigDict(env_prefix="SECUREFLOW_", env_file=".env", extra="ignore")

    api_host: str = Field(default="127.0.0.1", description="interface to listen on")
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "API processes; unset: one per CPU (at most 4) for `secureflow api`, 1 when the anchoring "
            "worker or compute runs in-process (>1 needs the anchoring worker as its own process)"
        ),
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="larger request bodies get 413")
    sse_poll_interval: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="a live-status stream reads the job's state at least this often: it is woken by each "
        "change notice (Redis pub/sub or in-process), and this slow poll is the fallback for a lost notice "
        "or an unreachable Redis",
    )
    status_redis_url: str | None = Field(
        default=None,
        description="the Redis whose pub/sub carries job status notices from every writer (coordinators, "
        "API processes, anchoring workers) to the API's live-status streams; unset: the broker's if it is "
        "Redis, else compute_redis_url, else in-process notices only",
    )
    status_channel: str = Field(
        default="secureflow:job-status", min_length=1, description="the Redis pub/sub channel of job status"
    )
    sse_max_seconds: float = Field(default=3600.0, gt=0, description="a live-status stream ends after this")
    sse_max_streams_per_key: int = Field(
        default=8, ge=1, le=10_000, description="live-status streams one API key may hold open (per process)"
    )
    sse_max_streams: int = Field(
        default=256, ge=1, le=100_000, description="live-status streams one API process serves at once"
    )
    shutdown_drain_timeout: float = Field(
        default=30.0, ge=0, description="seconds to let the in-process worker anchor what is pending"
    )
    worker_stall_seconds: float = Field(
        default=120.0, gt=0, description="/readyz fails if a record waits longer than this to be anchored"
    )
    stuck_after_seconds: float = Field(
        default=900.0,
        ge=0,
        description="a running job with no status change and no new step record for longer than this is "
        "reported stuck (JobOut.stuck, GET /v1/jobs?stuck=true, the secureflow_jobs_stuck metric)",
    )
    registry_cache_seconds: float = Field(
        default=5.0, ge=0, description="cache of on-chain membership checks"
    )
    max_verify_items: int = Field(default=100, ge=1, le=1000, description="page size cap with ?verify=true")
    verify_concurrency: int = Field(
        default=2, ge=1, le=64, description="?verify=true pages worked on at once per process (the rest wait)"
    )
    log_level: str = Field(default="INFO")
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: one short line per event; json: one JSON object per line"
    )
    broker_url: str | None = Field(
        default=None,
        description="the job queue (Celery broker): redis://127.0.0.1:6379/0 or "
        "amqp://guest:guest@127.0.0.1:5672//; set, `secureflow api` hands every accepted job to "
        "`secureflow coordinator` workers",
    )
    queue_name: str = Field(default="secureflow.jobs", min_length=1, description="the Celery queue of jobs")
    queue_visibility_timeout: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="Redis broker: an unacknowledged job task is delivered again after this many seconds "
        "(longer than the longest job; a coordinator killed mid-job has its task redelivered then)",
    )
    watchdog_interval: float = Field(
        default=10.0, gt=0, le=3600, description="seconds between two passes of the job watchdog"
    )
    lease_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="the job watchdog fails a job whose coordinator's lease lapsed this many seconds ago",
    )
    unanchored_fail_after: float = Field(
        default=3600.0,
        ge=0,
        description="the job watchdog fails a running job one of whose step records has waited this many "
        "seconds to be anchored (pending or submitted), naming the seq and what to check; 0: never",
    )
    compute_redis_url: str | None = Field(
        default=None,
        description="the Redis of the nodes' queues: with log_reader_key_file, job logs are read from the "
        "parties' nodes (GET /v1/jobs/{id}/logs)",
    )
    compute_redis_prefix: str = Field(default="secureflow", min_length=1, description="their key prefix")
    log_reader_key_file: Path | None = Field(
        default=None,
        description="a file holding the API's own log-reader key (0x + 64 hex, mode 0600): it signs log "
        "requests to the nodes, which answer only keys their policy lists in log_readers",
    )
    node_log_timeout: float = Field(
        default=5.0, gt=0, le=120, description="seconds a party's node has to answer a log request"
    )
    job_log_concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description="log reads (GET /v1/jobs/{id}/logs) served at once per process, each holding a worker "
        "thread while the nodes answer; more are answered 429 with Retry-After",
    )
    queue_sweep_interval: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="seconds between two tries to queue the jobs stored while the broker was unreachable",
    )
