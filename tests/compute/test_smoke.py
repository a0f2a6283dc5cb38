"""End-to-end smoke test: PSI then Fillna on the warm workers, records in the outbox."""

from __future__ import annotations

import numpy as np
import pandas as pd
from cf_helpers import manifest, put

from secureflow.compute.runner import run_job
from secureflow.ledger.signing import verify_party_signature


def test_psi_then_fillna(engine, recorder) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    a = pd.DataFrame({"id": np.arange(0, 200), "x": rng.normal(size=200)})
    a.loc[3, "x"] = np.nan
    b = pd.DataFrame({"id": np.arange(50, 300), "z": rng.normal(size=250)})
    m = manifest(
        engine,
        {"raw": {"alice": put(engine, "alice", "a.csv", a), "bob": put(engine, "bob", "b.csv", b)}},
        [
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "raw"},
                "outputs": {"table": "j"},
            },
            {"algorithm": "fillna", "inputs": {"table": "j"}, "outputs": {"table": "f"}},
        ],
    )
    res = run_job(engine, m, recorder)
    assert res.succeeded, res.error_message
    rows = recorder.store.records_for_job(res.job_id)
    assert [r.seq for r in rows] == [0, 1]
    for step in res.steps:
        for p in step.record.parties:
            assert verify_party_signature(step.record, p)
    # PSI's temporary files (inputs, intersection indices, .meta, traces) do not linger
    for party in ("alice", "bob"):
        for sub in ("tmp", "work"):
            assert list((engine.party_dir(party) / sub).iterdir()) == [], (party, sub)
