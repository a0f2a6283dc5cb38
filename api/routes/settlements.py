"""Settlement of a job, read from the Settlement contract: contribution weights, deposits, balances, history.

Writes (approve, set weights, deposit, withdraw) are signed by the members with
their own keys (``secureflow settle ...``); the service never holds a member's
key, so these routes only read, each answer coming from the chain at request time.

Roles: admin and auditor see every job; a member sees the jobs it is party to.
"""

from __future__ import annotations

from typing import Annotated

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from api.auth import allow, principal_of, visible_job
from api.context import services
from api.routes.jobs import JobId
from api.schemas import ERROR_RESPONSES
from ledger.settlement import ETH, MemberBalance, SettlementClient, SettlementEvent, settlement_contract

router = APIRouter(prefix="/v1", tags=["settlements"], responses=ERROR_RESPONSES)

SETTLEMENT = allow("admin", "auditor", "member", scope="own_jobs")
Asset = Annotated[
    str,
    Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="ERC-20 token address; the zero address means ETH"),
]


class SettlementOut(BaseModel):
    """A job's settlement state on chain (amounts in the asset's smallest unit, e.g. wei)."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    contract: str
    asset: str
    weights_set: bool
    weights_hash: str | None
    contribution_record_leaf: str | None
    total_deposited: int
    total_released: int
    balances: list[MemberBalance]


class SettlementHistory(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    events: list[SettlementEvent]


def _client(request: Request) -> SettlementClient:
    svc = services(request)
    address = svc.deployment.address_of("Settlement")
    return SettlementClient(settlement_contract(svc.client, address))


@router.get("/settlements/{job_id}", dependencies=[Depends(SETTLEMENT)], response_model=SettlementOut)
def get_settlement(request: Request, job_id: JobId, asset: Asset = ETH) -> SettlementOut:
    """Weights (set once from an anchored contribution record), deposits, and each member's balance."""
    job = visible_job(principal_of(request), services(request).store.get_job(job_id.lower()), job_id)
    client = _client(request)
    key = bytes.fromhex(job.job_id[2:])
    asset = to_checksum_address(asset)
    weights = client.weights_of(key)
    return SettlementOut(
        job_id=job.job_id,
        contract=client.address,
        asset=asset,
        weights_set=weights.is_set,
        weights_hash=weights.weights_hash if weights.is_set else None,
        contribution_record_leaf=weights.record_leaf if weights.is_set else None,
        total_deposited=client.total_deposited(key, asset),
        total_released=client.total_released(key, asset),
        balances=client.balances(key, asset) if weights.is_set else [],
    )


@router.get(
    "/settlements/{job_id}/history", dependencies=[Depends(SETTLEMENT)], response_model=SettlementHistory
)
def get_settlement_history(request: Request, job_id: JobId) -> SettlementHistory:
    """Approvals, weights, deposits and withdrawals of the job, from the contract's events."""
    job = visible_job(principal_of(request), services(request).store.get_job(job_id.lower()), job_id)
    svc = services(request)
    events = _client(request).history(bytes.fromhex(job.job_id[2:]), from_block=svc.deployment.deploy_block)
    return SettlementHistory(job_id=job.job_id, events=events)
