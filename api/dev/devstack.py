"""The embedded dev consortium shared by ``secureflow demo`` and ``secureflow up``.

On a running dev chain: a SQLite ledger store, the contracts deployed (and the
deployment file written), alice and bob registered as members, an anchoring
service with its worker and event indexer (not started), and an engine for one
SecretFlow worker per party whose member keys are provisioned into each party's
secrets folder, with a dev consent policy (`seed_dev_policy`) its worker applies
before it signs any job's consent. The keys are anvil's public dev keys: for a local stack only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from eth_account import Account
from eth_utils.crypto import keccak

from secureflow.compute.policy import POLICY_FILE, PartyPolicy, write_policy
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.anchoring import Anchorer, AnchoringConfig, AnchoringWorker
from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.chain_match import check_store_matches_chain, record_genesis
from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient
from secureflow.ledger.deploy import (
    Deployment,
    connect,
    deploy_contracts,
    load_deployment,
    write_deployment,
)
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
from secureflow.ledger.indexer import EventIndexer
from secureflow.ledger.nonces import StoreNonceSource
from secureflow.ledger.store.sql import SqlLedgerStore, open_store

PARTIES = ("alice", "bob")


@dataclass
class DevConsortium:
    chain: DevChain
    store: SqlLedgerStore
    client: ChainClient
    nonces: StoreNonceSource
    deployment: Deployment
    ledger_contract: Any
    worker: AnchoringWorker
    engine: Engine
    keys: dict[str, str]
    """role or party name -> private key: admin, alice, bob, anchor."""

    def address(self, name: str) -> str:
        return str(Account.from_key(self.keys[name]).address)

    def sender(self, name: str) -> TransactionSender:
        return TransactionSender(self.client, self.keys[name], self.nonces)


def provision_party(engine: Engine, party: str, key: str, table: pd.DataFrame | None = None) -> None:
    """A party's member key (its worker signs with it) and, optionally, its private dataset, in its folder.

    Only for the embedded default (dev keys); a real member's worker creates its own key on first start.
    """
    secrets_dir = engine.party_dir(party) / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = secrets_dir / "member.key"
    key_file.write_text(key.removeprefix("0x"))
    key_file.chmod(0o600)
    data = engine.data_dir(party)
    data.mkdir(parents=True, exist_ok=True)
    if table is not None:
        table.to_csv(data / "customers.csv", index=False)


DEV_REVEALS = (
    "psi",
    "pearson_correlation",
    "vif",
    "secure_predict",
    "biclassification_eval",
    "regression_eval",
)
"""What each dev party lets the other receive: intersections, correlations, predictions and metrics, never
its own columns' statistics (``table_statistics`` to another party is refused by the dev policy)."""


def seed_dev_policy(engine: Engine, party: str, others: list[str]) -> None:
    """Write the dev policy into ``party``'s folder unless it has a policy.json already (an edited one stays).

    Every algorithm, any dataset of its data folder, and the reveals of `DEV_REVEALS` to ``others``
    (addresses); the party's worker checks every job against it before it signs its consent.
    """
    if (engine.party_dir(party) / POLICY_FILE).exists():
        return
    reveal = {algorithm: tuple(others) for algorithm in DEV_REVEALS}
    write_policy(engine.party_dir(party), PartyPolicy(reveal=reveal))


def dev_consortium(
    workdir: Path,
    chain: DevChain,
    echo: Callable[[str], None] = lambda _: None,
    *,
    reuse: bool = False,
    mismatch_fix: str | None = None,
) -> DevConsortium:
    """Set up the consortium on ``chain``; ``echo`` reports each stage.

    With ``reuse``, the database and deployment file already in ``workdir`` are taken as they are (a
    restarted chain that kept its state): nothing is deployed or registered, and a database or deployment
    that does not match the chain is refused with `ChainMismatchError` (hint: ``mismatch_fix``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{(workdir / 'secureflow.db').as_posix()}")
    try:
        client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
        nonces = StoreNonceSource(store, client.w3, client.chain_id)
        keys = dict(zip(("admin", "alice", "bob", "anchor"), DEV_PRIVATE_KEYS[:4], strict=True))
        if reuse:
            deployment = load_deployment(workdir / "deployment.json")
            check_store_matches_chain(store, client, deployment, fix=mismatch_fix)
            echo(f"reusing the deployment of {workdir / 'deployment.json'} and its database")
        else:
            deployment = _deploy_and_register(workdir, client, nonces, keys, echo)
        record_genesis(store, client)
    except BaseException:
        store.close()
        raise
    ledger_contract = connect(client, deployment, "AuditLedger")

    anchor_sender = TransactionSender(client, keys["anchor"], nonces)
    worker = AnchoringWorker(
        Anchorer(
            store,
            AuditLedgerClient(ledger_contract, anchor_sender),
            anchor_sender,
            AnchoringConfig(from_block=deployment.deploy_block),
        ),
        EventIndexer(store, client, ledger_contract, from_block=deployment.deploy_block),
    )
    engine = Engine(PARTIES, workdir / "parties")
    addresses = {party: str(Account.from_key(keys[party]).address) for party in PARTIES}
    for party in PARTIES:
        provision_party(engine, party, keys[party])
        seed_dev_policy(engine, party, [a for p, a in addresses.items() if p != party])
    return DevConsortium(chain, store, client, nonces, deployment, ledger_contract, worker, engine, keys)


def _deploy_and_register(
    workdir: Path,
    client: ChainClient,
    nonces: StoreNonceSource,
    keys: dict[str, str],
    echo: Callable[[str], None],
) -> Deployment:
    """Deploy the contracts (the deployment file goes into ``workdir``), register alice and bob as members
    and grant the anchoring service its role."""
    admin = TransactionSender(client, keys["admin"], nonces)
    echo("deploying ConsortiumRegistry, AuditLedger and Settlement")
    deployment = deploy_contracts(client, admin)
    write_deployment(deployment, workdir / "deployment.json")
    for name, entry in deployment.contracts.items():
        echo(f"   {name:<20} {entry.address}  (block {entry.block_number})")

    echo("registering members alice, bob and the anchoring service")
    registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
    for party in PARTIES:
        registry.register_member(Account.from_key(keys[party]).address, keccak(text=party))
    registry.grant_anchor_service(Account.from_key(keys["anchor"]).address)
    return deployment
