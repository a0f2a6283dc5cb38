"""Settlement of a job through the API: contribution proposals, approvals, and the members' own transactions.

Reads come from the Settlement contract at request time: weights, deposits,
balances, history (``GET /v1/settlements/{job_id}``, ``.../history``).

Writes go through the ledger's settlement service
(`secureflow.ledger.settlement.service.SettlementService`), the same one
``secureflow settle`` calls, so the rules are the CLI's: the service checks,
this module adds the roles, which jobs a caller sees, and the HTTP shape.
The contract acts for ``msg.sender`` and the service never holds a member's
key, so the service prepares and checks, and the member signs:

- ``POST .../proposals``: contribution inputs -> weights, the contribution step
  record into the ledger outbox after the job's last step (the anchoring
  worker anchors it), the proposal stored (idempotent for the same inputs;
  409 while a job run by the compute engine is still running, and once the
  weights are set);
- ``GET .../proposal``: the newest proposal, its record's chain status and,
  once confirmed, the weights with the record proof, the EIP-712 typed data
  each party signs, and who approved (stored signatures, ``hasApproved``);
- ``POST .../approvals``: a party's EIP-712 signature (or the approval file
  ``secureflow settle approve`` writes), verified to recover to the address of
  the caller's API key;
- ``POST .../transactions/prepare``: an unsigned legacy transaction for the
  caller's address, simulated first (a refusal is a 4xx naming the contract's
  custom error);
- ``POST .../transactions``: a raw signed transaction, checked (chain,
  contract, function, job, sender = caller), simulated, broadcast; the answer
  carries the receipt's settlement events.

Roles: admin and auditor read every job, a member the jobs it is party to.
Proposals: a member party or an admin. Approvals: a member party.
Transactions: members and admins (the contract decides what their address
may do: anyone deposits, parties set weights, members withdraw). The raw
inputs and salt of a proposal are shown to the job's parties only.
"""

from __future__ import annotations

import logging
from typing import Annotated

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints

from secureflow.api.client.models import (
    ApprovalAccepted,
    ApprovalState,
    PrepareIn,
    ProposalCreated,
    ProposalOut,
    ProposalState,
    SubmitIn,
    WeightsOut,
)
from secureflow.api.server.auth import allow, principal_of, visible_job
from secureflow.api.server.context import services
from secureflow.api.server.db import Principal
from secureflow.api.server.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
)
from secureflow.api.server.routes.jobs import JobId
from secureflow.api.server.schemas import ERROR_RESPONSES
from secureflow.ledger.contracts import AuditLedgerClient
from secureflow.ledger.deploy import connect
from secureflow.ledger.settlement.approval import Approval
from secureflow.ledger.settlement.book import StoredProposal
from secureflow.ledger.settlement.client import (
    ETH,
    MemberBalance,
    SettlementClient,
    SettlementEvent,
    settlement_contract,
)
from secureflow.ledger.settlement.contribution import DataShareInputs, LeaveOneOutInputs, WeightsProposal
from secureflow.ledger.settlement.errors import (
    ContributionNotReadyError,
    JobStillRunningError,
    NonceMismatchError,
    NoProposalError,
    NotAPartyError,
    ProposalConflictError,
    ProposalMismatchError,
    SettlementError,
    SettlementRefusedError,
    TransactionRevertedError,
    UnknownJobError,
    WrongSenderError,
    WrongSignerError,
)
from secureflow.ledger.settlement.service import Proposer, SettlementService
from secureflow.ledger.settlement.shapley import ShapleyInputs
from secureflow.ledger.settlement.transactions import (
    PreparedTransaction,
    SettlementTransactions,
    SubmittedTransaction,
)
from secureflow.ledger.store.schemas import Job

log = logging.getLogger("api.settlements")
router = APIRouter(prefix="/v1", tags=["settlements"], responses=ERROR_RESPONSES)

SETTLEMENT = allow("admin", "auditor", "member", scope="own_jobs")
PROPOSE = allow("admin", "member", scope="own_jobs")
APPROVE = allow("member", scope="own_jobs")
TRANSACT = allow("admin", "member", scope="own_jobs")
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


# ------------------------------------------------------------------------------------------- writes

AddressStr = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
InputsBody = Annotated[
    DataShareInputs | LeaveOneOutInputs | ShapleyInputs,
    Body(
        discriminator="method",
        description="contribution inputs, as for `secureflow settle propose --inputs` (method data_share, "
        "leave_one_out or shapley)",
    ),
]

_STATUS_BY_CONTRACT_ERROR = {
    "UnknownJob": 404,
    "NotJobParty": 403,
    "NotActiveMember": 403,
    "NotSettlementMember": 403,
    "WeightsAlreadySet": 409,
    "WeightsNotSet": 409,
    "AlreadyApproved": 409,
    "MissingApproval": 409,
    "NothingToRelease": 409,
    "DepositCapExceeded": 409,
    "RecordNotAnchored": 409,
}
"""HTTP status of a contract refusal by its custom error (any other refusal: 422)."""


class ContractRefusedError(ApiError):
    """The contract refuses the write (found by simulating it): its custom error, decoded."""

    code = "refused_by_contract_rules"

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def _api_error(exc: SettlementError) -> ApiError:
    """The API error for a settlement write the service refused (nothing was stored or sent)."""
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    hint = exc.hint or None
    err: ApiError
    if isinstance(exc, SettlementRefusedError):
        status = _STATUS_BY_CONTRACT_ERROR.get(exc.error_name or "", 422)
        return ContractRefusedError(message, status=status, hint=hint)
    if isinstance(exc, (NotAPartyError, WrongSignerError, WrongSenderError)):
        return ForbiddenError(message, hint=hint)
    if isinstance(exc, NoProposalError):
        return NotFoundError(message, hint=hint)
    if isinstance(exc, ContributionNotReadyError):
        err = ConflictError(message, hint=hint)
        err.code = "not_anchored"
        return err
    if isinstance(exc, TransactionRevertedError):
        err = ConflictError(message, hint=hint)
        err.code = "transaction_reverted"
        return err
    if isinstance(
        exc,
        (
            NonceMismatchError,
            ProposalMismatchError,
            ProposalConflictError,
            JobStillRunningError,
            UnknownJobError,
        ),
    ):
        return ConflictError(message, hint=hint)
    # the rest is the caller's input: malformed or foreign transactions, weights, approvals, inputs
    return InvalidRequestError(message, hint=hint)


def _transactions(request: Request) -> SettlementTransactions:
    """The settlement transaction builder of this app (built once: it checks the deployment's code)."""
    state = request.app.state
    found = getattr(state, "settlement_transactions", None)
    if not isinstance(found, SettlementTransactions):
        svc = services(request)
        ledger = AuditLedgerClient(connect(svc.client, svc.deployment, "AuditLedger"))
        found = SettlementTransactions(svc.client, connect(svc.client, svc.deployment, "Settlement"), ledger)
        state.settlement_transactions = found
    return found


def _service(request: Request, principal: Principal) -> SettlementService:
    """The settlement service over this app's store, receipts and tables (proposals kept as the caller's)."""
    svc = services(request)
    return SettlementService(
        _transactions(request),
        store=svc.store,
        receipts=svc.receipts.receipt,
        book=svc.db.proposal_book(principal.member_id),
        plans=svc.db,
    )


def _job_of(request: Request, job_id: str) -> Job:
    return visible_job(principal_of(request), services(request).store.get_job(job_id.lower()), job_id)


def _is_party(principal: Principal, parties: tuple[str, ...] | list[str]) -> bool:
    return principal.address.lower() in {p.lower() for p in parties}


def _proposal_out(stored: StoredProposal, *, reveal: bool) -> ProposalOut:
    proposal = stored.proposal
    return ProposalOut(
        job_id=proposal.job_id,
        seq=proposal.seq,
        method=proposal.method,
        members=list(proposal.members),
        bps=list(proposal.bps),
        fallback=proposal.fallback,
        weights_hash=proposal.weights_hash,
        record_hash=proposal.record_hash,
        record_leaf=proposal.record_leaf,
        params_hash=proposal.params_hash,
        inputs_digest=proposal.inputs_digest,
        record=proposal.record,
        inputs=proposal.inputs.model_dump(mode="json") if reveal else None,
        salt=proposal.salt if reveal else None,
        proposed_by=stored.proposed_by if stored.proposed_by is not None else 0,
        created_at=stored.created_at,
    )


def _weights_out(weights: WeightsProposal) -> WeightsOut:
    return WeightsOut(
        job_id=weights.job_id,
        members=list(weights.members),
        bps=list(weights.bps),
        weights_hash="0x" + weights.weights_hash.hex(),
        record_leaf="0x" + weights.record_leaf.hex(),
        record_hash=weights.record_hash,
        seq=weights.seq,
        root=weights.root,
        proof=list(weights.proof),
    )


# -- proposals --------------------------------------------------------------------------------------------


@router.post(
    "/settlements/{job_id}/proposals",
    dependencies=[Depends(PROPOSE)],
    status_code=201,
    response_model=ProposalCreated,
    responses={
        200: {"model": ProposalCreated, "description": "the same inputs were proposed before"},
        409: {"description": "the weights are set already, or the job's steps are still being recorded"},
    },
)
def propose(request: Request, job_id: JobId, inputs: InputsBody) -> JSONResponse:
    """Compute contribution weights from the inputs, record the contribution step in the ledger outbox (the
    anchoring worker anchors it) and store the proposal for the parties to approve. Proposing the same
    inputs again returns the stored proposal; other inputs supersede it until the weights are set."""
    principal = principal_of(request)
    job = _job_of(request, job_id)
    proposer = Proposer(principal.address, operator=principal.role == "admin")
    try:
        done = _service(request, principal).propose(job.job_id, inputs, proposer)
    except SettlementError as exc:
        raise _api_error(exc) from None
    if not done.replayed:
        log.info(
            "contribution proposed",
            extra={"job_id": job.job_id, "seq": done.stored.seq, "method": done.stored.proposal.method},
        )
    body = ProposalCreated(
        proposal=_proposal_out(done.stored, reveal=_is_party(principal, job.parties)),
        chain_status=done.record_status,
        replayed=done.replayed,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if done.replayed else 201)


@router.get(
    "/settlements/{job_id}/proposal", dependencies=[Depends(SETTLEMENT)], response_model=ProposalState
)
def get_proposal(request: Request, job_id: JobId) -> ProposalState:
    """The newest proposal, its record's chain status, and once confirmed the weights with the record proof,
    the EIP-712 typed data each party signs and who has approved."""
    principal = principal_of(request)
    job = _job_of(request, job_id)
    try:
        state = _service(request, principal).state(job.job_id)
    except SettlementError as exc:
        raise _api_error(exc) from None
    return ProposalState(
        proposal=_proposal_out(state.stored, reveal=_is_party(principal, job.parties)),
        chain_status=state.record_status,
        not_ready=state.not_ready,
        weights=_weights_out(state.weights) if state.weights is not None else None,
        typed_data=state.typed_data,
        digest=state.digest,
        approvals=[
            ApprovalState(
                party=a.party,
                signed=a.signature is not None,
                signature=a.signature,
                on_chain=a.on_chain,
                approved=a.approved,
            )
            for a in state.approvals
        ],
        ready_to_set=state.ready_to_set,
        weights_set=state.weights_set,
    )


# -- approvals --------------------------------------------------------------------------------------------


@router.post(
    "/settlements/{job_id}/approvals",
    dependencies=[Depends(APPROVE)],
    status_code=201,
    response_model=ApprovalAccepted,
    responses={
        200: {"model": ApprovalAccepted, "description": "the party's approval was stored before"},
        409: {"description": "not anchored yet (code not_anchored), or the weights are set already"},
    },
)
def approve(request: Request, job_id: JobId, body: Approval) -> JSONResponse:
    """Store the caller's EIP-712 approval of the current proposal, after checking that it recovers to the
    address of the caller's API key, that this address is a party of the job, and that it approves the
    confirmed proposal's weights and record. The approval file `secureflow settle approve` writes is
    accepted as is; its other fields, when given, must name the current proposal, chain and contract."""
    principal = principal_of(request)
    job = _job_of(request, job_id)
    try:
        kept, created = _service(request, principal).approve(job.job_id, body, principal.address)
    except SettlementError as exc:
        raise _api_error(exc) from None
    body_out = ApprovalAccepted(
        job_id=job.job_id,
        seq=kept.seq,
        party=kept.party,
        signature=kept.signature,
        accepted_at=kept.created_at,
        replayed=not created,
    )
    return JSONResponse(body_out.model_dump(mode="json"), status_code=201 if created else 200)


# -- transactions -----------------------------------------------------------------------------------------


@router.post(
    "/settlements/{job_id}/transactions/prepare",
    dependencies=[Depends(TRANSACT)],
    response_model=PreparedTransaction,
    responses={409: {"description": "the contract would refuse it now (e.g. WeightsAlreadySet)"}},
)
def prepare_transaction(request: Request, job_id: JobId, body: PrepareIn) -> PreparedTransaction:
    """An unsigned legacy transaction for the caller's address (set_weights with the stored approvals and
    the record proof; approve_weights; deposit; withdraw), simulated first from that address: a refusal
    is a 4xx naming the contract's custom error. Sign it with the key of that address and submit it."""
    principal = principal_of(request)
    job = _job_of(request, job_id)
    try:
        return _service(request, principal).prepare(
            job.job_id, principal.address, body.action, asset=body.asset, amount=body.amount
        )
    except SettlementError as exc:
        raise _api_error(exc) from None


@router.post(
    "/settlements/{job_id}/transactions",
    dependencies=[Depends(TRANSACT)],
    status_code=201,
    response_model=SubmittedTransaction,
    responses={
        200: {"model": SubmittedTransaction, "description": "this transaction was mined before (replayed)"},
        202: {"model": SubmittedTransaction, "description": "broadcast; no receipt yet (status pending)"},
        409: {"description": "refused by the contract (e.g. NothingToRelease), or a nonce already used"},
    },
)
def submit_transaction(request: Request, job_id: JobId, body: SubmitIn) -> JSONResponse:
    """Relay a member's signed settlement transaction: decode it; check chain id, target (the Settlement
    contract), function, job and sender (the address of the caller's API key); simulate it (a refusal is
    a 4xx and nothing is broadcast); broadcast it and wait for the receipt. Submitting a mined transaction
    again returns its result (``replayed``)."""
    principal = principal_of(request)
    job = _job_of(request, job_id)
    raw = bytes.fromhex(body.raw_transaction[2:])
    try:
        result = _service(request, principal).submit(job.job_id, raw, principal.address)
    except SettlementError as exc:
        raise _api_error(exc) from None
    if not result.replayed:
        log.info(
            "settlement transaction relayed",
            extra={"job_id": job.job_id, "function": result.function, "tx_hash": result.tx_hash},
        )
    status = 202 if result.status == "pending" else (200 if result.replayed else 201)
    return JSONResponse(result.model_dump(mode="json"), status_code=status)
