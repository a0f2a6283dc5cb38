"""AuditLedger on a real anvil: jobs and EIP-712 consent, batch anchoring, models, closing, proofs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from eth_abi import encode
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.exceptions import ContractLogicError

from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.devchain import DEV_CHAIN_ID, rpc_call
from secureflow.ledger.merkle import MerkleTree, leaf_hash, verify_proof

if TYPE_CHECKING:
    from tests.contracts.conftest import ContractsEnv

ZERO_ADDRESS = "0x" + "00" * 20
ZERO32 = b"\x00" * 32
JOB = keccak(b"job-1")
MANIFEST = keccak(b"manifest-1")
OPEN, CLOSED, FAILED = 1, 2, 3

Signer = Callable[[LocalAccount, bytes, bytes], bytes]


def python_consent_digest(contract: str, job_id: bytes, manifest_hash: bytes) -> bytes:
    domain_type = keccak(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    separator = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [domain_type, keccak(b"SecureflowAuditLedger"), keccak(b"1"), DEV_CHAIN_ID, contract],
        )
    )
    consent_type = keccak(b"JobConsent(bytes32 jobId,bytes32 manifestHash)")
    struct = keccak(encode(["bytes32", "bytes32", "bytes32"], [consent_type, job_id, manifest_hash]))
    return keccak(b"\x19\x01" + separator + struct)


def create_job(
    env: ContractsEnv, caller: LocalAccount, parties: list[LocalAccount], sigs: list[bytes]
) -> dict:
    receipt = env.ok(
        env.ledger.functions.createJob(JOB, MANIFEST, [p.address for p in parties], sigs),
        caller,
    )
    return dict(receipt)


def anchor(env: ContractsEnv, batch_id: bytes, root: bytes, count: int = 1) -> dict:
    return dict(env.ok(env.ledger.functions.anchorBatch(batch_id, root, count), env.anchor))


# ------------------------------------------------------------------ deployment and EIP-712


def test_deployment(env: ContractsEnv) -> None:
    fns = env.ledger.functions
    assert fns.registry().call() == env.registry.address
    assert fns.JOB_CONSENT_TYPEHASH().call() == keccak(b"JobConsent(bytes32 jobId,bytes32 manifestHash)")
    _, name, version, chain_id, contract, _, _ = fns.eip712Domain().call()
    assert (name, version, chain_id, contract) == (
        "SecureflowAuditLedger",
        "1",
        DEV_CHAIN_ID,
        env.ledger.address,
    )


def test_constructor_rejects_zero_registry(env: ContractsEnv) -> None:
    artifact = load_artifact("AuditLedger")
    factory = env.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    try:
        env.w3.eth.call(
            {"from": env.admin.address, "data": factory.constructor(ZERO_ADDRESS).data_in_transaction}
        )
    except ContractLogicError as error:
        assert env.decode_revert(error.data) == ("ZeroAddress", ())
    else:
        raise AssertionError("deploying with a zero registry did not revert")


def test_consent_digest_matches_python(env: ContractsEnv) -> None:
    digest = env.ledger.functions.consentDigest(JOB, MANIFEST).call()
    assert digest == python_consent_digest(env.ledger.address, JOB, MANIFEST)
    signable = encode_typed_data(
        domain_data={
            "name": "SecureflowAuditLedger",
            "version": "1",
            "chainId": DEV_CHAIN_ID,
            "verifyingContract": env.ledger.address,
        },
        message_types={
            "JobConsent": [{"name": "jobId", "type": "bytes32"}, {"name": "manifestHash", "type": "bytes32"}]
        },
        message_data={"jobId": JOB, "manifestHash": MANIFEST},
    )
    assert _hash_eip191_message(signable) == digest


# -------------------------------------------------------------------------------- jobs


def test_create_job_without_consent(env: ContractsEnv) -> None:
    receipt = create_job(env, env.member_a, [env.member_a, env.member_b], [])
    fns = env.ledger.functions
    assert env.events(receipt, env.ledger, "JobCreated") == [
        {
            "jobId": JOB,
            "manifestHash": MANIFEST,
            "creator": env.member_a.address,
            "parties": [env.member_a.address, env.member_b.address],
        }
    ]
    assert env.events(receipt, env.ledger, "JobConsented") == []
    job = fns.getJob(JOB).call()
    assert job == (MANIFEST, env.member_a.address, OPEN, receipt["blockNumber"], 0, ZERO32)
    assert fns.jobParties(JOB).call() == [env.member_a.address, env.member_b.address]
    assert not fns.hasConsented(JOB, env.member_a.address).call()


def test_create_job_with_consent(env: ContractsEnv, consent_signer: Signer) -> None:
    sigs = [consent_signer(m, JOB, MANIFEST) for m in (env.member_a, env.member_b)]
    receipt = create_job(env, env.member_b, [env.member_a, env.member_b], sigs)
    assert env.events(receipt, env.ledger, "JobConsented") == [
        {"jobId": JOB, "party": env.member_a.address},
        {"jobId": JOB, "party": env.member_b.address},
    ]
    assert env.ledger.functions.hasConsented(JOB, env.member_a.address).call()
    assert env.ledger.functions.hasConsented(JOB, env.member_b.address).call()
    assert not env.ledger.functions.hasConsented(JOB, env.member_c.address).call()


def test_create_job_with_partial_consent_then_submit(env: ContractsEnv, consent_signer: Signer) -> None:
    parties = [env.member_a, env.member_b, env.member_c]
    create_job(env, env.member_a, parties, [consent_signer(env.member_a, JOB, MANIFEST), b"", b""])
    fns = env.ledger.functions
    assert [fns.hasConsented(JOB, p.address).call() for p in parties] == [True, False, False]
    # anyone (here an outsider) may relay a party's signature
    receipt = env.ok(
        fns.submitConsent(JOB, env.member_c.address, consent_signer(env.member_c, JOB, MANIFEST)),
        env.outsider,
    )
    assert env.events(receipt, env.ledger, "JobConsented") == [{"jobId": JOB, "party": env.member_c.address}]
    assert [fns.hasConsented(JOB, p.address).call() for p in parties] == [True, False, True]


def test_create_job_errors(env: ContractsEnv, consent_signer: Signer) -> None:
    fns = env.ledger.functions
    a, b, c = env.member_a, env.member_b, env.member_c

    def err(
        job: bytes, parties: list[str], sigs: list[bytes], caller: LocalAccount, manifest: bytes = MANIFEST
    ) -> tuple:
        return env.revert(fns.createJob(job, manifest, parties, sigs), caller)

    pair = [a.address, b.address]
    assert err(ZERO32, pair, [], a) == ("InvalidJob", ())
    assert err(JOB, pair, [], a, manifest=ZERO32) == ("InvalidJob", ())
    assert err(JOB, [], [], a) == ("EmptyParties", ())
    assert err(JOB, pair, [b""], a) == ("ConsentLengthMismatch", (2, 1))
    assert err(JOB, [env.outsider.address], [], env.outsider) == (
        "NotActiveMember",
        (env.outsider.address.lower(),),
    )
    assert err(JOB, [a.address, env.outsider.address], [], a) == (
        "NotActiveMember",
        (env.outsider.address.lower(),),
    )
    assert err(JOB, [a.address, ZERO_ADDRESS], [], a) == ("ZeroAddress", ())
    assert err(JOB, [a.address, b.address, a.address], [], a) == ("DuplicateParty", (a.address.lower(),))
    assert err(JOB, [b.address, c.address], [], a) == ("CallerNotParty", (a.address.lower(),))
    wrong_signer = consent_signer(c, JOB, MANIFEST)
    assert err(JOB, pair, [b"", wrong_signer], a) == ("InvalidConsent", (JOB, b.address.lower()))
    wrong_manifest = consent_signer(b, JOB, keccak(b"other manifest"))
    assert err(JOB, pair, [b"", wrong_manifest], a) == ("InvalidConsent", (JOB, b.address.lower()))
    assert err(JOB, pair, [b"\x01" * 10, b""], a) == ("InvalidConsent", (JOB, a.address.lower()))

    env.ok(env.registry.functions.suspendMember(b.address), env.admin)
    assert err(JOB, pair, [], a) == ("NotActiveMember", (b.address.lower(),))
    assert err(JOB, pair, [], b) == ("NotActiveMember", (b.address.lower(),))
    env.ok(env.registry.functions.reinstateMember(b.address), env.admin)

    create_job(env, a, [a, b], [])
    assert err(JOB, pair, [], a) == ("JobAlreadyExists", (JOB,))


def test_submit_consent_errors(env: ContractsEnv, consent_signer: Signer) -> None:
    fns = env.ledger.functions
    a, b = env.member_a, env.member_b
    sig_b = consent_signer(b, JOB, MANIFEST)
    assert env.revert(fns.submitConsent(JOB, b.address, sig_b), env.outsider) == ("UnknownJob", (JOB,))
    create_job(env, a, [a, b], [consent_signer(a, JOB, MANIFEST), b""])
    assert env.revert(
        fns.submitConsent(JOB, env.member_c.address, consent_signer(env.member_c, JOB, MANIFEST)), a
    ) == (
        "NotJobParty",
        (JOB, env.member_c.address.lower()),
    )
    assert env.revert(fns.submitConsent(JOB, a.address, consent_signer(a, JOB, MANIFEST)), a) == (
        "AlreadyConsented",
        (JOB, a.address.lower()),
    )
    assert env.revert(fns.submitConsent(JOB, b.address, consent_signer(a, JOB, MANIFEST)), a) == (
        "InvalidConsent",
        (JOB, b.address.lower()),
    )
    env.ok(fns.closeJob(JOB, 0, ZERO32, False), a)
    assert env.revert(fns.submitConsent(JOB, b.address, sig_b), a) == ("JobNotOpen", (JOB,))


# ----------------------------------------------------------------------------- batches


def test_anchor_batch(env: ContractsEnv) -> None:
    batch, root = keccak(b"batch-1"), keccak(b"root-1")
    receipt = anchor(env, batch, root, 7)
    assert env.events(receipt, env.ledger, "BatchAnchored") == [
        {"batchId": batch, "root": root, "recordCount": 7, "anchorer": env.anchor.address}
    ]
    fns = env.ledger.functions
    assert fns.getBatch(batch).call() == (root, 7, receipt["blockNumber"], env.anchor.address)
    assert fns.batchRoot(batch).call() == root
    assert fns.rootRecord(root).call() == (7, receipt["blockNumber"], env.anchor.address)
    assert fns.rootRecord(keccak(b"other")).call() == (0, 0, ZERO_ADDRESS)
    assert fns.isAnchoredRoot(root).call()
    assert not fns.isAnchoredRoot(keccak(b"other")).call()
    assert fns.getBatch(keccak(b"unknown")).call() == (ZERO32, 0, 0, ZERO_ADDRESS)


def test_anchor_batch_is_idempotent(env: ContractsEnv) -> None:
    batch, root = keccak(b"batch-1"), keccak(b"root-1")
    first = anchor(env, batch, root, 3)
    fns = env.ledger.functions
    before = (fns.getBatch(batch).call(), fns.rootRecord(root).call())
    assert env.revert(fns.anchorBatch(batch, keccak(b"root-2"), 5), env.anchor) == (
        "BatchAlreadyAnchored",
        (batch,),
    )
    # sent for real (fixed gas, so no estimate): mined, reverted, nothing changed
    receipt = env.send(fns.anchorBatch(batch, keccak(b"root-2"), 5), env.anchor, gas=200_000)
    assert receipt["status"] == 0
    assert env.events(receipt, env.ledger, "BatchAnchored") == []
    assert (fns.getBatch(batch).call(), fns.rootRecord(root).call()) == before
    assert fns.rootRecord(keccak(b"root-2")).call() == (0, 0, ZERO_ADDRESS)
    assert fns.getBatch(batch).call()[2] == first["blockNumber"]
    assert not fns.isAnchoredRoot(keccak(b"root-2")).call()
    assert env.revert(fns.anchorBatch(keccak(b"batch-2"), root, 5), env.anchor) == (
        "RootAlreadyAnchored",
        (root,),
    )


def test_anchor_batch_errors(env: ContractsEnv) -> None:
    fns = env.ledger.functions
    batch, root = keccak(b"batch-1"), keccak(b"root-1")
    for account in (env.member_a, env.admin, env.outsider):
        assert env.revert(fns.anchorBatch(batch, root, 1), account) == (
            "NotAnchorService",
            (account.address.lower(),),
        )
    assert env.revert(fns.anchorBatch(ZERO32, root, 1), env.anchor) == ("InvalidBatch", ())
    assert env.revert(fns.anchorBatch(batch, ZERO32, 1), env.anchor) == ("InvalidBatch", ())
    assert env.revert(fns.anchorBatch(batch, root, 0), env.anchor) == ("InvalidBatch", ())
    env.ok(env.registry.functions.revokeRole(keccak(b"ANCHOR_ROLE"), env.anchor.address), env.admin)
    assert env.revert(fns.anchorBatch(batch, root, 1), env.anchor) == (
        "NotAnchorService",
        (env.anchor.address.lower(),),
    )


# ------------------------------------------------------------------------------ models


def test_record_model_versions(env: ContractsEnv) -> None:
    fns = env.ledger.functions
    create_job(env, env.member_a, [env.member_a, env.member_b], [])
    model, h1, h2 = keccak(b"model"), keccak(b"weights-1"), keccak(b"weights-2")
    assert fns.latestModelVersion(JOB, model).call() == 0
    receipt = env.ok(fns.recordModel(JOB, model, 1, h1), env.member_b)
    assert env.events(receipt, env.ledger, "ModelRecorded") == [
        {"jobId": JOB, "modelId": model, "version": 1, "modelHash": h1}
    ]
    env.ok(fns.recordModel(JOB, model, 2, h2), env.anchor)  # the anchoring service may record too
    assert fns.latestModelVersion(JOB, model).call() == 2
    assert fns.modelHash(JOB, model, 1).call() == h1
    assert fns.modelHash(JOB, model, 2).call() == h2
    assert fns.modelHash(JOB, model, 3).call() == ZERO32


def test_a_model_version_cannot_be_squatted_from_another_job(env: ContractsEnv) -> None:
    """Model ids are per job: a member recording "version 1" of the same model id in a job of its own does
    not take that version from the job that really produced the model."""
    fns = env.ledger.functions
    create_job(env, env.member_a, [env.member_a, env.member_b], [])
    other = keccak(b"job-of-carol")
    env.ok(fns.createJob(other, MANIFEST, [env.member_c.address], []), env.member_c)
    model, real, squatted = keccak(b"model"), keccak(b"weights"), keccak(b"not-the-weights")
    env.ok(fns.recordModel(other, model, 1, squatted), env.member_c)  # first, e.g. front-running
    env.ok(fns.recordModel(JOB, model, 1, real), env.anchor)
    assert fns.modelHash(JOB, model, 1).call() == real
    assert fns.latestModelVersion(JOB, model).call() == 1
    assert fns.modelHash(other, model, 1).call() == squatted
    assert env.revert(fns.recordModel(JOB, model, 2, squatted), env.member_c) == (
        "NotJobParty",
        (JOB, env.member_c.address.lower()),
    )


def test_record_model_errors(env: ContractsEnv) -> None:
    fns = env.ledger.functions
    model, digest = keccak(b"model"), keccak(b"weights")
    assert env.revert(fns.recordModel(JOB, model, 1, digest), env.member_a) == ("UnknownJob", (JOB,))
    create_job(env, env.member_a, [env.member_a, env.member_b], [])
    for account in (env.member_c, env.outsider, env.admin):
        assert env.revert(fns.recordModel(JOB, model, 1, digest), account) == (
            "NotJobParty",
            (JOB, account.address.lower()),
        )
    assert env.revert(fns.recordModel(JOB, model, 1, ZERO32), env.member_a) == ("InvalidModel", ())
    assert env.revert(fns.recordModel(JOB, ZERO32, 1, digest), env.member_a) == ("InvalidModel", ())
    assert env.revert(fns.recordModel(JOB, model, 0, digest), env.member_a) == (
        "NonSequentialVersion",
        (model, 1, 0),
    )
    assert env.revert(fns.recordModel(JOB, model, 2, digest), env.member_a) == (
        "NonSequentialVersion",
        (model, 1, 2),
    )
    env.ok(fns.recordModel(JOB, model, 1, digest), env.member_a)
    assert env.revert(fns.recordModel(JOB, model, 1, digest), env.member_a) == (
        "NonSequentialVersion",
        (model, 2, 1),
    )
    assert env.revert(fns.recordModel(JOB, model, 3, digest), env.member_a) == (
        "NonSequentialVersion",
        (model, 2, 3),
    )


# ------------------------------------------------------------------------------ closing


def test_close_job_succeeded(env: ContractsEnv) -> None:
    fns = env.ledger.functions
    create_job(env, env.member_a, [env.member_a, env.member_b], [])
    root = keccak(b"final root")
    anchor(env, keccak(b"batch-final"), root, 4)
    receipt = env.ok(fns.closeJob(JOB, 4, root, True), env.member_b)
    assert env.events(receipt, env.ledger, "JobClosed") == [
        {"jobId": JOB, "stepCount": 4, "finalRoot": root, "succeeded": True, "closedBy": env.member_b.address}
    ]
    job = fns.getJob(JOB).call()
    assert (job[2], job[4], job[5]) == (CLOSED, 4, root)


def test_close_job_failed_without_steps(env: ContractsEnv) -> None:
    fns = env.ledger.functions
    create_job(env, env.member_a, [env.member_a, env.member_b], [])
    receipt = env.ok(fns.closeJob(JOB, 0, ZERO32, False), env.member_a)
    assert env.events(receipt, env.ledger, "JobClosed")[0]["succeeded"] is False
    job = fns.getJob(JOB).call()
    assert (job[2], job[4], job[5]) == (FAILED, 0, ZERO32)


def test_close_job_errors(env: ContractsEnv) -> None:
    fns = env.ledger.functions
    root = keccak(b"final root")
    assert env.revert(fns.closeJob(JOB, 1, root, True), env.member_a) == ("UnknownJob", (JOB,))
    create_job(env, env.member_a, [env.member_a, env.member_b], [])
    for account in (env.member_c, env.anchor, env.outsider):
        assert env.revert(fns.closeJob(JOB, 0, ZERO32, True), account) == (
            "NotJobParty",
            (JOB, account.address.lower()),
        )
    assert env.revert(fns.closeJob(JOB, 3, root, True), env.member_a) == ("RootNotAnchored", (root,))
    assert env.revert(fns.closeJob(JOB, 3, ZERO32, True), env.member_a) == ("RootNotAnchored", (ZERO32,))
    assert env.revert(fns.closeJob(JOB, 0, root, True), env.member_a) == ("UnexpectedFinalRoot", (root,))
    env.ok(fns.closeJob(JOB, 0, ZERO32, True), env.member_a)
    assert env.revert(fns.closeJob(JOB, 0, ZERO32, True), env.member_b) == ("JobNotOpen", (JOB,))


# --------------------------------------------------------------------------------- gas


def test_gas_budget(env: ContractsEnv, consent_signer: Signer) -> None:
    sigs = [consent_signer(m, JOB, MANIFEST) for m in (env.member_a, env.member_b)]
    created = create_job(env, env.member_a, [env.member_a, env.member_b], sigs)
    anchored = anchor(env, keccak(b"gas-batch"), keccak(b"gas-root"), 1000)
    closed = dict(env.ok(env.ledger.functions.closeJob(JOB, 1000, keccak(b"gas-root"), True), env.member_a))
    used = {"createJob(2 parties, consent)": created["gasUsed"], "anchorBatch": anchored["gasUsed"]}
    used["closeJob"] = closed["gasUsed"]
    print("gas used:", used)
    assert anchored["gasUsed"] < 80_000
    assert created["gasUsed"] < 300_000
    assert closed["gasUsed"] < 100_000


# ------------------------------------------------------------------------------ proofs


@st.composite
def trees(draw: st.DrawFn) -> tuple[MerkleTree, list[bytes]]:
    job = draw(st.binary(min_size=32, max_size=32))
    count = draw(st.integers(min_value=1, max_value=64))
    salt = draw(st.binary(min_size=1, max_size=8))
    leaves = [leaf_hash(job, seq, keccak(salt + seq.to_bytes(8, "big"))) for seq in range(count)]
    return MerkleTree(leaves), leaves


@given(tree_and_leaves=trees(), data=st.data())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_onchain_verify_agrees_with_python(
    contracts_env: ContractsEnv, tree_and_leaves: tuple[MerkleTree, list[bytes]], data: st.DataObject
) -> None:
    env = contracts_env
    tree, leaves = tree_and_leaves
    fns = env.ledger.functions
    root = tree.root
    snapshot = rpc_call(env.w3.provider.endpoint_uri, "evm_snapshot")  # type: ignore[attr-defined]
    try:
        # unanchored root: proofs may be valid, but verify() says no
        leaf = data.draw(st.sampled_from(leaves))
        proof = tree.proof(leaf)
        assert fns.verifyProof(leaf, proof, root).call() is True
        assert fns.verify(leaf, proof, root).call() is False
        anchor(env, keccak(root), root, len(leaves))

        cases: list[tuple[bytes, list[bytes]]] = [(leaf, proof)]
        cases.append((bytes([leaf[0] ^ 0x80]) + leaf[1:], proof))  # tampered leaf
        if proof:
            position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
            node = proof[position]
            cases.append(
                (leaf, [*proof[:position], node[:31] + bytes([node[31] ^ 1]), *proof[position + 1 :]])
            )
            cases.append((leaf, proof[:-1]))  # truncated proof
        if len(leaves) > 1:
            other = data.draw(st.sampled_from([x for x in leaves if x != leaf]))
            cases.append((leaf, tree.proof(other)))  # proof of a different leaf
            cases.append((other, tree.proof(other)))  # another correct proof
        for case_leaf, case_proof in cases:
            expected = verify_proof(case_leaf, case_proof, root)
            assert fns.verifyProof(case_leaf, case_proof, root).call() is expected
            assert fns.verify(case_leaf, case_proof, root).call() is expected
        assert verify_proof(leaf, proof, root) is True
        assert fns.verify(leaf, proof, keccak(root)).call() is False  # unanchored (and wrong) root
    finally:
        assert rpc_call(env.w3.provider.endpoint_uri, "evm_revert", [snapshot]) is True  # type: ignore[attr-defined]
