"""Settings of ``secureflow coordinator``: the API's (database, chain, deployment, queue) and the nodes'."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from secureflow.api.server.settings import ApiSettings


class CoordinatorSettings(ApiSettings):
    """Where the party nodes listen (their Redis queues) and how long a job may take (``SECUREFLOW_*``)."""

    model_config = SettingsConfigDict(env_prefix="SECUREFLOW_", env_file=".env", extra="ignore")

    compute_redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="the Redis whose per-party queues the members' `secureflow node` processes read",
    )
    compute_redis_prefix: str = Field(default="secureflow", min_length=1, description="their key prefix")
    coordinator_concurrency: int = Field(
        default=2, ge=1, le=64, description="jobs one coordinator runs at once"
    )
    coordinator_workdir: Path = Field(
        default=Path(".secureflow/coordinator"),
        description="scratch folder of the coordinator (no party data)",
    )
    lease_seconds: float = Field(
        default=30.0,
        ge=2.0,
        description="a job's claim lapses this long after its coordinator stopped renewing it",
    )
    node_timeout: float = Field(default=10.0, gt=0, description="a node silent this long counts as gone")
    start_timeout: float = Field(
        default=300.0, gt=0, description="the parties' workers must be up within this"
    )
    step_timeout: float = Field(default=3600.0, gt=0, description="the longest a step may run")
    coordinator_key_file: Path | None = Field(
        default=None,
        description="file holding this coordinator's private key (0x + 64 hex): it signs every entry on "
        "the nodes' queues and needs the registry's coordinator role",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65_535,
        description="serve /metrics, /healthz and /readyz on this port (0: any free port; unset: not served)",
    )
    metrics_host: str = Field(default="127.0.0.1", description="address to serve the metrics on")
    start_retries: int = Field(
        default=3, ge=0, le=20, description="retries (with backoff) when a job's nodes cannot be reached"
    )
