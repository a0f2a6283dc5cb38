"""The README's demo command end to end: the real console script, its own anvil, a fresh SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ledger.records import StepRecord

ROOT = Path(__file__).resolve().parents[2]


def test_demo_anchors_and_verifies_every_record_on_chain(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "secureflow"), "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5/5 records verified on chain" in result.stdout
    assert "VALID, 5/5 receipts valid" in result.stdout
    bundle = json.loads((workdir / "audit_bundle.json").read_text())
    assert len(bundle["receipts"]) == 5
    assert {r["status"] for r in bundle["receipts"]} == {"confirmed"}
    assert "BatchAnchored" in result.stdout
    assert "INVALID" not in result.stdout

    assert bundle["job"]["status"] == "completed"
    assert len(bundle["records"]) == 5
    for raw in bundle["records"]:
        StepRecord.model_validate(raw)  # only digests and metadata
    deployment = json.loads((workdir / "deployment.json").read_text())
    assert deployment["chain_id"] == 1337
