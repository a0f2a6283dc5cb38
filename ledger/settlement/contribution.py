"""How each party's contribution to a job is computed, and how it is anchored before weights are set.

Three methods turn inputs from the compute engine into basis points (summing to
exactly 10,000, by `secureflow.ledger.settlement.weights.bps_from_scores`: the highest-averages
rule of the settlement contract, scores taken to 12 decimal places). All
arithmetic is exact (`fractions.Fraction`; a metric is taken as the decimal
number it prints as, so ``0.85`` is 17/20, not the nearest binary double).

**Data share** (``method="data_share"``, `DataShareInputs`). For party *i*
with ``features_i`` feature columns, ``label_columns_i`` label columns and
``rows_i`` rows contributed to the joint (intersected) table::

    f_i     = features_i + label_value * label_columns_i     (a label counts as label_value features; 1)
    score_i = feature_weight * f_i / sum(f) + row_weight * rows_i / sum(rows)
    bps     = bps_from_scores(score)

Defaults: ``feature_weight=1, row_weight=0, label_value=1``, i.e. weight is
proportional to the columns supplied, labels counting as one feature each.
For vertical data after PSI every party contributes the same intersected rows,
so a row term is an equal split; ``row_weight`` mixes it in (0.5 and 0.5 = half
equal, half by columns). Only the ratio of the two weights matters. A term
with a positive weight and a zero total (no columns, no rows) is refused.

**Leave one party out** (``method="leave_one_out"``, `LeaveOneOutInputs`).
Given the evaluation metric of the model trained on everyone's data (``full``)
and of the model trained without party *i* (``without_i``), both produced by
the compute engine's evaluation steps (nothing is trained here)::

    marginal_i = max(0, full - without_i)     (higher_is_better, e.g. AUC, accuracy, R2)
    marginal_i = max(0, without_i - full)     (lower is better, e.g. MSE, log loss)
    bps        = bps_from_scores(marginal)    if any marginal_i > 0
    bps        = equal split                  if every marginal_i is 0 (fallback "equal_split")

A party whose absence does not hurt the model gets 0 basis points (unless all
do, then everyone shares equally). Leaving a party out removes its feature
columns; the label holder's label stays the target, since a vertical model
cannot be trained without it (`secureflow.compute.contribution` runs the coalitions).

**Shapley** (``method="shapley"``, `secureflow.ledger.settlement.shapley.ShapleyInputs`). The metric of
every coalition that holds the label party (at most 4 parties): exact Shapley values of the game
defined in `secureflow.ledger.settlement.shapley`, basis points in proportion to the positive ones
(equal split if none is positive).

**Evidence.** Leave-one-out and Shapley inputs may name each coalition's job (``full_job``,
``parties[].job_id``, ``coalitions[].job_id``; `evidence_jobs`); `SettlementService.propose` refuses a
coalition job that is not on chain, opened with the consent of every party of the settled job.

**The contribution record.** `build_contribution_record` makes the step record
that is anchored before weights are set (the Settlement contract requires the
weights to refer to an anchored record): algorithm ``contribution``, one
`secureflow.ledger.records.PartyDigests` per member with ``inputs={"contribution_inputs":
inputs_digest}`` and ``outputs={"weights_hash": weightsHash}`` (the binding
`record_carries_weights` checks), and ``params_hash`` of
``{"method", "parameters", "members", "inputs_digest"}``. The inputs are
statistics of the joint model and of the parties' data (metric values, row
counts), so the record carries only ``inputs_digest = keccak256(RFC 8785 JSON
of {"salt", "method", "inputs"})`` with a random 32-byte salt: the values are
low-entropy and an unsalted hash could be reversed by guessing. The values and
the salt stay in the `ContributionProposal` file, which the members review
(`ContributionProposal.verify` recomputes everything from it) before approving.

`prepare_contribution` builds the proposal and its record without recording
anything; `secureflow.ledger.settlement.service.SettlementService.propose`
chooses the step number, keeps the proposal, then puts the record in the
outbox, and the anchoring worker anchors it like any other step.

**The weights proposal.** Once the record is anchored, `WeightsProposal` is
what the parties approve and ``setWeights`` takes: the weights and the
record's hash, step number, batch root and Merkle proof
(`ContributionProposal.weights_proposal` builds it from the record's receipt).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_utils.address import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from secureflow.ledger.merkle import MerkleTree, leaf_hash
from secureflow.ledger.receipts import Address, Hex32, Receipt
from secureflow.ledger.records import Identifier, PartyDigests, StepRecord, canonical_hash, params_hash
from secureflow.ledger.settlement.errors import (
    ContributionError,
    InvalidWeightsError,
    ProposalFileError,
    ProposalMismatchError,
)
from secureflow.ledger.settlement.shapley import ShapleyInputs, party_shapley_values
from secureflow.ledger.settlement.weights import (
    TOTAL_BPS,
    allocate,
    bps_from_scores,
    check_weights,
    weights_hash,
)

ALGORITHM = "contribution"
"""The ``algorithm`` of a contribution step record."""
INPUTS_DIGEST_NAME = "contribution_inputs"
"""The input name under which each party's slice of the record carries the salted inputs digest."""
CODE_VERSION = "secureflow-contribution-1"
PROPOSAL_VERSION: Literal[1] = 1
_SCALE = 10**12  # scores are handed to bps_from_scores as integers at this resolution

WEIGHTS_OUTPUT = "weights_hash"
"""The output name under which a contribution record carries the weights hash (per party)."""

Method = Literal["data_share", "leave_one_out", "shapley"]


# ------------------------------------------------------------------ inputs


class PartyData(BaseModel):
    """What one party supplied to the joint table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    party: Address
    features: int = Field(ge=0, description="feature columns supplied")
    label_columns: int = Field(default=0, ge=0, description="label columns supplied (the label holder: 1)")
    rows: int = Field(default=0, ge=0, description="rows contributed to the joint (intersected) table")


class DataShareInputs(BaseModel):
    """Inputs of method (a): contribution by share of data supplied."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["data_share"] = "data_share"
    parties: tuple[PartyData, ...] = Field(min_length=1, max_length=32)
    feature_weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    row_weight: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    label_value: float = Field(default=1.0, ge=0, allow_inf_nan=False, description="features per label")

    @model_validator(mode="after")
    def _valid(self) -> DataShareInputs:
        _distinct([p.party for p in self.parties])
        if self.feature_weight + self.row_weight <= 0:
            raise ValueError("feature_weight and row_weight cannot both be 0")
        return self

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(p.party for p in self.parties)

    def evidence_jobs(self) -> list[tuple[str, str]]:
        """No jobs: data shares are counts the members review."""
        return []

    def parameters(self) -> dict[str, Any]:
        return {
            "feature_weight": self.feature_weight,
            "row_weight": self.row_weight,
            "label_value": self.label_value,
        }


class PartyMetric(BaseModel):
    """The metric of the model trained without ``party``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    party: Address
    without: float = Field(allow_inf_nan=False)
    job_id: Hex32 | None = Field(default=None, description="the job that trained the model without the party")


class LeaveOneOutInputs(BaseModel):
    """Inputs of method (b): marginal model quality, leave one party out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["leave_one_out"] = "leave_one_out"
    metric: Identifier = Field(description="the evaluation metric's name, e.g. auc")
    higher_is_better: bool = True
    full: float = Field(allow_inf_nan=False, description="metric of the model trained with every party")
    full_job: Hex32 | None = Field(default=None, description="the job that trained the model of every party")
    parties: tuple[PartyMetric, ...] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _valid(self) -> LeaveOneOutInputs:
        _distinct([p.party for p in self.parties])
        return self

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(p.party for p in self.parties)

    def parameters(self) -> dict[str, Any]:
        return {"metric": self.metric, "higher_is_better": self.higher_is_better}

    def evidence_jobs(self) -> list[tuple[str, str]]:
        """(coalition, job id) of every coalition measured by a job (`SettlementService.propose` checks
        that each one is on chain with every party's consent)."""
        jobs = [("all", self.full_job)] if self.full_job is not None else []
        return jobs + [(f"without {p.party}", p.job_id) for p in self.parties if p.job_id is not None]


AnyInputs = DataShareInputs | LeaveOneOutInputs | ShapleyInputs
ContributionInputs = Annotated[AnyInputs, Field(discriminator="method")]
_INPUTS: TypeAdapter[AnyInputs] = TypeAdapter(ContributionInputs)


def _distinct(parties: Sequence[str]) -> None:
    seen: set[str] = set()
    for party in parties:
        if party.lower() in seen:
            raise ValueError(f"party {party} appears twice")
        seen.add(party.lower())


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return f"{error['msg']} at {where}"


def parse_inputs(data: object) -> AnyInputs:
    """Validate contribution inputs (a dict with ``method``); `ContributionError` saying what is wrong."""
    try:
        return _INPUTS.validate_python(data)
    except ValidationError as exc:
        raise ContributionError(f"invalid contribution inputs: {_first_error(exc)}") from None


def load_inputs(path: Path) -> AnyInputs:
    """Read contribution inputs from a JSON file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContributionError(f"no inputs file at {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ContributionError(f"cannot read the inputs file {path}: {exc}") from None
    return parse_inputs(data)


# ------------------------------------------------------------------ methods


class ContributionResult(BaseModel):
    """Weights computed from inputs: members in input order and their basis points (sum 10,000)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method
    members: tuple[Address, ...]
    bps: tuple[int, ...]
    fallback: Literal["equal_split"] | None = None


def _exact(value: float | int) -> Fraction:
    """The exact rational a number prints as (``0.1`` -> 1/10)."""
    return Fraction(value) if isinstance(value, int) else Fraction(repr(float(value)))


def _bps(scores: Sequence[Fraction]) -> list[int]:
    total = sum(scores, Fraction(0))
    if total <= 0:
        raise ContributionError("every contribution score is zero")
    integral = [round(score / total * _SCALE) for score in scores]
    try:
        return bps_from_scores(integral)
    except InvalidWeightsError as exc:
        raise ContributionError(f"cannot turn the scores into basis points: {exc}") from None


def data_share_weights(inputs: DataShareInputs) -> ContributionResult:
    """Method (a): basis points by columns (labels counted ``label_value`` each) and rows supplied."""
    columns = [p.features + _exact(inputs.label_value) * p.label_columns for p in inputs.parties]
    rows = [Fraction(p.rows) for p in inputs.parties]
    feature_weight, row_weight = _exact(inputs.feature_weight), _exact(inputs.row_weight)
    total_columns, total_rows = sum(columns, Fraction(0)), sum(rows, Fraction(0))
    if feature_weight > 0 and total_columns == 0:
        raise ContributionError(
            "no party supplied a feature or label column, but feature_weight is positive",
            hint="give each party's features/label_columns, or set feature_weight to 0",
        )
    if row_weight > 0 and total_rows == 0:
        raise ContributionError(
            "no party contributed a row, but row_weight is positive",
            hint="give each party's intersected rows (after PSI), or set row_weight to 0",
        )
    scores = []
    for c, r in zip(columns, rows, strict=True):
        score = Fraction(0)
        if feature_weight > 0:
            score += feature_weight * c / total_columns
        if row_weight > 0:
            score += row_weight * r / total_rows
        scores.append(score)
    return ContributionResult(method="data_share", members=inputs.members, bps=tuple(_bps(scores)))


def marginal_contributions(inputs: LeaveOneOutInputs) -> list[Fraction]:
    """``max(0, full - without_i)`` per party (sign flipped when lower is better), exact."""
    full = _exact(inputs.full)
    sign = 1 if inputs.higher_is_better else -1
    return [max(Fraction(0), sign * (full - _exact(p.without))) for p in inputs.parties]


def leave_one_out_weights(inputs: LeaveOneOutInputs) -> ContributionResult:
    """Method (b): basis points proportional to each party's marginal metric; equal split if all are 0."""
    marginals = marginal_contributions(inputs)
    if all(m == 0 for m in marginals):
        bps = bps_from_scores([1] * len(marginals))
        return ContributionResult(
            method="leave_one_out", members=inputs.members, bps=tuple(bps), fallback="equal_split"
        )
    return ContributionResult(method="leave_one_out", members=inputs.members, bps=tuple(_bps(marginals)))


def shapley_weights(inputs: ShapleyInputs) -> ContributionResult:
    """Method (c): basis points proportional to each party's positive Shapley value; equal split if none is
    positive (`secureflow.ledger.settlement.shapley`)."""
    positive = [max(Fraction(0), value) for value in party_shapley_values(inputs)]
    if all(v == 0 for v in positive):
        bps = bps_from_scores([1] * len(positive))
        return ContributionResult(
            method="shapley", members=inputs.members, bps=tuple(bps), fallback="equal_split"
        )
    return ContributionResult(method="shapley", members=inputs.members, bps=tuple(_bps(positive)))


def compute_weights(inputs: AnyInputs) -> ContributionResult:
    """The weights of ``inputs`` by their method."""
    if isinstance(inputs, DataShareInputs):
        return data_share_weights(inputs)
    if isinstance(inputs, ShapleyInputs):
        return shapley_weights(inputs)
    return leave_one_out_weights(inputs)


def _inputs_json(inputs: AnyInputs) -> Any:
    """The inputs as JSON, optional fields that are not given left out (so inputs written before those
    fields existed hash as they did)."""
    return inputs.model_dump(mode="json", exclude_none=True)


# ------------------------------------------------------------------ record


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def inputs_digest(inputs: AnyInputs, salt: str) -> str:
    """``keccak256`` of the RFC 8785 JSON of ``{"salt", "method", "inputs"}``: what the record carries."""
    document: Any = {"salt": salt.lower(), "method": inputs.method, "inputs": _inputs_json(inputs)}
    return canonical_hash(document)


def inputs_hash(inputs: AnyInputs) -> str:
    """``keccak256`` of the RFC 8785 JSON of the inputs, unsalted: how the same inputs are recognised when
    proposed again. Never anchored (the values are low-entropy; the record carries `inputs_digest`)."""
    return canonical_hash(_inputs_json(inputs))


def contribution_params_hash(inputs: AnyInputs, members: Sequence[str], digest: str) -> str:
    """The record's ``params_hash``: method, its parameters, the members and the inputs digest."""
    return params_hash(
        {
            "method": inputs.method,
            "parameters": inputs.parameters(),
            "members": [m.lower() for m in members],
            "inputs_digest": digest,
        },
        None,  # not guessable by itself: it carries the randomly salted inputs digest
    )


def build_contribution_record(
    job_id: str,
    seq: int,
    inputs: AnyInputs,
    result: ContributionResult,
    salt: str,
    *,
    started_at_ms: int,
    finished_at_ms: int,
) -> StepRecord:
    """The contribution step record: digests and metadata only (no metric values, no counts)."""
    try:
        check_weights(result.members, result.bps)
        wh = _hex(weights_hash(bytes.fromhex(job_id[2:]), result.members, result.bps))
    except (InvalidWeightsError, ValueError) as exc:
        raise ContributionError(f"the weights cannot be proposed: {exc}") from None
    digest = inputs_digest(inputs, salt)
    return StepRecord(
        job_id=job_id.lower(),
        seq=seq,
        algorithm=ALGORITHM,
        params_hash=contribution_params_hash(inputs, result.members, digest),
        code_version=CODE_VERSION,
        parties=tuple(
            PartyDigests(party=m, inputs={INPUTS_DIGEST_NAME: digest}, outputs={WEIGHTS_OUTPUT: wh})
            for m in result.members
        ),
        status="succeeded",
        started_at_ms=started_at_ms,
        finished_at_ms=finished_at_ms,
    )


# ------------------------------------------------------------------ weights proposal


def _b32(value: bytes | str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value) if isinstance(value, str) else value
    if len(raw) != 32:
        raise InvalidWeightsError("expected 32 bytes")
    return bytes(raw)


def record_carries_weights(record: StepRecord, weights_hash_: bytes) -> bool:
    """Whether the contribution record names ``weights_hash_`` among its output digests (the binding
    that the parties check before approving: the contract only sees the record's hash)."""
    wanted = _hex(weights_hash_)
    return any(wanted in party.outputs.values() for party in record.parties)


class WeightsProposal(BaseModel):
    """Weights for a job and the anchored contribution record they refer to: what parties approve."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    members: tuple[str, ...]
    bps: tuple[int, ...]
    record_hash: str
    seq: int
    root: str
    proof: tuple[str, ...]

    @property
    def job_id_bytes(self) -> bytes:
        return _b32(self.job_id)

    @property
    def weights_hash(self) -> bytes:
        return weights_hash(self.job_id_bytes, self.members, self.bps)

    @property
    def record_leaf(self) -> bytes:
        return leaf_hash(self.job_id_bytes, self.seq, _b32(self.record_hash))

    def record_proof(self) -> tuple[bytes, int, bytes, list[bytes]]:
        """The ``RecordProof`` struct argument of ``setWeights``."""
        return (_b32(self.record_hash), self.seq, _b32(self.root), [_b32(p) for p in self.proof])

    def shares(self, total: int) -> dict[str, int]:
        """What each member is entitled to of ``total`` deposited."""
        return dict(zip(self.members, allocate(total, self.bps), strict=True))


def propose_weights(
    job_id: bytes,
    members: Sequence[str],
    bps: Sequence[int],
    record: StepRecord,
    tree: MerkleTree,
) -> WeightsProposal:
    """A proposal from weights and the anchored contribution record (in ``tree``, whose root is anchored).

    Raises `InvalidWeightsError` if the weights are malformed, the record is for another job, it does not
    carry the weights hash among its outputs, or it is not in ``tree``.
    """
    check_weights(members, bps)
    if _b32(record.job_id) != job_id:
        raise InvalidWeightsError("the contribution record belongs to another job")
    wh = weights_hash(job_id, members, bps)
    if not record_carries_weights(record, wh):
        raise InvalidWeightsError("the contribution record does not carry the weights hash among its outputs")
    leaf = record.leaf()
    if leaf not in tree:
        raise InvalidWeightsError("the contribution record is not in the given tree")
    return WeightsProposal(
        job_id=_hex(job_id),
        members=tuple(to_checksum_address(m) for m in members),
        bps=tuple(bps),
        record_hash=_hex(record.record_hash()),
        seq=record.seq,
        root=_hex(tree.root),
        proof=tuple(_hex(p) for p in tree.proof(leaf)),
    )


# ------------------------------------------------------------------ proposal


class ContributionProposal(BaseModel):
    """Weights computed for a job, the inputs they come from, and the contribution record that anchors
    them: the file the members review and approve. It holds the raw inputs and the salt, so it is shared
    among the job's members only; the anchored record holds digests of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = PROPOSAL_VERSION
    job_id: Hex32
    method: Method
    members: tuple[Address, ...]
    bps: tuple[int, ...]
    fallback: Literal["equal_split"] | None = None
    weights_hash: Hex32
    seq: int = Field(ge=0)
    record_hash: Hex32
    record_leaf: Hex32
    params_hash: Hex32
    inputs_digest: Hex32
    salt: Hex32
    inputs: ContributionInputs
    record: dict[str, Any]

    @property
    def job_id_bytes(self) -> bytes:
        return bytes.fromhex(self.job_id[2:])

    def step_record(self) -> StepRecord:
        return StepRecord.model_validate(self.record)

    def shares(self) -> dict[str, int]:
        """Basis points by member."""
        return dict(zip(self.members, self.bps, strict=True))

    def verify(self) -> None:
        """Recompute the weights, the inputs digest, the weights hash and the record from the inputs;
        raise `ProposalMismatchError` on any difference. What a member runs before approving."""
        if self.method != self.inputs.method:
            raise ProposalMismatchError(
                f"the proposal says {self.method} but its inputs are {self.inputs.method}"
            )
        result = compute_weights(self.inputs)
        if (result.members, result.bps) != (self.members, self.bps):
            raise ProposalMismatchError(
                f"the inputs give weights {dict(zip(result.members, result.bps, strict=True))}, "
                f"the proposal says {self.shares()}"
            )
        wh = _hex(weights_hash(self.job_id_bytes, self.members, self.bps))
        if wh != self.weights_hash:
            raise ProposalMismatchError(f"weights hash {self.weights_hash} is not that of the weights ({wh})")
        digest = inputs_digest(self.inputs, self.salt)
        if digest != self.inputs_digest:
            raise ProposalMismatchError("the inputs (or the salt) do not match the inputs digest")
        try:
            record = self.step_record()
        except ValidationError as exc:
            raise ProposalMismatchError(
                f"the proposal's record is not a step record: {_first_error(exc)}"
            ) from None
        self.check_record(record)

    def check_record(self, record: StepRecord) -> None:
        """Raise `ProposalMismatchError` unless ``record`` is this proposal's contribution record."""
        where = f"contribution record (job {record.job_id} step {record.seq})"
        if (record.job_id, record.seq) != (self.job_id, self.seq):
            raise ProposalMismatchError(f"the {where} is not step {self.seq} of job {self.job_id}")
        if _hex(record.record_hash()) != self.record_hash:
            raise ProposalMismatchError(
                f"the {where} hashes to {_hex(record.record_hash())}, not {self.record_hash}"
            )
        if record.algorithm != ALGORITHM or record.status != "succeeded":
            raise ProposalMismatchError(f"the {where} is not a succeeded {ALGORITHM} step")
        if not record_carries_weights(record, bytes.fromhex(self.weights_hash[2:])):
            raise ProposalMismatchError(f"the {where} does not carry the weights hash {self.weights_hash}")
        expected = contribution_params_hash(self.inputs, self.members, self.inputs_digest)
        if record.params_hash != expected or self.params_hash != expected:
            raise ProposalMismatchError(f"the {where} has another params hash than the proposal's inputs")
        parties = {p.party.lower() for p in record.parties}
        if parties != {m.lower() for m in self.members}:
            raise ProposalMismatchError(f"the {where} names other parties than the proposal's members")

    def weights_proposal(self, receipt: Receipt) -> WeightsProposal:
        """What the parties approve and `setWeights` takes, from the record's anchoring receipt."""
        if (receipt.job_id, receipt.seq) != (self.job_id, self.seq):
            raise ProposalMismatchError(
                f"the receipt is for job {receipt.job_id} step {receipt.seq}, "
                f"not the contribution record {self.seq} of job {self.job_id}"
            )
        try:
            record = StepRecord.model_validate(receipt.record)
        except ValidationError as exc:
            raise ProposalMismatchError(
                f"the anchored record is not a step record: {_first_error(exc)}"
            ) from None
        self.check_record(record)
        if receipt.record_hash != self.record_hash or receipt.leaf != self.record_leaf:
            raise ProposalMismatchError("the receipt's record hash or leaf differs from the proposal's")
        return WeightsProposal(
            job_id=self.job_id,
            members=self.members,
            bps=self.bps,
            record_hash=self.record_hash,
            seq=self.seq,
            root=receipt.batch_root,
            proof=tuple(receipt.proof),
        )

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def save(self, path: Path) -> Path:
        """Write the proposal as JSON (atomically, readable by the owner only); returns ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.to_json() + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path) -> ContributionProposal:
        """Read a proposal file; `ProposalFileError` if it is missing or not a proposal."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ProposalFileError(f"no proposal file at {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ProposalFileError(f"cannot read {path}: {exc}") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ProposalFileError(f"{path} is not a contribution proposal: {_first_error(exc)}") from None


def check_members(members: Sequence[str], job_parties: Sequence[str]) -> None:
    """Raise `ContributionError` unless ``members`` are exactly the job's parties (any order): the
    settlement contract refuses anything else, and only after the record is anchored."""
    if {m.lower() for m in members} != {p.lower() for p in job_parties}:
        raise ContributionError(
            f"the inputs name parties {sorted(members)} but the job's parties are {sorted(job_parties)}",
            hint="give inputs for exactly the job's parties",
        )


def prepare_contribution(
    job_id: str,
    seq: int,
    inputs: AnyInputs,
    *,
    job_parties: Sequence[str] | None = None,
    salt: str | None = None,
    now_ms: int | None = None,
) -> ContributionProposal:
    """Compute the weights of ``inputs`` and build the proposal with its contribution record (step
    ``seq`` of ``job_id``), without recording anything. `secureflow.ledger.settlement.service` keeps the
    proposal first, then records it, so that the salt is never lost for a record in the outbox.

    ``job_parties`` (when given) must be exactly the inputs' parties. ``salt`` (0x + 64 hex) defaults to
    32 random bytes; ``now_ms`` to the current time.
    """
    job_id = job_id.lower()
    if not (job_id.startswith("0x") and len(job_id) == 66):
        raise ContributionError(f"job id {job_id!r} is not 0x + 64 hex digits")
    if job_parties is not None:
        check_members(inputs.members, job_parties)
    result = compute_weights(inputs)
    if sum(result.bps) != TOTAL_BPS:  # bps_from_scores guarantees it; never send anything else
        raise ContributionError(f"weights sum to {sum(result.bps)}, not {TOTAL_BPS}")
    salt = (salt or _hex(secrets.token_bytes(32))).lower()
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    record = build_contribution_record(
        job_id, seq, inputs, result, salt, started_at_ms=now, finished_at_ms=now
    )
    return ContributionProposal(
        job_id=job_id,
        method=inputs.method,
        members=result.members,
        bps=result.bps,
        fallback=result.fallback,
        weights_hash=record.parties[0].outputs[WEIGHTS_OUTPUT],
        seq=seq,
        record_hash=_hex(record.record_hash()),
        record_leaf=_hex(record.leaf()),
        params_hash=record.params_hash,
        inputs_digest=record.parties[0].inputs[INPUTS_DIGEST_NAME],
        salt=salt,
        inputs=inputs,
        record=record.model_dump(mode="json"),
    )
