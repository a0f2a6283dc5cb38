"""Where contribution proposals and the parties' approval signatures are kept: `ProposalBook`.

The settlement service (`secureflow.ledger.settlement.service`) reads and
writes proposals and approvals only through this protocol, so that the one
workflow runs over two storages:

- the API's database (``api_settlement_proposals``, ``api_settlement_approvals``):
  `secureflow.api.server.db.ApiDb.proposal_book`, bound to the calling member;
- the files `secureflow settle` passes between members: `ProposalFiles`, one
  proposal file (`ContributionProposal.save`) and approval files beside it
  (``<proposal stem>.approval.<party>.json``, the `Approval` format).

A book keeps what it is given; it checks nothing. The service verifies what it
reads back (a proposal against its inputs and its anchored record, each
approval's signature against the current proposal), so a book may be a file
another member handed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from secureflow.ledger.settlement.approval import Approval
from secureflow.ledger.settlement.contribution import ContributionProposal, inputs_hash
from secureflow.ledger.settlement.errors import InvalidApprovalError, ProposalFileError


@dataclass(frozen=True)
class StoredProposal:
    """A proposal as a book keeps it."""

    proposal: ContributionProposal
    inputs_hash: str
    """`secureflow.ledger.settlement.contribution.inputs_hash` of its inputs (how a replay is recognised)."""
    created_at: datetime
    proposed_by: int | None = None
    """The API member who proposed it (None where the book keeps no member, as a file)."""

    @property
    def job_id(self) -> str:
        return self.proposal.job_id

    @property
    def seq(self) -> int:
        return self.proposal.seq


@dataclass(frozen=True)
class StoredApproval:
    """A party's approval signature of proposal ``seq``, as a book keeps it (``approval.party`` is set)."""

    seq: int
    approval: Approval
    created_at: datetime
    source: str = ""
    """Where it is kept, for messages (an approval file's path); empty for a database row."""

    @property
    def party(self) -> str:
        return self.approval.party or ""

    @property
    def signature(self) -> str:
        return self.approval.signature


class ProposalBook(Protocol):
    """Proposals (the newest of a job is the one parties approve) and the parties' approvals of each."""

    def latest_proposal(self, job_id: str) -> StoredProposal | None:
        """The job's newest proposal (highest seq), or None."""

    def add_proposal(self, proposal: ContributionProposal, inputs_hash: str) -> StoredProposal:
        """Keep ``proposal``; `secureflow.ledger.settlement.errors.ProposalConflictError` if the book has
        one of that job at that seq already."""

    def delete_proposal(self, job_id: str, seq: int) -> None:
        """Forget a proposal without approvals (its record never reached the outbox)."""

    def approvals(self, job_id: str, seq: int) -> list[StoredApproval]:
        """The approvals kept for proposal ``seq`` of the job (unverified: the service checks them)."""

    def add_approval(self, seq: int, approval: Approval) -> tuple[StoredApproval, bool]:
        """Keep ``approval`` (its ``job_id`` and ``party`` are set) of proposal ``seq``; a party's earlier
        approval of it is kept as it was. Returns the approval kept and whether it is new."""


# ------------------------------------------------------------------ files


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)


def approval_file_path(proposal_path: Path, party: str) -> Path:
    """Where `secureflow settle approve` writes a party's approval: beside the proposal file."""
    return proposal_path.with_name(f"{proposal_path.stem}.approval.{party.lower()}.json")


def read_approval_file(path: Path) -> Approval:
    """An approval file; `InvalidApprovalError` if it is missing, unreadable or names no party."""
    try:
        approval = Approval.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidApprovalError(f"no approval file at {path}") from None
    except (OSError, UnicodeDecodeError, ValidationError) as exc:
        raise InvalidApprovalError(f"{path} is not an approval file: {exc}") from None
    if approval.party is None:
        raise InvalidApprovalError(f"{path} names no party", hint="the party signs again")
    return approval


class ProposalFiles:
    """A `ProposalBook` over the files of `secureflow settle`: the proposal file at ``proposal_path``, and
    the approval files ``approval_paths`` (default: every ``<stem>.approval.*.json`` beside the proposal).

    A new approval is written to ``approval_out`` (default: `approval_file_path`). With ``replace``, a file
    at ``proposal_path`` that is not a proposal counts as none (``secureflow settle propose --force``).
    """

    def __init__(
        self,
        proposal_path: Path,
        *,
        approval_paths: Sequence[Path] = (),
        approval_out: Path | None = None,
        replace: bool = False,
    ) -> None:
        self.proposal_path = proposal_path
        self.approval_paths = tuple(approval_paths)
        self.approval_out = approval_out
        self.replace = replace

    def latest_proposal(self, job_id: str) -> StoredProposal | None:
        if not self.proposal_path.exists():
            return None
        try:
            proposal = ContributionProposal.load(self.proposal_path)
        except ProposalFileError:
            if self.replace:
                return None
            raise
        if proposal.job_id != job_id.lower():
            return None
        return StoredProposal(proposal, inputs_hash(proposal.inputs), _mtime(self.proposal_path))

    def add_proposal(self, proposal: ContributionProposal, inputs_hash: str) -> StoredProposal:
        proposal.save(self.proposal_path)
        return StoredProposal(proposal, inputs_hash, _mtime(self.proposal_path))

    def delete_proposal(self, job_id: str, seq: int) -> None:
        try:
            proposal = ContributionProposal.load(self.proposal_path)
        except ProposalFileError:
            return
        if (proposal.job_id, proposal.seq) == (job_id.lower(), seq):
            self.proposal_path.unlink(missing_ok=True)

    def approvals(self, job_id: str, seq: int) -> list[StoredApproval]:
        stem = self.proposal_path.stem
        paths = self.approval_paths or tuple(
            sorted(self.proposal_path.parent.glob(f"{stem}.approval.*.json"))
        )
        return [StoredApproval(seq, read_approval_file(p), _mtime(p), source=str(p)) for p in paths]

    def add_approval(self, seq: int, approval: Approval) -> tuple[StoredApproval, bool]:
        target = self.approval_out or approval_file_path(self.proposal_path, approval.party or "")
        text = approval.model_dump_json(indent=2) + "\n"
        try:
            created = target.read_text(encoding="utf-8") != text
        except OSError:
            created = True
        if created:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
        return StoredApproval(seq, approval, _mtime(target), source=str(target)), created
