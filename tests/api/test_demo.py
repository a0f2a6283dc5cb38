"""The README's demo command end to end: the real console script, its own anvil, a fresh SQLite store and
one real SecretFlow worker process per party."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd

from secureflow.ledger.records import StepRecord
from secureflow.ledger.signing import verify_party_signature

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["psi", "fillna", "standard_scaler", "ss_lr", "secure_predict", "biclassification_eval"]


def test_demo_runs_secretflow_and_verifies_every_record_on_chain(tmp_path: Path) -> None:
    # As the README runs it: no --workdir, so the default relative folder under the current directory.
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "secureflow"), "demo"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "COLUMNS": "200"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6/6 records verified on chain" in result.stdout
    assert "VALID, 6/6 receipts valid" in result.stdout
    # The bundle is verified as an auditor would: pinned to the demo's deployment file, the job proven whole.
    assert "verifying as an auditor, pinned to the deployment file: secureflow verify " in result.stdout
    assert "--deployment " in result.stdout and "deployment.json" in result.stdout
    for check in ("job_header", "consents", "job_closed", "step_count", "final_record"):
        assert check in result.stdout
    assert "INVALID" not in result.stdout
    assert "AUC 0." in result.stdout
    assert "recordModel confirmed" in result.stdout
    assert "closeJob confirmed" in result.stdout and "sent by the anchoring service" in result.stdout
    assert "job status CLOSED, 6 steps" in result.stdout and "consent: True" in result.stdout

    (workdir,) = (tmp_path / ".secureflow").glob("demo-*")
    bundle = json.loads((workdir / "audit_bundle.json").read_text())
    assert bundle["job"]["status"] == "completed"
    assert {r["status"] for r in bundle["receipts"]} == {"confirmed"}
    records = [StepRecord.model_validate(raw) for raw in bundle["records"]]  # digests and metadata only
    assert [r.algorithm for r in records] == STEPS
    for record in records:
        assert record.status == "succeeded"
        assert all(p.signature and verify_party_signature(record, p) for p in record.parties)

    # Secure prediction: the scores exist only in the receiver's (alice's) folder.
    parties = workdir / "parties"
    assert len(pd.read_csv(parties / "alice" / "data" / "out" / "scores.csv")) > 1000
    assert not (parties / "bob" / "data" / "out" / "scores.csv").exists()
    # No raw value of either party's data in the audit bundle (as a JSON value: ids are 6-digit numbers,
    # which do occur by chance inside 64-digit hex digests).
    values: set[str] = set()

    def collect(node: object) -> None:
        if isinstance(node, dict):
            values.update(str(k) for k in node)
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)
        else:
            values.add(str(node))

    collect(bundle)
    alice = pd.read_csv(parties / "alice" / "data" / "customers.csv")
    assert not values & {str(v) for v in alice["id"]}
    assert not values & {f"{v:.6f}" for v in alice["a0"]} and not values & {repr(v) for v in alice["a0"]}
    # The workers were shut down with the demo.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(parties) not in ps
