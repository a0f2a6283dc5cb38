"""The coordinator's side of consent: ask every party's worker to consent to a job, collect the signatures.

Each worker checks the manifest against its own policy (`secureflow.compute.policy`), recomputes the
manifest hash and the job id, and signs the EIP-712 consent with its own member key, or refuses with
its reasons (`ConsentRefusedError` here, naming each refusing party). The coordinator never holds a
party's key; it only carries the signatures to ``createJob``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from secureflow.compute.errors import ConsentRefusedError, WorkerError
from secureflow.compute.worker.engine import Engine


def party_names(engine: Engine, parties: Sequence[str]) -> dict[str, str]:
    """The engine's party name of each address in ``parties`` (in their order)."""
    by_address = {address.lower(): name for name, address in engine.addresses.items()}
    missing = [p for p in parties if p.lower() not in by_address]
    if missing:
        raise WorkerError(
            f"no party worker holds the key of {', '.join(missing)}",
            hint="name the engine's party addresses in the manifest",
        )
    return {by_address[p.lower()]: p for p in parties}


def request_consents(
    engine: Engine,
    manifest: Mapping[str, Any],
    *,
    job_id: str,
    creator: str,
    salt: str,
    job_secret: str,
    parties: Sequence[str],
    chain_id: int,
    ledger: str,
) -> list[bytes]:
    """Every party's 65-byte consent to the job, in the order of ``parties``, each signed by its worker.

    ``job_secret``: the secret the manifest commitment is salted with; each party recomputes the
    commitment (and from it the job id) itself and learns the secret, as a party of the job does.
    """
    request = {
        "op": "consent",
        "manifest": dict(manifest),
        "job_id": job_id,
        "creator": creator,
        "salt": salt,
        "job_secret": job_secret,
        "chain_id": chain_id,
        "ledger": ledger,
    }
    names = party_names(engine, parties)
    replies = engine.broadcast({name: request for name in names}, timeout=60.0, what="consent")
    refusals = [str(reply.get("message")) for reply in replies.values() if not reply.get("ok")]
    if refusals:
        raise ConsentRefusedError("; ".join(refusals))
    return [bytes.fromhex(str(replies[name]["signature"])[2:]) for name in names]
