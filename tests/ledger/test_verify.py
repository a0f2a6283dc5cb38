"""Standalone receipt verification against a real anvil: each check fails for the right reason, and only it.

One job of 7 records is anchored once per module (receipts come from a SQLite
store; verification itself never touches a database). Every tampering case
changes one receipt field and asserts which checks fail and which are skipped.
The receipt also checks out with @openzeppelin/merkle-tree's
``StandardMerkleTree.verify`` (the JS reference implementation).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from eth_account import Account
from eth_typing import HexStr
from eth_utils.crypto import keccak
from test_receipts import (
    LedgerEnv,
    anchor_pending,
    build_pending_batch,
    deploy_env,
    new_job,
    outbox_row,
    pin_of,
    sign_records,
    step_records,
)

from secureflow.ledger._internal.toolchain import node_executable, node_modules
from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.chain import TransactionSender
from secureflow.ledger.consent import sign_consent
from secureflow.ledger.contracts import ANCHOR_ROLE, AuditLedgerClient, RegistryClient, hex32
from secureflow.ledger.deploy import connect, deploy_contracts
from secureflow.ledger.devchain import DEV_PRIVATE_KEYS, DevChain, free_port, rpc_call
from secureflow.ledger.errors import NodeUnreachableError
from secureflow.ledger.merkle import MerkleTree
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.receipts import (
    AuditBundle,
    Receipt,
    build_bundle,
    build_receipt,
    write_bundle,
    write_receipt,
)
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.records import StepRecord, job_id_for, manifest_commitment, new_job_secret, params_hash
from secureflow.ledger.settlement.client import SettlementClient
from secureflow.ledger.settlement.contribution import (
    ContributionProposal,
    DataShareInputs,
    PartyData,
    prepare_contribution,
)
from secureflow.ledger.signing import sign_party
from secureflow.ledger.store import SqlLedgerStore, open_store
from secureflow.ledger.store.schemas import Batch, NewJob
from secureflow.ledger.verify import (
    BUNDLE_CHECK_ORDER,
    CHECK_ORDER,
    LEDGER_VIEW_ABI,
    REGISTRY_VIEW_ABI,
    BundleVerdict,
    PinnedDeployment,
    verify_bundle,
    verify_file,
    verify_receipt,
)

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
        self.pin = pin_of(env)

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


def _statuses(receipt: dict[str, Any], rpc: str, pin: PinnedDeployment, **kwargs: Any) -> dict[str, str]:
    verdict = verify_receipt(receipt, rpc, pin, **kwargs)
    return {check.name: check.status for check in verdict.checks}


def _flip(hex32: str) -> str:
    return hex32[:-1] + ("0" if hex32[-1] != "0" else "1")


def test_an_untouched_receipt_passes_every_check(anchored: Anchored) -> None:
    verdict = verify_receipt(anchored.receipt(), anchored.env.rpc_url, anchored.pin)
    assert [c.name for c in verdict.checks] == list(CHECK_ORDER)
    assert verdict.ok and verdict.first_failure is None and verdict.failed == [] and verdict.warnings == []
    assert "on-chain verify(leaf, proof, root) is true" in verdict.check("root_anchored").detail
    assert "BatchAnchored" in verdict.check("block_canonical").detail
    assert "held ANCHOR_ROLE" in verdict.check("anchor_role").detail
    assert "signed by every job party on chain" in verdict.check("party_signatures").detail
    assert anchored.env.contract in verdict.pinned and "pinned by a deployment file" in verdict.pinned


def _set(key: str, value: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(receipt: dict[str, Any]) -> None:
        receipt[key] = value(receipt)

    return mutate


def _record_field(receipt: dict[str, Any]) -> None:
    receipt["record"]["algorithm"] = "ss_xgb"


def _proof_element(receipt: dict[str, Any]) -> None:
    receipt["proof"][1] = _flip(receipt["proof"][1])


# mutation -> (failed checks, skipped checks, text in the first failure's detail)
TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], set[str], set[str], str]] = {
    "record field changed": (
        _record_field,
        {"record_hash"},
        {"leaf", "proof", "root_anchored", "party_signatures"},
        "the receipt says record_hash",
    ),
    "record_hash changed": (
        _set("record_hash", lambda r: _flip(r["record_hash"])),
        {"record_hash"},
        {"leaf", "proof", "root_anchored", "party_signatures"},
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
        {"root_anchored", "anchor_role", "confirmations"},
        "the receipt says batch_root",
    ),
    "wrong block hash": (
        _set("block_hash", lambda r: _flip(r["block_hash"])),
        {"block_canonical"},
        {"anchor_role", "confirmations"},
        "the receipt says",
    ),
    "wrong block number": (
        _set("block_number", lambda r: r["block_number"] - 1),
        {"root_anchored", "block_canonical"},
        {"anchor_role", "confirmations"},
        "was anchored at block",
    ),
    "wrong tx hash": (
        _set("tx_hash", lambda r: "0x" + keccak(b"no such tx").hex()),
        {"block_canonical"},
        {"anchor_role", "confirmations"},
        "does not know transaction",
    ),
    "wrong batch id": (
        _set("batch_id", lambda r: _flip(r["batch_id"])),
        {"block_canonical"},
        {"anchor_role", "confirmations"},
        "the receipt says batch",
    ),
    "wrong anchorer": (
        _set("anchorer", lambda r: "0x" + "12" * 20),
        {"anchor_role"},
        set(),
        "the receipt says 0x1212",
    ),
    "wrong chain id": (
        _set("chain_id", lambda r: 10),
        {"chain_id"},
        {"code_hash", "root_anchored", "block_canonical", "anchor_role", "party_signatures", "confirmations"},
        "the node serves chain id 1337, the receipt is for chain id 10",
    ),
    "wrong contract address (no code)": (
        _set("contract", lambda r: "0x" + "12" * 20),
        {"contract_pinned"},
        set(),
        "the pinned ledger is",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_a_tampered_receipt_fails_exactly_the_right_checks(anchored: Anchored, case: str) -> None:
    mutate, failed, skipped, reason = TAMPERING[case]
    receipt = anchored.receipt()
    mutate(receipt)
    verdict = verify_receipt(receipt, anchored.env.rpc_url, anchored.pin)
    statuses = {c.name: c.status for c in verdict.checks}
    assert {name for name, s in statuses.items() if s == "failed"} == failed, verdict.checks
    assert {name for name, s in statuses.items() if s == "skipped"} == skipped, verdict.checks
    assert {name for name, s in statuses.items() if s == "passed"} == set(CHECK_ORDER) - failed - skipped
    first = verdict.first_failure
    assert first is not None and reason in first.detail, first
    assert not verdict.ok and f"INVALID, {first.name} failed" in verdict.summary()


def test_another_contract_with_code_is_not_the_ledger(anchored: Anchored, devchain: DevChain) -> None:
    """A receipt naming the registry (which has code) fails contract_pinned, and nothing is read from it;
    an auditor who pins the registry as the ledger gets a failed code_hash check, not a verdict."""
    receipt = anchored.receipt()
    registry = anchored.env.registry.address
    receipt["contract"] = registry
    statuses = _statuses(receipt, devchain.rpc_url, anchored.pin)
    assert {name for name, status in statuses.items() if status != "passed"} == {"contract_pinned"}

    code_hash = "0x" + keccak(bytes(anchored.env.client.w3.eth.get_code(registry))).hex()
    registry_as_ledger = PinnedDeployment.of_ledger(registry, code_hash)
    verdict = verify_receipt(anchored.receipt(), devchain.rpc_url, registry_as_ledger)
    assert verdict.failed == ["code_hash", "contract_pinned"]
    assert "does not answer registry()" in verdict.check("code_hash").detail
    assert verdict.check("root_anchored").status == "skipped"


def test_too_few_confirmations(anchored: Anchored) -> None:
    receipt = anchored.receipt()
    head = anchored.env.client.w3.eth.block_number
    confirmations = head - receipt["block_number"] + 1
    verdict = verify_receipt(receipt, anchored.env.rpc_url, anchored.pin, min_confirmations=confirmations + 2)
    assert verdict.failed == ["confirmations"]
    assert f"{confirmations} confirmation(s)" in verdict.check("confirmations").detail
    assert f"{confirmations + 2} required" in verdict.check("confirmations").detail

    rpc_call(anchored.env.rpc_url, "anvil_mine", ["0x2"])
    assert verify_receipt(receipt, anchored.env.rpc_url, anchored.pin, min_confirmations=confirmations + 2).ok


def test_a_malformed_receipt_is_reported_not_raised(anchored: Anchored) -> None:
    receipt = anchored.receipt()
    receipt["proof"] = ["0xnothex"]
    verdict = verify_receipt(receipt, anchored.env.rpc_url, anchored.pin)
    assert verdict.failed == ["receipt_format"]
    assert all(c.status == "skipped" for c in verdict.checks[1:])
    assert "proof.0" in verdict.check("receipt_format").detail

    not_a_step = anchored.receipt()
    not_a_step["record"]["raw_values"] = [1.5, 2.5]  # a record can never carry raw data
    verdict = verify_receipt(not_a_step, anchored.env.rpc_url, anchored.pin)
    assert verdict.failed == ["record_hash"]
    assert "not a valid step record" in verdict.check("record_hash").detail

    assert verify_receipt({}, anchored.env.rpc_url, anchored.pin).failed == ["receipt_format"]


def test_an_unreachable_node_raises_a_clear_error(anchored: Anchored) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NodeUnreachableError, match=f"cannot reach the JSON-RPC node at {url}") as raised:
        verify_receipt(anchored.receipt(), url, anchored.pin, timeout=2)
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


def test_verify_file_takes_a_receipt_or_a_bundle(
    anchored: Anchored, consortium: Consortium, tmp_path: Path
) -> None:
    env = anchored.env
    receipt = Receipt.model_validate(anchored.receipt())
    single = verify_file(write_receipt(receipt, tmp_path / "receipt.json"), env.rpc_url, anchored.pin)
    assert single.ok and single.receipt is not None and single.bundle is None
    assert single.lines()[0].startswith("[pin ] AuditLedger " + env.contract)
    assert single.lines()[-1].endswith(f"VALID ({len(CHECK_ORDER)} checks passed)")

    complete = write_bundle(consortium.complete.bundle, tmp_path / "bundle.json")
    result = verify_file(complete, consortium.env.rpc_url, consortium.pin)
    assert result.ok and result.bundle is not None and len(result.bundle.receipts) == 6
    assert "6/6 receipts valid" in result.lines()[-1]

    # The 7 records of `anchored` are all anchored (its job Open with both consents), never closed on chain.
    incomplete = build_bundle(
        anchored.store, env.chain_id, env.contract, anchored.job_id, manifest=anchored.manifest
    )
    result = verify_file(write_bundle(incomplete, tmp_path / "open.json"), env.rpc_url, anchored.pin)
    assert not result.ok and result.bundle is not None
    assert [v.ok for v in result.bundle.receipts] == [True] * 7
    assert any(line.startswith("[FAIL] job_closed") for line in result.lines())
    assert "INVALID, 7/7 receipts valid; bundle checks failed: job_closed" in result.lines()[-1]

    (tmp_path / "broken.json").write_text(json.dumps({**json.loads(receipt.to_json()), "leaf": "0x12"}))
    broken = verify_file(tmp_path / "broken.json", env.rpc_url, anchored.pin)
    assert not broken.ok and broken.receipt is not None and broken.receipt.failed == ["receipt_format"]
    assert any(line.startswith("[FAIL] receipt_format") for line in broken.lines())


def test_the_declared_views_match_the_audit_ledger_artifact() -> None:
    artifact = {entry.get("name"): entry for entry in load_artifact("AuditLedger").abi}
    for entry in LEDGER_VIEW_ABI:
        declared = artifact[entry["name"]]
        assert [i["type"] for i in declared["inputs"]] == [i["type"] for i in entry["inputs"]]
        assert declared["outputs"] == entry["outputs"]
    registry = {entry.get("name"): entry for entry in load_artifact("ConsortiumRegistry").abi}
    for entry in REGISTRY_VIEW_ABI:
        assert registry[entry["name"]] == entry
    event = artifact["BatchAnchored"]
    assert [(i["type"], i["indexed"]) for i in event["inputs"]] == [
        ("bytes32", True),
        ("bytes32", True),
        ("uint32", False),
        ("address", True),
    ]


# -- forged bundles (issue 11): the verifier pins the deployment and proves completeness ------------------
#
# Each forgery is built by the test on its own copy of the contracts (deployed on the session anvil) and
# verified against the deployment the auditor pinned: the one `deploy_env` deployed for this module.

ALICE_KEY, BOB_KEY, CAROL_KEY = DEV_PRIVATE_KEYS[1], DEV_PRIVATE_KEYS[2], DEV_PRIVATE_KEYS[4]
# Fresh accounts, members of nothing (gas is free on the dev chain: they need no balance).
IMPOSTOR_KEY = "0x" + keccak(text="secureflow test: impostor").hex()
SPARE_ANCHOR_KEY = "0x" + keccak(text="secureflow test: spare anchoring service").hex()


@dataclass
class ClosedJob:
    job_id: str
    manifest: dict[str, Any]
    records: list[StepRecord]
    bundle: AuditBundle
    last_root: str
    job_secret: str | None = None

    def data(self) -> dict[str, Any]:
        """The bundle as the JSON an auditor receives (a fresh copy to tamper with)."""
        data: dict[str, Any] = json.loads(self.bundle.model_dump_json())
        return data


@dataclass
class Consortium:
    env: LedgerEnv
    store: SqlLedgerStore
    pin: PinnedDeployment
    keys: dict[str, str]
    complete: ClosedJob
    proposals: dict[tuple[str, int], ContributionProposal] = field(default_factory=dict)

    def closed_job(
        self,
        steps: int = 6,
        *,
        tamper: Callable[[list[StepRecord]], list[StepRecord]] | None = None,
        consents: tuple[str, ...] | None = None,
        anchor: Callable[[SqlLedgerStore], Batch] | None = None,
        close: bool = True,
        salted: bool = True,
    ) -> ClosedJob:
        """A job run as the demo runs one: every party consents on chain (unless ``consents`` names fewer),
        records signed by each party, anchored in two batches, closed on chain by the anchoring service
        with the Merkle proof of its last record (``close``; a job without every consent is Proposed and
        cannot be closed); its bundle, with the job secret that salts its manifest hash and params_hash
        (``salted``; otherwise as before salted commitments: unsalted hashes, a bundle without a secret)."""
        env = self.env
        parties = [env.alice, env.bob]
        manifest: dict[str, Any] = {
            "parties": parties,
            "steps": [
                {"algorithm": "psi" if s % 2 == 0 else "ss_lr", "params": {"seq": s}} for s in range(steps)
            ],
            "nonce": secrets.token_hex(16),
        }
        job_secret = new_job_secret() if salted else None
        manifest_hash = (
            bytes.fromhex(manifest_commitment(manifest, job_secret)[2:])
            if job_secret is not None
            else keccak(rfc8785.dumps(manifest))
        )
        salt = secrets.token_bytes(32)
        job_id = bytes.fromhex(job_id_for(env.alice, manifest_hash, salt)[2:])
        signers = parties if consents is None else list(consents)
        signatures = [
            sign_consent(self.keys[p], env.chain_id, env.contract, job_id, manifest_hash)
            if p in signers
            else b""
            for p in parties
        ]
        env.creator.create_job(manifest_hash=manifest_hash, salt=salt, parties=parties, consents=signatures)
        self.store.create_job(
            NewJob(
                job_id=hex32(job_id),
                manifest_hash=hex32(manifest_hash),
                creator=env.alice,
                parties=parties,
                salt=hex32(salt),
            )
        )
        records = sign_records(step_records(hex32(job_id), parties, steps, job_secret=job_secret), self.keys)
        if tamper is not None:
            records = tamper(records)
        split = max(1, steps - 2)
        last_root = ""
        last_leaves: list[bytes] = []
        for chunk in (records[:split], records[split:]):
            if chunk:
                for record in chunk:
                    self.store.accept_record(outbox_row(record))
                batch = (anchor or self._anchor)(self.store)
                last_root = batch.root
                last_leaves = [bytes.fromhex(leaf[2:]) for leaf in self.store.batch_leaves(batch.batch_id)]
        if close:  # as the anchoring service closes a finished job: the last record proven in its batch
            last = self.store.get_record(hex32(job_id), steps - 1)
            assert last is not None
            env.anchorer.close_job(
                job_id=job_id,
                step_count=steps,
                final_record_hash=bytes.fromhex(last.record_hash[2:]),
                final_root=bytes.fromhex(last_root[2:]),
                proof=MerkleTree(last_leaves).proof(bytes.fromhex(last.leaf[2:])),
                succeeded=True,
            )
            self.store.update_job(hex32(job_id), status="completed", chain_status="confirmed")
        bundle = build_bundle(
            self.store, env.chain_id, env.contract, hex32(job_id), manifest=manifest, job_secret=job_secret
        )
        return ClosedJob(hex32(job_id), manifest, records, bundle, last_root, job_secret)

    def _anchor(self, store: SqlLedgerStore) -> Batch:
        return anchor_pending(store, self.env)


def anchor_as(ledger: AuditLedgerClient, sender: TransactionSender) -> Callable[[SqlLedgerStore], Batch]:
    """Anchor the store's pending records as ``sender`` (whatever its role)."""

    def anchor(store: SqlLedgerStore) -> Batch:
        batch, tree = build_pending_batch(store)
        sent = ledger.send_anchor_batch(bytes.fromhex(batch.batch_id[2:]), tree.root, batch.record_count)
        store.mark_batch_submitted(batch.batch_id, sent.tx_hash, sender.address, sent.nonce)
        mined = sender.wait(sent)
        return store.mark_batch_confirmed(
            batch.batch_id, int(mined["blockNumber"]), hex32(mined["blockHash"])
        )

    return anchor


@pytest.fixture(scope="module")
def consortium(devchain: DevChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    env = deploy_env(devchain)
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('forged') / 'ledger.db'}")
    try:
        keys = {env.alice: ALICE_KEY, env.bob: BOB_KEY}
        pin = PinnedDeployment.of_deployment(env.deployment)
        placeholder = ClosedJob("", {}, [], AuditBundle.model_validate(_EMPTY_BUNDLE), "")
        consortium = Consortium(env, store, pin, keys, placeholder)
        consortium.complete = consortium.closed_job()
        yield consortium
    finally:
        store.close()


_EMPTY_BUNDLE: dict[str, Any] = {
    "job": {
        "job_id": "0x" + "00" * 32,
        "manifest_hash": "0x" + "00" * 32,
        "creator": "0x" + "00" * 20,
        "parties": [],
        "status": "created",
        "chain_status": "pending",
    },
    "records": [],
    "receipts": [],
}


def _verify(
    bundle: AuditBundle | dict[str, Any], c: Consortium, pin: PinnedDeployment | None = None
) -> BundleVerdict:
    parsed = bundle if isinstance(bundle, AuditBundle) else AuditBundle.model_validate(bundle)
    return verify_bundle(parsed, c.env.rpc_url, pin or c.pin)


def _failed(verdict: BundleVerdict) -> set[str]:
    return set(verdict.failed_checks)


def test_the_demo_style_bundle_verifies_against_the_pinned_deployment(consortium: Consortium) -> None:
    verdict = _verify(consortium.complete.bundle, consortium)
    assert verdict.ok, verdict.summary()
    assert verdict.warnings == []
    assert {c.status for c in verdict.checks} == {"passed"}
    assert [c.name for c in verdict.checks] == list(BUNDLE_CHECK_ORDER)
    for receipt in verdict.receipts:
        assert [c.name for c in receipt.checks] == list(CHECK_ORDER)
        assert {c.status for c in receipt.checks} == {"passed"}
    assert "held ANCHOR_ROLE" in verdict.receipts[0].check("anchor_role").detail
    assert verdict.summary().startswith(f"job {consortium.complete.job_id}: VALID, 6/6 receipts valid")


def test_attack_a_bundle_anchored_on_an_impostor_deployment_is_invalid(
    consortium: Consortium, tmp_path: Path
) -> None:
    """A non-member deploys its own registry and ledger, grants itself the anchor role, creates a job with the
    real manifest hash (under its own id: the ledger derives ids from the creator, so the real id is not
    its to take), anchors altered records (signed with the real keys, even), closes the job and writes
    receipts naming its own contract."""
    env, real = consortium.env, consortium.complete
    impostor = TransactionSender(env.client, IMPOSTOR_KEY, ChainNonceSource(env.client.w3))
    assert not env.registry.is_active_member(impostor.address)
    fake = deploy_contracts(env.client, impostor)
    fake_registry = RegistryClient(connect(env.client, fake, "ConsortiumRegistry"), impostor)
    for member in (impostor.address, env.alice, env.bob):
        fake_registry.register_member(member)
    fake_registry.grant_anchor_service(impostor.address)
    fake_ledger = AuditLedgerClient(connect(env.client, fake, "AuditLedger"), impostor)
    manifest_hash = bytes.fromhex(real.bundle.job.manifest_hash[2:])
    salt = secrets.token_bytes(32)
    fake_id = job_id_for(impostor.address, manifest_hash, salt)
    job_id = bytes.fromhex(fake_id[2:])
    assert fake_id != real.job_id
    parties = [env.alice, env.bob]
    keys = {**consortium.keys, impostor.address: IMPOSTOR_KEY}  # the creator must be a party: it joins
    consents = [
        sign_consent(keys[p], env.chain_id, fake_ledger.address, job_id, manifest_hash)
        for p in [impostor.address, *parties]
    ]
    fake_ledger.create_job(
        manifest_hash=manifest_hash, salt=salt, parties=[impostor.address, *parties], consents=consents
    )

    altered = [
        r.model_copy(
            update={
                "job_id": fake_id,
                "parties": (r.parties[0], r.parties[1].model_copy(update={"outputs": {}})),
            }
        )
        for r in real.records[:3]
    ]
    forged_store = open_store(f"sqlite:///{tmp_path / 'forged.db'}")
    try:
        forged_store.create_job(
            NewJob(
                job_id=fake_id,
                manifest_hash=real.bundle.job.manifest_hash,
                creator=impostor.address,
                parties=parties,
                salt=hex32(salt),
            )
        )
        for record in sign_records(altered, consortium.keys):
            forged_store.accept_record(outbox_row(record))
        batch, tree = build_pending_batch(forged_store)
        mined = fake_ledger.anchor_batch(bytes.fromhex(batch.batch_id[2:]), tree.root, batch.record_count)
        forged_store.mark_batch_submitted(
            batch.batch_id, hex32(mined["transactionHash"]), impostor.address, 0
        )
        forged_store.mark_batch_confirmed(
            batch.batch_id, int(mined["blockNumber"]), hex32(mined["blockHash"])
        )
        last = forged_store.get_record(fake_id, 2)
        assert last is not None
        fake_ledger.close_job(
            job_id=job_id,
            step_count=3,
            final_record_hash=bytes.fromhex(last.record_hash[2:]),
            final_root=tree.root,
            proof=tree.proof(bytes.fromhex(last.leaf[2:])),
            succeeded=True,
        )
        forged_store.update_job(fake_id, status="completed", chain_status="confirmed")
        forged = build_bundle(
            forged_store, env.chain_id, fake.address_of("AuditLedger"), fake_id, manifest=real.manifest
        )
    finally:
        forged_store.close()
    assert len(forged.receipts) == 3

    verdict = _verify(forged, consortium)
    assert not verdict.ok, verdict.summary()
    assert {"contract_pinned", "root_anchored", "block_canonical"} <= _failed(verdict)
    first = verdict.receipts[0].first_failure
    assert first is not None and first.name == "contract_pinned"
    assert fake.address_of("AuditLedger") in first.detail and env.contract in first.detail

    # An auditor who pins the impostor's address with the real ledger's code hash: the code differs (the
    # registry the ledger is bound to is part of its code), so nothing on that contract is trusted.
    impostor_pin = PinnedDeployment.of_ledger(fake.address_of("AuditLedger"), consortium.pin.ledger.code_hash)
    pinned_wrong = _verify(forged, consortium, impostor_pin)
    assert not pinned_wrong.ok
    assert "code_hash" in _failed(pinned_wrong)
    assert pinned_wrong.check("job_header").status == "skipped"


def test_attack_b_a_removed_record_is_invalid(consortium: Consortium) -> None:
    middle = consortium.complete.data()
    del middle["records"][2], middle["receipts"][2]
    verdict = _verify(middle, consortium)
    assert not verdict.ok
    assert {"seqs", "step_count"} <= _failed(verdict), verdict.checks
    assert "seq 2 is missing" in verdict.check("seqs").detail
    assert (
        "5 record(s)" in verdict.check("step_count").detail
        and "step count 6" in verdict.check("step_count").detail
    )

    last = consortium.complete.data()
    del last["records"][-1], last["receipts"][-1]
    verdict = _verify(last, consortium)
    assert {"step_count", "final_record"} <= _failed(verdict), verdict.checks
    assert "seq 5" in verdict.check("final_record").detail


def _swap_bob_signature(records: list[StepRecord]) -> list[StepRecord]:
    """Record 2: bob's slice signed with carol's key; record 3: bob's signature missing."""
    out = list(records)
    r2, r3 = out[2], out[3]
    carol = sign_party(r2, r2.parties[1], bytes.fromhex(CAROL_KEY[2:]))
    out[2] = r2.model_copy(
        update={"parties": (r2.parties[0], r2.parties[1].model_copy(update={"signature": carol}))}
    )
    out[3] = r3.model_copy(
        update={"parties": (r3.parties[0], r3.parties[1].model_copy(update={"signature": None}))}
    )
    return out


def test_attack_c_a_swapped_or_missing_party_signature_is_invalid(consortium: Consortium) -> None:
    """The anchoring service anchored records whose bob signature is another key's, or absent: every
    chain check passes, the signature check does not."""
    job = consortium.closed_job(tamper=_swap_bob_signature)
    verdict = _verify(job.bundle, consortium)
    assert not verdict.ok
    assert _failed(verdict) == {"party_signatures"}, verdict.summary()
    bad = {v.seq: v.check("party_signatures").detail for v in verdict.invalid_receipts}
    assert set(bad) == {2, 3}
    carol = Account.from_key(CAROL_KEY).address
    assert consortium.env.bob in bad[2] and carol in bad[2]
    assert consortium.env.bob in bad[3] and "not signed" in bad[3]
    assert "party_signatures" in verdict.summary()

    # Swapping a signature inside the file instead changes the record: its hash no longer matches.
    edited = consortium.complete.data()
    for where in (edited["records"][1], edited["receipts"][1]["record"]):
        where["parties"][1]["signature"] = job.bundle.records[2]["parties"][1]["signature"]
    assert "record_hash" in _failed(_verify(edited, consortium))


def test_attack_d_a_receipt_naming_another_contract_is_invalid(consortium: Consortium) -> None:
    renamed = consortium.complete.data()
    renamed["receipts"][0]["contract"] = consortium.env.registry.address
    verdict = _verify(renamed, consortium)
    assert _failed(verdict) == {"contract_pinned"}, verdict.summary()
    first = verdict.receipts[0].first_failure
    assert first is not None and first.name == "contract_pinned"
    assert consortium.env.registry.address in first.detail


def test_attack_d_receipts_repointed_at_an_impostor_that_anchored_the_same_roots_are_invalid(
    consortium: Consortium,
) -> None:
    """The genuine records and proofs, but each receipt names an impostor ledger (and its own anchoring
    transaction) which holds a job of its own (it cannot create the real id: ids are derived from their
    creator) and on which the same roots were anchored by an account holding its own registry's anchor
    role."""
    env, real = consortium.env, consortium.complete
    impostor = TransactionSender(env.client, IMPOSTOR_KEY, ChainNonceSource(env.client.w3))
    fake = deploy_contracts(env.client, impostor)
    fake_registry = RegistryClient(connect(env.client, fake, "ConsortiumRegistry"), impostor)
    fake_registry.register_member(impostor.address)
    fake_registry.grant_anchor_service(impostor.address)
    fake_ledger = AuditLedgerClient(connect(env.client, fake, "AuditLedger"), impostor)
    fake_ledger.create_job(
        manifest_hash=bytes.fromhex(real.bundle.job.manifest_hash[2:]),
        salt=secrets.token_bytes(32),
        parties=[impostor.address],
    )
    repointed = real.data()
    mined: dict[str, Any] = {}
    for receipt in repointed["receipts"]:
        root = receipt["batch_root"]
        if root not in mined:
            count = sum(r["batch_root"] == root for r in repointed["receipts"])
            mined[root] = fake_ledger.anchor_batch(keccak(text=root), bytes.fromhex(root[2:]), count)
        tx = mined[root]
        receipt.update(
            contract=fake.address_of("AuditLedger"),
            tx_hash=hex32(tx["transactionHash"]),
            block_number=int(tx["blockNumber"]),
            block_hash=hex32(tx["blockHash"]),
        )
    verdict = _verify(repointed, consortium)
    assert not verdict.ok
    assert {"contract_pinned", "block_canonical"} <= _failed(verdict), verdict.summary()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("creator", "bob"),
        ("parties", "alice+carol"),
        ("parties", "bob+alice"),
        ("status", "failed"),
        ("manifest_hash", "other"),
    ],
)
def test_attack_e_an_edited_job_header_is_invalid(consortium: Consortium, field: str, value: str) -> None:
    env = consortium.env
    carol = Account.from_key(CAROL_KEY).address
    edited = consortium.complete.data()
    replacement: Any = {
        "bob": env.bob,
        "alice+carol": [env.alice, carol],
        "bob+alice": [env.bob, env.alice],
        "failed": "failed",
        "other": "0x" + keccak(b"another manifest").hex(),
    }[value]
    edited["job"][field] = replacement
    verdict = _verify(edited, consortium)
    assert not verdict.ok
    assert "job_header" in _failed(verdict), verdict.summary()
    assert field.replace("_", " ") in verdict.check("job_header").detail


def test_a_job_without_every_party_consent_on_chain_is_invalid(consortium: Consortium) -> None:
    env = consortium.env
    unconsented = consortium.closed_job(consents=(env.alice,), close=False)  # Proposed: it cannot close
    verdict = _verify(unconsented.bundle, consortium)
    assert {"consents", "job_closed"} <= _failed(verdict), verdict.summary()
    assert "Proposed" in verdict.check("job_closed").detail
    assert env.bob in verdict.check("consents").detail


def test_a_job_not_closed_on_chain_is_not_proven_complete(consortium: Consortium) -> None:
    still_open = consortium.closed_job(close=False)
    verdict = _verify(still_open.bundle, consortium)
    assert not verdict.ok
    assert {"job_closed"} <= _failed(verdict), verdict.summary()
    assert "Open" in verdict.check("job_closed").detail


def _receipts_ok(verdict: BundleVerdict) -> bool:
    return all(v.ok for v in verdict.receipts)


def test_a_bundle_of_a_job_the_chain_does_not_hold_is_invalid(consortium: Consortium) -> None:
    """Every record and receipt genuine, but the header names a job id the pinned ledger never created."""
    unknown = "0x" + keccak(b"a job that was never created").hex()
    edited = consortium.complete.data()
    edited["job"]["job_id"] = unknown
    verdict = _verify(edited, consortium)
    assert not verdict.ok
    assert _failed(verdict) == {"records_covered", "job_header"}, verdict.summary()
    assert f"has no job {unknown}" in verdict.check("job_header").detail
    assert "6 receipt(s) of another job" in verdict.check("records_covered").detail
    for name in ("consents", "job_closed", "step_count", "final_record"):
        check = verdict.check(name)
        assert check.status == "skipped" and f"has no job {unknown}" in check.detail, check


def test_a_receipt_from_another_job_is_invalid(consortium: Consortium) -> None:
    """Seq 1's record and receipt replaced by another closed job's seq 1: that receipt verifies on its own
    (it is genuine), the bundle does not."""
    other = consortium.closed_job()
    mixed = consortium.complete.data()
    foreign = other.data()
    mixed["records"][1], mixed["receipts"][1] = foreign["records"][1], foreign["receipts"][1]
    verdict = _verify(mixed, consortium)
    assert _receipts_ok(verdict) and not verdict.ok
    # the foreign record's params hash is also not a commitment under this job's secret
    assert _failed(verdict) == {"records_covered", "params_commitments"}, verdict.summary()
    detail = verdict.check("records_covered").detail
    assert "1 receipt(s) of another job (seq [1])" in detail and "without a receipt" in detail


@pytest.mark.parametrize("what", ["record and receipt", "receipt only"])
def test_a_duplicated_step_is_invalid(consortium: Consortium, what: str) -> None:
    doubled = consortium.complete.data()
    if what == "record and receipt":
        doubled["records"].insert(3, doubled["records"][2])
    doubled["receipts"].insert(3, doubled["receipts"][2])
    verdict = _verify(doubled, consortium)
    assert _receipts_ok(verdict) and not verdict.ok
    assert "receipts repeat a step" in verdict.check("records_covered").detail
    if what == "record and receipt":
        assert _failed(verdict) == {"records_covered", "seqs", "step_count"}, verdict.summary()
        assert "seq 2 repeated" in verdict.check("seqs").detail
        assert "7 record(s)" in verdict.check("step_count").detail
    else:
        assert _failed(verdict) == {"records_covered"}, verdict.summary()


def test_a_record_edited_in_the_bundle_is_invalid(consortium: Consortium) -> None:
    """The bundle's record list edited (its receipt left as anchored): the receipts verify, the bundle
    does not, and it names the record."""
    edited = consortium.complete.data()
    edited["records"][3]["algorithm"] = "ss_xgb"
    verdict = _verify(edited, consortium)
    assert _receipts_ok(verdict) and not verdict.ok
    assert _failed(verdict) == {"records_covered"}, verdict.summary()
    assert (
        "1 record(s) differ from their receipt's record: seq [3]" in verdict.check("records_covered").detail
    )


def test_a_receipt_pointing_at_a_reverted_transaction_is_invalid(consortium: Consortium) -> None:
    """The anchoring service re-sends the last batch's anchorBatch: the contract refuses the repeated
    batch id and the transaction is mined reverted. A receipt naming that transaction (and its block)
    fails block_canonical, saying it reverted, and root_anchored (the root's anchor block is another)."""
    env = consortium.env
    receipt = consortium.complete.data()["receipts"][-1]
    call = env.anchorer.contract.functions.anchorBatch(
        bytes.fromhex(receipt["batch_id"][2:]), bytes.fromhex(receipt["batch_root"][2:]), 2
    )
    signed = env.anchor_sender.prepare(call, gas=300_000)  # explicit gas: estimating would refuse it
    env.anchor_sender.broadcast(signed)
    mined = env.client.w3.eth.wait_for_transaction_receipt(HexStr(signed.tx_hash), timeout=60)
    assert mined["status"] == 0
    bundle = consortium.complete.data()
    bundle["receipts"][-1].update(
        tx_hash=signed.tx_hash, block_number=int(mined["blockNumber"]), block_hash=hex32(mined["blockHash"])
    )
    verdict = _verify(bundle, consortium)
    assert not verdict.ok
    last = verdict.receipts[-1]
    assert set(last.failed) == {"root_anchored", "block_canonical"}, last.checks
    assert f"transaction {signed.tx_hash} reverted (status 0)" in last.check("block_canonical").detail
    assert all(v.ok for v in verdict.receipts[:-1])


@pytest.mark.parametrize("field", ["block_number", "block_hash"])
def test_a_bundle_receipt_with_a_wrong_block_is_invalid(consortium: Consortium, field: str) -> None:
    bundle = consortium.complete.data()
    first = bundle["receipts"][0]
    if field == "block_number":
        first["block_number"] -= 1
    else:
        first["block_hash"] = "0x" + keccak(b"another block").hex()
    verdict = _verify(bundle, consortium)
    assert not verdict.ok and all(v.ok for v in verdict.receipts[1:])
    failed = verdict.receipts[0].failed
    assert "block_canonical" in failed, verdict.receipts[0].checks
    detail = verdict.receipts[0].check("block_canonical").detail
    assert (
        ("has hash" in detail)
        if field == "block_hash"
        else ("canonical block" in detail or "is in block" in detail)
    )


def test_attack_f_an_anchor_role_revoked_after_the_anchor_block_still_holds(consortium: Consortium) -> None:
    """Granted, anchored, revoked later: still valid (the role is read at the anchor's block)."""
    env = consortium.env
    spare = TransactionSender(env.client, SPARE_ANCHOR_KEY, ChainNonceSource(env.client.w3))
    spare_ledger = AuditLedgerClient(env.reader.contract, spare)
    env.registry.grant_anchor_service(spare.address)
    job = consortium.closed_job(anchor=anchor_as(spare_ledger, spare))
    env.admin.transact(env.registry.contract.functions.revokeRole(ANCHOR_ROLE, spare.address))
    assert not env.registry.is_anchor_service(spare.address)
    verdict = _verify(job.bundle, consortium)
    assert verdict.ok, verdict.summary()
    detail = verdict.receipts[0].check("anchor_role").detail
    assert spare.address in detail and "held ANCHOR_ROLE" in detail


def test_attack_f_an_anchorer_without_the_role_at_the_anchor_block_is_invalid(consortium: Consortium) -> None:
    """The anchoring service's role is revoked in the very block of its anchor (after the anchor, so the
    ledger accepted it): at that block the anchorer does not hold the role, and the verifier says so."""
    env = consortium.env
    spare = TransactionSender(env.client, SPARE_ANCHOR_KEY, ChainNonceSource(env.client.w3))
    spare_ledger = AuditLedgerClient(env.reader.contract, spare)
    env.registry.grant_anchor_service(spare.address)
    blocks: list[int] = []

    def anchor_then_revoke_in_one_block(store: SqlLedgerStore) -> Batch:
        batch, tree = build_pending_batch(store)
        call = spare_ledger.contract.functions.anchorBatch(
            bytes.fromhex(batch.batch_id[2:]), tree.root, batch.record_count
        )
        anchor_tx = spare.prepare(call)
        revoke_tx = env.admin.prepare(env.registry.contract.functions.revokeRole(ANCHOR_ROLE, spare.address))
        rpc_call(env.rpc_url, "evm_setAutomine", [False])
        try:
            spare.broadcast(anchor_tx)
            env.admin.broadcast(revoke_tx)
            rpc_call(env.rpc_url, "evm_mine")
        finally:
            rpc_call(env.rpc_url, "evm_setAutomine", [True])
        w3 = env.client.w3
        anchored = w3.eth.get_transaction_receipt(HexStr(anchor_tx.tx_hash))
        revoked = w3.eth.get_transaction_receipt(HexStr(revoke_tx.tx_hash))
        assert anchored["status"] == revoked["status"] == 1
        assert anchored["blockNumber"] == revoked["blockNumber"]
        assert anchored["transactionIndex"] < revoked["transactionIndex"]
        blocks.append(int(anchored["blockNumber"]))
        store.mark_batch_submitted(batch.batch_id, anchor_tx.tx_hash, spare.address, anchor_tx.nonce)
        return store.mark_batch_confirmed(batch.batch_id, blocks[-1], hex32(anchored["blockHash"]))

    job = consortium.closed_job(steps=1, anchor=anchor_then_revoke_in_one_block)
    assert not env.registry.is_anchor_service(spare.address)
    verdict = _verify(job.bundle, consortium)
    assert _failed(verdict) == {"anchor_role"}, verdict.summary()
    detail = verdict.receipts[0].check("anchor_role").detail
    assert spare.address in detail and f"block {blocks[0]}" in detail


def test_pinning_by_ledger_address_and_code_hash(consortium: Consortium) -> None:
    env = consortium.env
    code_hash = "0x" + keccak(bytes(env.client.w3.eth.get_code(env.contract))).hex()
    assert consortium.pin.ledger.code_hash == code_hash == env.deployment.contracts["AuditLedger"].code_hash
    by_address = PinnedDeployment.of_ledger(env.contract, code_hash)
    assert _verify(consortium.complete.bundle, consortium, by_address).ok
    wrong_hash = PinnedDeployment.of_ledger(env.contract, "0x" + keccak(b"other code").hex())
    verdict = _verify(consortium.complete.bundle, consortium, wrong_hash)
    assert "code_hash" in _failed(verdict)
    assert code_hash in verdict.receipts[0].check("code_hash").detail


def test_a_version_1_deployment_file_pins_by_the_creation_transactions(consortium: Consortium) -> None:
    """A deployment file without code hashes: the code is checked through each contract's creation
    (created at its address by this verifier's artifact), and the verdict says so in a warning."""
    deployment = consortium.env.deployment
    old = deployment.model_copy(
        update={
            "version": 1,
            "contracts": {
                n: c.model_copy(update={"code_hash": None}) for n, c in deployment.contracts.items()
            },
        }
    )
    verdict = _verify(consortium.complete.bundle, consortium, PinnedDeployment.of_deployment(old))
    assert verdict.ok, verdict.summary()
    assert len(verdict.warnings) == 2  # one per contract: the ledger and its registry
    assert all("creation transaction" in w and "version-1 deployment file" in w for w in verdict.warnings)

    # The impostor's ledger, claimed to be created by the real ledger's creation transaction.
    impostor = TransactionSender(
        consortium.env.client, IMPOSTOR_KEY, ChainNonceSource(consortium.env.client.w3)
    )
    fake = deploy_contracts(consortium.env.client, impostor)
    forged_ledger = old.contracts["AuditLedger"].model_copy(
        update={"address": fake.address_of("AuditLedger")}
    )
    forged = old.model_copy(update={"contracts": {**old.contracts, "AuditLedger": forged_ledger}})
    verdict = _verify(consortium.complete.bundle, consortium, PinnedDeployment.of_deployment(forged))
    assert "code_hash" in _failed(verdict)
    assert f"created {consortium.env.contract}, not {fake.address_of('AuditLedger')}" in (
        verdict.receipts[0].check("code_hash").detail
    )


def test_a_version_1_receipt_still_verifies_with_a_warning(consortium: Consortium) -> None:
    data = consortium.complete.data()
    v1 = data["receipts"][3]
    v1["version"] = 1
    del v1["batch_id"], v1["anchorer"]
    verdict = verify_receipt(v1, consortium.env.rpc_url, consortium.pin)
    assert verdict.ok, verdict.summary()
    assert len(verdict.warnings) == 1
    assert "version-1 receipt" in verdict.warnings[0] and "batch id and anchorer" in verdict.warnings[0]
    data["version"] = 1
    bundle_verdict = _verify(data, consortium)
    assert bundle_verdict.ok and any("version-1" in w for w in bundle_verdict.warnings)


# -- salted commitments (issue 11 item 5): the manifest hash and params_hash are salted with the job secret --


def test_the_bundle_commitments_verify_with_the_job_secret(consortium: Consortium) -> None:
    job = consortium.complete
    verdict = _verify(job.bundle, consortium)
    assert verdict.ok, verdict.summary()
    assert verdict.check("manifest_commitment").ok and verdict.check("params_commitments").ok
    assert "job secret" in verdict.check("manifest_commitment").detail
    assert "all 6 compute record(s)" in verdict.check("params_commitments").detail
    # the manifest hash is not the manifest's plain hash, and no record or verdict carries the secret
    assert job.job_secret is not None
    assert job.bundle.job.manifest_hash != "0x" + keccak(rfc8785.dumps(job.manifest)).hex()
    assert job.job_secret[2:] not in json.dumps(job.bundle.records)
    assert job.job_secret[2:] not in verdict.model_dump_json()


@pytest.mark.parametrize("edit", ["manifest", "step_params", "job_secret"])
def test_a_tampered_manifest_or_job_secret_fails_manifest_commitment(
    consortium: Consortium, edit: str
) -> None:
    data = consortium.complete.data()
    if edit == "manifest":
        data["manifest"]["nonce"] = "0"
    elif edit == "step_params":
        data["manifest"]["steps"][1]["params"] = {"seq": 99}
    else:
        data["job_secret"] = new_job_secret()
    verdict = _verify(data, consortium)
    assert not verdict.ok
    assert verdict.check("manifest_commitment").status == "failed", verdict.summary()
    assert "manifest_commitment" in verdict.summary()
    assert verdict.check("params_commitments").status == "skipped"


def test_a_params_hash_that_is_not_its_steps_commitment_fails_params_commitments(
    consortium: Consortium,
) -> None:
    """Records signed by every party and anchored, but step 2's params_hash commits to other parameters
    than the manifest's (here: unsalted, as before salted commitments)."""

    def other_params(records: list[StepRecord]) -> list[StepRecord]:
        unsigned = records[2].model_copy(
            update={
                "params_hash": params_hash({"seq": 2}, None),
                "parties": tuple(p.model_copy(update={"signature": None}) for p in records[2].parties),
            }
        )
        return [*records[:2], *sign_records([unsigned], consortium.keys), *records[3:]]

    job = consortium.closed_job(tamper=other_params)
    verdict = _verify(job.bundle, consortium)
    assert _failed(verdict) == {"params_commitments"}, verdict.summary()
    assert "seq 2 " in verdict.check("params_commitments").detail


def test_a_receipt_does_not_give_its_parameters_away_to_guessing(consortium: Consortium) -> None:
    """The attack of issue 11: hash candidate parameters until one gives the receipt's params_hash. With
    salted commitments no candidate matches without the job secret; with it, the right one does."""
    job = consortium.complete
    receipt = job.bundle.receipts[3]
    candidates = [{"seq": s} for s in range(1000)]
    unsalted = {params_hash(c, None) for c in candidates}
    assert receipt.record["params_hash"] not in unsalted
    wrong_secret = new_job_secret()
    assert receipt.record["params_hash"] not in {params_hash(c, wrong_secret) for c in candidates}
    assert job.job_secret is not None
    assert params_hash({"seq": 3}, job.job_secret) == receipt.record["params_hash"]


def test_a_bundle_without_a_job_secret_verifies_with_a_warning(consortium: Consortium) -> None:
    """A bundle of a job from before salted commitments: its manifest has the unsalted hash; its params_hash
    cannot be checked, and the verdict says so."""
    old = consortium.closed_job(salted=False)
    assert "job_secret" not in old.bundle.model_dump_json()
    verdict = _verify(old.bundle, consortium)
    assert verdict.ok, verdict.summary()
    assert "params_commitments" not in [c.name for c in verdict.checks]
    assert "unsalted" in verdict.check("manifest_commitment").detail
    assert any("could not be checked" in w for w in verdict.warnings)
    tampered = old.data()
    tampered["manifest"]["nonce"] = "0"
    assert "manifest_commitment" in _failed(_verify(tampered, consortium))


# -- settlement: the contribution record anchored after the job's close -----------------------------------


def _propose_contribution(c: Consortium, job: ClosedJob, seq: int, features: tuple[int, int]) -> Receipt:
    """A contribution record (data share) for ``job`` at ``seq`` as the settlement service records one after
    the close: unsigned (the parties approve its weights on the Settlement contract instead), anchored."""
    inputs = DataShareInputs(
        parties=(
            PartyData(party=c.env.alice, features=features[0], label_columns=1),
            PartyData(party=c.env.bob, features=features[1]),
        )
    )
    proposal = prepare_contribution(job.job_id, seq, inputs, job_parties=[c.env.alice, c.env.bob])
    c.store.accept_record(to_outbox(proposal.step_record()), after_close=True)
    anchor_pending(c.store, c.env)
    row = c.store.get_record(job.job_id, seq)
    assert row is not None and row.status == "confirmed"
    receipt = build_receipt(c.store, c.env.chain_id, c.env.contract, job.job_id, seq)
    c.proposals[(job.job_id, seq)] = proposal
    return receipt


def _set_weights(c: Consortium, job: ClosedJob, seq: int, receipt: Receipt) -> None:
    """Every party approves the proposal's weights (EIP-712) and alice sets them on the Settlement."""
    weights = c.proposals[(job.job_id, seq)].weights_proposal(receipt)
    contract = connect(c.env.client, c.env.deployment, "Settlement")
    alice = SettlementClient(
        contract, TransactionSender(c.env.client, ALICE_KEY, ChainNonceSource(c.env.client.w3))
    )
    signatures = {party: alice.sign_approval(c.keys[party], weights) for party in (c.env.alice, c.env.bob)}
    alice.set_weights(weights, signatures)


def _bundle(c: Consortium, job: ClosedJob) -> AuditBundle:
    return build_bundle(
        c.store, c.env.chain_id, c.env.contract, job.job_id, manifest=job.manifest, job_secret=job.job_secret
    )


def test_a_settled_job_s_bundle_verifies_with_the_contribution_record_its_parties_adopted(
    consortium: Consortium,
) -> None:
    """After the close, the settlement service anchors the job's contribution record (unsigned: each party
    approves its weights on the Settlement contract, which sets them only with every party's approval).
    The job's bundle then holds 6 compute records and the contribution record: it verifies VALID, the
    contribution record attributed to every party by the pinned Settlement's weights, not by signatures."""
    c = consortium
    job = c.closed_job()
    receipt = _propose_contribution(c, job, 6, (2, 3))
    _set_weights(c, job, 6, receipt)
    verdict = _verify(_bundle(c, job), c)
    assert verdict.ok, verdict.summary()
    assert verdict.warnings == []
    assert "6 compute record" in verdict.check("step_count").detail
    signed = verdict.receipts[6].check("party_signatures")
    assert signed.ok and "Settlement" in signed.detail, signed
    # one receipt alone says the same
    assert verify_receipt(receipt.model_dump(mode="json"), c.env.rpc_url, c.pin).ok
    # pinned by the ledger's address and code hash alone, nothing names the Settlement: the job's steps
    # still verify, the contribution record is attributed to nobody and the verdict says why
    ledger_only = PinnedDeployment.of_ledger(c.pin.ledger.address, str(c.pin.ledger.code_hash))
    partial = _verify(_bundle(c, job), c, ledger_only)
    assert partial.ok and partial.unadopted == [6], partial.summary()
    assert "names no Settlement" in partial.receipts[6].check("party_signatures").detail


def test_a_contribution_record_its_parties_did_not_adopt_is_not_attributed_to_them(
    consortium: Consortium,
) -> None:
    """Two proposals anchored after the close, the parties set the weights of the second: the first (and
    any record the anchoring service adds after the close) is attributed to nobody. Its receipt fails
    party_signatures; the bundle stays VALID for the job's steps and names the unadopted record in a
    warning. Before the parties approved anything, a pending proposal is named the same way."""
    c = consortium
    job = c.closed_job()
    first = _propose_contribution(c, job, 6, (2, 3))
    pending = _verify(_bundle(c, job), c)
    assert pending.ok, pending.summary()
    assert any("seq 6" in w and "not attributed" in w for w in pending.warnings), pending.warnings
    assert not verify_receipt(first.model_dump(mode="json"), c.env.rpc_url, c.pin).ok
    second = _propose_contribution(c, job, 7, (3, 3))
    _set_weights(c, job, 7, second)
    verdict = _verify(_bundle(c, job), c)
    assert verdict.ok, verdict.summary()
    assert [w for w in verdict.warnings if "not attributed" in w] and "seq 7" not in " ".join(
        verdict.warnings
    )
    assert not verdict.receipts[6].ok and verdict.receipts[6].failed == ["party_signatures"]
    assert verdict.receipts[7].ok


def test_an_unsigned_record_after_the_close_that_is_no_contribution_record_is_invalid(
    consortium: Consortium,
) -> None:
    """The attack: the anchoring service appends an unsigned compute record to a closed job (its store
    refuses that, a hostile one does not). The bundle is INVALID: only contribution records follow the
    close, and a record in the job's steps must carry every party's signature."""
    c = consortium
    job = c.closed_job()
    extra = step_records(job.job_id, [c.env.alice, c.env.bob], 1, start=6, job_secret=job.job_secret)[0]
    c.store.accept_record(outbox_row(extra), after_close=True)
    anchor_pending(c.store, c.env)
    verdict = _verify(_bundle(c, job), c)
    assert not verdict.ok
    assert {"step_count", "party_signatures"} <= _failed(verdict), verdict.summary()


def _contribution_at(c: Consortium, seq: int) -> Callable[[list[StepRecord]], list[StepRecord]]:
    """A tamper hook: the job's step ``seq`` replaced by a contribution record (kept in ``c.proposals``)."""

    def tamper(records: list[StepRecord]) -> list[StepRecord]:
        job_id = records[0].job_id
        inputs = DataShareInputs(
            parties=(
                PartyData(party=c.env.alice, features=2, label_columns=1),
                PartyData(party=c.env.bob, features=3),
            )
        )
        proposal = prepare_contribution(job_id, seq, inputs, job_parties=[c.env.alice, c.env.bob])
        c.proposals[(job_id, seq)] = proposal
        return [proposal.step_record() if r.seq == seq else r for r in records]

    return tamper


@pytest.mark.parametrize("salted", [False, True])
def test_a_contribution_record_among_the_job_s_steps_is_invalid_even_if_the_parties_adopted_it(
    consortium: Consortium, salted: bool
) -> None:
    """The attack (review): step 2 of a 6-step job replaced by an unsigned contribution record from which
    every party set the weights (the Settlement does not ask where the leaf sits). A contribution record
    follows the close: inside the job's steps it is attributed to nobody — the receipt fails
    party_signatures, the bundle fails step_count — with or without the job secret (params_commitments
    catches it too with one)."""
    c = consortium
    job = c.closed_job(6, tamper=_contribution_at(c, 2), salted=salted)
    receipt = build_receipt(c.store, c.env.chain_id, c.env.contract, job.job_id, 2)
    _set_weights(c, job, 2, receipt)
    verdict = _verify(_bundle(c, job), c)
    assert not verdict.ok and verdict.unadopted == [], verdict.summary()
    assert {"party_signatures", "step_count"} <= set(verdict.failed_checks), verdict.summary()
    assert "within the job's 6 steps" in verdict.receipts[2].check("party_signatures").detail
    assert "seq 2 is a contribution record within the job's steps" in verdict.check("step_count").detail
    alone = verify_receipt(receipt.model_dump(mode="json"), c.env.rpc_url, c.pin)
    assert alone.failed == ["party_signatures"], alone.summary()
