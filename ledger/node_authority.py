"""What a member's node asks the chain before it acts: is this signer a coordinator, is this job consented.

`ChainAuthority` reads the ConsortiumRegistry and the AuditLedger of the deployment the node pinned
(``secureflow node --rpc-url URL --deployment FILE``; `secureflow.ledger.deploy.connect` checks chain id,
code hash and artifact first). Coordinator and membership answers are cached for ``cache_seconds``
(default 5), so a revoked coordinator (or member) is refused within that window; job answers are read
fresh for every request.
It satisfies `secureflow.compute.worker.trust.Authority` (compute never imports web3).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from eth_utils.address import to_checksum_address

from secureflow.ledger.chain import ChainClient, ChainConfig
from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient
from secureflow.ledger.deploy import connect, load_deployment

DEFAULT_CACHE_SECONDS = 5.0
"""How long a node reuses the registry's answer on a coordinator (a revocation takes effect within it)."""


MAX_CACHED_SIGNERS = 1024
"""Signers whose coordinator role a node remembers: entries signed by ever new keys (a Redis flood) cannot
grow its memory."""


class ChainAuthority:
    """The pinned deployment's registry (coordinator role) and ledger (jobs, parties, consents)."""

    def __init__(
        self,
        registry: RegistryClient,
        ledger: AuditLedgerClient,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
    ) -> None:
        self.registry = registry
        self.ledger = ledger
        self.cache_seconds = cache_seconds
        self._coordinators: dict[str, tuple[bool, float]] = {}
        self._members: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def is_coordinator(self, address: str) -> bool:
        """Whether ``address`` holds the registry's COORDINATOR_ROLE (cached ``cache_seconds``)."""
        return self._cached(self._coordinators, address, self.registry.is_coordinator)

    def is_active_member(self, address: str) -> bool:
        """Whether ``address`` is an active member of the registry (cached ``cache_seconds``): a node
        trusts a peer's link certificate only when an active member signed it."""
        return self._cached(self._members, address, self.registry.is_active_member)

    def _cached(
        self, cache: dict[str, tuple[bool, float]], address: str, fetch: Callable[[str], bool]
    ) -> bool:
        key = address.lower()
        now = time.monotonic()
        with self._lock:
            hit = cache.get(key)
        if hit is not None and now - hit[1] < self.cache_seconds:
            return hit[0]
        answer = fetch(to_checksum_address(key))
        with self._lock:
            cache.pop(key, None)
            cache[key] = (answer, now)
            while len(cache) > MAX_CACHED_SIGNERS:  # signers seen longest ago go first
                del cache[next(iter(cache))]
        return answer

    def job_standing(self, job_id: str, member: str) -> tuple[int, tuple[str, ...], bool]:
        """The job's on-chain ``JobStatus`` value (0: no such job), its party addresses (lower-case) and
        whether ``member`` consented to it; read fresh (never cached)."""
        raw = bytes.fromhex(job_id.removeprefix("0x"))
        job = self.ledger.get_job(raw)
        consented = self.ledger.has_consented(raw, to_checksum_address(member))
        return int(job.status), tuple(p.lower() for p in job.parties), consented


def open_authority(
    rpc_url: str, deployment_file: Path, *, cache_seconds: float = DEFAULT_CACHE_SECONDS
) -> ChainAuthority:
    """A `ChainAuthority` on the node at ``rpc_url`` for the deployment pinned in ``deployment_file``."""
    deployment = load_deployment(deployment_file)
    client = ChainClient(ChainConfig(rpc_url=rpc_url, expected_chain_id=deployment.chain_id))
    client.check()
    return ChainAuthority(
        RegistryClient(connect(client, deployment, "ConsortiumRegistry")),
        AuditLedgerClient(connect(client, deployment, "AuditLedger")),
        cache_seconds=cache_seconds,
    )
