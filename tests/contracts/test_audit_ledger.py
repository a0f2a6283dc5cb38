"""AuditLedger on a real anvil: jobs, ids and EIP-712 consent, batch anchoring, models, closing, proofs,
and the attacks of issue 11 (squatted ids, jobs opened without consent, models and closes by a party,
closes with a wrong step count, another job's root or a bad proof), each refused with its custom error
and without any change of chain state."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eth_abi import encode
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.exceptions import ContractLogicError

from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.consent import sign_consent
from secureflow.ledger.devchain import DEV_CHAIN_ID, rpc_call
from secureflow.ledger.merkle import MerkleTree, leaf_hash, verify_proof
from secureflow.ledger.records import job_id_for

if TYPE_CHECKING:
    from tests.contracts.conftest import ContractsEnv

ZERO_ADDRESS = "0x" + "00" * 20
ZERO32 = b"\x00" * 32
MANIFEST = keccak(b"manifest-1")
SALT = keccak(b"salt-1")
JOB = keccak(b"job-1")  # an arbitrary id, for the views and the consent digest
NONE, OPEN, CLOSED, FAILED, PROPOSED = 0, 1, 2, 3, 4

Signer = Callable[[LocalAccount, bytes, bytes], bytes]


def job_of(creator: LocalAccount, manifest: bytes = MANIFEST, salt: bytes = SALT) -> bytes:
    """The id ``creator`` gets for a job (the Python rule, ledger.records.job_id_for)."""
    return bytes.fromhex(job_id_for(creator.address, manifest, salt)[2:])


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
    env: ContractsEnv,
    caller: LocalAccount,
    parties: list[LocalAccount],
    sigs: list[bytes],
    *,
    manifest: bytes = MANIFEST,
    salt: bytes = SALT,
) -> tuple[bytes, dict[str, Any]]:
    """createJob from ``caller``; the job's id (checked against the contract's jobIdFor) and the receipt."""
    job = env.ledger.functions.jobIdFor(caller.address, manifest, salt).call()
    assert job == job_of(caller, manifest, salt)
    receipt = env.ok(
        env.ledger.functions.createJob(manifest, salt, [p.address for p in parties], sigs), caller
    )
    return job, dict(receipt)


def open_job(
    env: ContractsEnv,
    sign: Signer,
    caller: LocalAccount | None = None,
    parties: list[LocalAccount] | None = None,
) -> bytes:
    """A job every party consented to in createJob (Open); its id."""
    caller = caller or env.member_a
    parties = parties or [env.member_a, env.member_b]
    job = job_of(caller)
    job, _ = create_job(env, caller, parties, [sign(p, job, MANIFEST) for p in parties])
    return job


def anchor(env: ContractsEnv, batch_id: bytes, root: bytes, count: int = 1) -> dict[str, Any]:
    return dict(env.ok(env.ledger.functions.anchorBatch(batch_id, root, count), env.anchor))


def anchor_records(env: ContractsEnv, job: bytes, steps: int, extra: list[bytes] | None = None) -> tuple:
    """Anchor one batch with ``steps`` records of ``job`` (seqs 0..steps-1) and ``extra`` leaves; the tree
    and the record hashes."""
    hashes = [keccak(job + seq.to_bytes(8, "big")) for seq in range(steps)]
    tree = MerkleTree([*(leaf_hash(job, seq, h) for seq, h in enumerate(hashes)), *(extra or [])])
    anchor(env, keccak(b"batch" + tree.root), tree.root, len(tree))
    return tree, hashes


def close_call(
    env: ContractsEnv, job: bytes, steps: int, record_hash: bytes, root: bytes, proof: list, ok: bool = True
) -> Any:
    return env.ledger.functions.closeJob(job, steps, record_hash, root, proof, ok)


def state(env: ContractsEnv, job: bytes, model: bytes = ZERO32) -> tuple[Any, ...]:
    """Everything the ledger says about a job (and a model of it)."""
    f = env.ledger.functions
    parties = f.jobParties(job).call()
    return (
        f.getJob(job).call(),
        parties,
        f.missingConsents(job).call(),
        [f.hasConsented(job, p).call() for p in parties],
        f.latestModelVersion(job, model).call(),
        f.modelHash(job, model, 1).call(),
    )


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


@given(
    creator=st.binary(min_size=20, max_size=20),
    manifest=st.binary(min_size=32, max_size=32),
    salt=st.binary(min_size=32, max_size=32),
)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_job_id_rule_is_the_same_on_chain_and_in_python(
    contracts_env: ContractsEnv, creator: bytes, manifest: bytes, salt: bytes
) -> None:
    address = contracts_env.w3.to_checksum_address(creator)
    on_chain = contracts_env.ledger.functions.jobIdFor(address, manifest, salt).call()
    assert "0x" + bytes(on_chain).hex() == job_id_for(address, manifest, salt)


# -------------------------------------------------------------------------------- jobs


def test_create_job_without_consent_is_proposed(env: ContractsEnv) -> None:
    job, receipt = create_job(env, env.member_a, [env.member_a, env.member_b], [])
    fns = env.ledger.functions
    assert env.events(receipt, env.ledger, "JobCreated") == [
        {
            "jobId": job,
            "manifestHash": MANIFEST,
            "creator": env.member_a.address,
            "salt": SALT,
            "parties": [env.member_a.address, env.member_b.address],
        }
    ]
    assert env.events(receipt, env.ledger, "JobConsented") == []
    assert env.events(receipt, env.ledger, "JobOpened") == []
    assert fns.getJob(job).call() == (
        MANIFEST,
        env.member_a.address,
        PROPOSED,
        receipt["blockNumber"],
        0,
        ZERO32,
    )
    assert fns.jobParties(job).call() == [env.member_a.address, env.member_b.address]
    assert fns.missingConsents(job).call() == 2
    assert not fns.hasConsented(job, env.member_a.address).call()


def test_create_job_with_every_consent_opens_it(env: ContractsEnv, consent_signer: Signer) -> None:
    job = job_of(env.member_b)
    sigs = [consent_signer(m, job, MANIFEST) for m in (env.member_a, env.member_b)]
    _, receipt = create_job(env, env.member_b, [env.member_a, env.member_b], sigs)
    assert env.events(receipt, env.ledger, "JobConsented") == [
        {"jobId": job, "party": env.member_a.address},
        {"jobId": job, "party": env.member_b.address},
    ]
    assert env.events(receipt, env.ledger, "JobOpened") == [{"jobId": job}]
    fns = env.ledger.functions
    assert fns.getJob(job).call()[1:3] == (env.member_b.address, OPEN)
    assert fns.missingConsents(job).call() == 0
    assert fns.hasConsented(job, env.member_a.address).call()
    assert fns.hasConsented(job, env.member_b.address).call()
    assert not fns.hasConsented(job, env.member_c.address).call()


def test_the_last_consent_opens_a_proposed_job(env: ContractsEnv, consent_signer: Signer) -> None:
    a, b, c = env.member_a, env.member_b, env.member_c
    parties = [a, b, c]
    job = job_of(a)
    create_job(env, a, parties, [consent_signer(a, job, MANIFEST), b"", b""])
    fns = env.ledger.functions
    assert [fns.hasConsented(job, p.address).call() for p in parties] == [True, False, False]
    assert (fns.getJob(job).call()[2], fns.missingConsents(job).call()) == (PROPOSED, 2)
    # anyone (here an outsider) may relay a party's signature
    receipt = env.ok(fns.submitConsent(job, c.address, consent_signer(c, job, MANIFEST)), env.outsider)
    assert env.events(receipt, env.ledger, "JobConsented") == [{"jobId": job, "party": c.address}]
    assert env.events(receipt, env.ledger, "JobOpened") == []
    assert (fns.getJob(job).call()[2], fns.missingConsents(job).call()) == (PROPOSED, 1)
    receipt = env.ok(fns.submitConsent(job, b.address, consent_signer(b, job, MANIFEST)), env.outsider)
    assert env.events(receipt, env.ledger, "JobOpened") == [{"jobId": job}]
    assert (fns.getJob(job).call()[2], fns.missingConsents(job).call()) == (OPEN, 0)
    assert [fns.hasConsented(job, p.address).call() for p in parties] == [True, True, True]


def test_create_job_errors(env: ContractsEnv, consent_signer: Signer) -> None:
    fns = env.ledger.functions
    a, b, c = env.member_a, env.member_b, env.member_c
    job = job_of(a)

    def err(parties: list[str], sigs: list[bytes], caller: LocalAccount, manifest: bytes = MANIFEST) -> tuple:
        return env.revert(fns.createJob(manifest, SALT, parties, sigs), caller)

    pair = [a.address, b.address]
    assert err(pair, [], a, manifest=ZERO32) == ("InvalidJob", ())
    assert err([], [], a) == ("EmptyParties", ())
    assert err(pair, [b""], a) == ("ConsentLengthMismatch", (2, 1))
    assert err([env.outsider.address], [], env.outsider) == (
        "NotActiveMember",
        (env.outsider.address.lower(),),
    )
    assert err([a.address, env.outsider.address], [], a) == (
        "NotActiveMember",
        (env.outsider.address.lower(),),
    )
    assert err([a.address, ZERO_ADDRESS], [], a) == ("ZeroAddress", ())
    assert err([a.address, b.address, a.address], [], a) == ("DuplicateParty", (a.address.lower(),))
    assert err([b.address, c.address], [], a) == ("CallerNotParty", (a.address.lower(),))
    assert err(pair, [], env.outsider) == ("CallerNotParty", (env.outsider.address.lower(),))
    wrong_signer = consent_signer(c, job, MANIFEST)
    assert err(pair, [b"", wrong_signer], a) == ("InvalidConsent", (job, b.address.lower()))
    wrong_manifest = consent_signer(b, job, keccak(b"other manifest"))
    assert err(pair, [b"", wrong_manifest], a) == ("InvalidConsent", (job, b.address.lower()))
    assert err(pair, [b"\x01" * 10, b""], a) == ("InvalidConsent", (job, a.address.lower()))
    other_job = consent_signer(b, job_of(b), MANIFEST)  # b's consent to the job b would create
    assert err(pair, [b"", other_job], a) == ("InvalidConsent", (job, b.address.lower()))

    env.ok(env.registry.functions.suspendMember(b.address), env.admin)
    assert err(pair, [], a) == ("NotActiveMember", (b.address.lower(),))
    assert err(pair, [], b) == ("NotActiveMember", (b.address.lower(),))
    env.ok(env.registry.functions.reinstateMember(b.address), env.admin)

    create_job(env, a, [a, b], [])
    assert err(pair, [], a) == ("JobAlreadyExists", (job,))  # the same creator, manifest and salt twice
    create_job(env, a, [a, b], [], salt=keccak(b"salt-2"))  # another salt: another job


def test_a_consent_signed_for_another_chain_or_ledger_is_refused(env: ContractsEnv) -> None:
    """A party's genuine signature over the same JobConsent(jobId, manifestHash), but in the EIP-712 domain
    of another chain id or another contract (the registry; a copy of the ledger elsewhere), opens nothing:
    createJob and submitConsent both revert InvalidConsent naming that party."""
    fns = env.ledger.functions
    a, b = env.member_a, env.member_b
    job = job_of(a)
    pair = [a.address, b.address]
    key_b = "0x" + bytes(b.key).hex()
    elsewhere = {
        "chain id 1": sign_consent(key_b, 1, env.ledger.address, job, MANIFEST),
        "chain id 1338": sign_consent(key_b, DEV_CHAIN_ID + 1, env.ledger.address, job, MANIFEST),
        "the registry": sign_consent(key_b, DEV_CHAIN_ID, env.registry.address, job, MANIFEST),
    }
    for where, signature in elsewhere.items():
        assert env.revert(fns.createJob(MANIFEST, SALT, pair, [b"", signature]), a) == (
            "InvalidConsent",
            (job, b.address.lower()),
        ), where
    create_job(env, a, [a, b], [])  # Proposed, waiting for both consents
    for where, signature in elsewhere.items():
        assert env.revert(fns.submitConsent(job, b.address, signature), a) == (
            "InvalidConsent",
            (job, b.address.lower()),
        ), where
    assert not fns.hasConsented(job, b.address).call() and fns.missingConsents(job).call() == 2
    # the same key, this chain and this ledger: accepted (the refusals above are about the domain only)
    env.ok(
        fns.submitConsent(
            job, b.address, sign_consent(key_b, DEV_CHAIN_ID, env.ledger.address, job, MANIFEST)
        ),
        a,
    )
    assert fns.hasConsented(job, b.address).call()


def test_submit_consent_errors(env: ContractsEnv, consent_signer: Signer) -> None:
    fns = env.ledger.functions
    a, b = env.member_a, env.member_b
    job = job_of(a)
    sig_b = consent_signer(b, job, MANIFEST)
    assert env.revert(fns.submitConsent(job, b.address, sig_b), env.outsider) == ("UnknownJob", (job,))
    create_job(env, a, [a, b], [consent_signer(a, job, MANIFEST), b""])
    assert env.revert(
        fns.submitConsent(job, env.member_c.address, consent_signer(env.member_c, job, MANIFEST)), a
    ) == ("NotJobParty", (job, env.member_c.address.lower()))
    assert env.revert(fns.submitConsent(job, a.address, consent_signer(a, job, MANIFEST)), a) == (
        "AlreadyConsented",
        (job, a.address.lower()),
    )
    assert env.revert(fns.submitConsent(job, b.address, consent_signer(a, job, MANIFEST)), a) == (
        "InvalidConsent",
        (job, b.address.lower()),
    )
    env.ok(fns.submitConsent(job, b.address, sig_b), a)
    assert env.revert(fns.submitConsent(job, b.address, sig_b), a) == ("JobNotProposed", (job,))


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


def test_record_model_versions(env: ContractsEnv, consent_signer: Signer) -> None:
    fns = env.ledger.functions
    job = open_job(env, consent_signer)
    model, h1, h2 = keccak(b"model"), keccak(b"weights-1"), keccak(b"weights-2")
    assert fns.latestModelVersion(job, model).call() == 0
    receipt = env.ok(fns.recordModel(job, model, 1, h1), env.anchor)
    assert env.events(receipt, env.ledger, "ModelRecorded") == [
        {"jobId": job, "modelId": model, "version": 1, "modelHash": h1}
    ]
    env.ok(fns.recordModel(job, model, 2, h2), env.anchor)
    assert fns.latestModelVersion(job, model).call() == 2
    assert fns.modelHash(job, model, 1).call() == h1
    assert fns.modelHash(job, model, 2).call() == h2
    assert fns.modelHash(job, model, 3).call() == ZERO32


def test_model_versions_are_per_job(env: ContractsEnv, consent_signer: Signer) -> None:
    """A version recorded for the same model id in another job does not take that version from this job."""
    fns = env.ledger.functions
    job = open_job(env, consent_signer)
    other = open_job(env, consent_signer, caller=env.member_c, parties=[env.member_c])
    model, real, other_hash = keccak(b"model"), keccak(b"weights"), keccak(b"not-the-weights")
    env.ok(fns.recordModel(other, model, 1, other_hash), env.anchor)  # first
    env.ok(fns.recordModel(job, model, 1, real), env.anchor)
    assert fns.modelHash(job, model, 1).call() == real
    assert fns.latestModelVersion(job, model).call() == 1
    assert fns.modelHash(other, model, 1).call() == other_hash


def test_record_model_errors(env: ContractsEnv, consent_signer: Signer) -> None:
    fns = env.ledger.functions
    model, digest = keccak(b"model"), keccak(b"weights")
    job = job_of(env.member_a)
    assert env.revert(fns.recordModel(job, model, 1, digest), env.anchor) == ("UnknownJob", (job,))
    open_job(env, consent_signer)
    for account in (env.member_a, env.member_b, env.member_c, env.outsider, env.admin):
        assert env.revert(fns.recordModel(job, model, 1, digest), account) == (
            "NotAnchorService",
            (account.address.lower(),),
        )
    assert env.revert(fns.recordModel(job, model, 1, ZERO32), env.anchor) == ("InvalidModel", ())
    assert env.revert(fns.recordModel(job, ZERO32, 1, digest), env.anchor) == ("InvalidModel", ())
    assert env.revert(fns.recordModel(job, model, 0, digest), env.anchor) == (
        "NonSequentialVersion",
        (model, 1, 0),
    )
    assert env.revert(fns.recordModel(job, model, 2, digest), env.anchor) == (
        "NonSequentialVersion",
        (model, 1, 2),
    )
    env.ok(fns.recordModel(job, model, 1, digest), env.anchor)
    assert env.revert(fns.recordModel(job, model, 1, digest), env.anchor) == (
        "NonSequentialVersion",
        (model, 2, 1),
    )
    assert env.revert(fns.recordModel(job, model, 3, digest), env.anchor) == (
        "NonSequentialVersion",
        (model, 2, 3),
    )


# ------------------------------------------------------------------------------ closing


def test_close_job_proves_the_last_record(env: ContractsEnv, consent_signer: Signer) -> None:
    fns = env.ledger.functions
    job = open_job(env, consent_signer)
    tree, hashes = anchor_records(env, job, 4, extra=[keccak(b"another job's leaf")])
    proof = tree.proof(leaf_hash(job, 3, hashes[3]))
    receipt = env.ok(close_call(env, job, 4, hashes[3], tree.root, proof), env.anchor)
    assert env.events(receipt, env.ledger, "JobClosed") == [
        {
            "jobId": job,
            "stepCount": 4,
            "finalRoot": tree.root,
            "finalRecordHash": hashes[3],
            "succeeded": True,
            "closedBy": env.anchor.address,
        }
    ]
    job_row = fns.getJob(job).call()
    assert (job_row[2], job_row[4], job_row[5]) == (CLOSED, 4, tree.root)
    assert env.revert(close_call(env, job, 4, hashes[3], tree.root, proof), env.anchor) == (
        "JobNotOpen",
        (job,),
    )


def test_close_job_failed_with_and_without_steps(env: ContractsEnv, consent_signer: Signer) -> None:
    fns = env.ledger.functions
    job = open_job(env, consent_signer)
    receipt = env.ok(close_call(env, job, 0, ZERO32, ZERO32, [], False), env.anchor)
    assert env.events(receipt, env.ledger, "JobClosed")[0]["succeeded"] is False
    job_row = fns.getJob(job).call()
    assert (job_row[2], job_row[4], job_row[5]) == (FAILED, 0, ZERO32)

    other = open_job(env, consent_signer, caller=env.member_b)
    tree, hashes = anchor_records(env, other, 1)  # a one-leaf batch: the root is the leaf, the proof empty
    env.ok(close_call(env, other, 1, hashes[0], tree.root, [], False), env.anchor)
    assert fns.getJob(other).call()[2] == FAILED


def test_close_job_errors(env: ContractsEnv, consent_signer: Signer) -> None:
    job = job_of(env.member_a)
    tree, hashes = anchor_records(env, job, 3)
    proof = tree.proof(leaf_hash(job, 2, hashes[2]))
    assert env.revert(close_call(env, job, 3, hashes[2], tree.root, proof), env.anchor) == (
        "UnknownJob",
        (job,),
    )
    open_job(env, consent_signer)
    before = state(env, job)
    unanchored = keccak(b"unanchored root")
    assert env.revert(close_call(env, job, 3, hashes[2], unanchored, proof), env.anchor) == (
        "RootNotAnchored",
        (unanchored,),
    )
    assert env.revert(close_call(env, job, 3, hashes[2], ZERO32, proof), env.anchor) == (
        "RootNotAnchored",
        (ZERO32,),
    )
    for root, record_hash, nodes in (
        (tree.root, ZERO32, []),
        (ZERO32, hashes[2], []),
        (ZERO32, ZERO32, proof),
    ):
        assert env.revert(close_call(env, job, 0, record_hash, root, nodes), env.anchor) == (
            "UnexpectedFinalRecord",
            (root, record_hash),
        )
    assert state(env, job) == before


# --------------------------------------------------------------------------------- gas


def test_gas_budget(env: ContractsEnv, consent_signer: Signer) -> None:
    job = job_of(env.member_a)
    sigs = [consent_signer(m, job, MANIFEST) for m in (env.member_a, env.member_b)]
    _, created = create_job(env, env.member_a, [env.member_a, env.member_b], sigs)
    tree, hashes = anchor_records(env, job, 1000)
    proof = tree.proof(leaf_hash(job, 999, hashes[999]))
    anchored = anchor(env, keccak(b"gas-batch"), keccak(b"gas-root"), 1000)
    closed = dict(env.ok(close_call(env, job, 1000, hashes[999], tree.root, proof), env.anchor))
    used = {"createJob(2 parties, consent)": created["gasUsed"], "anchorBatch": anchored["gasUsed"]}
    used["closeJob(1000 steps)"] = closed["gasUsed"]
    print("gas used:", used)
    assert anchored["gasUsed"] < 80_000
    assert created["gasUsed"] < 300_000
    assert closed["gasUsed"] < 110_000


# ------------------------------------------------------------------------------ attacks (issue 11)
# Each was reproduced against the previous contract (where each of these tests failed: the attack went
# through); each must now revert with its custom error and leave the chain state as it was.


def test_attack_a_squatted_id_is_just_another_job(env: ContractsEnv, consent_signer: Signer) -> None:
    """Bob reads the id of alice's queued job from the API and tries to create it first."""
    alice, bob = env.member_a, env.member_b
    fns = env.ledger.functions
    job = job_of(alice)  # what the API showed: alice's id for her manifest and salt
    sigs = [consent_signer(alice, job, MANIFEST), consent_signer(bob, job, MANIFEST)]
    # bob replays alice's createJob (mempool front-running): the consents are for alice's id, not his
    assert env.revert(fns.createJob(MANIFEST, SALT, [alice.address, bob.address], sigs), bob) == (
        "InvalidConsent",
        (job_of(bob), alice.address.lower()),
    )
    # bob creates "the job" with a bogus manifest and no consents: he gets a job of his own, under his id
    bogus, receipt = create_job(env, bob, [bob, alice], [], manifest=keccak(b"bogus"))
    assert bogus != job and env.events(receipt, env.ledger, "JobCreated")[0]["jobId"] == bogus
    assert fns.getJob(job).call()[2] == NONE
    # alice's job is created as she meant it, Open with both consents
    created, _ = create_job(env, alice, [alice, bob], sigs)
    assert created == job
    assert fns.getJob(job).call()[:3] == (MANIFEST, alice.address, OPEN)
    assert fns.getJob(bogus).call()[:3] == (keccak(b"bogus"), bob.address, PROPOSED)


def test_attack_a_job_without_every_consent_never_opens(env: ContractsEnv, consent_signer: Signer) -> None:
    """Bob creates a job naming alice, who never consented: no model, no close, nothing anchored to it."""
    alice, bob = env.member_a, env.member_b
    fns = env.ledger.functions
    job = job_of(bob)
    create_job(env, bob, [bob, alice], [consent_signer(bob, job, MANIFEST), b""])
    model = keccak(b"credit_lr")
    before = state(env, job, model)
    assert before[0][2] == PROPOSED and before[2] == 1 and before[3] == [True, False]
    assert env.revert(fns.recordModel(job, model, 1, keccak(b"w")), env.anchor) == ("JobNotOpen", (job,))
    tree, hashes = anchor_records(env, job, 2)
    proof = tree.proof(leaf_hash(job, 1, hashes[1]))
    assert env.revert(close_call(env, job, 2, hashes[1], tree.root, proof), env.anchor) == (
        "JobNotOpen",
        (job,),
    )
    assert env.revert(close_call(env, job, 0, ZERO32, ZERO32, [], False), env.anchor) == (
        "JobNotOpen",
        (job,),
    )
    # bob cannot consent for alice
    assert env.revert(fns.submitConsent(job, alice.address, consent_signer(bob, job, MANIFEST)), bob) == (
        "InvalidConsent",
        (job, alice.address.lower()),
    )
    assert state(env, job, model) == before


def test_attack_a_party_cannot_record_a_model(env: ContractsEnv, consent_signer: Signer) -> None:
    """Bob records "version 1" of alice's model with a wrong hash."""
    job = open_job(env, consent_signer)
    model = keccak(b"credit_lr-abc-3")
    before = state(env, job, model)
    for party in (env.member_b, env.member_a):
        assert env.revert(env.ledger.functions.recordModel(job, model, 1, b"\x66" * 32), party) == (
            "NotAnchorService",
            (party.address.lower(),),
        )
    receipt = env.send(
        env.ledger.functions.recordModel(job, model, 1, b"\x66" * 32), env.member_b, gas=200_000
    )
    assert receipt["status"] == 0 and env.events(receipt, env.ledger, "ModelRecorded") == []
    assert state(env, job, model) == before


def test_attack_no_model_for_a_job_that_is_not_open(env: ContractsEnv, consent_signer: Signer) -> None:
    job = open_job(env, consent_signer)
    env.ok(close_call(env, job, 0, ZERO32, ZERO32, [], False), env.anchor)
    model = keccak(b"credit_lr")
    before = state(env, job, model)
    assert env.revert(env.ledger.functions.recordModel(job, model, 1, keccak(b"w")), env.anchor) == (
        "JobNotOpen",
        (job,),
    )
    assert state(env, job, model) == before


def test_attack_a_party_cannot_close_a_job(env: ContractsEnv, consent_signer: Signer) -> None:
    """Bob closes alice's job (with its real last record, or with 999 steps)."""
    job = open_job(env, consent_signer)
    tree, hashes = anchor_records(env, job, 3)
    proof = tree.proof(leaf_hash(job, 2, hashes[2]))
    before = state(env, job)
    for party in (env.member_b, env.member_a, env.admin, env.outsider):
        for steps in (3, 999):
            assert env.revert(close_call(env, job, steps, hashes[2], tree.root, proof), party) == (
                "NotAnchorService",
                (party.address.lower(),),
            )
    assert state(env, job) == before


def test_attack_close_with_a_wrong_step_count(env: ContractsEnv, consent_signer: Signer) -> None:
    job = open_job(env, consent_signer)
    tree, hashes = anchor_records(env, job, 3)
    proof = tree.proof(leaf_hash(job, 2, hashes[2]))
    before = state(env, job)
    for steps in (999, 4, 2, 1):  # the proof of seq 2 proves a job of 3 steps only
        assert env.revert(close_call(env, job, steps, hashes[2], tree.root, proof), env.anchor) == (
            "FinalRecordNotProven",
            (job, steps - 1, hashes[2], tree.root),
        )
    # (A shorter close, e.g. seq 1 proven with stepCount 2, is a valid close for the contract, which cannot
    # know that later records exist; only the anchoring service may close, and the verifier checks that the
    # bundle's records are seqs 0..stepCount-1.)
    assert state(env, job) == before


def test_attack_close_with_another_jobs_root(env: ContractsEnv, consent_signer: Signer) -> None:
    job = open_job(env, consent_signer)
    other = open_job(env, consent_signer, caller=env.member_b)
    tree, hashes = anchor_records(env, other, 3)  # the other job's batch and its last record
    proof = tree.proof(leaf_hash(other, 2, hashes[2]))
    before = state(env, job)
    assert env.revert(close_call(env, job, 3, hashes[2], tree.root, proof), env.anchor) == (
        "FinalRecordNotProven",
        (job, 2, hashes[2], tree.root),
    )
    # a batch holding both jobs' records: the other job's leaf proves nothing about this job
    mixed = MerkleTree([leaf_hash(job, 0, keccak(b"r0")), leaf_hash(other, 3, keccak(b"r3"))])
    anchor(env, keccak(b"mixed"), mixed.root, 2)
    other_proof = mixed.proof(leaf_hash(other, 3, keccak(b"r3")))
    assert env.revert(close_call(env, job, 4, keccak(b"r3"), mixed.root, other_proof), env.anchor) == (
        "FinalRecordNotProven",
        (job, 3, keccak(b"r3"), mixed.root),
    )
    assert state(env, job) == before


def test_attack_close_with_a_bad_proof(env: ContractsEnv, consent_signer: Signer) -> None:
    job = open_job(env, consent_signer)
    tree, hashes = anchor_records(env, job, 5)
    proof = tree.proof(leaf_hash(job, 4, hashes[4]))
    before = state(env, job)
    tampered = [proof[0][:31] + bytes([proof[0][31] ^ 1]), *proof[1:]]
    wrong_record = keccak(b"a record that never ran")
    for record_hash, nodes in (
        (hashes[4], tampered),
        (hashes[4], proof[:-1]),
        (hashes[4], []),
        (wrong_record, proof),
    ):
        assert env.revert(close_call(env, job, 5, record_hash, tree.root, nodes), env.anchor) == (
            "FinalRecordNotProven",
            (job, 4, record_hash, tree.root),
        )
    receipt = env.send(close_call(env, job, 5, wrong_record, tree.root, proof), env.anchor, gas=300_000)
    assert receipt["status"] == 0 and env.events(receipt, env.ledger, "JobClosed") == []
    assert state(env, job) == before
    env.ok(close_call(env, job, 5, hashes[4], tree.root, proof), env.anchor)  # the genuine close passes
    assert state(env, job)[0][2] == CLOSED


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
