"""Unlinkable, unguessable commitments (issue 11, item 5) on the session's real party workers.

Each party salts its digests with a salt of its own for each job (derived from its secret and the job id),
so the same input table in two jobs gives unrelated digests; the manifest hash and every step's
``params_hash`` are salted with the job's secret, so the same manifest run twice gives unrelated
commitments and a receipt's parameters cannot be recovered by hashing guesses.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from cf_helpers import manifest, put, vertical_data

from secureflow.compute.errors import ParameterError
from secureflow.compute.registry import get_algorithm
from secureflow.compute.runner import JobResult, run_job
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import canonical_hash

PSI = {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "t"}}
FILLNA = {
    "algorithm": "fillna",
    "params": {"strategy": "constant", "fill_value": 2},
    "inputs": {"table": "t"},
    "outputs": {"table": "filled"},
}


@pytest.fixture(scope="module")
def same_input(engine: Engine) -> dict[str, Any]:
    alice, bob = vertical_data(200, seed=11)
    alice.loc[alice.index[:5], "a0"] = np.nan
    bob.loc[bob.index[:5], "b0"] = np.nan
    datasets = {
        "raw": {"alice": put(engine, "alice", "c_a.csv", alice), "bob": put(engine, "bob", "c_b.csv", bob)}
    }
    return manifest(engine, datasets, [PSI, FILLNA])


@pytest.fixture(scope="module")
def two_jobs(
    engine: Engine, same_input: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> list[JobResult]:
    """The same manifest on the same input tables, run as two jobs."""
    from secureflow.ledger.store import open_store

    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('commitments') / 'ledger.db'}")
    try:
        results = [run_job(engine, same_input, OutboxRecorder(store)) for _ in range(2)]
    finally:
        store.close()
    for result in results:
        assert result.succeeded, result.error_message
    return results


def test_the_same_input_in_two_jobs_gives_unrelated_digests_for_each_party(
    engine: Engine, two_jobs: list[JobResult]
) -> None:
    for seq, (slot, name) in enumerate([("inputs", "raw"), ("outputs", "filled")]):
        first, second = (result.steps[seq].record for result in two_jobs)
        for party in ("alice", "bob"):
            address = engine.addresses[party].lower()
            a = getattr(next(p for p in first.parties if p.party.lower() == address), slot)
            b = getattr(next(p for p in second.parties if p.party.lower() == address), slot)
            assert name in a and name in b
            assert a[name] != b[name], f"{party}'s digest of {name!r} (step {seq}) links the two jobs"


def test_the_same_manifest_in_two_jobs_gives_unrelated_commitments(two_jobs: list[JobResult]) -> None:
    first, second = two_jobs
    assert first.manifest_hash != second.manifest_hash
    for seq in (0, 1):
        assert first.steps[seq].record.params_hash != second.steps[seq].record.params_hash


def test_a_receipts_parameters_cannot_be_recovered_by_guessing(
    same_input: dict[str, Any], two_jobs: list[JobResult]
) -> None:
    """The reproduced attack: from a fillna record, hash every plausible parameter set (as given and as
    the algorithm normalises it) until one gives its params_hash. Without the job secret nothing matches."""
    record = two_jobs[0].steps[1].record
    spec = get_algorithm("fillna")
    guesses: list[dict[str, Any]] = []
    for strategy, value in itertools.product(
        ("mean", "median", "most_frequent", "constant"),
        [None, *range(-10, 11), *(v / 2 for v in range(-20, 21))],
    ):
        raw = {"strategy": strategy} if value is None else {"strategy": strategy, "fill_value": value}
        try:
            normalised = spec.parse_params(raw).model_dump(mode="json")
        except ParameterError:
            continue  # not a valid parameter set: the step could not have run with it
        guesses += [raw, normalised]
    assert FILLNA["params"] in guesses  # the right answer is among the guesses
    assert record.params_hash not in {canonical_hash(g) for g in guesses}
    assert record.params_hash not in {canonical_hash(same_input["steps"][1]["params"])}
    # whoever holds the job secret (the parties, an auditor with the bundle) recomputes both commitments
    from secureflow.compute.manifest import JobManifest
    from secureflow.ledger.records import params_hash

    secret = two_jobs[0].job_secret
    assert secret is not None
    assert params_hash(FILLNA["params"], secret) == record.params_hash
    assert JobManifest.parse(same_input).manifest_hash(secret) == two_jobs[0].manifest_hash
    assert secret not in repr(two_jobs[0])  # never printed with the result
