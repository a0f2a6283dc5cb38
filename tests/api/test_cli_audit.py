"""`secureflow verify` and `secureflow audit reconcile` on records anchored by the real pipeline.

One end-to-end run (anchoring worker, on-chain close, `secureflow verify`) on each EVM client: anvil
and hardhat's node set up like Besu/GoQuorum (``evm_chain``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from stack import (
    LedgerStack,
    accept,
    close_job_on_chain,
    deploy_ledger_stack,
    make_anchorer,
    manifest_of,
    new_job,
    open_job_on_chain,
    run_until_settled,
)
from typer.testing import CliRunner

from secureflow.api.cli.main import app
from secureflow.ledger.anchoring import AnchoringWorker
from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.devchain import DevChain
from secureflow.ledger.receipts import build_bundle, write_bundle
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.store.sql import SqlLedgerStore, open_store


@pytest.fixture
def anchored_job(ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None) -> str:
    """12 records signed by both parties, of a job both consented to on chain, anchored in batches of 5."""
    job = new_job(store, 4242, steps=12)
    open_job_on_chain(ledger_stack, job, 4242, steps=12)
    accept(store, job, 12, signed=True)
    run_until_settled(make_anchorer(ledger_stack, store, max_batch_size=5))
    return job


def test_verify_a_bundle_against_the_pinned_deployment_and_tampered_ones(
    ledger_stack: LedgerStack, store: SqlLedgerStore, anchored_job: str, tmp_path: Path
) -> None:
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    address = ledger_stack.deployment.address_of("AuditLedger")
    pinned = ["--rpc", ledger_stack.rpc_url, "--deployment", str(deployment)]

    def bundle_file(name: str) -> Path:
        built = build_bundle(store, 1337, address, anchored_job, manifest=manifest_of(4242, 12))
        return write_bundle(built, tmp_path / name)

    not_closed = CliRunner().invoke(app, ["verify", str(bundle_file("open.json")), *pinned])
    assert not_closed.exit_code == 1, not_closed.output
    assert "12/12 receipts valid" in not_closed.output and "[FAIL] job_closed" in not_closed.output

    close_job_on_chain(ledger_stack, store, anchored_job)
    bundle = bundle_file("bundle.json")
    ok = CliRunner().invoke(app, ["verify", str(bundle), *pinned])
    assert ok.exit_code == 0, ok.output
    assert f"[pin ] AuditLedger {address}" in ok.output and f"the deployment file {deployment}" in ok.output
    assert "VALID, 12/12 receipts valid" in ok.output and "INVALID" not in ok.output
    scripted = CliRunner().invoke(app, ["verify", str(bundle), *pinned, "--json"])  # for a script
    assert scripted.exit_code == 0, scripted.output
    verdict = json.loads(scripted.stdout)
    assert (verdict["kind"], verdict["ok"], len(verdict["verdict"]["receipts"])) == ("bundle", True, 12)
    assert {c["name"]: c["status"] for c in verdict["verdict"]["checks"]}["job_closed"] == "passed"

    code_hash = ledger_stack.deployment.contracts["AuditLedger"].code_hash
    assert code_hash is not None
    by_hand = ["--rpc", ledger_stack.rpc_url, "--ledger", address, "--code-hash", code_hash]
    assert CliRunner().invoke(app, ["verify", str(bundle), *by_hand]).exit_code == 0

    raw = json.loads(bundle.read_text())
    raw["receipts"][3]["record"]["algorithm"] = "ss_xgb"  # claim another algorithm ran
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(raw))
    bad = CliRunner().invoke(app, ["verify", str(tampered), *pinned])
    assert bad.exit_code == 1
    assert "record_hash" in bad.output and "INVALID" in bad.output

    raw = json.loads(bundle.read_text())
    raw["receipts"][0]["contract"] = ledger_stack.deployment.address_of("ConsortiumRegistry")
    tampered.write_text(json.dumps(raw))
    other = CliRunner().invoke(app, ["verify", str(tampered), *pinned])
    assert other.exit_code == 1 and "INVALID" in other.output
    assert "contract_pinned at seq 0" in other.output

    raw = json.loads(bundle.read_text())
    del raw["records"][5], raw["receipts"][5]
    tampered.write_text(json.dumps(raw))
    removed = CliRunner().invoke(app, ["verify", str(tampered), *pinned])
    assert removed.exit_code == 1
    assert "[FAIL] seqs" in removed.output and "[FAIL] step_count" in removed.output


def test_verify_refuses_to_run_without_a_pin(ledger_stack: LedgerStack, tmp_path: Path) -> None:
    receipt = tmp_path / "receipt.json"
    receipt.write_text("{}")
    unpinned = CliRunner().invoke(app, ["verify", str(receipt), "--rpc", ledger_stack.rpc_url])
    assert unpinned.exit_code == 1
    assert "nothing to verify against" in unpinned.output and "--deployment FILE" in unpinned.output
    half = CliRunner().invoke(
        app, ["verify", str(receipt), "--rpc", ledger_stack.rpc_url, "--ledger", "0x" + "12" * 20]
    )
    assert half.exit_code == 1 and "--code-hash is missing" in half.output


def test_reconcile_is_clean_then_flags_a_record_changed_in_the_db(
    ledger_stack: LedgerStack, store: SqlLedgerStore, ledger_db_url: str, anchored_job: str, tmp_path: Path
) -> None:
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    args = ["audit", "reconcile", "--rpc-url", ledger_stack.rpc_url, "--deployment", str(deployment)]
    args += ["--database-url", ledger_db_url]
    clean = CliRunner().invoke(app, args)
    assert clean.exit_code == 0, clean.output

    with store.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE step_records SET record_json = "
                "replace(record_json, '\"psi\"', '\"vif\"') WHERE seq = 7"
            )
        )
    flagged = CliRunner().invoke(app, [*args, "--json"])
    assert flagged.exit_code == 1
    report = json.loads(flagged.output)
    assert any(f["kind"] == "tampered" and f["seq"] == 7 for f in report["findings"])


def test_algorithms_json_lists_all_sixteen_with_parameter_schemas() -> None:
    result = CliRunner().invoke(app, ["algorithms", "--json"])
    assert result.exit_code == 0, result.output
    described = {a["name"]: a for a in json.loads(result.output)}
    assert set(described) >= {
        "psi",
        "ss_lr",
        "ss_xgb",
        "standard_scaler",
        "min_max_scaler",
        "label_encoder",
        "one_hot_encoder",
        "quantile_binning",
        "equal_width_binning",
        "fillna",
        "table_statistics",
        "pearson_correlation",
        "vif",
        "biclassification_eval",
        "regression_eval",
        "secure_predict",
    }
    assert described["ss_lr"]["params_schema"]["type"] == "object"
    assert all(a["reveals"] for a in described.values())


def test_reconcile_never_creates_a_store_and_never_calls_an_empty_one_clean(
    ledger_stack: LedgerStack, tmp_path: Path
) -> None:
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    args = ["audit", "reconcile", "--rpc-url", ledger_stack.rpc_url, "--deployment", str(deployment)]
    missing = tmp_path / "nowhere.db"
    absent = CliRunner().invoke(app, [*args, "--database-url", f"sqlite:///{missing}"])
    assert absent.exit_code == 1, absent.output
    assert f"no ledger database at {missing}" in absent.output and "--database-url" in absent.output
    assert not missing.exists()

    empty_db = tmp_path / "empty.db"
    created = CliRunner().invoke(app, ["db", "upgrade", "--url", f"sqlite:///{empty_db}"])
    assert created.exit_code == 0, created.output
    assert f"sqlite:///{empty_db}: migrated from empty to " in created.output
    again = CliRunner().invoke(app, ["db", "upgrade", "--url", f"sqlite:///{empty_db}"])
    assert "already at the newest schema" in again.output
    empty = CliRunner().invoke(app, [*args, "--database-url", f"sqlite:///{empty_db}"])
    assert empty.exit_code == 1, empty.output
    assert "0 records in 0 batches of 0 jobs" in empty.output and "holds no records" in empty.output
    assert "clean" not in empty.output
    allowed = CliRunner().invoke(app, [*args, "--database-url", f"sqlite:///{empty_db}", "--allow-empty"])
    assert allowed.exit_code == 0, allowed.output


def test_db_upgrade_refuses_a_missing_folder(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "x.db"
    result = CliRunner().invoke(app, ["db", "upgrade", "--url", f"sqlite:///{target}"])
    assert result.exit_code == 1, result.output
    assert f"the folder {target.parent} does not exist" in result.output
    assert not (tmp_path / "no").exists()


@pytest.fixture(scope="module")
def client_stack(evm_chain: DevChain) -> LedgerStack:
    """The contracts deployed once per EVM client (anvil, then hardhat's node set up like Besu)."""
    return deploy_ledger_stack(evm_chain.rpc_url)


def test_anchor_close_and_verify_end_to_end_on_each_evm_client(
    evm_chain: DevChain, client_stack: LedgerStack, tmp_path: Path
) -> None:
    """The anchoring worker anchors a job's signed records in batches and closes the job with the proof
    of its last record; `secureflow verify` finds the bundle VALID against the pinned deployment and a
    tampered copy INVALID. Also on hardhat's node, which mines failures with status 0, answers
    eth_gasPrice with 8 gwei and gives receipts without effectiveGasPrice, as Besu/GoQuorum may."""
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        job = new_job(store, 5151, steps=6)
        open_job_on_chain(client_stack, job, 5151, steps=6)
        store.update_job(job, chain_status="confirmed")
        accept(store, job, 6, signed=True)
        worker = AnchoringWorker(make_anchorer(client_stack, store, max_batch_size=4)).start()
        try:
            assert worker.drain(60), f"records not anchored: {worker.last_error}"
            OutboxRecorder(store).close_job(job, succeeded=True)
            assert worker.drain(60), f"job not closed: {worker.last_error}"
        finally:
            worker.stop()
        closed = store.get_job(job)
        assert closed is not None and closed.close_status == "confirmed"
        assert len({r.batch_id for r in store.records_for_job(job)}) == 2  # 4 + 2
        address = client_stack.deployment.address_of("AuditLedger")
        bundle = write_bundle(
            build_bundle(store, 1337, address, job, manifest=manifest_of(5151, 6)), tmp_path / "bundle.json"
        )
    finally:
        store.close()
    deployment = tmp_path / "deployment.json"
    write_deployment(client_stack.deployment, deployment)
    pinned = ["--rpc", evm_chain.rpc_url, "--deployment", str(deployment)]
    ok = CliRunner().invoke(app, ["verify", str(bundle), *pinned])
    assert ok.exit_code == 0, ok.output
    assert "VALID, 6/6 receipts valid" in ok.output and "INVALID" not in ok.output
    raw = json.loads(bundle.read_text())
    raw["receipts"][2]["record"]["algorithm"] = "ss_xgb"  # claim another algorithm ran
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(raw))
    bad = CliRunner().invoke(app, ["verify", str(tampered), *pinned])
    assert bad.exit_code == 1 and "record_hash" in bad.output and "INVALID" in bad.output
