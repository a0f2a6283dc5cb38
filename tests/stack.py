"""The deployed contracts shared by a test session (see the ``ledger_stack`` fixture in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.chain import ChainClient, ChainConfig, TransactionSender
from ledger.contracts import AuditLedgerClient
from ledger.deploy import Deployment, connect
from ledger.devchain import DEV_CHAIN_ID


@dataclass(frozen=True)
class LedgerStack:
    """The contracts deployed once per session: admin key 0, members keys 1 and 2, anchoring service key 3."""

    deployment: Deployment
    rpc_url: str

    def client(self, **config: Any) -> ChainClient:
        return ChainClient(ChainConfig(rpc_url=self.rpc_url, expected_chain_id=DEV_CHAIN_ID, **config))

    def ledger(self, client: ChainClient, sender: TransactionSender | None = None) -> AuditLedgerClient:
        return AuditLedgerClient(connect(client, self.deployment, "AuditLedger"), sender)
