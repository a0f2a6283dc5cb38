"""EIP-712 job consent: a party's signature over ``JobConsent(bytes32 jobId, bytes32 manifestHash)``.

The audit ledger verifies these on-chain (domain ``SecureflowAuditLedger``,
version ``1``, the chain id and the ledger's address) and records who consented.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

DOMAIN_NAME = "SecureflowAuditLedger"
DOMAIN_VERSION = "1"
CONSENT_TYPES = {
    "JobConsent": [{"name": "jobId", "type": "bytes32"}, {"name": "manifestHash", "type": "bytes32"}]
}


def _typed(chain_id: int, ledger_address: str, job_id: bytes, manifest_hash: bytes) -> dict[str, Any]:
    return {
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": ledger_address,
        },
        "types": CONSENT_TYPES,
        "primary": {"jobId": job_id, "manifestHash": manifest_hash},
    }


def consent_digest(chain_id: int, ledger_address: str, job_id: bytes, manifest_hash: bytes) -> bytes:
    """The EIP-712 digest a party signs (equals the contract's ``consentDigest``)."""
    t = _typed(chain_id, ledger_address, job_id, manifest_hash)
    message = encode_typed_data(t["domain"], t["types"], t["primary"])
    return bytes(keccak(b"\x19" + message.version + message.header + message.body))


def sign_consent(
    private_key: str, chain_id: int, ledger_address: str, job_id: bytes, manifest_hash: bytes
) -> bytes:
    """A party's 65-byte consent signature for a job manifest."""
    t = _typed(chain_id, ledger_address, job_id, manifest_hash)
    signed = Account.sign_typed_data(private_key, t["domain"], t["types"], t["primary"])
    return bytes(signed.signature)
