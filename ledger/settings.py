"""Settings of the ledger side, from ``SECUREFLOW_*`` environment variables or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from secureflow.ledger.anchoring import AnchoringConfig
from secureflow.ledger.chain import ChainConfig


class LedgerSettings(BaseSettings):
    """Where the chain and the database are, and how to send transactions."""

    model_config = SettingsConfigDict(env_prefix="SECUREFLOW_", env_file=".env", extra="ignore")

    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int | None = Field(default=None, description="expected chain id; refuse any other node")
    poa: bool = Field(default=False, description="inject the extraData middleware for QBFT/IBFT nodes")
    gas_price: int = Field(default=0, ge=0, description="legacy gas price in wei; 0 on free-gas networks")
    receipt_timeout: float = Field(default=60.0, gt=0)
    max_in_flight: int = Field(default=64, ge=1, le=4096)
    gas_limit_multiplier: float = Field(default=1.3, ge=1.0, le=10.0)
    database_url: str | None = None
    deployment: Path = Path(".secureflow/deployment.json")
    deployer_key: SecretStr | None = None
    anchor_key: SecretStr | None = None
    max_batch_size: int = Field(default=2_000, ge=1, le=100_000)
    max_batch_delay: float = Field(
        default=0.25, ge=0, description="seconds a record may wait for a fuller batch"
    )
    confirmations: int = Field(default=1, ge=1, le=1_000)
    metrics_host: str = Field(
        default="127.0.0.1", description="address `secureflow anchor-worker` serves /metrics on"
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65_535,
        description="port of the anchoring worker's /metrics, /healthz, /readyz; unset: not served; 0: any",
    )

    def anchoring_config(self, from_block: int) -> AnchoringConfig:
        return AnchoringConfig(
            max_batch_size=self.max_batch_size,
            max_batch_delay=self.max_batch_delay,
            confirmations=self.confirmations,
            from_block=from_block,
        )

    def chain_config(self) -> ChainConfig:
        return ChainConfig(
            rpc_url=self.rpc_url,
            expected_chain_id=self.chain_id,
            poa=self.poa,
            gas_price=self.gas_price,
            receipt_timeout=self.receipt_timeout,
            max_in_flight=self.max_in_flight,
            gas_limit_multiplier=self.gas_limit_multiplier,
        )
