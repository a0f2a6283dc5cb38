"""Step records: only digests and metadata get in, and the hash and leaf follow DESIGN.md exactly."""

from __future__ import annotations

import json

import pytest
import rfc8785
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from secureflow.ledger.records import MAX_SAFE_INTEGER, PartyDigests, StepRecord, params_hash

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
DIGEST = "0x" + "ab" * 32


def record(**overrides: object) -> StepRecord:
    fields: dict[str, object] = {
        "job_id": "0x" + "11" * 32,
        "seq": 3,
        "algorithm": "ss_lr",
        "params_hash": params_hash({"epochs": 3}),
        "code_version": "secureflow-0.1.0",
        "parties": [
            {"party": ALICE, "inputs": {"features": DIGEST}, "outputs": {"model_share": DIGEST}},
            {"party": BOB, "inputs": {"labels": DIGEST}},
        ],
        "status": "succeeded",
        "started_at_ms": 1_700_000_000_000,
        "finished_at_ms": 1_700_000_000_500,
    }
    fields.update(overrides)
    return StepRecord.model_validate(fields)


def test_record_hash_is_keccak_of_rfc8785_json() -> None:
    r = record()
    canonical = rfc8785.dumps(json.loads(r.model_dump_json()))
    assert r.canonical_json() == canonical
    assert r.record_hash() == keccak(canonical)
    # Key order of the input does not change the hash.
    shuffled = json.loads(r.model_dump_json())
    assert StepRecord.model_validate(dict(reversed(list(shuffled.items())))).record_hash() == r.record_hash()


def test_leaf_is_the_openzeppelin_standard_leaf() -> None:
    r = record()
    inner = keccak(encode(["bytes32", "uint64", "bytes32"], [bytes.fromhex("11" * 32), 3, r.record_hash()]))
    assert r.leaf() == keccak(inner)


@pytest.mark.parametrize(
    "overrides",
    [
        {"raw_rows": [[1, 2, 3]]},  # unknown field
        {"algorithm": "ss_lr; income=52000"},  # free text where an identifier belongs
        {"params_hash": "52000"},
        {"parties": [{"party": ALICE, "inputs": {"features": "0x1234"}}]},  # not a 32-byte digest
        {"parties": [{"party": ALICE, "inputs": {"features": DIGEST}, "values": [0.3, 0.7]}]},
        {"parties": [{"party": ALICE}, {"party": ALICE}]},  # same party twice
        {"parties": []},
        {"status": "failed"},  # failed without an error class
        {"error_class": "ValueError"},  # error class on a success
        {"finished_at_ms": 1},
        {"seq": -1},
        {"seq": 2**53},  # beyond what RFC 8785 JSON represents exactly
    ],
)
def test_records_refuse_anything_but_digests_and_metadata(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        record(**overrides)


def test_failed_step_carries_only_its_error_class() -> None:
    r = record(status="failed", error_class="ValueError")
    assert json.loads(r.canonical_json())["error_class"] == "ValueError"


def test_records_are_immutable() -> None:
    r = record()
    with pytest.raises(ValidationError):
        r.seq = 4  # type: ignore[misc]
    with pytest.raises(ValidationError):
        PartyDigests(party=ALICE).inputs = {}  # type: ignore[misc]


@settings(max_examples=50, deadline=None)
@given(
    seq=st.integers(min_value=0, max_value=MAX_SAFE_INTEGER),
    digests=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), st.binary(min_size=32, max_size=32)
    ),
)
def test_any_change_changes_the_hash(seq: int, digests: dict[str, bytes]) -> None:
    inputs = {k: "0x" + v.hex() for k, v in digests.items()}
    base = record(seq=seq, parties=[{"party": ALICE, "inputs": inputs}])
    assert StepRecord.model_validate_json(base.canonical_json()).record_hash() == base.record_hash()
    other = record(seq=seq, parties=[{"party": ALICE, "inputs": {**inputs, "extra": DIGEST}}])
    assert other.record_hash() != base.record_hash()
    if seq < MAX_SAFE_INTEGER:
        assert record(seq=seq + 1, parties=[{"party": ALICE, "inputs": inputs}]).leaf() != base.leaf()
