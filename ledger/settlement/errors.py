"""The errors of settlement, all under `SettlementError` and so under the ledger's root `LedgerError`.

Each says what to do (``hint``). Nothing was stored or sent when one is raised,
except `TransactionRevertedError` (mined, but reverted).
"""

from __future__ import annotations

from secureflow.ledger.errors import LedgerError

CONTRACT_ERROR_HINTS = {
    "WeightsAlreadySet": "the weights of a job are set once; deposits and withdrawals are open",
    "WeightsNotSet": "set the job's weights first (approvals by every party, then set_weights)",
    "MissingApproval": "that party approves first: it posts its EIP-712 signature or sends approve_weights",
    "AlreadyApproved": "nothing to do: this party approved these weights on chain already",
    "NothingToRelease": "nothing is releasable now; wait for further deposits",
    "NotSettlementMember": "only a member with a weight in the job withdraws its share",
    "NotJobParty": "only a party of the job may do this; use the key of one of the job's parties",
    "NotActiveMember": "the account is not an active member in the ConsortiumRegistry; an admin registers it",
    "UnknownJob": "the job is not created on chain yet",
    "InvalidApproval": "the stored signature is not that party's approval of these weights; it signs again",
    "RecordNotAnchored": "the contribution record's batch is not anchored under that root (reorganised?)",
    "ERC20InsufficientAllowance": "the depositor first approves the settlement contract for the amount on "
    "the token (a transaction it sends to the token itself)",
    "ERC20InsufficientBalance": "the depositor holds less of the token than the amount",
    "ZeroAmount": "deposit a positive amount",
}
"""What to do about each custom error of the Settlement contract (and of a token it calls)."""


class SettlementError(LedgerError):
    """Root of the settlement errors: something the service or the Settlement contract refuses."""


class InvalidWeightsError(SettlementError):
    """Weights (or scores, or a weights proposal) that the contract would refuse, caught before sending."""

    hint = (
        "weights are basis points per member (uint16 each, summing to 10,000) and refer to the job's own "
        "anchored contribution record"
    )


class InvalidApprovalError(SettlementError):
    """An approval that cannot be read, or that approves another proposal, chain or contract."""

    hint = "sign the current proposal's typed data again (`secureflow settle approve`, or the typed data of "
    "GET /v1/settlements/{job_id}/proposal)"


class SettlementInputError(SettlementError):
    """A request the service cannot act on: a malformed job id, a deposit without an amount, an unknown
    action."""


class UnknownJobError(SettlementError):
    """The job is not in the ledger store, or not created on the audit ledger."""

    hint = "check the job id; a job is settled once it is created on chain (its chain_status)"


class NotAPartyError(SettlementError):
    """The account is not a party of the job, and only a party may do this."""

    hint = "use the key (or the API key) of one of the job's parties"


class WrongSignerError(SettlementError):
    """An approval signed by (or naming) another account than the one that hands it in or that it claims."""


class NoProposalError(SettlementError):
    """The job has no contribution proposal yet."""

    hint = "propose weights first (`secureflow settle propose`, or POST /v1/settlements/{job_id}/proposals)"


class ProposalConflictError(SettlementError):
    """A proposal at that step exists already, or the proposal changed meanwhile."""

    hint = "read the current proposal, then propose or approve again"


class JobStillRunningError(SettlementError):
    """A job the compute engine runs has not finished: its steps are still being recorded."""

    hint = "propose the contribution weights once the job has completed"


# ------------------------------------------------------------------ contribution


class ContributionError(SettlementError):
    """Contribution inputs or a proposal that cannot be turned into weights."""

    hint = "fix the contribution inputs (the formulas: secureflow.ledger.settlement.contribution)"


class CoalitionEvidenceError(ContributionError):
    """A coalition job named as contribution evidence is not a job every party of the settled job opened
    with its own consent (missing on chain, still waiting for a party's consent, failed, other parties)."""

    hint = (
        "measure again with `secureflow settle measure`, which opens each coalition job with the consent of "
        "every party's own node; a job one member created alone is no evidence"
    )


class ProposalFileError(ContributionError):
    """A proposal file is missing, not JSON, or not a contribution proposal."""

    hint = "pass the proposal JSON written by `secureflow settle propose`"


class ProposalMismatchError(ContributionError):
    """A proposal disagrees with its own inputs, or with the anchored contribution record."""

    hint = (
        "do not approve: the proposal file was altered or belongs to another record; ask the proposer "
        "for the file written by `secureflow settle propose`"
    )


# ------------------------------------------------------------------ transactions


class SettlementTxError(SettlementError):
    """A settlement transaction that cannot be prepared or submitted; nothing was sent."""

    hint = "prepare the transaction again with POST /v1/settlements/{job_id}/transactions/prepare"


class MalformedTransactionError(SettlementTxError):
    """The raw transaction cannot be decoded, or is not a signed EIP-155 legacy transaction."""

    hint = "sign the transaction returned by .../transactions/prepare as a legacy (type 0) transaction"


class ForeignTransactionError(SettlementTxError):
    """A valid transaction that is not a settlement call for this job on this chain."""

    hint = "submit only transactions prepared for this job (.../transactions/prepare), unchanged but signed"


class WrongSenderError(SettlementTxError):
    """The transaction is signed by another account than the caller's member address."""

    hint = "sign with the key of the address your API key belongs to (GET /v1/me shows it)"


class NonceMismatchError(SettlementTxError):
    """The transaction's nonce is used already, or leaves a gap."""


class SettlementRefusedError(SettlementTxError):
    """The contract (or the node) would refuse the transaction: the decoded custom error, if any."""

    def __init__(
        self,
        message: str,
        *,
        error_name: str | None = None,
        error_args: tuple[object, ...] = (),
        hint: str | None = None,
    ) -> None:
        self.error_name = error_name
        self.error_args = error_args
        super().__init__(
            message, hint=hint if hint is not None else CONTRACT_ERROR_HINTS.get(error_name or "", "")
        )


class ContributionNotReadyError(SettlementError):
    """The contribution record is not anchored (or not confirmed) yet, or not provable on chain."""

    hint = (
        "wait for the anchoring worker to anchor and confirm the contribution record "
        "(`secureflow anchor-worker`), then retry"
    )


class TransactionRevertedError(SettlementTxError):
    """The transaction was mined but reverted (the chain changed between simulation and inclusion)."""

    hint = "read the job's settlement state, then prepare a new transaction"
