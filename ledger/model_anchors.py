"""The on-chain model lookup handed to the compute runner (`secureflow.ledger.recorder.ModelAnchors`).

A party worker refuses to load a model whose metadata hash is not the ``modelHash`` the AuditLedger
holds for that job, model id and version; the coordinator reads that hash here (``compute`` never
imports web3) and hands it to every party worker with the load request.
"""

from __future__ import annotations

from secureflow.ledger.contracts import AuditLedgerClient
from secureflow.ledger.records import model_key

_ZERO = b"\0" * 32


class ChainModelAnchors:
    """`ModelAnchors` over the audit ledger: ``modelHash(jobId, keccak(modelId), version)``."""

    def __init__(self, ledger: AuditLedgerClient) -> None:
        self.ledger = ledger

    def anchored_model_hash(self, job_id: str, model_id: str, version: int) -> str | None:
        raw_id = bytes.fromhex(job_id.removeprefix("0x"))
        if len(raw_id) != 32 or version < 1:
            return None
        on_chain = self.ledger.model_hash(raw_id, model_key(model_id), version)
        return None if on_chain == _ZERO else "0x" + on_chain.hex()
