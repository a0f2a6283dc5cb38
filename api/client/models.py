"""The audit API's request and response bodies (pydantic v2): the one definition the server declares its
OpenAPI with and the client parses answers into.

Owned by the client (it needs nothing but pydantic); the server imports these models, the client never
imports the server. The step record, the receipt, the audit bundle and the settlement contract's
balances, events and transactions are formats of the ledger (``secureflow.ledger``): the server declares
them with the ledger's models and the client hands them over as JSON (see ``secureflow.api.client``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")

Hex32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$"), AfterValidator(str.lower)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
"""An account address, 0x + 40 hex digits (any case: the server checksums it)."""
HexBytes32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$")]

Role = Literal["admin", "member", "service", "auditor", "metrics"]
"""The role of an API key's member: what it may call (``GET /v1/roles``); ``metrics`` may only scrape
``/metrics`` (the key to give Prometheus)."""

SettlementAction = Literal["set_weights", "approve_weights", "deposit", "withdraw"]
"""What ``POST /v1/settlements/{job_id}/transactions/prepare`` prepares (the ledger's ``Action``)."""

TERMINAL_JOB_STATUSES = frozenset({"completed", "failed", "cancelled", "rejected"})
"""Job statuses after which nothing runs (the ledger's ``TERMINAL_JOB_STATUSES``)."""

ETH = "0x0000000000000000000000000000000000000000"
"""The asset address that means ETH (any other asset is an ERC-20 token's address)."""


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorDetail(_Out):
    code: str = Field(description="machine-readable error code, e.g. not_found, invalid_request")
    message: str = Field(description="what went wrong and what to do")
    request_id: str = Field(description="the request id (X-Request-ID) to quote in a support request")


class ErrorResponse(_Out):
    """The one error shape of every error response."""

    error: ErrorDetail


class Page(_Out, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` for the next page (null: last page)."""

    items: list[T]
    next_cursor: str | None = None


class OffsetPage(_Out, Generic[T]):
    """One page of a list ordered newest first; ``next_offset`` is null on the last page."""

    items: list[T]
    next_offset: int | None = None


# -- jobs ------------------------------------------------------------------------------------------------


class JobSubmission(BaseModel):
    """A job manifest to run (parties, datasets by reference, ordered steps)."""

    model_config = ConfigDict(extra="forbid")

    manifest: dict[str, Any] = Field(
        description="the job manifest (secureflow.compute.manifest.JobManifest format)"
    )
    service: Address | None = Field(
        default=None,
        description="the anchoring service (an account with the ANCHOR role and a service key here) that "
        "will post this job's step records; only that service's key may post them. Leave it out when this "
        "API's own compute executor runs the job",
    )


class RecordCounts(_Out):
    pending: int = 0
    submitted: int = 0
    confirmed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.submitted + self.confirmed + self.failed

    @property
    def settled(self) -> bool:
        """No record is still on its way to the chain (pending or submitted)."""
        return self.pending == 0 and self.submitted == 0


class JobOut(_Out):
    job_id: str
    manifest_hash: str
    creator: str
    parties: list[str]
    salt: str | None = Field(
        default=None,
        description="the creator's createJob salt (job_id = keccak256(abi.encode(creator, manifest, salt)))",
    )
    status: str
    chain_status: str = Field(description="status of the job's on-chain createJob")
    created_tx_hash: str | None
    close_status: str | None = Field(
        default=None,
        description="the anchoring service's on-chain closeJob once the job finished: pending, submitted, "
        "confirmed, or failed (refused by the contract, with close_reason; not retried)",
    )
    close_reason: str | None = Field(
        default=None,
        description="why the close failed, or, for a job closed on chain as failed because a step record "
        "could not be anchored (quarantined), which step and why",
    )
    reason: str | None = Field(
        default=None,
        description="why the job ended other than completed: the failed step (error class and message), "
        "the parties' consent refusals, the compute executor's failure, or who cancelled it (None while "
        "it runs or once completed; the on-chain close has its own close_reason)",
    )
    stuck: bool = Field(
        default=False,
        description="the job is running but has had no status change and no new step record for longer "
        "than the API's stuck_after_seconds (GET /v1/jobs?stuck=true lists them)",
    )
    service: str | None = Field(
        default=None,
        description="the anchoring service bound to the job at submission, the only one that "
        "may post its steps (None: only this API's own executor records them)",
    )
    created_at: datetime
    updated_at: datetime


class JobSubmitted(_Out):
    job: JobOut
    execution: Literal["handed_to_executor", "waiting_for_queue", "not_configured"]
    message: str


class JobStatusEvent(_Out):
    """One live-status event of a job (sent whenever it changes)."""

    job_id: str
    status: str
    chain_status: str
    records: RecordCounts
    updated_at: datetime
    reason: str | None = Field(default=None, description="why the job ended other than completed")

    @property
    def finished(self) -> bool:
        """The job has ended and its records are settled on chain (the live status ends here)."""
        return self.status in TERMINAL_JOB_STATUSES and self.records.settled

    @property
    def succeeded(self) -> bool:
        """The job completed and none of its records failed to anchor."""
        return self.status == "completed" and self.records.failed == 0


class StepOut(_Out):
    """A step record's anchoring state (the record itself: GET .../steps/{seq})."""

    job_id: str
    seq: int
    algorithm: str
    started_at_ms: int
    finished_at_ms: int
    record_hash: str
    leaf: str
    chain_status: str = Field(description="pending, submitted, confirmed or failed")
    batch_id: str | None
    tx_hash: str | None
    block_number: int | None
    accepted_at: datetime
    confirmed_at: datetime | None
    failure_reason: str | None = Field(
        default=None,
        description="why a failed record will never be anchored: 'quarantined: ' and the check its stored "
        "leaf failed, or the contract's reason for refusing it alone (None unless chain_status is failed)",
    )


class PartyLog(_Out):
    party: str = Field(description="the party's name in the job's manifest")
    address: str = Field(description="its member address (its node signed these lines)")
    lines: list[str] = Field(description="its log lines from the offset asked for, scrubbed by the party")
    next: int = Field(description="the line offset to ask for next (`after`) to read on")


class JobLogs(_Out):
    job_id: str
    parties: list[PartyLog]


class CheckOut(_Out):
    name: str
    status: str
    detail: str


class PinOut(_Out):
    source: str = Field(description="where the pin comes from (for the API: its configured deployment)")
    chain_id: int | None
    ledger: str
    ledger_code_hash: str | None = Field(description="keccak256 of the ledger's runtime code")
    registry: str | None
    registry_code_hash: str | None


class VerdictOut(_Out):
    ok: bool
    job_id: str | None
    seq: int | None
    checks: list[CheckOut]
    summary: str
    warnings: list[str] = Field(description="what could not be checked although the receipt is valid")
    pinned: PinOut = Field(description="the deployment the receipt was verified against")


class AuditItem(StepOut):
    verification: VerdictOut | None = Field(default=None, description="with ?verify=true: checked on chain")


class StepDetail(_Out):
    step: StepOut
    record: dict[str, Any]
    receipt: dict[str, Any] | None = Field(
        description="the receipt with Merkle proof once anchored, else null"
    )
    receipt_unavailable: str | None = Field(description="why there is no receipt yet")


class AcceptedStep(_Out):
    job_id: str
    seq: int
    record_hash: str
    leaf: str
    chain_status: str
    accepted_at: datetime
    replayed: bool = Field(description="true if this exact record had been accepted before (nothing changed)")


# -- models ----------------------------------------------------------------------------------------------


class ModelOut(_Out):
    """A model recorded on chain (a ModelRecorded event) beside what this API holds for it."""

    job_id: str | None
    model_id: str = Field(description="the model's key on chain (keccak256 of its name)")
    version: int
    model_hash: str = Field(description="the hash the chain recorded")
    block_number: int
    tx_hash: str
    name: str | None = Field(default=None, description="the model's name here (None: unknown to this API)")
    api_model_hash: str | None = Field(default=None, description="the hash this API holds for it")
    api_status: str | None = Field(default=None, description="this API's anchoring status of the model")
    hash_matches: bool | None = Field(
        default=None, description="the chain's hash equals this API's (None: the API does not hold it)"
    )


# -- the consortium overview and a job's timeline (the web console) ---------------------------------------


class OverviewAccount(_Out):
    """An account of the consortium registry (public on chain) and its name here, if it has an API key."""

    address: str
    name: str | None = Field(description="the name this API knows the account by (None: no key here)")
    roles: list[str] = Field(description="the registry roles it holds now (member, anchor, auditor, ...)")
    suspended: bool


class ActivityBucketOut(_Out):
    start: datetime = Field(description="the bucket's first instant (UTC)")
    anchored: int = Field(description="step records whose anchor was confirmed in this bucket")
    latency_avg_seconds: float = Field(description="mean time from acceptance to confirmation")
    latency_max_seconds: float


class BacklogOut(_Out):
    pending: int = Field(description="records waiting to be batched and anchored")
    submitted: int = Field(description="records in an anchoring transaction not confirmed yet")
    failed: int = Field(description="records that will never be anchored (e.g. quarantined)")
    oldest_pending_at: datetime | None
    oldest_pending_age_seconds: float | None


class LastBlockOut(_Out):
    number: int
    hash: str
    seen_at: datetime = Field(description="when this API's indexer processed it")


class JobAttention(_Out):
    """A job that needs looking at: failed, or running with nothing moving (stuck)."""

    job_id: str
    status: str
    stuck: bool
    reason: str | None
    close_reason: str | None
    updated_at: datetime


class Overview(_Out):
    """The consortium at a glance, for the caller: members see the figures of the jobs they are party to."""

    generated_at: datetime
    scope: Literal["all", "own_jobs"] = Field(
        description="all: every job (admin, auditor, service); own_jobs: only jobs the member is party to"
    )
    accounts: list[OverviewAccount] = Field(description="the registry's accounts and roles (public on chain)")
    accounts_error: str | None = Field(
        default=None, description="why the registry could not be read (the rest is from this API's store)"
    )
    jobs_by_status: dict[str, int] = Field(description="jobs per compute status (every status listed)")
    jobs_total: int
    window_start: datetime
    window_end: datetime
    bucket_seconds: int
    activity: list[ActivityBucketOut] = Field(
        description="records confirmed per bucket since window_start, with their latency; buckets without "
        "records are left out"
    )
    backlog: BacklogOut
    last_block: LastBlockOut | None = Field(description="the last block this API's indexer processed")
    attention: list[JobAttention] = Field(description="failed and stuck jobs, most recent first")


class ConsentOut(_Out):
    party: str
    consented: bool = Field(description="the chain has this party's consent (a JobConsented event)")
    tx_hash: str | None
    block_number: int | None


class PartyPartOut(_Out):
    """One party's part of a step record: its salted digests and whether its signature is its own."""

    party: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    signed: bool
    signature_valid: bool = Field(description="the part is signed by this party's own key (checked here)")
    problem: str | None = Field(description="what is wrong with the part's signature, if anything")


class TimelineStep(_Out):
    seq: int
    algorithm: str
    params_hash: str
    code_version: str
    status: str = Field(description="the step's outcome as recorded (succeeded, failed, ...)")
    started_at_ms: int
    finished_at_ms: int
    duration_ms: int
    record_hash: str
    chain_status: str
    batch_id: str | None
    tx_hash: str | None
    block_number: int | None
    failure_reason: str | None
    parties: list[PartyPartOut]
    signatures_valid: bool = Field(description="every job party's part is signed by its own key")


class TimelineModel(_Out):
    model_id: str
    version: int
    model_hash: str
    status: str = Field(description="the model's anchoring: pending, submitted, confirmed or failed")
    on_chain_hash: str | None = Field(description="the hash the chain recorded (ModelRecorded event)")
    tx_hash: str | None
    block_number: int | None


class CloseOut(_Out):
    """The job's close: what the chain recorded (JobClosed) beside what this API holds."""

    close_status: str | None
    close_reason: str | None
    on_chain: bool = Field(description="a JobClosed event of the job was indexed")
    step_count: int | None = Field(description="the step count the chain recorded")
    final_root: str | None
    final_record_hash: str | None
    succeeded: bool | None
    tx_hash: str | None
    block_number: int | None
    api_step_count: int = Field(description="step records this API holds for the job")
    api_final_root: str | None = Field(description="the batch root holding the job's last record here")
    api_final_record_hash: str | None
    matches: bool | None = Field(description="the chain's close equals this API's (None: not closed)")


class JobTimeline(_Out):
    """A job from manifest to close, for the console's timeline (one read)."""

    job: JobOut
    manifest: dict[str, Any] | None = Field(
        description="the manifest it was submitted with (parties, datasets by reference, steps, parameters)"
    )
    consents: list[ConsentOut]
    opened_tx_hash: str | None
    steps: list[TimelineStep]
    steps_truncated: bool = Field(description="only the first steps are listed (the steps page has all)")
    models: list[TimelineModel]
    close: CloseOut


# -- the console's search -------------------------------------------------------------------------------

SearchKind = Literal["job", "member", "record", "model", "transaction"]


class SearchResult(_Out):
    """One thing a search found, with the job it belongs to (the console links it to its pages)."""

    kind: SearchKind = Field(description="what the query matched: a job id, a party, a record, a model, a tx")
    job_id: str
    job_status: str
    created_at: datetime = Field(description="when the job was created here")
    seq: int | None = Field(default=None, description="the step (record, anchoring transaction)")
    record_hash: str | None = None
    model_id: str | None = Field(default=None, description="the model's name here (model)")
    version: int | None = None
    model_hash: str | None = None
    tx_hash: str | None = None
    event: str | None = Field(
        default=None, description="what the transaction did for the job (BatchAnchored, JobOpened, ...)"
    )


class SearchResults(_Out):
    """The answer of ``GET /v1/search``: how the query was read, and what it found (newest job first)."""

    query: str
    classified_as: Literal["hash", "address", "time_range"] = Field(
        description="hash: a 32-byte hash looked up as a job id, record, model and transaction hash; "
        "address: a member's jobs; time_range: the jobs created in since..until"
    )
    since: datetime | None
    until: datetime | None
    items: list[SearchResult]
    truncated: bool = Field(description="more matched than the limit: narrow the query or the time range")


# -- members, roles, keys --------------------------------------------------------------------------------


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    address: Address = Field(description="the member's on-chain address")
    role: Role


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class MemberOut(_Out):
    id: int
    name: str
    address: str
    role: str
    created_at: datetime


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Name = "default"


class KeyOut(_Out):
    key_id: str
    member_id: int
    label: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the API key: shown only now, store it safely (only its hash is kept)")


class RoleOut(_Out):
    role: str
    routes: list[str]


class Me(_Out):
    member_id: int
    name: str
    role: str
    address: str
    key_id: str


# -- operations ------------------------------------------------------------------------------------------


class Health(_Out):
    status: Literal["ok"]


class ReadinessCheck(_Out):
    name: str
    ok: bool
    detail: str


class Readiness(_Out):
    ready: bool
    checks: list[ReadinessCheck]


# -- settlement ------------------------------------------------------------------------------------------


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


class ProposalCreated(BaseModel):
    model_config = ConfigDict(frozen=True)

    proposal: ProposalOut
    chain_status: str = Field(description="anchoring status of the contribution record (pending first)")
    replayed: bool = Field(description="the same inputs were proposed before: nothing new was recorded")


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


class ApprovalIn(BaseModel):
    """A party's EIP-712 ContributionApproval signature. The approval file written by ``secureflow settle
    approve --out`` is accepted as is; its other fields, when given, must name the current proposal."""

    model_config = ConfigDict(extra="forbid")

    signature: Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{130}$")] = Field(
        description="65 bytes (r, s, v), 0x-hex"
    )
    version: Literal[1] | None = None
    chain_id: int | None = Field(default=None, ge=0, le=2**64)
    settlement: Address | None = None
    job_id: HexBytes32 | None = None
    party: Address | None = None
    weights_hash: HexBytes32 | None = None
    record_leaf: HexBytes32 | None = None


class ApprovalAccepted(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    seq: int
    party: str
    signature: str
    accepted_at: datetime
    replayed: bool = Field(description="this party's approval was stored before (kept as it was)")


class PrepareIn(BaseModel):
    """What to prepare: the action, the asset (ERC-20 address; default ETH) and, for a deposit, the amount."""

    model_config = ConfigDict(extra="forbid")

    action: SettlementAction
    asset: Address = Field(default=ETH, description="ERC-20 token address; the zero address means ETH")
    amount: int | None = Field(
        default=None, gt=0, le=2**256 - 1, description="deposit only: wei, or the token's smallest unit"
    )


class SubmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raw_transaction: Annotated[
        str, StringConstraints(pattern=r"^0x([0-9a-fA-F]{2})+$", max_length=2 + 2 * 131_072)
    ] = Field(description="the signed legacy transaction, 0x-hex (eth_account's raw_transaction)")
