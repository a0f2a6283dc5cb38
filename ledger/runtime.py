"""Assembling the ledger's moving parts from settings: store, chain client, anchoring worker, indexer."""

from __future__ import annotations

from dataclasses import dataclass

from secureflow.ledger.anchoring import Anchorer, AnchoringWorker
from secureflow.ledger.chain import ChainClient, TransactionSender
from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient
from secureflow.ledger.deploy import Deployment, connect, load_deployment
from secureflow.ledger.errors import ConfigurationError
from secureflow.ledger.indexer import EventIndexer
from secureflow.ledger.nonces import StoreNonceSource
from secureflow.ledger.settings import LedgerSettings
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.sql import open_store


@dataclass
class LedgerRuntime:
    """What a process that anchors needs, built once."""

    settings: LedgerSettings
    store: LedgerStore
    client: ChainClient
    deployment: Deployment
    worker: AnchoringWorker

    def close(self) -> None:
        self.worker.stop()
        self.store.close()


def build_runtime(settings: LedgerSettings, *, store: LedgerStore | None = None) -> LedgerRuntime:
    """Open the store, check the chain against the deployment file and the anchoring key's role in the
    registry (a key without the anchor role is refused before anything starts), and wire the worker."""
    if settings.anchor_key is None:
        raise ConfigurationError(
            "SECUREFLOW_ANCHOR_KEY is not set", hint="export the anchoring service's private key"
        )
    deployment = load_deployment(settings.deployment)
    client = ChainClient(settings.chain_config())
    client.check()
    own_store = store is None
    store = store or open_store(settings.database_url)
    sender = TransactionSender(
        client,
        settings.anchor_key.get_secret_value(),
        StoreNonceSource(store, client.w3, client.chain_id),
    )
    registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"))
    if not registry.is_anchor_service(sender.address):
        if own_store:
            store.close()
        raise ConfigurationError(
            f"{sender.address} (SECUREFLOW_ANCHOR_KEY) does not hold the anchor role in the registry "
            f"{registry.address}: the AuditLedger would refuse every batch it sent",
            hint=f"the registry's admin grants it: secureflow members grant-role {sender.address} anchor",
        )
    ledger_contract = connect(client, deployment, "AuditLedger")
    anchorer = Anchorer(
        store,
        AuditLedgerClient(ledger_contract, sender),
        sender,
        settings.anchoring_config(deployment.deploy_block),
    )
    indexer = EventIndexer(store, client, ledger_contract, from_block=deployment.deploy_block)
    anchorer.metrics.watch(store, nonces=sender.nonces, checkpoint=indexer.name)
    return LedgerRuntime(settings, store, client, deployment, AnchoringWorker(anchorer, indexer))
