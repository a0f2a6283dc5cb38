"""Opening a job on chain from the parties' own nodes: every party consents, the creator sends ``createJob``.

`open_job_on_chain` asks every party's worker for its EIP-712 consent (each checks the manifest
against its own policy and pinned deployment, recomputes the job id, and signs with its own key, or
refuses with its reasons), then asks the creator's worker to sign the ``createJob`` transaction (the
job id is derived on chain from its sender, so only the creator's key can open it) and hands the
signed bytes to the chain. The coordinator holds no member key: it carries signatures, a nonce and
a gas limit. A job already on chain (a redelivered task) is not created again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from eth_utils.address import to_checksum_address
from web3.contract import Contract

from secureflow.compute.consents import party_names, request_consents
from secureflow.compute.errors import WorkerError
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.chain import ChainClient, submit_signed
from secureflow.ledger.consent import create_job_calldata
from secureflow.ledger.contracts import AuditLedgerClient, JobStatus, hex32
from secureflow.ledger.errors import NonceTooLowError, TransactionError
from secureflow.ledger.nonces import pending_nonce
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.schemas import Job

log = logging.getLogger("secureflow.api.coordinator.opening")

CREATE_ATTEMPTS = 3
"""How often ``createJob`` is signed again with a fresh nonce when the creator's nonce was taken meanwhile."""


def open_job_on_chain(
    engine: Engine,
    client: ChainClient,
    ledger_contract: Contract,
    store: LedgerStore,
    job: Job,
    manifest: Mapping[str, Any],
    job_secret: str,
    *,
    gas_price: int = 0,
) -> None:
    """Consent of every party, then ``createJob`` signed by the creator's node; the job is Open on chain.

    Raises `ConsentRefusedError` (every refusing party's reasons) when a node refuses; the job is then
    not on chain at all. Marks the job's chain status ``confirmed`` with the transaction hash.
    """
    if job.salt is None:
        raise TransactionError(
            f"job {job.job_id} has no createJob salt in the store",
            hint="submit jobs through the API (POST /v1/jobs), which derives the id from a salt",
        )
    ledger = AuditLedgerClient(ledger_contract)
    raw_id = bytes.fromhex(job.job_id[2:])
    on_chain = ledger.get_job(raw_id)
    if on_chain.status not in (JobStatus.NONE, JobStatus.OPEN):
        raise TransactionError(
            f"job {job.job_id} is {on_chain.status.name} on chain already: it cannot run",
            hint="submit the job again (a new job id)",
        )
    # Also for a job open on chain already (a redelivered task): each party's node consents again, as its
    # worker holds the job to the manifest it checked, and a checking node's worker acts only on a job it
    # consented to itself.
    consents = request_consents(
        engine,
        manifest,
        job_id=job.job_id,
        creator=job.creator,
        salt=job.salt,
        job_secret=job_secret,
        parties=job.parties,
        chain_id=client.chain_id,
        ledger=ledger.address,
    )
    if on_chain.status == JobStatus.OPEN:
        log.info("job %s is open on chain already (a redelivered task): not created again", job.job_id[:10])
        store.update_job(job.job_id, chain_status="confirmed")
        return
    names = party_names(engine, [job.creator])
    creator_name = next(iter(names))
    manifest_hash = bytes.fromhex(job.manifest_hash[2:])
    salt = bytes.fromhex(job.salt[2:])
    calldata = create_job_calldata(manifest_hash, salt, job.parties, consents)
    creator = to_checksum_address(job.creator)
    estimate = client.call_rpc(
        client.w3.eth.estimate_gas,
        {"from": creator, "to": ledger.address, "data": calldata, "gasPrice": gas_price},
    )
    gas = int(int(estimate) * client.config.gas_limit_multiplier) + 10_000
    for attempt in range(CREATE_ATTEMPTS):
        nonce = pending_nonce(client.w3, creator)
        reply = engine.broadcast(
            {
                creator_name: {
                    "op": "create_job_tx",
                    "job_id": job.job_id,
                    "consents": ["0x" + c.hex() for c in consents],
                    "nonce": nonce,
                    "gas": gas,
                    "gas_price": gas_price,
                }
            },
            timeout=60.0,
            what="createJob signature",
        )[creator_name]
        if not reply.get("ok"):
            raise WorkerError(f"the creator's node did not sign createJob: {reply.get('message')}")
        if [p.lower() for p in reply["parties"]] != [p.lower() for p in job.parties]:
            raise WorkerError(
                f"the creator's node signed createJob for parties {reply['parties']}, not the job's "
                f"{list(job.parties)}"
            )
        try:
            receipt = submit_signed(
                client,
                bytes.fromhex(str(reply["raw"])[2:]),
                gas=gas,
                description=f"createJob {job.job_id[:10]}",
                contract=ledger_contract,
            )
        except NonceTooLowError:
            if attempt == CREATE_ATTEMPTS - 1:
                raise
            log.warning(
                "createJob of job %s: the creator's nonce %d was taken; signing again", job.job_id, nonce
            )
            continue
        store.update_job(
            job.job_id, chain_status="confirmed", created_tx_hash=hex32(receipt["transactionHash"])
        )
        log.info("job %s opened on chain by its creator %s", job.job_id[:10], creator)
        return
