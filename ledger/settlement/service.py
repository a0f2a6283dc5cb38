"""The settlement workflow, one for the API and the CLI: propose, approve, prepare, submit.

`SettlementService` is what the routes under ``/v1/settlements``
(`secureflow.api.server.routes.settlements`) and ``secureflow settle``
(`secureflow.api.cli.settle`) both call, so the rules below hold for both. It
holds no key: a member signs its approval and its transactions itself, and the
service checks what it is handed before anything is stored or sent. The
Settlement contract checks everything again; the service refuses first, with
the reason, so that a refusal costs nothing.

Who may do what:

- **propose** (`SettlementService.propose`): a party of the job (in the ledger
  store), or an operator (`Proposer.operator`: an API admin; the CLI's user,
  who holds the ledger database). The inputs must name exactly the job's
  parties in the store and on chain; not once the weights are set. The service
  chooses the contribution record's step number, never the caller: after the
  job's last recorded step and after the last step its manifest plans (a job
  the compute engine runs, `StepPlans`, must have finished), so that no
  proposal takes a step's number or leaves a gap. The proposal is kept in the
  `ProposalBook` first, then its record goes to the outbox (the salt is never
  lost for a record), and is forgotten if the outbox refuses it. The same
  inputs again return the kept proposal (nothing new is recorded); other
  inputs supersede it.
  Coalition jobs the inputs name as evidence (leave-one-out, Shapley) must be on
  chain, opened with the consent of every party of the job
  (`SettlementService.check_evidence`).
- **approve** (`SettlementService.approve`): a party of the job on chain, with
  an EIP-712 signature that recovers to its own address, of the current
  proposal's weights and record once the record is confirmed on chain, while
  the weights are not set. Each field the approval names must be the current
  proposal's, this chain's and this contract's.
- **prepare** (`SettlementService.prepare`): an unsigned transaction for the
  caller's own address (set or approve the current proposal's weights, with
  the kept approvals verified again; deposit; withdraw), simulated from that
  address first, so that the contract's refusal comes back with nothing sent.
- **submit** (`SettlementService.submit`): a raw transaction signed by the
  caller's own address, on this chain, to this contract, one of the
  settlement writes, acting on this job, with the sender's next nonce;
  simulated again, then broadcast.

What the caller provides: the ledger store (`SettlementStore`: jobs and the
outbox), a way to build a record's receipt, a `ProposalBook` and `StepPlans`.
The API passes its database for both (`secureflow.api.server.db.ApiDb`); the
CLI passes the proposal and approval files (`ProposalFiles`) and the API's
manifests when the database holds them. Roles (admin, auditor, member) and
which jobs a caller may see are the API's; the service sees addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from secureflow.ledger.contracts import AuditLedgerClient, JobStatus
from secureflow.ledger.errors import UnknownRecordError
from secureflow.ledger.receipts import Receipt, RecordNotAnchoredError
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.settlement.approval import (
    Approval,
    approval_digest,
    approval_for,
    approval_request,
    approval_signer_of,
)
from secureflow.ledger.settlement.book import ProposalBook, StoredApproval, StoredProposal
from secureflow.ledger.settlement.client import ETH, OnChainWeights, SettlementClient
from secureflow.ledger.settlement.contribution import (
    AnyInputs,
    ContributionProposal,
    WeightsProposal,
    check_members,
    inputs_hash,
    prepare_contribution,
)
from secureflow.ledger.settlement.errors import (
    CoalitionEvidenceError,
    ContributionNotReadyError,
    JobStillRunningError,
    NoProposalError,
    NotAPartyError,
    ProposalConflictError,
    ProposalMismatchError,
    SettlementInputError,
    SettlementRefusedError,
    UnknownJobError,
    WrongSignerError,
)
from secureflow.ledger.settlement.transactions import (
    Action,
    PreparedTransaction,
    SettlementTransactions,
    SubmittedTransaction,
    asset_of,
)
from secureflow.ledger.store.schemas import Job, NewStepRecord, StepRecordRow

MAX_UINT256 = 2**256 - 1
RUNNING = ("created", "running")
"""Job statuses in which a job run by the compute engine still records steps."""


class SettlementStore(Protocol):
    """What the service needs of the ledger store (`secureflow.ledger.store.base.LedgerStore` is one)."""

    def get_job(self, job_id: str) -> Job | None: ...

    def get_record(self, job_id: str, seq: int) -> StepRecordRow | None: ...

    def records_for_job(self, job_id: str) -> list[StepRecordRow]: ...

    def accept_record(self, rec: NewStepRecord, *, after_close: bool = False) -> StepRecordRow: ...


class StepPlans(Protocol):
    """How many steps a job's manifest plans, for a job the compute engine runs (the API's manifests)."""

    def planned_steps(self, job_id: str) -> int | None:
        """The number of steps of the job's manifest; None if the compute engine does not run the job."""


class NoPlans:
    """`StepPlans` where no job is run by the compute engine (a database the API never used)."""

    def planned_steps(self, job_id: str) -> int | None:
        return None


ReceiptSource = Callable[[str, int], Receipt]
"""``(job_id, seq) -> Receipt`` of an anchored record (`secureflow.ledger.receipts.build_receipt`)."""


@dataclass(frozen=True)
class Proposer:
    """Who proposes: ``address`` must be a party of the job, unless ``operator`` (an API admin, or the user
    of the CLI, who holds the ledger database and could write its outbox anyway)."""

    address: str | None = None
    operator: bool = False


OPERATOR = Proposer(operator=True)


@dataclass(frozen=True)
class Proposed:
    """A proposal kept, its contribution record's status in the outbox, and whether it was kept before."""

    stored: StoredProposal
    record_status: str
    replayed: bool


@dataclass(frozen=True)
class PartyApproval:
    """Whether a party of the job approved the current proposal: a kept signature, or on chain."""

    party: str
    signature: str | None
    on_chain: bool

    @property
    def approved(self) -> bool:
        return self.on_chain or self.signature is not None


@dataclass(frozen=True)
class ProposalState:
    """The job's current proposal and how far it is from being set on chain."""

    stored: StoredProposal
    record_status: str
    """The contribution record's anchoring status, or ``not_recorded``."""
    not_ready: str | None
    """Why the weights cannot be approved yet (None once the record is confirmed)."""
    weights: WeightsProposal | None
    typed_data: dict[str, Any] | None
    digest: str | None
    approvals: tuple[PartyApproval, ...]
    """One per party of the job, in the contract's order."""
    weights_set: bool

    @property
    def ready_to_set(self) -> bool:
        return bool(self.approvals) and all(a.approved for a in self.approvals) and not self.weights_set


def job_key(job_id: str) -> bytes:
    """The 32 bytes of a ``0x`` + 64 hex job id; `SettlementInputError` otherwise."""
    text = job_id.lower()
    try:
        if text.startswith("0x") and len(text) == 66:
            return bytes.fromhex(text[2:])
    except ValueError:
        pass
    raise SettlementInputError(f"job id {job_id!r} is not 0x + 64 hex digits")


class SettlementService:
    """Propose, approve, prepare and submit for the jobs of one deployment (see the module docstring).

    ``store``, ``receipts`` and ``book`` are needed for proposals and approvals (and to prepare
    ``set_weights``/``approve_weights``); deposits and withdrawals need the chain only.
    """

    def __init__(
        self,
        txs: SettlementTransactions,
        *,
        store: SettlementStore | None = None,
        receipts: ReceiptSource | None = None,
        book: ProposalBook | None = None,
        plans: StepPlans | None = None,
    ) -> None:
        self.txs = txs
        self.contract = SettlementClient(txs.settlement)
        self._store = store
        self._receipts = receipts
        self._book = book
        self.plans: StepPlans = plans if plans is not None else NoPlans()

    @property
    def chain_id(self) -> int:
        return self.txs.chain_id

    @property
    def address(self) -> str:
        """The Settlement contract's address."""
        return self.txs.address

    @property
    def ledger(self) -> AuditLedgerClient:
        return self.txs.ledger

    @property
    def store(self) -> SettlementStore:
        if self._store is None:
            raise TypeError("this SettlementService has no ledger store")
        return self._store

    @property
    def book(self) -> ProposalBook:
        if self._book is None:
            raise TypeError("this SettlementService has no proposal book")
        return self._book

    def receipt(self, job_id: str, seq: int) -> Receipt:
        if self._receipts is None:
            raise TypeError("this SettlementService has no receipt source")
        return self._receipts(job_id, seq)

    # ------------------------------------------------------------------ reads

    def job_parties(self, job_id: str) -> tuple[str, ...]:
        """The job's parties on the audit ledger, in contract order; `UnknownJobError` if not on chain."""
        parties = self.txs.job_parties(job_key(job_id))
        if not parties:
            raise UnknownJobError(
                f"UnknownJob(jobId={job_id.lower()}): the job does not exist on the audit ledger at "
                f"{self.ledger.address}, so the Settlement contract cannot take weights for it"
            )
        return parties

    def weights_of(self, job_id: str) -> OnChainWeights:
        """The job's weights on chain (``is_set`` false until they are set)."""
        weights: OnChainWeights = self.txs.client.call_rpc(self.contract.weights_of, job_key(job_id))
        return weights

    def job(self, job_id: str) -> Job:
        """The job in the ledger store; `UnknownJobError` if it is not there."""
        job = self.store.get_job(job_id.lower())
        if job is None:
            raise UnknownJobError(
                f"job {job_id.lower()} is not in the ledger store",
                hint="check the job id and SECUREFLOW_DATABASE_URL (the ledger database of the job)",
            )
        return job

    def current(self, job_id: str) -> StoredProposal:
        """The job's newest proposal, checked against its own inputs; `NoProposalError` if none."""
        stored = self.book.latest_proposal(job_id.lower())
        if stored is None:
            raise NoProposalError(f"job {job_id.lower()} has no contribution proposal")
        stored.proposal.verify()
        return stored

    def confirmed_weights(self, proposal: ContributionProposal) -> WeightsProposal:
        """The weights to approve and set: the proposal's, with its record's proof, once the record is
        confirmed and the chain proves it. `ContributionNotReadyError` before; `ProposalMismatchError` if
        the anchored record is not the proposal's."""
        where = f"the contribution record (step {proposal.seq} of job {proposal.job_id})"
        try:
            receipt = self.receipt(proposal.job_id, proposal.seq)
        except RecordNotAnchoredError as exc:
            raise ContributionNotReadyError(f"{where} is not anchored yet: {exc.args[0]}") from None
        except UnknownRecordError:
            raise ContributionNotReadyError(
                f"{where} is not in the outbox",
                hint="propose the same inputs again: the record is recorded then",
            ) from None
        if receipt.status != "confirmed":
            raise ContributionNotReadyError(
                f"{where} is anchored in block {receipt.block_number} but not confirmed yet"
            )
        weights = proposal.weights_proposal(receipt)
        _, _, root, proof = weights.record_proof()
        if not self.txs.client.call_rpc(self.ledger.verify, weights.record_leaf, proof, root):
            raise ContributionNotReadyError(
                f"the chain does not prove {where} under root {receipt.batch_root}: its batch may have "
                "been reorganised away"
            )
        return weights

    def state(self, job_id: str) -> ProposalState:
        """The newest proposal, its record's status and, once confirmed, the weights with the record proof,
        the EIP-712 typed data each party signs and who approved (the kept approvals verified again)."""
        stored = self.current(job_id)
        proposal = stored.proposal
        row = self.store.get_record(proposal.job_id, proposal.seq)
        weights: WeightsProposal | None = None
        not_ready: str | None = None
        if row is None:
            not_ready = (
                "the contribution record is not in the outbox: propose the same inputs again to record it"
            )
        else:
            try:
                weights = self.confirmed_weights(proposal)
            except (ContributionNotReadyError, ProposalMismatchError) as exc:
                not_ready = str(exc.args[0])
        signatures = self._signatures(stored, weights)
        approvals = []
        for party in self.txs.job_parties(proposal.job_id_bytes):
            on_chain = weights is not None and bool(
                self.txs.client.call_rpc(self.contract.has_approved, weights, party)
            )
            approvals.append(PartyApproval(party, signatures.get(party.lower()), on_chain))
        digest = None
        if weights is not None:
            raw = approval_digest(
                self.chain_id, self.address, weights.job_id_bytes, weights.weights_hash, weights.record_leaf
            )
            digest = "0x" + raw.hex()
        return ProposalState(
            stored=stored,
            record_status=row.status if row is not None else "not_recorded",
            not_ready=not_ready,
            weights=weights,
            typed_data=approval_request(self.chain_id, self.address, weights)
            if weights is not None
            else None,
            digest=digest,
            approvals=tuple(approvals),
            weights_set=self.weights_of(job_id).is_set,
        )

    # ------------------------------------------------------------------ propose

    def next_seq(self, job: Job) -> int:
        """The step number of a new contribution record: after every step the job has or will record.

        A job the compute engine runs records step N at seq N, so it must have finished first and the
        record goes after its manifest's last step (`JobStillRunningError` while it runs).
        """
        planned = self.plans.planned_steps(job.job_id)
        if planned is not None and job.status in RUNNING:
            raise JobStillRunningError(
                f"job {job.job_id} is {job.status}: its steps are still being recorded"
            )
        highest = max((row.seq for row in self.store.records_for_job(job.job_id)), default=-1)
        return max(planned or 0, highest + 1)

    def propose(self, job_id: str, inputs: AnyInputs, proposer: Proposer) -> Proposed:
        """Compute the weights of ``inputs``, keep the proposal in the book and record the contribution step
        in the outbox (the anchoring worker anchors it). The same inputs again return the kept proposal."""
        job = self.job(job_id)
        if not proposer.operator and (proposer.address is None or not _among(proposer.address, job.parties)):
            raise _not_party(job.job_id, proposer.address or "(no account)")
        parties = self.job_parties(job.job_id)
        digest = inputs_hash(inputs)
        latest = self.book.latest_proposal(job.job_id)
        if latest is not None and latest.inputs_hash == digest:
            replayed = self._replay(job, latest)
            if replayed is not None:
                return replayed
        self._refuse_when_set(job.job_id)
        check_members(inputs.members, parties)
        check_members(inputs.members, job.parties)
        self.check_evidence(inputs, parties)
        seq = self.next_seq(job)
        proposal = prepare_contribution(job.job_id, seq, inputs, job_parties=parties)
        try:
            stored = self.book.add_proposal(proposal, digest)
        except ProposalConflictError:
            latest = self.book.latest_proposal(job.job_id)  # a concurrent identical proposal was kept first
            if latest is not None and latest.inputs_hash == digest:
                replayed = self._replay(job, latest)
                if replayed is not None:
                    return replayed
            raise
        try:
            row = self.store.accept_record(to_outbox(proposal.step_record()), after_close=True)
        except BaseException:
            self.book.delete_proposal(job.job_id, seq)  # no record in the outbox: no proposal either
            raise
        return Proposed(stored, row.status, replayed=False)

    def check_evidence(self, inputs: AnyInputs, parties: tuple[str, ...]) -> None:
        """Every coalition job the inputs name as evidence must be on the audit ledger, opened (Open or
        Closed: never still Proposed, never Failed) with the consent of each of ``parties`` (the settled
        job's), and exactly those parties: a job one member created alone, with only its own consent, is
        no evidence of what the others agreed to run (`CoalitionEvidenceError`)."""
        wanted = {p.lower() for p in parties}
        named: dict[str, str] = {}
        for coalition, job_id in inputs.evidence_jobs():
            if job_id.lower() in named:
                raise CoalitionEvidenceError(
                    f"the inputs name job {job_id.lower()} for two coalitions ({named[job_id.lower()]!r} and "
                    f"{coalition!r}): each coalition is its own job"
                )
            named[job_id.lower()] = coalition
            raw = job_key(job_id)
            job = self.txs.client.call_rpc(self.ledger.get_job, raw)
            where = f"the coalition job of {coalition!r} ({job_id.lower()})"
            if job.status == JobStatus.NONE:
                raise CoalitionEvidenceError(f"{where} is not on the audit ledger {self.ledger.address}")
            if {p.lower() for p in job.parties} != wanted:
                raise CoalitionEvidenceError(
                    f"{where} has parties {list(job.parties)}, not the settled job's {list(parties)}"
                )
            missing = [
                p for p in job.parties if not self.txs.client.call_rpc(self.ledger.has_consented, raw, p)
            ]
            if job.status not in (JobStatus.OPEN, JobStatus.CLOSED) or missing:
                why = f"without the consent of {', '.join(missing)}" if missing else "not opened"
                raise CoalitionEvidenceError(
                    f"{where} is {job.status.name} on chain, {why}: every party consents to a coalition "
                    "job before it counts as evidence"
                )

    def _replay(self, job: Job, stored: StoredProposal) -> Proposed | None:
        """The kept proposal of the same inputs, its record recorded if an earlier attempt failed after
        keeping it; None if that record can no longer be recorded (the proposal is then forgotten)."""
        proposal = stored.proposal
        proposal.verify()
        row = self.store.get_record(job.job_id, proposal.seq)
        if row is not None and row.record_hash == proposal.record_hash:
            return Proposed(stored, row.status, replayed=True)
        if row is None and proposal.seq >= self.next_seq(job):
            self._refuse_when_set(job.job_id)  # a contribution record after the weights are set is void
            row = self.store.accept_record(to_outbox(proposal.step_record()), after_close=True)
            return Proposed(stored, row.status, replayed=True)
        # its step was taken meanwhile (or is no longer the next): the proposal has no record and never will
        self.book.delete_proposal(job.job_id, proposal.seq)
        return None

    def _refuse_when_set(self, job_id: str) -> None:
        weights = self.weights_of(job_id)
        if weights.is_set:
            raise SettlementRefusedError(
                f"WeightsAlreadySet(jobId={job_id.lower()}): the weights of the job are set already (block "
                f"{weights.set_at_block}, weights hash {weights.weights_hash}); they are set once",
                error_name="WeightsAlreadySet",
                hint="deposits and withdrawals are open (GET /v1/settlements/{job_id}, "
                "`secureflow settle balances`)",
            )

    # ------------------------------------------------------------------ approve

    def weights_to_approve(self, job_id: str, party: str) -> tuple[StoredProposal, WeightsProposal]:
        """The current proposal and the weights ``party`` approves, after checking that it is a party of the
        job on chain, that the weights are not set and that the record is confirmed."""
        if not _among(party, self.job_parties(job_id)):
            raise _not_party(job_id.lower(), party)
        stored = self.current(job_id)
        self._refuse_when_set(job_id)
        self.check_evidence(stored.proposal.inputs, self.job_parties(job_id))  # as when it was proposed
        return stored, self.confirmed_weights(stored.proposal)

    def approve(self, job_id: str, approval: Approval, party: str) -> tuple[StoredApproval, bool]:
        """Keep ``party``'s EIP-712 approval of the current proposal once it recovers to ``party`` (the
        caller's own address) and names nothing else. Returns the approval kept and whether it is new."""
        stored, weights = self.weights_to_approve(job_id, party)
        signer = approval_signer_of(approval, self.chain_id, self.address, weights)
        if approval.party is not None and approval.party.lower() != party.lower():
            raise WrongSignerError(
                f"the approval names party {approval.party}, but the caller is {party}",
                hint="each party sends its own approval, with its own key",
            )
        if signer.lower() != party.lower():
            raise WrongSignerError(
                f"the signature recovers to {signer}, not to {party} (the caller's address): it is another "
                "account's signature, or of other typed data",
                hint=f"sign the current proposal's typed data with the key of {party}",
            )
        complete = approval_for(self.chain_id, self.address, weights, party, approval.signature_bytes)
        return self.book.add_approval(stored.seq, complete)

    def _signatures(self, stored: StoredProposal, weights: WeightsProposal | None) -> dict[str, str]:
        """The kept approval signatures of ``stored`` by party (lower case), each verified again against
        ``weights`` when given (`InvalidApprovalError`/`WrongSignerError` for one that does not hold)."""
        found: dict[str, str] = {}
        for kept in self.book.approvals(stored.job_id, stored.seq):
            where = kept.source or f"the approval of {kept.party}"
            if weights is not None:
                signer = approval_signer_of(kept.approval, self.chain_id, self.address, weights, where=where)
                if signer.lower() != kept.party.lower():
                    raise WrongSignerError(
                        f"{where} claims party {kept.party} but is signed by {signer}",
                        hint="that party signs again",
                    )
            found[kept.party.lower()] = kept.signature
        return found

    # ------------------------------------------------------------------ transactions

    def prepare(
        self, job_id: str, sender: str, action: Action, *, asset: str = ETH, amount: int | None = None
    ) -> PreparedTransaction:
        """An unsigned legacy transaction for ``sender`` to sign, simulated from ``sender`` first (the
        contract's refusal is a `SettlementRefusedError`): ``set_weights`` (the current proposal's confirmed
        weights with the kept approvals, verified again), ``approve_weights``, ``deposit`` (``amount``) or
        ``withdraw`` of ``asset`` (ETH or an ERC-20 address)."""
        key = job_key(job_id)
        if action in ("set_weights", "approve_weights"):
            stored = self.current(job_id)
            weights = self.confirmed_weights(stored.proposal)
            if action == "set_weights":
                signatures = self._signatures(stored, weights)
                call = self.txs.set_weights_call(
                    weights, {party: bytes.fromhex(sig[2:]) for party, sig in signatures.items()}
                )
            else:
                call = self.txs.approve_weights_call(weights)
            return self.txs.prepare(sender, call)
        if action == "deposit":
            if amount is None or not 0 < amount <= MAX_UINT256:
                raise SettlementInputError(
                    "a deposit needs a positive amount that fits uint256",
                    hint="give amount (wei, or the token's smallest unit)",
                )
            call, value = self.txs.deposit_call(key, asset_of(asset), amount)
            return self.txs.prepare(sender, call, value=value)
        if action == "withdraw":
            return self.txs.prepare(sender, self.txs.withdraw_call(key, asset_of(asset)))
        raise SettlementInputError(f"unknown settlement action {action!r}")

    def submit(
        self, job_id: str, raw_transaction: bytes, sender: str, *, timeout: float | None = None
    ) -> SubmittedTransaction:
        """Check that ``raw_transaction`` is a settlement write for this job on this chain signed by
        ``sender`` (the caller's own address), simulate it, broadcast it and wait for the receipt (``status
        pending`` if none within ``timeout``). A mined transaction is returned as it was (``replayed``)."""
        decoded = self.txs.check_submission(raw_transaction, job_key(job_id), sender)
        return self.txs.submit(decoded, timeout=timeout)


def _among(address: str, parties: tuple[str, ...] | list[str]) -> bool:
    return address.lower() in {p.lower() for p in parties}


def _not_party(job_id: str, account: str) -> NotAPartyError:
    return NotAPartyError(
        f"NotJobParty(jobId={job_id}, account={account}): {account} is not a party of job {job_id}; the "
        "Settlement contract takes approvals and weights from its parties only"
    )
