"""EIP-712 approvals of contribution weights: the typed data, its digest, signing and signer recovery.

Each party of a job approves ``ContributionApproval(jobId, weightsHash,
recordLeaf)`` under the domain ``SecureflowSettlement``, version ``1``, the
chain id and the Settlement contract's address, by signature (collected off
chain, handed to ``setWeights``) or by sending ``approveWeights`` itself.
`approval_digest` equals the contract's ``approvalDigest``; `approval_signer`
recovers the signer as the contract's ``ECDSA.tryRecover`` does (65 bytes,
``v`` 27 or 28, low ``s``).

`Approval` is the one format of a signed approval: the file ``secureflow
settle approve`` writes and the body of ``POST /v1/settlements/{job_id}/approvals``
(which accepts that file as is). `approval_signer_of` checks one against the
weights it must approve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from secureflow.ledger.settlement.errors import InvalidApprovalError

if TYPE_CHECKING:
    from secureflow.ledger.settlement.contribution import WeightsProposal

DOMAIN_NAME = "SecureflowSettlement"
DOMAIN_VERSION = "1"
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
APPROVAL_TYPES = {
    "ContributionApproval": [
        {"name": "jobId", "type": "bytes32"},
        {"name": "weightsHash", "type": "bytes32"},
        {"name": "recordLeaf", "type": "bytes32"},
    ]
}
_Hex32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$")]
_Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
_Signature = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{130}$")]
EIP712_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def approval_typed_data(
    chain_id: int, settlement_address: str, job_id: bytes, weights_hash_: bytes, record_leaf: bytes
) -> dict[str, Any]:
    """The EIP-712 typed data of a ContributionApproval (domain, types, message)."""
    return {
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(settlement_address),
        },
        "types": APPROVAL_TYPES,
        "message": {"jobId": job_id, "weightsHash": weights_hash_, "recordLeaf": record_leaf},
    }


def approval_request(chain_id: int, settlement_address: str, weights: WeightsProposal) -> dict[str, Any]:
    """The EIP-712 typed data of the ContributionApproval of ``weights`` as JSON (``eth_signTypedData_v4``,
    ``Account.sign_typed_data(full_message=...)``): what each party signs."""
    t = approval_typed_data(
        chain_id, settlement_address, weights.job_id_bytes, weights.weights_hash, weights.record_leaf
    )
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, **t["types"]},
        "primaryType": "ContributionApproval",
        "domain": t["domain"],
        "message": {name: "0x" + bytes(value).hex() for name, value in t["message"].items()},
    }


def approval_digest(
    chain_id: int, settlement_address: str, job_id: bytes, weights_hash_: bytes, record_leaf: bytes
) -> bytes:
    """The digest a party signs (equals the contract's ``approvalDigest``)."""
    t = approval_typed_data(chain_id, settlement_address, job_id, weights_hash_, record_leaf)
    message = encode_typed_data(t["domain"], t["types"], t["message"])
    return bytes(keccak(b"\x19" + message.version + message.header + message.body))


def sign_approval(
    private_key: str,
    chain_id: int,
    settlement_address: str,
    job_id: bytes,
    weights_hash_: bytes,
    record_leaf: bytes,
) -> bytes:
    """A party's 65-byte EIP-712 ContributionApproval signature."""
    t = approval_typed_data(chain_id, settlement_address, job_id, weights_hash_, record_leaf)
    signed = Account.sign_typed_data(private_key, t["domain"], t["types"], t["message"])
    return bytes(signed.signature)


def approval_signer(
    chain_id: int,
    settlement_address: str,
    job_id: bytes,
    weights_hash_: bytes,
    record_leaf: bytes,
    signature: bytes,
) -> str:
    """The address whose EIP-712 ContributionApproval ``signature`` is, as the contract's ``ECDSA.tryRecover``
    sees it; `InvalidApprovalError` if the contract would not recover one (not 65 bytes, ``v`` not 27 or 28,
    ``s`` in the upper half of the curve order, or no public key)."""
    if len(signature) != 65:
        raise InvalidApprovalError(f"an approval signature is 65 bytes (r, s, v), not {len(signature)}")
    if signature[64] not in (27, 28):
        raise InvalidApprovalError(
            f"the approval signature cannot be read (v is {signature[64]}, not 27 or 28)"
        )
    if int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_N:
        raise InvalidApprovalError(
            "the approval signature cannot be read (s is not canonical, OpenZeppelin's ECDSA)"
        )
    t = approval_typed_data(chain_id, settlement_address, job_id, weights_hash_, record_leaf)
    message = encode_typed_data(t["domain"], t["types"], t["message"])
    try:
        return str(Account.recover_message(message, signature=signature))
    except (ValueError, TypeError, BadSignature) as exc:
        raise InvalidApprovalError(f"the approval signature cannot be read ({exc})") from None


def signature_list(parties: Sequence[str], signatures: Mapping[str, bytes]) -> list[bytes]:
    """The ``signatures`` argument of ``setWeights``: one entry per party in ``jobParties`` order (empty bytes
    for a party that approved on chain), or an empty list when no party signed."""
    by_party = {str(k).lower(): v for k, v in signatures.items()}
    ordered = [by_party.get(p.lower(), b"") for p in parties]
    return ordered if any(ordered) else []


# ------------------------------------------------------------------ the approval format


class Approval(BaseModel):
    """A party's EIP-712 ContributionApproval signature and what it approves: the approval file that
    ``secureflow settle approve`` writes (every field set) and the body of ``POST
    /v1/settlements/{job_id}/approvals`` (only ``signature`` is required; each other field given must name
    the current proposal, this chain and this contract, and ``party`` the caller)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] | None = None
    chain_id: int | None = Field(default=None, ge=0, le=2**64)
    settlement: _Address | None = None
    job_id: _Hex32 | None = None
    party: _Address | None = None
    weights_hash: _Hex32 | None = None
    record_leaf: _Hex32 | None = None
    signature: _Signature = Field(description="65 bytes (r, s, v), 0x-hex")

    @property
    def signature_bytes(self) -> bytes:
        return bytes.fromhex(self.signature[2:])


def approval_for(
    chain_id: int, settlement_address: str, weights: WeightsProposal, party: str, signature: bytes
) -> Approval:
    """The complete approval (every field set, as in a file) of ``weights`` by ``party``."""
    return Approval(
        version=1,
        chain_id=chain_id,
        settlement=str(to_checksum_address(settlement_address)),
        job_id=weights.job_id.lower(),
        party=str(to_checksum_address(party)),
        weights_hash="0x" + weights.weights_hash.hex(),
        record_leaf="0x" + weights.record_leaf.hex(),
        signature="0x" + signature.hex(),
    )


def approval_signer_of(
    approval: Approval,
    chain_id: int,
    settlement_address: str,
    weights: WeightsProposal,
    *,
    where: str = "the approval",
) -> str:
    """The address ``approval`` is signed by, once each field it gives names ``weights`` on this chain and
    contract. `InvalidApprovalError` (saying ``where`` it comes from) if a field names something else or the
    signature cannot be read. Whose address it is, is for the caller to check."""
    expected: dict[str, object] = {
        "chain_id": chain_id,
        "settlement": settlement_address.lower(),
        "job_id": weights.job_id.lower(),
        "weights_hash": "0x" + weights.weights_hash.hex(),
        "record_leaf": "0x" + weights.record_leaf.hex(),
    }
    for name, want in expected.items():
        given = getattr(approval, name)
        if given is not None and (given.lower() if isinstance(given, str) else given) != want:
            raise InvalidApprovalError(
                f"the {name} of {where} is {given}, but the current proposal's is {want}: it approves "
                "another proposal, chain or contract"
            )
    try:
        return approval_signer(
            chain_id,
            settlement_address,
            weights.job_id_bytes,
            weights.weights_hash,
            weights.record_leaf,
            approval.signature_bytes,
        )
    except InvalidApprovalError as exc:
        raise InvalidApprovalError(f"{where}: {exc.args[0]}") from None
