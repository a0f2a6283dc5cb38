"""Manifest validation on metadata only (no SecretFlow): structure, references, parameters, schemas."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secureflow.compute.errors import ManifestError, ParameterError, SchemaError, UnknownAlgorithmError
from secureflow.compute.manifest import JobManifest, plan_job
from secureflow.compute.schema import ObjectInfo
from secureflow.ledger.records import new_job_secret

A, B = "0x" + "aa" * 20, "0x" + "bb" * 20
SECRET = new_job_secret()
INFOS = {
    "raw": ObjectInfo(
        kind="table",
        columns={
            "alice": {"id": "int", "a0": "float", "y": "int", "c": "str"},
            "bob": {"id": "int", "b0": "float"},
        },
    )
}


def _manifest(steps: list[dict[str, Any]], **extra: Any) -> JobManifest:
    return JobManifest.parse(
        {
            "parties": [{"name": "alice", "address": A}, {"name": "bob", "address": B}],
            "datasets": {"raw": {"alice": "a.csv", "bob": "b.csv"}},
            "steps": steps,
            **extra,
        }
    )


PSI = {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}}


def test_a_valid_plan_carries_metadata_through() -> None:
    lr = {"algorithm": "ss_lr", "params": {"label": "y"}, "inputs": {"table": "j"}, "outputs": {"model": "m"}}
    pred = {
        "algorithm": "secure_predict",
        "params": {"receiver": "alice"},
        "inputs": {"table": "j", "model": "m"},
    }
    plan = plan_job(_manifest([PSI, lr, pred]), INFOS, job_secret=SECRET)
    assert plan[0].output_infos["table"].columns == {
        "alice": INFOS["raw"].columns["alice"],
        "bob": {"b0": "float"},
    }
    assert plan[1].output_infos["model"].columns == {
        "alice": {"a0": "float"},
        "bob": {"b0": "float"},
    }  # no key
    assert plan[2].output_infos["table"].columns == {"alice": {"pred": "float"}, "bob": {}}
    assert plan[1].params_hash.startswith("0x") and len(plan[1].params_hash) == 66


@pytest.mark.parametrize(
    ("steps", "error", "match"),
    [
        ([{"algorithm": "nope", "inputs": {}}], UnknownAlgorithmError, "nope"),
        ([PSI, {"algorithm": "fillna", "inputs": {"table": "j"}, "outputs": {"table": "j"}}],
         ManifestError, "used"),
        ([{**PSI, "outputs": {"bogus": "x"}}], ManifestError, "unknown output"),
        ([{**PSI, "inputs": {}}], ManifestError, "missing"),
        ([{**PSI, "params": {"key": "id", "protocol": "PROTOCOL_X"}}], ParameterError, "protocol"),
        ([PSI, {"algorithm": "ss_lr", "params": {"label": "c"}, "inputs": {"table": "j"}}],
         SchemaError, "numeric"),
        ([PSI, {"algorithm": "fillna", "params": {"strategy": "constant"}, "inputs": {"table": "j"}}],
         ParameterError, "fill_value"),
        ([{"algorithm": "fillna", "params": {"columns": ["id"]}, "inputs": {"table": "raw"}}], SchemaError,
         "several parties"),
        ([PSI, {"algorithm": "biclassification_eval", "params": {"label": "y", "score": "b0"},
                "inputs": {"labels": "j", "scores": "j"}}], SchemaError, "same party"),
    ],
)  # fmt: skip
def test_invalid_manifests(steps: list[dict[str, Any]], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        plan_job(_manifest(steps), INFOS, job_secret=SECRET)


def test_structure_errors() -> None:
    with pytest.raises(ManifestError, match="relative"):
        _manifest([PSI], datasets={"raw": {"alice": "/etc/passwd", "bob": "b.csv"}})
    with pytest.raises(ManifestError):
        JobManifest.parse({"parties": [{"name": "alice", "address": A}], "steps": [PSI]})
    with pytest.raises(ManifestError, match="unique"):
        plan_job(
            JobManifest.parse(
                {
                    "parties": [{"name": "alice", "address": A}, {"name": "alice", "address": B}],
                    "steps": [PSI],
                }
            ),
            INFOS,
            job_secret=SECRET,
        )


@given(
    st.dictionaries(
        st.sampled_from(["epochs", "learning_rate", "batch_size"]), st.integers(-5, 0), min_size=1
    )
)
def test_out_of_range_parameters_never_validate(params: dict[str, int]) -> None:
    step = {"algorithm": "ss_lr", "params": {"label": "y", **params}, "inputs": {"table": "j"}}
    with pytest.raises(ParameterError) as info:
        plan_job(_manifest([PSI, step]), INFOS, job_secret=SECRET)
    assert all(name in str(info.value) for name in params), (params, str(info.value))


def test_in_range_parameters_validate() -> None:
    """The counterpart: the same step with in-range values (and with none) plans."""
    for params in ({}, {"epochs": 1, "learning_rate": 1, "batch_size": 1}):
        step = {"algorithm": "ss_lr", "params": {"label": "y", **params}, "inputs": {"table": "j"}}
        assert [s.spec.name for s in plan_job(_manifest([PSI, step]), INFOS, job_secret=SECRET)] == [
            "psi",
            "ss_lr",
        ]


def test_manifest_hash_is_stable() -> None:
    assert _manifest([PSI]).manifest_hash(SECRET) == _manifest([PSI]).manifest_hash(SECRET)
    assert _manifest([PSI]).manifest_hash(SECRET) != _manifest([PSI], name="other").manifest_hash(SECRET)


def test_the_spu_protocol_is_committed_and_aby3_needs_three_parties() -> None:
    secret = "0x" + "11" * 32
    semi2k = _manifest([PSI])
    # a SEMI2K manifest commits exactly as before the protocol was a manifest field (anchored job ids hold)
    before = "0x28651dec8f8e0f8e367f4941839c463a6737a331997007832c8b2408cfc2ad4b"
    assert semi2k.manifest_hash(secret) == before
    assert _manifest([PSI], spu_protocol="SEMI2K").manifest_hash(secret) == semi2k.manifest_hash(secret)
    with pytest.raises(ManifestError, match="ABY3 runs exactly three parties, not 2"):
        _manifest([PSI], spu_protocol="ABY3")
    with pytest.raises(ManifestError, match="spu_protocol"):
        _manifest([PSI], spu_protocol="REF2K")
    three = {
        "parties": [
            {"name": "alice", "address": A},
            {"name": "bob", "address": B},
            {"name": "carol", "address": "0x" + "cc" * 20},
        ],
        "steps": [PSI],
    }
    aby3 = JobManifest.parse({**three, "spu_protocol": "ABY3"})
    assert aby3.model_dump(mode="json")["spu_protocol"] == "ABY3"
    assert aby3.manifest_hash(secret) != JobManifest.parse(three).manifest_hash(secret)  # committed
