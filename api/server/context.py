"""What the routes work with: store, API tables, chain, registry (with a short cache), worker, executor."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from web3 import Web3

from secureflow.api.server.db import ApiDb
from secureflow.api.server.executor import JobExecutor
from secureflow.api.server.joblogs import JobLogSource
from secureflow.api.server.receipts import ReceiptCache
from secureflow.api.server.settings import ApiSettings
from secureflow.ledger.anchoring import AnchoringWorker
from secureflow.ledger.chain import ChainClient
from secureflow.ledger.contracts import RegistryClient
from secureflow.ledger.deploy import Deployment, connect
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.verify import PinnedDeployment

INDEXER_CHECKPOINT = "audit-ledger-events"


@dataclass
class Services:
    """The app's collaborators, built once by `secureflow.api.server.app.create_app`."""

    settings: ApiSettings
    store: LedgerStore
    db: ApiDb
    client: ChainClient
    deployment: Deployment
    worker: AnchoringWorker | None = None
    executor: JobExecutor | None = None
    job_logs: JobLogSource | None = None
    _registry: RegistryClient | None = None
    _receipts: ReceiptCache | None = None
    _pin: PinnedDeployment | None = None
    _cache: dict[tuple[str, str], tuple[float, bool]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def w3(self) -> Web3:
        return self.client.w3

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    @property
    def ledger_address(self) -> str:
        return self.deployment.address_of("AuditLedger")

    @property
    def receipts(self) -> ReceiptCache:
        if self._receipts is None:
            self._receipts = ReceiptCache(self.store, self.chain_id, self.ledger_address)
        return self._receipts

    @property
    def pin(self) -> PinnedDeployment:
        """What ``POST /v1/verify`` verifies against: this API's configured deployment."""
        if self._pin is None:
            self._pin = PinnedDeployment.of_deployment(
                self.deployment, source="this API's configured deployment"
            )
        return self._pin

    @property
    def registry(self) -> RegistryClient:
        if self._registry is None:
            self._registry = RegistryClient(connect(self.client, self.deployment, "ConsortiumRegistry"))
        return self._registry

    def _cached(self, what: str, address: str) -> bool:
        key = (what, address.lower())
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        registry = self.registry
        call: Any = registry.is_active_member if what == "member" else registry.is_anchor_service
        value = bool(self.client.call_rpc(call, Web3.to_checksum_address(address)))
        with self._lock:
            self._cache[key] = (now + self.settings.registry_cache_seconds, value)
        return value

    def cached_active_member(self, address: str) -> bool | None:
        """`is_active_member` if its answer is cached and fresh, else None (no chain call: loop-safe)."""
        with self._lock:
            hit = self._cache.get(("member", address.lower()))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def is_active_member(self, address: str) -> bool:
        """The registry's ``isActiveMember`` (cached for ``registry_cache_seconds``)."""
        return self._cached("member", address)

    def is_anchor_service(self, address: str) -> bool:
        """The registry's ``isAnchorService`` (cached for ``registry_cache_seconds``)."""
        return self._cached("anchor", address)


def services(request: Request) -> Services:
    found = request.app.state.services
    assert isinstance(found, Services)  # noqa: S101 - invariant for the type checker, not input validation
    return found
