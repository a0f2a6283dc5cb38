"""The README's demo command end to end: the real console script, its own anvil, a fresh SQLite store and
one real SecretFlow worker process per party."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pandas as pd
from leaks import scan_sinks, table_renderings

from secureflow.ledger.records import StepRecord
from secureflow.ledger.signing import verify_party_signature

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["psi", "fillna", "standard_scaler", "ss_lr", "secure_predict", "biclassification_eval"]


def demo_sinks(workdir: Path, output: str) -> dict[str, str]:
    """Every place the demo writes to, as text: files of the workdir (the ledger DB as the rows of all its
    tables) except the parties' own data, models and secrets, and the command's output."""
    sinks = {"output": output}
    for path in sorted(workdir.rglob("*")):
        rel = path.relative_to(workdir)
        if not path.is_file() or (
            rel.parts[0] == "parties" and rel.parts[2] in ("data", "models", "secrets")
        ):
            continue
        if path.suffix == ".db":
            with sqlite3.connect(path) as db:
                names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                rows = [" ".join(map(str, row)) for n in names for row in db.execute(f'SELECT * FROM "{n}"')]  # noqa: S608 - names from sqlite_master
            sinks[str(rel)] = "\n".join(rows)
        else:
            sinks[str(rel)] = path.read_bytes().decode("utf-8", errors="replace")
    return sinks


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
    # No cell value of either party's data in any sink the demo writes or prints (every column of both
    # parties, in each rendering a log or JSON uses; see tests/leaks.py): the bundle, every table of the
    # ledger DB, anvil's log, each worker's log and files outside its data/models/secrets, the output.
    tables = [pd.read_csv(parties / p / "data" / "customers.csv") for p in ("alice", "bob")]
    secrets = table_renderings(tables)
    sinks = demo_sinks(workdir, result.stdout + result.stderr)
    assert {"audit_bundle.json", "secureflow.db", "anvil.log", "output"} <= set(sinks)
    assert any(name.endswith("worker.log") for name in sinks)
    assert scan_sinks(sinks, secrets) == {}
    # ... and the scan would see one planted in any of them (an id, a float as repr and as %.6f)
    planted = [
        str(tables[0]["id"].iloc[7]),
        repr(float(tables[1]["b1"].iloc[3])),
        f"{tables[0]['a1'].iloc[5]:.6f}",
    ]
    for index, name in enumerate(sorted(sinks)):
        value = planted[index % len(planted)]
        tampered = {**sinks, name: sinks[name] + f' {{"x": {value}}}'}
        assert scan_sinks(tampered, secrets) == {name: [value]}, name
    # The workers were shut down with the demo.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(parties) not in ps
