"""Helpers for compute tests that need a model anchored on the session's real chain.

The session engine's party workers hold random member keys (``<party_dir>/secrets/member.key``): they
are registered as consortium members, a training job is created on chain with both parties' consents
(as the API's executor does), run on the warm workers, and the real anchoring worker records its models
(``recordModel``) until they are confirmed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account
from stack import LedgerStack, make_anchorer

from secureflow.compute.manifest import JobManifest
from secureflow.compute.runner import JobResult, run_job
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.chain import TransactionSender
from secureflow.ledger.consent import sign_consent
from secureflow.ledger.contracts import RegistryClient
from secureflow.ledger.deploy import connect
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS
from secureflow.ledger.model_anchors import ChainModelAnchors
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import job_id_for, new_job_salt, new_job_secret


def member_keys(engine: Engine) -> dict[str, str]:
    """Each party's member key, as its worker keeps it (the test plays every member)."""
    return {p: (engine.party_dir(p) / "secrets" / "member.key").read_text().strip() for p in engine.parties}


def register_members(stack: LedgerStack, engine: Engine) -> None:
    """Make the engine's party addresses active members of the consortium (once per chain state)."""
    client = stack.client()
    admin = TransactionSender(client, DEV_PRIVATE_KEYS[0], ChainNonceSource(client.w3))
    registry = RegistryClient(connect(client, stack.deployment, "ConsortiumRegistry"), admin)
    for key in member_keys(engine).values():
        address = Account.from_key(key).address
        if not registry.is_active_member(address):
            registry.register_member(address)


def anchors(stack: LedgerStack) -> ChainModelAnchors:
    return ChainModelAnchors(stack.ledger(stack.client()))


def run_on_chain(
    stack: LedgerStack, engine: Engine, manifest: dict[str, Any], recorder: OutboxRecorder
) -> JobResult:
    """Create the job on chain with every party's consent (alice creates it), run it, anchor its records
    and models with the real anchoring worker, and return the result once every model is confirmed."""
    register_members(stack, engine)
    keys = member_keys(engine)
    creator = engine.addresses["alice"]
    parsed = JobManifest.parse(manifest)
    job_secret = new_job_secret()
    manifest_hash, salt = parsed.manifest_hash(job_secret), new_job_salt()
    job_id = job_id_for(creator, manifest_hash, salt)
    client = stack.client()
    sender = TransactionSender(client, keys["alice"], ChainNonceSource(client.w3))
    ledger = stack.ledger(client, sender)
    raw_id, raw_hash = bytes.fromhex(job_id[2:]), bytes.fromhex(manifest_hash[2:])
    parties = [engine.addresses[p] for p in parsed.party_names()]
    consents = [
        sign_consent(keys[p], DEV_CHAIN_ID, ledger.address, raw_id, raw_hash) for p in parsed.party_names()
    ]
    ledger.create_job(
        manifest_hash=raw_hash, salt=bytes.fromhex(salt[2:]), parties=parties, consents=consents
    )
    result = run_job(
        engine,
        parsed,
        recorder,
        job_id=job_id,
        salt=salt,
        creator=creator,
        model_anchors=anchors(stack),
        job_secret=job_secret,
    )
    assert result.succeeded, result.error_message
    store = recorder.store
    anchorer = make_anchorer(stack, store)
    for _ in range(100):  # each pass sends or confirms; automine confirms within a few passes
        anchorer.run_once()
        models = store.models(job_id=job_id)
        if len(models) == len(result.models) and all(m.status == "confirmed" for m in models):
            return result
        assert not any(m.status == "failed" for m in models), [m.failure_reason for m in models]
    raise AssertionError(f"the models of job {job_id} were not anchored: {store.models(job_id=job_id)}")


def flip_last_byte(path: Path) -> bytes:
    """Tamper with a file in place; returns its original bytes to restore."""
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 0x01]))
    return original
