"""Contribution weights as numbers: basis points per member, their hash, and the contract's rounding.

Pure functions, no chain and no I/O. Weights are basis points (``bps``) per
member, each a ``uint16``, summing to exactly `TOTAL_BPS` (10,000). The
Settlement contract checks them again and hashes them the same way
(`weights_hash`).

Rounding (`allocate`, `bps_from_scores`): floors first, then each remaining
unit to the member with the largest ``weight / (allocated + 1)`` (lowest index
on ties), the highest-averages rule. Entitlements sum to the deposits exactly
and never decrease as deposits grow.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from secureflow.ledger.settlement.errors import InvalidWeightsError

TOTAL_BPS = 10_000


def check_weights(members: Sequence[str], bps: Sequence[int]) -> None:
    """Raise `InvalidWeightsError` unless the weights are well-formed (the contract checks them again)."""
    if len(members) != len(bps) or not members:
        raise InvalidWeightsError("members and bps must be non-empty and of equal length")
    if len({m.lower() for m in members}) != len(members):
        raise InvalidWeightsError("a member appears twice")
    if any(not 0 <= b <= 0xFFFF for b in bps):
        raise InvalidWeightsError("each weight must fit uint16")
    if sum(bps) != TOTAL_BPS:
        raise InvalidWeightsError(f"weights sum to {sum(bps)} basis points, not {TOTAL_BPS}")


def weights_hash(job_id: bytes, members: Sequence[str], bps: Sequence[int]) -> bytes:
    """``keccak256(abi.encode(jobId, members, bps))`` as the contract computes it."""
    checksummed = [to_checksum_address(m) for m in members]
    return bytes(keccak(encode(["bytes32", "address[]", "uint16[]"], [job_id, checksummed, list(bps)])))


def highest_averages(total: int, weights: Sequence[int], weight_sum: int) -> list[int]:
    """``total`` split in proportion to ``weights`` (out of ``weight_sum``): floors, then each remaining
    unit to the largest ``weight / (allocated + 1)``, lowest index on ties."""
    alloc = [total * w // weight_sum for w in weights]
    for _ in range(total - sum(alloc)):
        best = 0
        for i in range(1, len(weights)):
            if weights[i] * (alloc[best] + 1) > weights[best] * (alloc[i] + 1):
                best = i
        alloc[best] += 1
    return alloc


def allocate(total: int, bps: Sequence[int]) -> list[int]:
    """Each member's share of ``total`` under the contract's rounding rule (sums to ``total``): floors
    of ``total * bps / 10000``, then each remaining unit to the largest ``bps / (allocated + 1)``,
    lowest index on ties."""
    if total < 0 or sum(bps) != TOTAL_BPS:
        raise InvalidWeightsError("total must be non-negative and the weights must sum to 10,000")
    return highest_averages(total, bps, TOTAL_BPS)


def bps_from_scores(scores: Sequence[int | float]) -> list[int]:
    """Turn non-negative contribution scores into basis points summing to exactly 10,000 (same rule,
    scores taken to 12 decimal places)."""
    if not scores or any(s < 0 for s in scores) or sum(scores) <= 0:
        raise InvalidWeightsError("scores must be non-negative with a positive sum")
    integral = [round(s * 10**12) for s in scores]
    if sum(integral) == 0:
        raise InvalidWeightsError("scores are too small")
    return highest_averages(TOTAL_BPS, integral, sum(integral))
