"""Party worker lifecycle (no orphans), the registry, signatures and the import boundary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from cf_helpers import manifest, put
from eth_account import Account

from secureflow.compute.errors import ComputeError
from secureflow.compute.registry import algorithm_names, describe_algorithms
from secureflow.compute.runner import run_job
from secureflow.compute.worker.engine import REPO_ROOT
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import PartyDigests, StepRecord, params_hash
from secureflow.ledger.signing import recover_party, sign_party, signing_payload, verify_party_signature
from secureflow.ledger.store import open_store

ALGORITHMS = {
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except OSError:
        return False


def test_registry_lists_all_algorithms_with_schemas() -> None:
    assert set(algorithm_names()) == ALGORITHMS
    described = describe_algorithms()
    json.dumps(described)  # the CLI prints it as JSON
    for entry in described:
        assert entry["params_schema"]["type"] == "object"
        assert entry["reveals"] and entry["roles"] and entry["summary"]
    lr = next(e for e in described if e["name"] == "ss_lr")
    assert lr["params_schema"]["properties"]["epochs"]["minimum"] == 1
    assert lr["spu_profile"] == "default"
    assert next(e for e in described if e["name"] == "vif")["spu_profile"] == "precise"


def test_compute_never_imports_web3_or_secretflow_in_the_coordinator() -> None:
    code = textwrap.dedent(
        """
        import sys
        import secureflow.compute.runner, secureflow.compute.registry, secureflow.compute.manifest
        import secureflow.compute.worker.engine
        secureflow.compute.registry.describe_algorithms()
        bad = [m for m in sys.modules if m.split('.')[0] in ('web3', 'secretflow', 'spu')]
        print(bad)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def _record(party: str) -> StepRecord:
    return StepRecord(
        job_id="0x" + "ab" * 32,
        seq=3,
        algorithm="psi",
        params_hash=params_hash({"key": "id"}, None),
        code_version="secureflow-0.1.0",
        parties=(
            PartyDigests(party=party, inputs={"raw": "0x" + "01" * 32}, outputs={"j": "0x" + "02" * 32}),
            PartyDigests(party="0x" + "22" * 20),
        ),
        status="succeeded",
        started_at_ms=1,
        finished_at_ms=2,
    )


def test_party_signature_verifies_to_the_party_address() -> None:
    acct = Account.create()
    rec = _record(acct.address)
    mine = rec.parties[0]
    sig = sign_party(rec, mine, bytes(acct.key))
    assert len(sig) == 132 and sig == sig.lower()
    signed = rec.model_copy(update={"parties": (mine.model_copy(update={"signature": sig}), rec.parties[1])})
    signed = StepRecord.model_validate(signed.model_dump())
    assert verify_party_signature(signed, signed.parties[0])
    assert recover_party(signed, signed.parties[0]) == acct.address
    # the payload is the record with only this party's digests, unsigned
    payload = json.loads(signing_payload(signed, signed.parties[0]))
    assert payload["parties"] == [{**mine.model_dump(mode="json"), "signature": None}]
    # any change to the record breaks the signature
    tampered = StepRecord.model_validate({**signed.model_dump(), "status": "failed", "error_class": "X"})
    assert not verify_party_signature(tampered, tampered.parties[0])


def test_engine_rejects_bad_party_sets(tmp_path: Path) -> None:
    from secureflow.compute.worker.engine import Engine

    with pytest.raises(ComputeError):
        Engine(["alice"], tmp_path)
    with pytest.raises(ComputeError):
        Engine(["alice", "alice"], tmp_path)


def test_workers_die_with_their_coordinator(tmp_path: Path) -> None:
    """kill -9 of the coordinator leaves no worker behind (parent-death signal + parent watch)."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from secureflow.compute.worker.engine import Engine
        e = Engine(["alice", "bob"], {str(tmp_path)!r})
        t = time.monotonic()
        e.start()
        pids = " ".join(str(w.proc.pid) for w in e.workers.values())
        print(pids, round(time.monotonic() - t, 2), flush=True)
        time.sleep(600)
        """
    )
    coord = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, start_new_session=True
    )
    try:
        line = coord.stdout.readline().split()  # type: ignore[union-attr]
        assert len(line) == 3, "the coordinator did not start its workers"
        pids = [int(p) for p in line[:2]]
        assert all(_alive(p) for p in pids)
        coord.send_signal(signal.SIGKILL)
        coord.wait(10)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids), "a party worker outlived its coordinator"
    finally:
        if coord.poll() is None:
            os.killpg(coord.pid, signal.SIGKILL)


def test_shutdown_leaves_no_process_and_restart_is_warm_again(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine.ensure_healthy()
    pids = [w.proc.pid for w in engine.workers.values()]
    addresses = dict(engine.addresses)
    engine.shutdown()
    assert not any(_alive(p) for p in pids)
    assert engine.workers == {}
    engine.ensure_healthy()
    assert engine.addresses == addresses  # member keys persist in each party's secrets dir
    restarted = {p: w.proc.pid for p, w in engine.workers.items()}
    assert set(restarted) == {"alice", "bob"} and not set(restarted.values()) & set(pids)  # new processes
    # each sent "ready" (SecretFlow imported, sf.init and SPU links done) before the engine returned
    assert all(set(w.timings) == {"import_s", "init_s", "prewarmed"} for w in engine.workers.values())
    assert all(w.timings["prewarmed"] == 0.0 for w in engine.workers.values())  # local mode: spawned cold
    replies = engine.ping()
    assert {r["party"] for r in replies.values()} == {"alice", "bob"}
    # warm: two jobs in a row run on these same processes, nothing is started again
    starts = engine.starts
    for n in (1, 2):
        ids = pd.DataFrame({"id": range(20)})
        m = manifest(
            engine,
            {"t": {p: put(engine, p, f"warm_{n}_{p}.csv", ids) for p in ("alice", "bob")}},
            [{"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "t"}}],
        )
        store = open_store(f"sqlite:///{tmp_path / f'warm{n}.db'}")
        try:
            res = run_job(engine, m, OutboxRecorder(store))
        finally:
            store.close()
        assert res.succeeded, res.error_message
        assert {p: w.proc.pid for p, w in engine.workers.items()} == restarted, f"job {n} restarted a worker"
    assert engine.starts == starts
    mode = os.stat(engine.party_dir("alice") / "secrets" / "member.key").st_mode & 0o777
    assert mode == 0o600
