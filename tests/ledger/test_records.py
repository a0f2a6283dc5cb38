"""Step records: only digests and metadata get in, and the hash and leaf follow docs/formats.md exactly."""

from __future__ import annotations

import json

import pytest
import rfc8785
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from secureflow.ledger.records import (
    MAX_SAFE_INTEGER,
    PartyDigests,
    StepRecord,
    commitment,
    job_id_for,
    manifest_commitment,
    new_job_salt,
    new_job_secret,
    params_hash,
)
from secureflow.ledger.signing import hkdf_sha256, job_salt
from secureflow.ledger.store.schemas import NewJob

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
DIGEST = "0x" + "ab" * 32


def record(**overrides: object) -> StepRecord:
    fields: dict[str, object] = {
        "job_id": "0x" + "11" * 32,
        "seq": 3,
        "algorithm": "ss_lr",
        "params_hash": params_hash({"epochs": 3}, None),
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


# ------------------------------------------------------------------ job ids


@settings(max_examples=30, deadline=None)
@given(
    creator=st.binary(min_size=20, max_size=20),
    manifest_hash=st.binary(min_size=32, max_size=32),
    salt=st.binary(min_size=32, max_size=32),
)
def test_job_id_is_the_contracts_abi_encoding(creator: bytes, manifest_hash: bytes, salt: bytes) -> None:
    """keccak256(abi.encode(address creator, bytes32 manifestHash, bytes32 salt)), as AuditLedger.jobIdFor."""
    address = "0x" + creator.hex()
    expected = "0x" + keccak(encode(["address", "bytes32", "bytes32"], [address, manifest_hash, salt])).hex()
    assert job_id_for(address, manifest_hash, salt) == expected
    assert job_id_for(address.upper().replace("0X", "0x"), "0x" + manifest_hash.hex(), "0x" + salt.hex()) == (
        expected
    )


def test_job_id_depends_on_creator_manifest_and_salt() -> None:
    manifest, salt = "0x" + "11" * 32, new_job_salt()
    base = job_id_for(ALICE, manifest, salt)
    assert job_id_for(BOB, manifest, salt) != base  # a squatter's job is another job
    assert job_id_for(ALICE, "0x" + "12" * 32, salt) != base
    assert job_id_for(ALICE, manifest, new_job_salt()) != base
    with pytest.raises(ValueError, match="32 bytes"):
        job_id_for(ALICE, manifest, "0x1234")
    with pytest.raises(ValueError, match="20-byte"):
        job_id_for("0x1234", manifest, salt)


def test_a_stored_job_id_must_match_its_salt() -> None:
    manifest, salt = "0x" + "11" * 32, new_job_salt()
    job = NewJob(
        job_id=job_id_for(ALICE, manifest, salt),
        manifest_hash=manifest,
        creator=ALICE,
        parties=[ALICE],
        salt=salt,
    )
    assert job.salt == salt
    with pytest.raises(ValidationError, match="job_id_for"):
        NewJob(
            job_id=job_id_for(BOB, manifest, salt),
            manifest_hash=manifest,
            creator=ALICE,
            parties=[ALICE],
            salt=salt,
        )


# -- salted commitments and per-job party salts (issue 11, item 5) ------------------------------------------


def test_a_commitment_is_keccak_of_the_job_secret_and_the_canonical_json() -> None:
    secret = new_job_secret()
    value = {"strategy": "constant", "fill_value": 2}
    expected = "0x" + keccak(bytes.fromhex(secret[2:]) + rfc8785.dumps(value)).hex()
    assert (
        commitment(value, secret)
        == params_hash(value, secret)
        == manifest_commitment(value, secret)
        == expected
    )
    assert params_hash(value, new_job_secret()) != expected  # another job: an unrelated commitment
    assert params_hash(value, None) == "0x" + keccak(rfc8785.dumps(value)).hex()  # the unsalted form
    with pytest.raises(ValueError, match="32 bytes"):
        commitment(value, "0x1234")


def test_a_party_salt_is_hkdf_of_its_secret_and_the_job_id() -> None:
    # RFC 5869 test case 3 (SHA-256, no salt, no info): the first 32 bytes of its OKM
    okm = bytes.fromhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d")
    assert hkdf_sha256(bytes([0x0B] * 22), b"") == okm
    secret, job_a, job_b = b"\x01" * 32, "0x" + "aa" * 32, "0x" + "bb" * 32
    assert job_salt(secret, job_a) == job_salt(secret, bytes.fromhex(job_a[2:]))  # derivable again later
    assert len({job_salt(secret, job_a), job_salt(secret, job_b), job_salt(b"\x02" * 32, job_a)}) == 3
    assert secret not in job_salt(secret, job_a)
    with pytest.raises(ValueError, match="32 bytes"):
        job_salt(secret, "0x1234")
