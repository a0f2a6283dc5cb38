"""Contribution weights (data share, leave one party out), the contribution record and the proposal file.

The numbers are exact basis points for known inputs; the record is checked to carry digests only (no
metric value, no count); the outbox part runs on the real ledger store (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from leaks import numeric_leaks, without_hex
from stack import ALICE, BOB, new_job

from secureflow.ledger.devchain import DEV_PRIVATE_KEYS
from secureflow.ledger.errors import RecordConflictError
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import StepRecord
from secureflow.ledger.settlement.contribution import (
    ALGORITHM,
    INPUTS_DIGEST_NAME,
    WEIGHTS_OUTPUT,
    ContributionProposal,
    DataShareInputs,
    LeaveOneOutInputs,
    compute_weights,
    inputs_digest,
    load_inputs,
    marginal_contributions,
    parse_inputs,
    prepare_contribution,
    record_carries_weights,
)
from secureflow.ledger.settlement.errors import ContributionError, ProposalFileError, ProposalMismatchError
from secureflow.ledger.settlement.weights import weights_hash
from secureflow.ledger.store.sql import SqlLedgerStore

CAROL = Account.from_key(DEV_PRIVATE_KEYS[3]).address
JOB = "0x" + "ab" * 32
SALT = "0x" + "5a" * 32


def data_share(*parties: dict[str, Any], **params: Any) -> DataShareInputs:
    inputs = parse_inputs({"method": "data_share", "parties": list(parties), **params})
    assert isinstance(inputs, DataShareInputs)
    return inputs


def loo(full: float, without: dict[str, float], **params: Any) -> LeaveOneOutInputs:
    parties = [{"party": p, "without": v} for p, v in without.items()]
    inputs = parse_inputs(
        {"method": "leave_one_out", "metric": "auc", "full": full, "parties": parties, **params}
    )
    assert isinstance(inputs, LeaveOneOutInputs)
    return inputs


# ------------------------------------------------------------------ method (a): data share


def test_data_share_by_columns_labels_count_as_one_feature() -> None:
    result = compute_weights(
        data_share({"party": ALICE, "features": 6}, {"party": BOB, "features": 3, "label_columns": 1})
    )
    assert result.method == "data_share" and result.members == (ALICE, BOB)
    assert result.bps == (6000, 4000) and result.fallback is None


def test_data_share_label_value_and_rows_mix() -> None:
    parties = (
        {"party": ALICE, "features": 6, "rows": 1000},
        {"party": BOB, "features": 3, "label_columns": 1, "rows": 1000},
    )
    # half equal (same intersected rows after PSI), half by columns: 0.5*0.5 + 0.5*0.6 = 0.55
    assert compute_weights(data_share(*parties, feature_weight=0.5, row_weight=0.5)).bps == (5500, 4500)
    # a label worth 3 features: columns 6 and 6
    assert compute_weights(data_share(*parties, label_value=3)).bps == (5000, 5000)
    # rows only (horizontal data): proportional to rows
    rows = ({"party": ALICE, "features": 4, "rows": 300}, {"party": BOB, "features": 4, "rows": 100})
    assert compute_weights(data_share(*rows, feature_weight=0, row_weight=1)).bps == (7500, 2500)


def test_data_share_three_parties_rounds_to_exactly_10000() -> None:
    result = compute_weights(
        data_share(
            {"party": ALICE, "features": 1},
            {"party": BOB, "features": 1},
            {"party": CAROL, "features": 1},
        )
    )
    assert result.bps == (3334, 3333, 3333) and sum(result.bps) == 10_000


def test_data_share_party_without_columns_gets_zero() -> None:
    result = compute_weights(data_share({"party": ALICE, "features": 5}, {"party": BOB, "features": 0}))
    assert result.bps == (10_000, 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"parties": [{"party": ALICE, "features": 0}, {"party": BOB, "features": 0}]}, "no party supplied"),
        (
            {"parties": [{"party": ALICE, "features": 2}], "feature_weight": 0, "row_weight": 1},
            "no party contributed a row",
        ),
        ({"parties": [{"party": ALICE, "features": -1}]}, "greater than or equal to 0"),
        ({"parties": [{"party": ALICE, "features": 1}, {"party": ALICE.lower(), "features": 1}]}, "twice"),
        ({"parties": [{"party": "0x1234", "features": 1}]}, "not an Ethereum address"),
        ({"parties": []}, "at least 1"),
        ({"parties": [{"party": ALICE, "features": 1}], "feature_weight": 0, "row_weight": 0}, "both be 0"),
        ({"parties": [{"party": ALICE, "features": 1, "salary": 3}]}, "Extra inputs"),
    ],
)
def test_data_share_refuses_bad_input(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ContributionError, match=message) as info:
        compute_weights(parse_inputs({"method": "data_share", **data}))
    assert info.value.hint  # every error says what to do


# ------------------------------------------------------------------ method (b): leave one party out


def test_leave_one_out_exact_bps() -> None:
    # marginals 0.05 and 0.15 exactly (decimal, not binary doubles)
    result = compute_weights(loo(0.85, {ALICE: 0.80, BOB: 0.70}))
    assert result.method == "leave_one_out" and result.bps == (2500, 7500) and result.fallback is None
    assert marginal_contributions(loo(0.85, {ALICE: 0.80, BOB: 0.70})) == [
        pytest.approx(0.05),
        pytest.approx(0.15),
    ]
    # 0.0236 / 0.185 -> 1275.67 bps, 0.1614 / 0.185 -> 8724.32 bps; floors 1275 + 8724, and the last unit
    # goes by the settlement's highest-averages rule (largest score / (floor + 1)), not the largest
    # remainder: 8724.32 / 8725 > 1275.67 / 1276
    assert compute_weights(loo(0.8137, {ALICE: 0.7901, BOB: 0.6523})).bps == (1275, 8725)


def test_leave_one_out_negative_marginal_counts_as_zero() -> None:
    # without Alice the model gets better: she gets nothing
    assert compute_weights(loo(0.80, {ALICE: 0.82, BOB: 0.70})).bps == (0, 10_000)


def test_leave_one_out_lower_is_better() -> None:
    # MSE: without Alice 1.5 (+0.5), without Bob 2.5 (+1.5)
    result = compute_weights(loo(1.0, {ALICE: 1.5, BOB: 2.5}, metric="mse", higher_is_better=False))
    assert result.bps == (2500, 7500)


def test_leave_one_out_all_zero_marginals_fall_back_to_equal_split() -> None:
    result = compute_weights(loo(0.75, {ALICE: 0.75, BOB: 0.80, CAROL: 0.90}))
    assert result.fallback == "equal_split" and result.bps == (3334, 3333, 3333)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"full": float("nan")}, "finite number"),
        ({"full": float("inf")}, "finite number"),
        ({"parties": [{"party": ALICE, "without": "high"}]}, "valid number"),
        ({"parties": [{"party": ALICE, "without": 0.5}, {"party": ALICE, "without": 0.4}]}, "twice"),
        ({"metric": "a metric with spaces"}, "should match pattern"),
        ({"method": "gut_feeling"}, "does not match any of the expected tags"),
    ],
)
def test_leave_one_out_refuses_bad_input(data: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "method": "leave_one_out",
        "metric": "auc",
        "full": 0.8,
        "parties": [{"party": ALICE, "without": 0.7}, {"party": BOB, "without": 0.6}],
    }
    with pytest.raises(ContributionError, match=message):
        parse_inputs({**base, **data})


@settings(max_examples=200, deadline=None)
@given(
    full=st.floats(min_value=-1e6, max_value=1e6),
    without=st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=20),
)
def test_leave_one_out_always_sums_to_10000(full: float, without: list[float]) -> None:
    parties = [Account.from_key(DEV_PRIVATE_KEYS[0]).address] + [
        "0x" + f"{i + 1:040x}" for i in range(len(without) - 1)
    ]
    result = compute_weights(loo(full, dict(zip(parties, without, strict=True))))
    assert sum(result.bps) == 10_000 and all(b >= 0 for b in result.bps)
    marginals = marginal_contributions(loo(full, dict(zip(parties, without, strict=True))))
    for m, b in zip(marginals, result.bps, strict=True):
        if m == 0 and result.fallback is None:
            assert b == 0  # no improvement, no weight
    # a larger marginal never gets fewer basis points (scores are compared at 1e-12 of their total)
    total = sum(marginals)
    for i, mi in enumerate(marginals):
        for j, mj in enumerate(marginals):
            if total > 0 and (mi - mj) * 10**12 >= total:
                assert result.bps[i] >= result.bps[j]


def test_inputs_file(tmp_path: Path) -> None:
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps({"method": "data_share", "parties": [{"party": ALICE, "features": 2}]}))
    assert load_inputs(path).members == (ALICE,)
    path.write_text("{not json")
    with pytest.raises(ContributionError, match="cannot read the inputs file"):
        load_inputs(path)
    with pytest.raises(ContributionError, match="no inputs file"):
        load_inputs(tmp_path / "missing.json")


# ------------------------------------------------------------------ record and proposal


METRICS = {"full": 0.8137, ALICE: 0.7901, BOB: 0.6523}


def _proposal(seq: int = 3) -> ContributionProposal:
    inputs = loo(METRICS["full"], {ALICE: METRICS[ALICE], BOB: METRICS[BOB]})
    return prepare_contribution(JOB, seq, inputs, job_parties=[BOB, ALICE], salt=SALT, now_ms=5)


def test_contribution_record_carries_digests_only() -> None:
    proposal = _proposal()
    record = proposal.step_record()
    assert record.algorithm == ALGORITHM and record.seq == 3 and record.job_id == JOB
    wh = weights_hash(bytes.fromhex(JOB[2:]), [ALICE, BOB], [1275, 8725])
    assert record_carries_weights(record, wh)
    assert proposal.weights_hash == "0x" + wh.hex()
    assert all(p.outputs == {WEIGHTS_OUTPUT: proposal.weights_hash} for p in record.parties)
    digest = inputs_digest(proposal.inputs, SALT)
    assert all(p.inputs == {INPUTS_DIGEST_NAME: digest} for p in record.parties)
    text = record.canonical_json().decode()
    metrics = ("0.8137", "8137", "0.7901", "7901", "0.6523", "6523")  # neither 0.8137 nor 8137
    assert numeric_leaks(text, (*metrics, "1275", "8725")) == []
    assert "auc" not in without_hex(text)
    # the values are in the proposal, which members keep
    assert proposal.inputs.full == 0.8137  # type: ignore[union-attr]


def test_inputs_digest_is_salted() -> None:
    inputs = loo(0.8, {ALICE: 0.7})
    assert inputs_digest(inputs, SALT) != inputs_digest(inputs, "0x" + "00" * 32)
    assert inputs_digest(inputs, SALT) == inputs_digest(loo(0.8, {ALICE: 0.7}), SALT)


def test_propose_refuses_members_other_than_the_job_parties() -> None:
    with pytest.raises(ContributionError, match="job's parties"):
        prepare_contribution(JOB, 0, loo(0.8, {ALICE: 0.7}), job_parties=[ALICE, BOB], salt=SALT)


def test_proposal_round_trip_and_verify(tmp_path: Path) -> None:
    proposal = _proposal()
    path = proposal.save(tmp_path / "p" / "proposal.json")
    assert path.stat().st_mode & 0o077 == 0  # members only
    loaded = ContributionProposal.load(path)
    assert loaded == proposal
    loaded.verify()
    assert loaded.step_record().record_hash().hex() == proposal.record_hash[2:]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(bps=[5000, 5000]), "the inputs give weights"),
        (lambda d: d["inputs"]["parties"][0].update(without=0.5), "the inputs give weights"),
        (lambda d: d.update(salt="0x" + "00" * 32), "inputs digest"),
        (lambda d: d["record"].update(code_version="other"), "hashes to"),
        (lambda d: d.update(method="data_share"), "says data_share"),
    ],
)
def test_verify_detects_a_tampered_proposal(tmp_path: Path, change: Any, message: str) -> None:
    data = json.loads(_proposal().to_json())
    change(data)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProposalMismatchError, match=message):
        ContributionProposal.load(path).verify()


def test_proposal_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ProposalFileError, match="no proposal file"):
        ContributionProposal.load(tmp_path / "none.json")
    (tmp_path / "x.json").write_text('{"version": 1}')
    with pytest.raises(ProposalFileError, match="not a contribution proposal"):
        ContributionProposal.load(tmp_path / "x.json")


def test_contribution_record_goes_to_the_outbox(store: SqlLedgerStore) -> None:
    job = new_job(store, 77)
    inputs = data_share({"party": ALICE, "features": 6}, {"party": BOB, "features": 3, "label_columns": 1})
    proposal = prepare_contribution(job, 0, inputs, job_parties=[ALICE, BOB])
    OutboxRecorder(store).record_step(proposal.step_record())
    row = store.get_record(job, 0)
    assert row is not None and row.status == "pending"
    assert row.record_hash == proposal.record_hash and row.leaf == proposal.record_leaf
    stored = StepRecord.model_validate_json(row.record_json)
    proposal.check_record(stored)
    assert proposal.bps == (6000, 4000)
    # another record at the same step (a new salt) is a conflict, not an overwrite
    again = prepare_contribution(job, 0, inputs, job_parties=[ALICE, BOB])
    with pytest.raises(RecordConflictError):
        OutboxRecorder(store).record_step(again.step_record())
