"""Model integrity before use (issue 11 item 6), on the real chain and the session's warm party workers.

One SS-LR model is trained by a job created on the session's anvil with both parties' consents, and the
real anchoring worker records its hash (``recordModel``). Then: the untampered model predicts and
``secureflow model verify`` passes for each party; a changed share file, a meta.json changed with its
local ``model_hash`` recomputed, and a version that was never anchored are each refused before anything
is loaded (the error names the model and version and what differs) and fail ``secureflow model verify``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cf_helpers import manifest, put, read, vertical_data
from model_chain import anchors, flip_last_byte, run_on_chain
from stack import LedgerStack
from typer.testing import CliRunner

from secureflow.api.cli.main import app
from secureflow.compute.errors import ModelIntegrityError, ModelNotAnchoredError
from secureflow.compute.models import model_hash
from secureflow.compute.runner import run_job
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.store import open_store

FEATS = ["a0", "a1", "a2", "b0", "b1", "b2"]
PSI = {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}}
SCALE = {
    "algorithm": "standard_scaler",
    "params": {"columns": FEATS},
    "inputs": {"table": "j"},
    "outputs": {"table": "s"},
}


def _predict(out: str) -> dict[str, Any]:
    return {
        "algorithm": "secure_predict",
        "params": {"receiver": "bob"},
        "inputs": {"table": "s", "model": "lr"},
        "save": {"table": out},
    }


@dataclass
class Anchored:
    engine: Engine
    stack: LedgerStack
    recorder: OutboxRecorder
    raw: dict[str, dict[str, str]]
    model_id: str
    job_id: str
    deployment: Path

    def predict(self, out: str, **kwargs: Any) -> Any:
        m = manifest(self.engine, self.raw, [PSI, SCALE, _predict(out)], models={"lr": self.model_id})
        kwargs.setdefault("model_anchors", anchors(self.stack))
        return run_job(self.engine, m, self.recorder, **kwargs)

    def model_dir(self, party: str) -> Path:
        return self.engine.models_dir(party) / self.model_id

    def verify(self, party: str, *extra: str) -> Any:
        args = ["model", "verify", self.model_id, "--data-dir", str(self.engine.party_dir(party))]
        pinned = ["--rpc-url", self.stack.rpc_url, "--deployment", str(self.deployment)]
        return CliRunner().invoke(app, [*args, *pinned, *extra])


@pytest.fixture(scope="module")
def anchored(
    engine: Engine, ledger_stack: LedgerStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Anchored]:
    tmp = tmp_path_factory.mktemp("integrity")
    deployment = tmp / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    alice, bob = vertical_data(300, seed=61)
    raw = {
        "raw": {"alice": put(engine, "alice", "mi_a.csv", alice), "bob": put(engine, "bob", "mi_b.csv", bob)}
    }
    train = {
        "algorithm": "ss_lr",
        "params": {"label": "y", "features": FEATS, "epochs": 2},
        "inputs": {"table": "s"},
        "outputs": {"model": "lr"},
    }
    store = open_store(f"sqlite:///{tmp / 'ledger.db'}")
    try:
        recorder = OutboxRecorder(store)
        res = run_on_chain(ledger_stack, engine, manifest(engine, raw, [PSI, SCALE, train]), recorder)
        (meta,) = res.models
        yield Anchored(engine, ledger_stack, recorder, raw, meta["model_id"], res.job_id, deployment)
    finally:
        store.close()


def test_untampered_model_predicts_and_verifies(anchored: Anchored) -> None:
    res = anchored.predict("out/mi/ok.csv")
    assert res.succeeded, res.error_message
    assert len(read(anchored.engine, "bob", "out/mi/ok.csv")) > 0
    for party in ("alice", "bob"):
        out = anchored.verify(party)
        assert out.exit_code == 0, out.output
        for check in ("metadata", "version", "share_digests", "deployment", "onchain_hash", "lineage"):
            assert f"[ok  ] {check}" in out.output, out.output
        assert "VALID (6 checks passed)" in out.output
    as_json = anchored.verify("bob", "--json", "--version", "1")
    assert as_json.exit_code == 0, as_json.output
    verdict = json.loads(as_json.stdout)
    assert (verdict["ok"], verdict["party"], verdict["version"], verdict["failed"]) == (True, "bob", 1, [])
    assert [c["name"] for c in verdict["checks"] if c["status"] == "passed"] == [
        "metadata",
        "version",
        "share_digests",
        "deployment",
        "onchain_hash",
        "lineage",
    ]


def test_tampered_share_is_refused(anchored: Anchored) -> None:
    share = anchored.model_dir("alice") / "share-alice.bin"
    original = flip_last_byte(share)
    try:
        with pytest.raises(ModelIntegrityError) as refused:
            anchored.predict("out/mi/tampered-share.csv")
        message = str(refused.value)
        assert f"model {anchored.model_id!r} version 1" in message
        assert "party 'alice'" in message and "share-alice.bin" in message
        assert "do not hash to the share digest" in message
        assert not (anchored.engine.data_dir("bob") / "out/mi/tampered-share.csv").exists()

        out = anchored.verify("alice")
        assert out.exit_code == 1, out.output
        assert "[FAIL] share_digests" in out.output
        assert "INVALID, failed: share_digests" in out.output
        assert "[ok  ] onchain_hash" in out.output  # the metadata itself is still the anchored one
        assert anchored.verify("bob").exit_code == 0  # each party checks only its own shares
    finally:
        share.write_bytes(original)
    assert anchored.predict("out/mi/after-share.csv").succeeded  # the workers stayed usable


def _rewrite_meta(anchored: Anchored, change: Any) -> dict[str, bytes]:
    """Apply ``change`` to every party's meta.json and recompute its local model_hash (consistent files)."""
    originals = {}
    for party in ("alice", "bob"):
        path = anchored.model_dir(party) / "meta.json"
        originals[party] = path.read_bytes()
        meta = json.loads(originals[party])
        change(meta)
        meta["model_hash"] = model_hash(meta)
        path.write_text(json.dumps(meta))
    return originals


def _restore(anchored: Anchored, originals: dict[str, bytes]) -> None:
    for party, data in originals.items():
        (anchored.model_dir(party) / "meta.json").write_bytes(data)


def test_tampered_meta_differs_from_the_chain(anchored: Anchored) -> None:
    def more_epochs(meta: dict[str, Any]) -> None:
        meta["params"]["epochs"] = 20

    originals = _rewrite_meta(anchored, more_epochs)
    try:
        with pytest.raises(ModelIntegrityError) as refused:
            anchored.predict("out/mi/tampered-meta.csv")
        message = str(refused.value)
        assert f"model {anchored.model_id!r} version 1" in message
        assert "differs from the hash" in message and "anchored on chain" in message
        assert not isinstance(refused.value, ModelNotAnchoredError)

        out = anchored.verify("alice")
        assert out.exit_code == 1, out.output
        assert "[FAIL] onchain_hash" in out.output
        assert "INVALID, failed: onchain_hash" in out.output
        assert "[ok  ] share_digests" in out.output
    finally:
        _restore(anchored, originals)


def test_unanchored_model_is_refused(anchored: Anchored) -> None:
    def next_version(meta: dict[str, Any]) -> None:
        meta["version"] = 2

    originals = _rewrite_meta(anchored, next_version)
    try:
        with pytest.raises(ModelNotAnchoredError, match="version 2 is not anchored on chain"):
            anchored.predict("out/mi/unanchored.csv")
        out = anchored.verify("alice", "--json")
        assert out.exit_code == 1, out.output
        verdict = json.loads(out.stdout)
        assert verdict["failed"] == ["onchain_hash"]
        detail = next(c["detail"] for c in verdict["checks"] if c["name"] == "onchain_hash")
        assert "not anchored" in detail and "latest anchored version: 1" in detail
    finally:
        _restore(anchored, originals)
    # without an on-chain lookup the runner cannot check the anchor: it refuses rather than trust the files
    with pytest.raises(ModelNotAnchoredError, match="no on-chain lookup"):
        anchored.predict("out/mi/no-lookup.csv", model_anchors=None)


def test_asked_version_must_be_the_stored_one(anchored: Anchored) -> None:
    out = anchored.verify("alice", "--version", "2")
    assert out.exit_code == 1, out.output
    assert "[FAIL] version" in out.output and "[FAIL] onchain_hash" in out.output
