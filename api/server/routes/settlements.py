"""Settlement of a job through the API: contribution proposals, approvals, and the members' own transactions.

Reads come from the Settlement contract at request time: weights, deposits,
balances, history (``GET /v1/settlements/{job_id}``, ``.../history``).

Writes. The contract acts for ``msg.sender`` (only a party sets or approves
the weights; deposits and withdrawals move the sender's funds) and the
service never holds a member's key, so the service prepares and checks, and
the member signs:

- ``POST .../proposals``: contribution inputs -> weights, the contribution step
  record into the ledger outbox (the anchoring worker anchors it), the
  proposal stored (idempotent for the same inputs; 409 once weights are set);
- ``GET .../proposal``: the newest proposal, its record's chain status and,
  once confirmed, the weights with the record proof, the EIP-712 typed data
  each party signs, and who approved (stored signatures, ``hasApproved``);
- ``POST .../approvals``: a party's EIP-712 signature, verified to recover to
  the address of the caller's API key;
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
from datetime import datetime
from typing import Annotated, Any, Literal

import rfc8785
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from secureflow.api.server.auth import allow, principal_of, visible_job
from secureflow.api.server.context import Services, services
from secureflow.api.server.db import Principal, StoredProposal
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
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.settlement.approval import approval_digest, approval_request, approval_signer
from secureflow.ledger.settlement.client import (
    ETH,
    MemberBalance,
    SettlementClient,
    SettlementEvent,
    settlement_contract,
)
from secureflow.ledger.settlement.contribution import (
    ContributionProposal,
    DataShareInputs,
    LeaveOneOutInputs,
    WeightsProposal,
    check_members,
    prepare_contribution,
)
from secureflow.ledger.settlement.errors import (
    ContributionError,
    ContributionNotReadyError,
    NonceMismatchError,
    ProposalMismatchError,
    SettlementError,
    SettlementRefusedError,
    TransactionRevertedError,
    WrongSenderError,
)
from secureflow.ledger.settlement.transactions import (
    Action,
    PreparedTransaction,
    SettlementTransactions,
    SubmittedTransaction,
    anchored_weights,
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

Hex = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$")]
AddressStr = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
InputsBody = Annotated[
    DataShareInputs | LeaveOneOutInputs,
    Body(
        discriminator="method",
        description="contribution inputs, as for `secureflow settle propose --inputs` (method data_share or "
        "leave_one_out)",
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
    """The API error for a refused settlement write (nothing was stored or sent)."""
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    hint = exc.hint or None
    if isinstance(exc, SettlementRefusedError):
        status = _STATUS_BY_CONTRACT_ERROR.get(exc.error_name or "", 422)
        return ContractRefusedError(message, status=status, hint=hint)
    if isinstance(exc, WrongSenderError):
        return ForbiddenError(message, hint=hint)
    if isinstance(exc, ContributionNotReadyError):
        err: ApiError = ConflictError(message, hint=hint)
        err.code = "not_anchored"
        return err
    if isinstance(exc, TransactionRevertedError):
        err = ConflictError(message, hint=hint)
        err.code = "transaction_reverted"
        return err
    if isinstance(exc, (NonceMismatchError, ProposalMismatchError)):
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


def _job_of(request: Request, job_id: str) -> Job:
    return visible_job(principal_of(request), services(request).store.get_job(job_id.lower()), job_id)


def _is_party(principal: Principal, parties: tuple[str, ...] | list[str]) -> bool:
    return principal.address.lower() in {p.lower() for p in parties}


def _not_party(job: Job, principal: Principal) -> ForbiddenError:
    return ForbiddenError(
        f"NotJobParty(jobId={job.job_id}, account={principal.address}): the address of your API key is "
        "not a party of the job; the Settlement contract takes approvals and weights from its parties only",
        hint="use the API key of one of the job's parties",
    )


def _inputs_hash(inputs: DataShareInputs | LeaveOneOutInputs) -> str:
    return "0x" + keccak(rfc8785.dumps(inputs.model_dump(mode="json"))).hex()


def _current(svc: Services, job: Job) -> tuple[StoredProposal, ContributionProposal]:
    stored = svc.db.latest_proposal(job.job_id)
    if stored is None:
        raise NotFoundError(
            f"job {job.job_id} has no contribution proposal",
            hint="propose weights first: POST /v1/settlements/{job_id}/proposals",
        )
    return stored, ContributionProposal.model_validate_json(stored.proposal_json)


def _confirmed_weights(
    svc: Services, txs: SettlementTransactions, proposal: ContributionProposal
) -> WeightsProposal:
    try:
        return anchored_weights(proposal, svc.receipts.receipt, txs.ledger, confirmed=True)[1]
    except (ContributionNotReadyError, ProposalMismatchError) as exc:
        raise _api_error(exc) from None


def _weights_already_set(txs: SettlementTransactions, job: Job) -> ContractRefusedError | None:
    key = bytes.fromhex(job.job_id[2:])
    weights = SettlementClient(txs.settlement).weights_of(key)
    if not weights.is_set:
        return None
    return ContractRefusedError(
        f"WeightsAlreadySet(jobId={job.job_id}): the weights of the job were set in block "
        f"{weights.set_at_block} (weights hash {weights.weights_hash}); they are set once",
        status=409,
        hint="deposits and withdrawals are open: GET /v1/settlements/{job_id} shows the balances",
    )


# -- proposals --------------------------------------------------------------------------------------------


class ProposalOut(BaseModel):
    """A contribution proposal: weights, the contribution record that anchors them, and (for the job's
    parties only) the raw inputs and the salt of the record's inputs digest."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    seq: int = Field(description="step number of the contribution record")
    method: str
    members: list[str]
    bps: list[int]
    fallback: str | None
    weights_hash: str
    record_hash: str
    record_leaf: str
    params_hash: str
    inputs_digest: str
    record: dict[str, Any] = Field(description="the contribution step record (digests and metadata only)")
    inputs: dict[str, Any] | None = Field(description="the contribution inputs (parties only, else null)")
    salt: str | None = Field(description="salt of the inputs digest (parties only, else null)")
    proposed_by: int = Field(description="API member id of the proposer")
    created_at: datetime

    @classmethod
    def of(cls, stored: StoredProposal, proposal: ContributionProposal, *, reveal: bool) -> ProposalOut:
        return cls(
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
            proposed_by=stored.proposed_by,
            created_at=stored.created_at,
        )


class ProposalCreated(BaseModel):
    model_config = ConfigDict(frozen=True)

    proposal: ProposalOut
    chain_status: str = Field(description="anchoring status of the contribution record (pending first)")
    replayed: bool = Field(description="the same inputs were proposed before: nothing new was recorded")


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
    svc, principal = services(request), principal_of(request)
    job = _job_of(request, job_id)
    if principal.role == "member" and not _is_party(principal, job.parties):
        raise _not_party(job, principal)
    key = bytes.fromhex(job.job_id[2:])
    inputs_hash = _inputs_hash(inputs)
    latest = svc.db.latest_proposal(job.job_id)
    if latest is not None and latest.inputs_hash == inputs_hash:
        return _proposed(svc, job, latest, principal, replayed=True)
    txs = _transactions(request)
    already = _weights_already_set(txs, job)
    if already is not None:
        raise already
    parties = txs.job_parties(key)
    if not parties:
        raise ConflictError(
            f"UnknownJob(jobId={job.job_id}): the job is not created on chain, so the Settlement contract "
            "cannot take weights for it",
            hint="wait until the job is created on chain (its chain_status), then propose",
        )
    try:
        check_members(inputs.members, parties)
        check_members(inputs.members, job.parties)
        seq = _contribution_seq(svc, job)
        proposal = prepare_contribution(job.job_id, seq, inputs, job_parties=parties)
    except ContributionError as exc:
        raise _api_error(exc) from None
    try:
        stored = svc.db.add_proposal(
            job.job_id, seq, inputs_hash, proposal.model_dump_json(), principal.member_id
        )
    except ConflictError:
        latest = svc.db.latest_proposal(job.job_id)  # a concurrent identical request stored it first
        if latest is not None and latest.inputs_hash == inputs_hash:
            return _proposed(svc, job, latest, principal, replayed=True)
        raise
    try:
        svc.store.accept_record(to_outbox(proposal.step_record()))
    except BaseException:
        svc.db.delete_proposal(job.job_id, seq)  # no record in the outbox: no proposal either
        raise
    log.info("contribution proposed", extra={"job_id": job.job_id, "seq": seq, "method": proposal.method})
    return _proposed(svc, job, stored, principal, replayed=False)


def _contribution_seq(svc: Services, job: Job) -> int:
    """The step number of a new contribution record: after every step the job has or will record.

    A job run by the compute engine (its manifest was submitted here) records step N at seq N, so it must
    have finished first and the record goes after its last manifest step; the service chooses the number,
    never the caller, so that no proposal can take a step's number or leave gaps in the audit trail.
    """
    manifest = svc.db.get_manifest(job.job_id)
    if manifest is not None and job.status in ("created", "running"):
        raise ConflictError(
            f"job {job.job_id} is {job.status}: its steps are still being recorded",
            hint="propose the contribution weights once the job has completed",
        )
    highest = svc.db.max_record_seq(job.job_id)
    planned = len(manifest.get("steps", ())) if manifest is not None else 0
    return max(planned, 0 if highest is None else highest + 1)


def _proposed(
    svc: Services, job: Job, stored: StoredProposal, principal: Principal, *, replayed: bool
) -> JSONResponse:
    proposal = ContributionProposal.model_validate_json(stored.proposal_json)
    row = svc.store.get_record(job.job_id, stored.seq)
    if row is None:  # the outbox write of an earlier attempt failed after the proposal was stored
        row = svc.store.accept_record(to_outbox(proposal.step_record()))
    body = ProposalCreated(
        proposal=ProposalOut.of(stored, proposal, reveal=_is_party(principal, job.parties)),
        chain_status=row.status,
        replayed=replayed,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if replayed else 201)


class WeightsOut(BaseModel):
    """The weights as ``setWeights`` takes them, with the contribution record's proof (``RecordProof``)."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    members: list[str]
    bps: list[int]
    weights_hash: str
    record_leaf: str
    record_hash: str
    seq: int
    root: str
    proof: list[str]

    @classmethod
    def of(cls, weights: WeightsProposal) -> WeightsOut:
        return cls(
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


class ApprovalState(BaseModel):
    model_config = ConfigDict(frozen=True)

    party: str
    signed: bool = Field(description="an EIP-712 signature of this party is stored")
    signature: str | None
    on_chain: bool = Field(description="the party approved on chain (hasApproved)")
    approved: bool


class ProposalState(BaseModel):
    """The job's current proposal and how far it is from being set on chain."""

    model_config = ConfigDict(frozen=True)

    proposal: ProposalOut
    chain_status: str = Field(description="anchoring status of the contribution record")
    not_ready: str | None = Field(description="why the weights cannot be approved yet (null once confirmed)")
    weights: WeightsOut | None = Field(description="the WeightsProposal, once the record is confirmed")
    typed_data: dict[str, Any] | None = Field(
        description="EIP-712 typed data (eth_signTypedData_v4) each party signs, once confirmed"
    )
    digest: str | None = Field(description="the EIP-712 digest (the contract's approvalDigest)")
    approvals: list[ApprovalState] = Field(description="per party of the job, in the contract's order")
    ready_to_set: bool = Field(description="every party approved and the weights are not set yet")
    weights_set: bool = Field(description="the job's weights are set on chain (by this or another proposal)")


@router.get(
    "/settlements/{job_id}/proposal", dependencies=[Depends(SETTLEMENT)], response_model=ProposalState
)
def get_proposal(request: Request, job_id: JobId) -> ProposalState:
    """The newest proposal, its record's chain status, and once confirmed the weights with the record proof,
    the EIP-712 typed data each party signs and who has approved."""
    svc, principal = services(request), principal_of(request)
    job = _job_of(request, job_id)
    stored, proposal = _current(svc, job)
    txs = _transactions(request)
    key = bytes.fromhex(job.job_id[2:])
    row = svc.store.get_record(job.job_id, stored.seq)
    weights: WeightsProposal | None = None
    not_ready: str | None = None
    if row is None:
        not_ready = "the contribution record is not in the outbox: propose the same inputs again to record it"
    else:
        try:
            weights = anchored_weights(proposal, svc.receipts.receipt, txs.ledger, confirmed=True)[1]
        except (ContributionNotReadyError, ProposalMismatchError) as exc:
            not_ready = str(exc)
    parties = txs.job_parties(key)
    stored_sigs = {a.party.lower(): a.signature for a in svc.db.approvals(job.job_id, stored.seq)}
    client = SettlementClient(txs.settlement)
    approvals = []
    for party in parties:
        on_chain = weights is not None and bool(svc.client.call_rpc(client.has_approved, weights, party))
        signature = stored_sigs.get(party.lower())
        approvals.append(
            ApprovalState(
                party=party,
                signed=signature is not None,
                signature=signature,
                on_chain=on_chain,
                approved=on_chain or signature is not None,
            )
        )
    weights_set = client.weights_of(key).is_set
    return ProposalState(
        proposal=ProposalOut.of(stored, proposal, reveal=_is_party(principal, job.parties)),
        chain_status=row.status if row is not None else "not_recorded",
        not_ready=not_ready,
        weights=WeightsOut.of(weights) if weights is not None else None,
        typed_data=approval_request(txs.chain_id, txs.address, weights) if weights is not None else None,
        digest=(
            "0x"
            + approval_digest(txs.chain_id, txs.address, key, weights.weights_hash, weights.record_leaf).hex()
            if weights is not None
            else None
        ),
        approvals=approvals,
        ready_to_set=bool(approvals) and all(a.approved for a in approvals) and not weights_set,
        weights_set=weights_set,
    )


# -- approvals --------------------------------------------------------------------------------------------


class ApprovalIn(BaseModel):
    """A party's EIP-712 ContributionApproval signature. The approval file written by ``secureflow settle
    approve --out`` is accepted as is; its other fields, when given, must name the current proposal."""

    model_config = ConfigDict(extra="forbid")

    signature: Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{130}$")] = Field(
        description="65 bytes (r, s, v), 0x-hex"
    )
    version: Literal[1] | None = None
    chain_id: int | None = Field(default=None, ge=0, le=2**64)
    settlement: AddressStr | None = None
    job_id: Hex | None = None
    party: AddressStr | None = None
    weights_hash: Hex | None = None
    record_leaf: Hex | None = None


class ApprovalAccepted(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    seq: int
    party: str
    signature: str
    accepted_at: datetime
    replayed: bool = Field(description="this party's approval was stored before (kept as it was)")


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
def approve(request: Request, job_id: JobId, body: ApprovalIn) -> JSONResponse:
    """Store the caller's EIP-712 approval of the current proposal, after checking that it recovers to the
    address of the caller's API key, that this address is a party of the job, and that it approves the
    confirmed proposal's weights and record."""
    svc, principal = services(request), principal_of(request)
    job = _job_of(request, job_id)
    txs = _transactions(request)
    key = bytes.fromhex(job.job_id[2:])
    if not _is_party(principal, txs.job_parties(key)):
        raise _not_party(job, principal)
    stored, proposal = _current(svc, job)
    already = _weights_already_set(txs, job)
    if already is not None:
        raise already
    weights = _confirmed_weights(svc, txs, proposal)
    expected = {
        "chain_id": txs.chain_id,
        "settlement": txs.address.lower(),
        "job_id": job.job_id,
        "weights_hash": "0x" + weights.weights_hash.hex(),
        "record_leaf": "0x" + weights.record_leaf.hex(),
    }
    for field, want in expected.items():
        given = getattr(body, field)
        if given is not None and (given.lower() if isinstance(given, str) else given) != want:
            raise InvalidRequestError(
                f"the approval's {field} is {given}, but the current proposal's is {want}: "
                "it approves another proposal, chain or contract",
                hint="sign the typed data of GET /v1/settlements/{job_id}/proposal",
            )
    if body.party is not None and body.party.lower() != principal.address.lower():
        raise ForbiddenError(
            f"the approval names party {body.party}, but your API key belongs to {principal.address}",
            hint="each party posts its own approval with its own API key",
        )
    signature = bytes.fromhex(body.signature[2:])
    try:
        signer = approval_signer(
            txs.chain_id, txs.address, key, weights.weights_hash, weights.record_leaf, signature
        )
    except SettlementError as exc:
        raise _api_error(exc) from None
    if signer.lower() != principal.address.lower():
        raise ForbiddenError(
            f"the signature recovers to {signer}, not to {principal.address} (the address of your API "
            "key): it is another account's signature, or of other typed data",
            hint="sign the typed data of GET /v1/settlements/{job_id}/proposal with the key of "
            f"{principal.address}",
        )
    party = str(to_checksum_address(principal.address))
    approval, created = svc.db.add_approval(
        job.job_id, stored.seq, party, "0x" + signature.hex(), principal.member_id
    )
    body_out = ApprovalAccepted(
        job_id=job.job_id,
        seq=stored.seq,
        party=approval.party,
        signature=approval.signature,
        accepted_at=approval.created_at,
        replayed=not created,
    )
    return JSONResponse(body_out.model_dump(mode="json"), status_code=201 if created else 200)


# -- transactions -----------------------------------------------------------------------------------------


class PrepareIn(BaseModel):
    """What to prepare: the action, the asset (ERC-20 address; default ETH) and, for a deposit, the amount."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    asset: AddressStr = Field(default=ETH, description="ERC-20 token address; the zero address means ETH")
    amount: int | None = Field(
        default=None, gt=0, le=2**256 - 1, description="deposit only: wei, or the token's smallest unit"
    )


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
    svc, principal = services(request), principal_of(request)
    job = _job_of(request, job_id)
    txs = _transactions(request)
    key = bytes.fromhex(job.job_id[2:])
    asset = str(to_checksum_address(body.asset))
    try:
        if body.action in ("set_weights", "approve_weights"):
            stored, proposal = _current(svc, job)
            weights = _confirmed_weights(svc, txs, proposal)
            if body.action == "set_weights":
                signatures = {
                    a.party: bytes.fromhex(a.signature[2:]) for a in svc.db.approvals(job.job_id, stored.seq)
                }
                call = txs.set_weights_call(weights, signatures)
            else:
                call = txs.approve_weights_call(weights)
            return txs.prepare(principal.address, call)
        if body.action == "deposit":
            if body.amount is None:
                raise InvalidRequestError(
                    "a deposit needs an amount", hint="give amount (wei, or the token's smallest unit)"
                )
            call, value = txs.deposit_call(key, asset, body.amount)
            return txs.prepare(principal.address, call, value=value)
        return txs.prepare(principal.address, txs.withdraw_call(key, asset))
    except SettlementError as exc:
        raise _api_error(exc) from None


class SubmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raw_transaction: Annotated[
        str, StringConstraints(pattern=r"^0x([0-9a-fA-F]{2})+$", max_length=2 + 2 * 131_072)
    ] = Field(description="the signed legacy transaction, 0x-hex (eth_account's raw_transaction)")


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
    txs = _transactions(request)
    key = bytes.fromhex(job.job_id[2:])
    try:
        decoded = txs.check_submission(bytes.fromhex(body.raw_transaction[2:]), key, principal.address)
        result = txs.submit(decoded)
    except SettlementError as exc:
        raise _api_error(exc) from None
    if not result.replayed:
        log.info(
            "settlement transaction relayed",
            extra={"job_id": job.job_id, "function": result.function, "tx_hash": result.tx_hash},
        )
    status = 202 if result.status == "pending" else (200 if result.replayed else 201)
    return JSONResponse(result.model_dump(mode="json"), status_code=status)
