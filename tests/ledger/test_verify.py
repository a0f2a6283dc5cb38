"""Standalone receipt verification against a real anvil: each check fails for the right reason, and only it.

One job of 7 records is anchored once per module (receipts come from a SQLite
store; verification itself never touches a database). Every tampering case
changes one receipt field and asserts which checks fail and which are skipped.
The receipt also checks out with @openzeppelin/merkle-tree's
``StandardMerkleTree.verify`` (the JS reference implementation).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from test_receipts import LedgerEnv, anchor_pending, deploy_env, new_job

from secureflow.ledger._internal.toolchain import node_executable, node_modules
from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.devchain import DevChain, free_port, rpc_call
from secureflow.ledger.errors import NodeUnreachableError
from secureflow.ledger.receipts import Receipt, build_bundle, build_receipt, write_bundle, write_receipt
from secureflow.ledger.store import SqlLedgerStore, open_store
from secureflow.ledger.verify import CHECK_ORDER, LEDGER_VIEW_ABI, verify_file, verify_receipt

_OZ_VERIFY = """
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const receipts = JSON.parse(input);
  const results = receipts.map((r) => StandardMerkleTree.verify(
    r.batch_root, ['bytes32', 'uint64', 'bytes32'], [r.job_id, String(r.seq), r.record_hash], r.proof));
  process.stdout.write(JSON.stringify(results));
});
"""


class Anchored:
    def __init__(self, env: LedgerEnv, store: SqlLedgerStore, job_id: str, manifest: dict[str, Any]) -> None:
        self.env, self.store, self.job_id, self.manifest = env, store, job_id, manifest

    def receipt(self, seq: int = 3) -> dict[str, Any]:
        receipt = build_receipt(self.store, self.env.chain_id, self.env.contract, self.job_id, seq)
        data: dict[str, Any] = json.loads(receipt.model_dump_json())
        return data


@pytest.fixture(scope="module")
def anchored(devchain: DevChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anchored]:
    env = deploy_env(devchain)
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('verify') / 'ledger.db'}")
    try:
        job_id, manifest, _ = new_job(store, env, 7)
        anchor_pending(store, env)
        yield Anchored(env, store, job_id, manifest)
    finally:
        store.close()


def _statuses(receipt: dict[str, Any], rpc: str, **kwargs: Any) -> dict[str, str]:
    verdict = verify_receipt(receipt, rpc, **kwargs)
    return {check.name: check.status for check in verdict.checks}


def _flip(hex32: str) -> str:
    return hex32[:-1] + ("0" if hex32[-1] != "0" else "1")


def test_an_untouched_receipt_passes_every_check(anchored: Anchored) -> None:
    verdict = verify_receipt(anchored.receipt(), anchored.env.rpc_url)
    assert [c.name for c in verdict.checks] == list(CHECK_ORDER)
    assert verdict.ok and verdict.first_failure is None and verdict.failed == []
    assert "on-chain verify(leaf, proof, root) is true" in verdict.check("root_anchored").detail
    assert "BatchAnchored" in verdict.check("block_canonical").detail


def _set(key: str, value: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(receipt: dict[str, Any]) -> None:
        receipt[key] = value(receipt)

    return mutate


def _record_field(receipt: dict[str, Any]) -> None:
    receipt["record"]["algorithm"] = "ss_xgb"


def _proof_element(receipt: dict[str, Any]) -> None:
    receipt["proof"][1] = _flip(receipt["proof"][1])


LOCAL = ("record_hash", "leaf", "proof")
CHAIN = ("chain_id", "contract_code", "root_anchored", "block_canonical", "confirmations")

# mutation -> (failed checks, skipped checks, text in the first failure's detail)
TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], set[str], set[str], str]] = {
    "record field changed": (
        _record_field,
        {"record_hash"},
        {"leaf", "proof", "root_anchored"},
        "the receipt says record_hash",
    ),
    "record_hash changed": (
        _set("record_hash", lambda r: _flip(r["record_hash"])),
        {"record_hash"},
        {"leaf", "proof", "root_anchored"},
        "the record hashes to",
    ),
    "leaf changed": (
        _set("leaf", lambda r: _flip(r["leaf"])),
        {"leaf"},
        {"proof", "root_anchored"},
        "the receipt says leaf",
    ),
    "record moved to another seq": (
        _set("seq", lambda r: r["seq"] + 1),
        {"leaf"},
        {"proof", "root_anchored"},
        "the receipt says job",
    ),
    "proof element changed": (
        _proof_element,
        {"proof"},
        {"root_anchored"},
        "-step proof leads from the leaf",
    ),
    "wrong root": (
        _set("batch_root", lambda r: "0x" + keccak(b"another root").hex()),
        {"proof", "block_canonical"},  # the transaction emitted BatchAnchored for the real root
        {"root_anchored", "confirmations"},
        "the receipt says batch_root",
    ),
    "wrong block hash": (
        _set("block_hash", lambda r: _flip(r["block_hash"])),
        {"block_canonical"},
        {"confirmations"},
        "the receipt says",
    ),
    "wrong block number": (
        _set("block_number", lambda r: r["block_number"] - 1),
        {"root_anchored", "block_canonical"},
        {"confirmations"},
        "was anchored at block",
    ),
    "wrong tx hash": (
        _set("tx_hash", lambda r: "0x" + keccak(b"no such tx").hex()),
        {"block_canonical"},
        {"confirmations"},
        "does not know transaction",
    ),
    "wrong chain id": (
        _set("chain_id", lambda r: 10),
        {"chain_id"},
        {"contract_code", "root_anchored", "block_canonical", "confirmations"},
        "the node serves chain id 1337, the receipt is for chain id 10",
    ),
    "wrong contract address (no code)": (
        _set("contract", lambda r: "0x" + "12" * 20),
        {"contract_code", "block_canonical"},
        {"root_anchored", "confirmations"},
        "no contract code at",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_a_tampered_receipt_fails_exactly_the_right_checks(anchored: Anchored, case: str) -> None:
    mutate, failed, skipped, reason = TAMPERING[case]
    receipt = anchored.receipt()
    mutate(receipt)
    verdict = verify_receipt(receipt, anchored.env.rpc_url)
    statuses = {c.name: c.status for c in verdict.checks}
    assert {name for name, s in statuses.items() if s == "failed"} == failed, verdict.checks
    assert {name for name, s in statuses.items() if s == "skipped"} == skipped, verdict.checks
    assert {name for name, s in statuses.items() if s == "passed"} == set(CHECK_ORDER) - failed - skipped
    first = verdict.first_failure
    assert first is not None and reason in first.detail, first
    assert not verdict.ok and f"INVALID, {first.name} failed" in verdict.summary()


def test_another_contract_with_code_is_not_the_ledger(anchored: Anchored, devchain: DevChain) -> None:
    """The registry has code, but it never anchored the root: the ledger checks fail."""
    receipt = anchored.receipt()
    registry = anchored.env.creator.contract.functions.registry().call()
    receipt["contract"] = registry
    statuses = _statuses(receipt, devchain.rpc_url)
    assert statuses["contract_code"] == "passed"
    assert statuses["root_anchored"] == "failed"
    assert statuses["block_canonical"] == "failed"


def test_too_few_confirmations(anchored: Anchored) -> None:
    receipt = anchored.receipt()
    head = anchored.env.client.w3.eth.block_number
    confirmations = head - receipt["block_number"] + 1
    verdict = verify_receipt(receipt, anchored.env.rpc_url, min_confirmations=confirmations + 2)
    assert verdict.failed == ["confirmations"]
    assert f"{confirmations} confirmation(s)" in verdict.check("confirmations").detail
    assert f"{confirmations + 2} required" in verdict.check("confirmations").detail

    rpc_call(anchored.env.rpc_url, "anvil_mine", ["0x2"])
    assert verify_receipt(receipt, anchored.env.rpc_url, min_confirmations=confirmations + 2).ok


def test_a_malformed_receipt_is_reported_not_raised(anchored: Anchored) -> None:
    receipt = anchored.receipt()
    receipt["proof"] = ["0xnothex"]
    verdict = verify_receipt(receipt, anchored.env.rpc_url)
    assert verdict.failed == ["receipt_format"]
    assert all(c.status == "skipped" for c in verdict.checks[1:])
    assert "proof.0" in verdict.check("receipt_format").detail

    not_a_step = anchored.receipt()
    not_a_step["record"]["raw_values"] = [1.5, 2.5]  # a record can never carry raw data
    verdict = verify_receipt(not_a_step, anchored.env.rpc_url)
    assert verdict.failed == ["record_hash"]
    assert "not a valid step record" in verdict.check("record_hash").detail

    assert verify_receipt({}, anchored.env.rpc_url).failed == ["receipt_format"]


def test_an_unreachable_node_raises_a_clear_error(anchored: Anchored) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NodeUnreachableError, match=f"cannot reach the JSON-RPC node at {url}") as raised:
        verify_receipt(anchored.receipt(), url, timeout=2)
    assert "--rpc" in str(raised.value)


def test_receipt_verifies_with_openzeppelin_merkle_tree(anchored: Anchored) -> None:
    receipts = [anchored.receipt(seq) for seq in range(7)]
    tampered = dict(receipts[0], record_hash=_flip(receipts[0]["record_hash"]))
    result = subprocess.run(
        [node_executable(), "-e", _OZ_VERIFY],
        input=json.dumps([*receipts, tampered]),
        capture_output=True,
        text=True,
        check=True,
        cwd=node_modules().parent,
        timeout=60,
    )
    assert json.loads(result.stdout) == [True] * 7 + [False]


def test_verify_file_takes_a_receipt_or_a_bundle(anchored: Anchored, tmp_path: Path) -> None:
    env = anchored.env
    receipt = Receipt.model_validate(anchored.receipt())
    single = verify_file(write_receipt(receipt, tmp_path / "receipt.json"), env.rpc_url)
    assert single.ok and single.receipt is not None and single.bundle is None
    assert single.lines()[-1].endswith("VALID (9 checks passed)")

    bundle = build_bundle(
        anchored.store, env.chain_id, env.contract, anchored.job_id, manifest=anchored.manifest
    )
    result = verify_file(write_bundle(bundle, tmp_path / "bundle.json"), env.rpc_url)
    assert result.ok and result.bundle is not None and len(result.bundle.receipts) == 7
    assert "7/7 receipts valid" in result.lines()[-1]

    (tmp_path / "broken.json").write_text(json.dumps({**json.loads(receipt.to_json()), "leaf": "0x12"}))
    broken = verify_file(tmp_path / "broken.json", env.rpc_url)
    assert not broken.ok and broken.receipt is not None and broken.receipt.failed == ["receipt_format"]
    assert any(line.startswith("[FAIL] receipt_format") for line in broken.lines())


def test_the_declared_views_match_the_audit_ledger_artifact() -> None:
    artifact = {entry.get("name"): entry for entry in load_artifact("AuditLedger").abi}
    for entry in LEDGER_VIEW_ABI:
        declared = artifact[entry["name"]]
        assert [i["type"] for i in declared["inputs"]] == [i["type"] for i in entry["inputs"]]
        assert declared["outputs"] == entry["outputs"]
    event = artifact["BatchAnchored"]
    assert [(i["type"], i["indexed"]) for i in event["inputs"]] == [
        ("bytes32", True),
        ("bytes32", True),
        ("uint32", False),
        ("address", True),
    ]
