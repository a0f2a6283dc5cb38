"""What a party signs to open a job: its EIP-712 consent and, for the creator, the ``createJob`` transaction.

Consent is a signature over ``JobConsent(bytes32 jobId, bytes32 manifestHash)``; the audit
ledger verifies these on-chain (domain ``SecureflowAuditLedger``, version ``1``, the chain id
and the ledger's address) and records who consented.

The job's id is derived on chain from the ``createJob`` sender, so the creator's own key sends
it: `sign_create_job` signs that legacy transaction offline (the creator's node holds the key and
never hands it out; whoever relays the signed bytes cannot change them). Only eth-account and
eth-abi here: party nodes sign without a node connection or web3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
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


def recover_signer(digest: bytes, signature: bytes) -> str | None:
    """The lower-case address that signed ``digest`` with the 65-byte ``signature``; None if it is not one."""
    if len(signature) != 65:
        return None
    try:
        return str(Account._recover_hash(digest, signature=signature)).lower()
    except Exception:  # a malformed signature (bad v, r or s) recovers nobody
        return None


CREATE_JOB_SELECTOR = bytes(keccak(text="createJob(bytes32,bytes32,address[],bytes[])"))[:4]


def create_job_calldata(
    manifest_hash: bytes, salt: bytes, parties: Sequence[str], consents: Sequence[bytes]
) -> bytes:
    """The calldata of ``AuditLedger.createJob(manifestHash, salt, parties, consentSignatures)``."""
    args = abi_encode(
        ["bytes32", "bytes32", "address[]", "bytes[]"],
        [manifest_hash, salt, [str(p) for p in parties], [bytes(c) for c in consents]],
    )
    return CREATE_JOB_SELECTOR + args


def sign_create_job(
    private_key: str,
    *,
    chain_id: int,
    ledger_address: str,
    nonce: int,
    gas: int,
    gas_price: int,
    manifest_hash: bytes,
    salt: bytes,
    parties: Sequence[str],
    consents: Sequence[bytes],
) -> tuple[bytes, str]:
    """The creator's signed legacy ``createJob`` transaction (raw bytes) and its hash (``0x`` + 64 hex)."""
    tx = {
        "to": to_checksum_address(ledger_address),
        "data": create_job_calldata(manifest_hash, salt, parties, consents),
        "value": 0,
        "nonce": nonce,
        "gas": gas,
        "gasPrice": gas_price,
        "chainId": chain_id,
    }
    signed = Account.sign_transaction(tx, private_key)
    raw = bytes(signed.raw_transaction)
    return raw, "0x" + bytes(keccak(raw)).hex()
