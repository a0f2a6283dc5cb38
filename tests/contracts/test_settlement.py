"""Settlement on a real anvil: weights from an anchored contribution record agreed by all parties,
revenue in ETH and an ERC-20, pull withdrawals, every denial, reentrancy, fee-on-transfer tokens,
and property tests of the rounding rule and of conservation over random deposits and withdrawals."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ContractsEnv, _deploy
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from settlement_helpers import (
    TEST_ARTIFACTS_DIR,
    TEST_CONTRACTS,
    SettlementEnv,
    build_settlement_env,
    compile_test_contracts,
    job_id_of,
    key_of,
    throwaway,
)
from web3 import Web3
from web3.exceptions import ContractLogicError

from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.devchain import DEV_CHAIN_ID, DevChain
from secureflow.ledger.errors import ContractRevertedError
from secureflow.ledger.merkle import MerkleTree
from secureflow.ledger.settlement.approval import (
    Approval,
    approval_digest,
    approval_for,
    approval_signer_of,
    sign_approval,
)
from secureflow.ledger.settlement.client import ETH
from secureflow.ledger.settlement.contribution import propose_weights, record_carries_weights
from secureflow.ledger.settlement.errors import InvalidApprovalError, SettlementError
from secureflow.ledger.settlement.weights import allocate, bps_from_scores, weights_hash

JOB_SALT = keccak(b"settlement-job-1")
JOB = job_id_of(JOB_SALT)  # the id member A (every test's first party) gets for it
ETHER = 10**18


@pytest.fixture(scope="session")
def settlement_session(contracts_env: ContractsEnv) -> SettlementEnv:
    return build_settlement_env(contracts_env)


@pytest.fixture
def s(settlement_session: SettlementEnv, chain_snapshot: None) -> Iterator[SettlementEnv]:
    yield settlement_session


def decoded(s: SettlementEnv, data: object) -> tuple[str, tuple]:
    """The custom error in revert ``data``, addresses checksummed."""
    name, args = s.base.decode_revert(data)
    return name, tuple(
        Web3.to_checksum_address(v) if isinstance(v, str) and len(v) == 42 else v for v in args
    )


def revert(s: SettlementEnv, fn: object, account: LocalAccount, value: int = 0) -> tuple[str, tuple]:
    try:
        fn.call({"from": account.address, "value": value})  # type: ignore[attr-defined]
    except ContractLogicError as error:
        return decoded(s, error.data)
    raise AssertionError("the call did not revert")


def eth_balance(s: SettlementEnv, address: str) -> int:
    return int(s.w3.eth.get_balance(address))


# ------------------------------------------------------------------ artifacts and deployment


def test_test_contract_artifacts_are_current() -> None:
    fresh = compile_test_contracts()
    assert sorted(fresh) == sorted(TEST_CONTRACTS)
    assert sorted(p.stem for p in TEST_ARTIFACTS_DIR.glob("*.json")) == sorted(TEST_CONTRACTS)
    for name, artifact in fresh.items():
        assert (TEST_ARTIFACTS_DIR / f"{name}.json").read_text(encoding="utf-8") == artifact.to_json(), (
            f"{name} is stale: run .venv/bin/python tests/contracts/settlement_helpers.py"
        )


def test_settlement_artifact_is_berlin_without_post_berlin_opcodes() -> None:
    path = Path(__file__).resolve().parents[1] / "ledger" / "test_compile.py"
    spec = importlib.util.spec_from_file_location("_settlement_test_compile", path)
    assert spec is not None and spec.loader is not None
    compile_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compile_tests)  # reuse its opcode walker
    opcodes, strip_metadata = compile_tests.opcodes, compile_tests.strip_metadata
    artifact = load_artifact("Settlement")
    assert artifact.compiler.settings["evmVersion"] == "berlin"
    assert json.loads(artifact.metadata)["settings"]["evmVersion"] == "berlin"
    code = strip_metadata(bytes.fromhex(artifact.deployed_bytecode[2:]))
    assert not {0x5F, 0x48, 0x5E, 0x5C, 0x5D} & set(opcodes(code))


def test_deployment(s: SettlementEnv) -> None:
    fns = s.settlement.functions
    assert fns.registry().call() == s.base.registry.address
    assert fns.ledger().call() == s.base.ledger.address
    assert fns.TOTAL_BPS().call() == 10_000
    assert fns.CONTRIBUTION_APPROVAL_TYPEHASH().call() == keccak(
        b"ContributionApproval(bytes32 jobId,bytes32 weightsHash,bytes32 recordLeaf)"
    )
    _, name, version, chain_id, contract, _, _ = fns.eip712Domain().call()
    assert (name, version, chain_id, contract) == (
        "SecureflowSettlement",
        "1",
        DEV_CHAIN_ID,
        s.settlement.address,
    )


def test_constructor_checks(s: SettlementEnv) -> None:
    artifact = load_artifact("Settlement")
    factory = s.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    other_registry = _deploy(s.w3, "ConsortiumRegistry", s.base.admin, s.base.admin.address)
    for args, expected in (
        (("0x" + "00" * 20, s.base.ledger.address), "ZeroAddress"),
        ((other_registry.address, s.base.ledger.address), "RegistryMismatch"),
    ):
        with pytest.raises(ContractLogicError) as info:
            factory.constructor(*args).estimate_gas({"from": s.base.admin.address})
        assert s.base.decode_revert(info.value.data)[0] == expected


# ------------------------------------------------------------------ whole flows


def test_whole_flow_eth_with_signatures(s: SettlementEnv) -> None:
    a, b, c = s.members[:3]
    bps = [5000, 3000, 2000]
    s.create_job(JOB_SALT, [a, b, c])
    proposal = s.proposal(JOB, [a, b, c], bps)
    assert (
        s.settlement.functions.weightsHash(JOB, list(proposal.members), bps).call() == proposal.weights_hash
    )
    assert s.settlement.functions.recordLeaf(JOB, proposal.seq, proposal.record_hash).call() == (
        proposal.record_leaf
    )
    digest = approval_digest(
        DEV_CHAIN_ID, s.settlement.address, JOB, proposal.weights_hash, proposal.record_leaf
    )
    assert (
        s.settlement.functions.approvalDigest(JOB, proposal.weights_hash, proposal.record_leaf).call()
        == digest
    )

    client_a = s.as_client(a)
    signatures = {m.address: client_a.sign_approval("0x" + bytes(m.key).hex(), proposal) for m in (a, b, c)}
    receipt = client_a.set_weights(proposal, signatures)
    (event,) = s.base.events(receipt, s.settlement, "WeightsSet")
    assert event["weightsHash"] == proposal.weights_hash and event["recordLeaf"] == proposal.record_leaf
    assert list(event["bps"]) == bps and event["setBy"] == a.address

    weights = client_a.weights_of(JOB)
    assert weights.is_set and weights.members == proposal.members and weights.bps == tuple(bps)
    assert weights.root == proposal.root and weights.set_by == a.address

    s.fund(s.base.admin.address, 100 * ETHER)
    depositor = s.as_client(s.base.admin)
    depositor.deposit_eth(JOB, 10 * ETHER + 7)  # 7 wei of rounding remainder to spread
    depositor.deposit_eth(JOB, 3)
    total = 10 * ETHER + 10
    assert client_a.total_deposited(JOB) == total
    expected = allocate(total, bps)
    assert sum(expected) == total
    assert client_a.entitlements(JOB) == expected
    assert [row.releasable for row in client_a.balances(JOB)] == expected

    for member, share in zip((a, b, c), expected, strict=True):
        before = eth_balance(s, member.address)
        receipt = s.as_client(member).withdraw(JOB)
        (released,) = s.base.events(receipt, s.settlement, "RevenueReleased")
        assert released["amount"] == share and released["asset"] == ETH
        assert eth_balance(s, member.address) - before == share  # gas price 0: exact
    assert client_a.total_released(JOB) == total
    assert eth_balance(s, s.settlement.address) == 0

    history = client_a.history(JOB)
    assert [e.name for e in history] == ["WeightsSet", "RevenueDeposited", "RevenueDeposited"] + [
        "RevenueReleased"
    ] * 3
    assert history[1].args["amount"] == 10 * ETHER + 7


def test_whole_flow_token_with_on_chain_approvals(s: SettlementEnv) -> None:
    a, b = s.members[:2]
    bps = [6667, 3333]
    s.create_job(JOB_SALT, [a, b])
    proposal = s.proposal(JOB, [a, b], bps)
    for member in (a, b):
        receipt = s.as_client(member).approve_weights(proposal)
        (event,) = s.base.events(receipt, s.settlement, "WeightsApproved")
        assert event["party"] == member.address and event["weightsHash"] == proposal.weights_hash
        assert s.as_client(member).has_approved(proposal, member.address)
    s.as_client(b).set_weights(proposal)  # no signatures: on-chain approvals only

    payer = s.base.admin
    s.base.ok(s.token.functions.mint(payer.address, 1_000_001), payer)
    client = s.as_client(payer)
    token = s.token.address
    client.deposit_token(JOB, token, 1_000_001)
    assert client.total_deposited(JOB, token) == 1_000_001
    assert client.total_deposited(JOB, ETH) == 0
    expected = allocate(1_000_001, bps)
    assert expected == [666_701, 333_300]  # floors 666_700 + 333_300 = 1_000_000; +1 to the larger weight
    for member, share in zip((a, b), expected, strict=True):
        assert client.releasable(JOB, member.address, token) == share
        s.as_client(member).withdraw(JOB, token)
        assert s.token.functions.balanceOf(member.address).call() == share
        assert client.released(JOB, member.address, token) == share
    assert s.token.functions.balanceOf(s.settlement.address).call() == 0
    assert client.total_released(JOB, token) == 1_000_001


def test_mixed_signature_and_on_chain_approval(s: SettlementEnv) -> None:
    a, b, c = s.members[:3]
    s.create_job(JOB_SALT, [a, b, c])
    proposal = s.proposal(JOB, [c, a, b], [1, 9998, 1])  # any member order
    s.as_client(b).approve_weights(proposal)
    signatures = [s.signature(a, proposal), b"", s.signature(c, proposal)]  # jobParties order
    receipt = s.base.ok(s.set_weights_call(proposal, signatures), c)
    assert s.settlement.functions.weightsSet(JOB).call()
    # which weights: the proposal's members and bps in its order, its hash and record, set by c
    members, bps, (w_hash, leaf, _root, at_block, set_by) = s.settlement.functions.weightsOf(JOB).call()
    assert (members, bps) == ([c.address, a.address, b.address], [1, 9998, 1])
    assert (w_hash, leaf, set_by) == (proposal.weights_hash, proposal.record_leaf, c.address)
    assert at_block == receipt["blockNumber"]


def test_deposits_accumulate_and_partial_withdrawals(s: SettlementEnv) -> None:
    a, b, c = s.members[:3]
    bps = [3334, 3333, 3333]
    s.setup_job(JOB_SALT, [a, b, c], bps)
    s.fund(s.base.admin.address, ETHER)
    withdrawn = [0, 0, 0]
    total = 0
    for amount in (3, 1, 2, 10_001, 5):
        s.as_client(s.base.admin).deposit_eth(JOB, amount)
        total += amount
        expected = allocate(total, bps)
        for i, member in enumerate((a, b, c)):
            due = expected[i] - withdrawn[i]
            assert s.settlement.functions.releasable(JOB, ETH, member.address).call() == due
            if due and i != 1:  # b withdraws only at the end
                s.as_client(member).withdraw(JOB)
                withdrawn[i] += due
    s.as_client(b).withdraw(JOB)
    withdrawn[1] = allocate(total, bps)[1]
    assert withdrawn == allocate(total, bps) and sum(withdrawn) == total
    assert eth_balance(s, s.settlement.address) == 0


# ------------------------------------------------------------------ denials: weights


def test_non_members_cannot_set_or_approve(s: SettlementEnv) -> None:
    a, b, c = s.members[:3]
    s.create_job(JOB_SALT, [a, b])
    proposal = s.proposal(JOB, [a, b], [5000, 5000])
    sigs = [s.signature(a, proposal), s.signature(b, proposal)]
    outsider = s.base.outsider
    fns = s.settlement.functions
    assert revert(s, s.set_weights_call(proposal, sigs), outsider) == ("NotJobParty", (JOB, outsider.address))
    assert revert(s, s.set_weights_call(proposal, sigs), c)[0] == "NotJobParty"  # member, not a party
    approve = fns.approveWeights(JOB, proposal.weights_hash, proposal.record_leaf)
    assert revert(s, approve, outsider)[0] == "NotJobParty"
    unknown = keccak(b"no-such-job")
    assert revert(s, fns.approveWeights(unknown, proposal.weights_hash, proposal.record_leaf), a) == (
        "UnknownJob",
        (unknown,),
    )
    assert revert(s, fns.approveWeights(JOB, b"\0" * 32, proposal.record_leaf), a)[0] == "InvalidProposal"
    # a suspended party can neither approve nor set
    s.base.ok(s.base.registry.functions.suspendMember(b.address), s.base.admin)
    assert revert(s, approve, b) == ("NotActiveMember", (b.address,))
    assert revert(s, s.set_weights_call(proposal, sigs), a) == ("NotActiveMember", (b.address,))
    assert revert(s, s.set_weights_call(proposal, sigs), b) == ("NotActiveMember", (b.address,))


def test_weights_must_sum_to_10000(s: SettlementEnv) -> None:
    a, b = s.members[:2]
    s.create_job(JOB_SALT, [a, b])
    for bps, total in (([5000, 4999], 9999), ([5000, 5001], 10001), ([0, 0], 0), ([65535, 65535], 131070)):
        addresses = [a.address, b.address]
        record = s.contribution_record(JOB, addresses, bps)
        tree = s.anchor_record(record)
        call = s.settlement.functions.setWeights(
            JOB,
            addresses,
            bps,
            (record.record_hash(), record.seq, tree.root, tree.proof(record.leaf())),
            [],
        )
        assert revert(s, call, a) == ("InvalidWeightsSum", (total,))
    with pytest.raises(SettlementError, match="sum"):
        propose_weights(JOB, [a.address, b.address], [5000, 4999], record, tree)


def test_members_must_be_exactly_the_job_parties(s: SettlementEnv) -> None:
    a, b, c = s.members[:3]
    s.create_job(JOB_SALT, [a, b])
    cases = [
        ([a.address], [10_000], "MembersNotJobParties"),  # one missing
        ([a.address, b.address, c.address], [5000, 4000, 1000], "MembersNotJobParties"),  # one extra
        ([a.address, c.address], [5000, 5000], "MembersNotJobParties"),  # one replaced
        ([a.address, a.address], [5000, 5000], "DuplicateMember"),
    ]
    for members, bps, expected in cases:
        record = s.contribution_record(JOB, members, bps)
        tree = s.anchor_record(record)
        call = s.settlement.functions.setWeights(
            JOB, members, bps, (record.record_hash(), record.seq, tree.root, tree.proof(record.leaf())), []
        )
        assert revert(s, call, a)[0] == expected, members
    call = s.settlement.functions.setWeights(
        JOB, [a.address, b.address], [10_000], (record.record_hash(), record.seq, tree.root, []), []
    )
    assert revert(s, call, a) == ("LengthMismatch", (2, 1))


def test_record_must_be_anchored_and_proven(s: SettlementEnv) -> None:
    a, b = s.members[:2]
    s.create_job(JOB_SALT, [a, b])
    unanchored = s.proposal(JOB, [a, b], [5000, 5000], anchor=False)
    sigs = [s.signature(a, unanchored), s.signature(b, unanchored)]
    name, args = revert(s, s.set_weights_call(unanchored, sigs), a)
    assert name == "RecordNotAnchored" and args == (
        JOB,
        unanchored.record_leaf,
        bytes.fromhex(unanchored.root[2:]),
    )

    anchored = s.proposal(JOB, [a, b], [5000, 5000])
    sigs = [s.signature(a, anchored), s.signature(b, anchored)]
    bad_proof = anchored.model_copy(update={"proof": ("0x" + keccak(b"bad").hex(), *anchored.proof[1:])})
    wrong_seq = anchored.model_copy(update={"seq": anchored.seq + 1})
    other_salt = keccak(b"other-job")
    other_job = job_id_of(other_salt)
    wrong_hash = anchored.model_copy(update={"record_hash": "0x" + keccak(b"forged").hex()})
    for forged in (bad_proof, wrong_seq, wrong_hash):
        assert revert(s, s.set_weights_call(forged, sigs), a)[0] == "RecordNotAnchored"
    # the leaf is bound to the job: the same record proof does not serve another job
    s.create_job(other_salt, [a, b])
    moved = anchored.model_copy(update={"job_id": "0x" + other_job.hex()})
    assert revert(s, s.set_weights_call(moved, sigs), a)[0] == "RecordNotAnchored"
    s.base.ok(s.set_weights_call(anchored, sigs), a)  # the genuine one passes


def test_every_party_must_approve(s: SettlementEnv) -> None:
    a, b, c = s.members[:3]
    s.create_job(JOB_SALT, [a, b, c])
    proposal = s.proposal(JOB, [a, b, c], [4000, 3000, 3000])
    good = [s.signature(m, proposal) for m in (a, b, c)]
    assert revert(s, s.set_weights_call(proposal, []), a) == ("MissingApproval", (JOB, a.address))
    assert revert(s, s.set_weights_call(proposal, [good[0], b"", good[2]]), a) == (
        "MissingApproval",
        (JOB, b.address),
    )
    swapped = [good[1], good[0], good[2]]
    assert revert(s, s.set_weights_call(proposal, swapped), a) == ("InvalidApproval", (JOB, a.address))
    outsider_sig = [good[0], s.signature(s.base.outsider, proposal), good[2]]
    assert revert(s, s.set_weights_call(proposal, outsider_sig), a) == ("InvalidApproval", (JOB, b.address))
    other = s.proposal(JOB, [a, b, c], [3000, 3000, 4000])  # approvals of other weights do not count
    stale = [good[0], s.signature(b, other), good[2]]
    assert revert(s, s.set_weights_call(proposal, stale), a)[0] == "InvalidApproval"
    assert revert(s, s.set_weights_call(proposal, good[:2]), a) == ("SignatureLengthMismatch", (3, 2))
    assert (
        revert(s, s.set_weights_call(proposal, [good[0], b"\x01" * 65, good[2]]), a)[0] == "InvalidApproval"
    )
    # an on-chain approval of the other proposal does not count either
    s.as_client(b).approve_weights(other)
    assert revert(s, s.set_weights_call(proposal, [good[0], b"", good[2]]), a)[0] == "MissingApproval"


def test_an_approval_signed_for_another_chain_or_contract_is_refused(s: SettlementEnv) -> None:
    """Bob's genuine ContributionApproval of these very weights, signed in the EIP-712 domain of another
    chain id or another contract (the audit ledger, a second Settlement): setWeights reverts
    InvalidApproval naming bob, and the Python check of an approval file refuses it before any
    transaction, naming the field or recovering another signer."""
    a, b = s.members[:2]
    s.create_job(JOB_SALT, [a, b])
    proposal = s.proposal(JOB, [a, b], [5000, 5000])
    s.as_client(a).approve_weights(proposal)  # alice approves on chain: only bob's signature is checked
    key_b = key_of(b)
    ledger = s.base.ledger.address

    def signed(chain_id: int, contract: str) -> bytes:
        return sign_approval(
            key_b, chain_id, contract, proposal.job_id_bytes, proposal.weights_hash, proposal.record_leaf
        )

    elsewhere = {
        "chain id 1": (1, s.settlement.address),
        "chain id 1338": (DEV_CHAIN_ID + 1, s.settlement.address),
        "the audit ledger": (DEV_CHAIN_ID, ledger),
    }
    for where, (chain_id, contract) in elsewhere.items():
        signature = signed(chain_id, contract)
        assert revert(s, s.set_weights_call(proposal, [b"", signature]), a) == (
            "InvalidApproval",
            (JOB, b.address),
        ), where
        # as a file: the fields it states name the other domain, and are refused by name
        stated = approval_for(chain_id, contract, proposal, b.address, signature)
        with pytest.raises(
            InvalidApprovalError, match="chain_id" if chain_id != DEV_CHAIN_ID else "settlement"
        ):
            approval_signer_of(stated, DEV_CHAIN_ID, s.settlement.address, proposal)
        # the bare signature (no fields stated) recovers someone who is not bob in this domain
        bare = Approval(signature="0x" + signature.hex())
        assert approval_signer_of(bare, DEV_CHAIN_ID, s.settlement.address, proposal) != b.address
    assert not s.settlement.functions.weightsSet(JOB).call()
    s.base.ok(s.set_weights_call(proposal, [b"", signed(DEV_CHAIN_ID, s.settlement.address)]), a)
    members, bps, info = s.settlement.functions.weightsOf(JOB).call()
    assert (members, bps, info[0]) == ([a.address, b.address], [5000, 5000], proposal.weights_hash)


def test_weights_are_set_once(s: SettlementEnv) -> None:
    a, b = s.members[:2]
    proposal = s.setup_job(JOB_SALT, [a, b], [5000, 5000])
    again = s.proposal(JOB, [a, b], [9000, 1000])
    sigs = [s.signature(a, again), s.signature(b, again)]
    assert revert(s, s.set_weights_call(again, sigs), a) == ("WeightsAlreadySet", (JOB,))
    assert (
        revert(s, s.set_weights_call(proposal, [s.signature(a, proposal), s.signature(b, proposal)]), b)[0]
        == "WeightsAlreadySet"
    )
    approve = s.settlement.functions.approveWeights(JOB, again.weights_hash, again.record_leaf)
    assert revert(s, approve, a) == ("WeightsAlreadySet", (JOB,))
    with pytest.raises(ContractRevertedError) as info:
        s.as_client(a).set_weights(again, sigs)
    assert info.value.error_name == "WeightsAlreadySet"


def test_double_on_chain_approval(s: SettlementEnv) -> None:
    a, b = s.members[:2]
    s.create_job(JOB_SALT, [a, b])
    proposal = s.proposal(JOB, [a, b], [5000, 5000])
    s.as_client(a).approve_weights(proposal)
    with pytest.raises(ContractRevertedError) as info:
        s.as_client(a).approve_weights(proposal)
    assert info.value.error_name == "AlreadyApproved"


# ------------------------------------------------------------------ denials: revenue


def test_deposit_rules(s: SettlementEnv) -> None:
    a, b = s.members[:2]
    fns = s.settlement.functions
    admin = s.base.admin
    s.create_job(JOB_SALT, [a, b])
    assert revert(s, fns.depositEth(JOB), admin, value=5) == ("WeightsNotSet", (JOB,))
    assert revert(s, fns.depositToken(JOB, s.token.address, 5), admin) == ("WeightsNotSet", (JOB,))
    s2 = job_id_of(keccak(b"job-2"))
    s.setup_job(keccak(b"job-2"), [a, b], [5000, 5000])
    assert revert(s, fns.depositEth(s2), admin, value=0) == ("ZeroAmount", ())
    assert revert(s, fns.depositToken(s2, s.token.address, 0), admin) == ("ZeroAmount", ())
    assert revert(s, fns.depositToken(s2, "0x" + "00" * 20, 5), admin) == ("ZeroAddress", ())
    # no allowance: SafeERC20 reverts with the token's error
    s.base.ok(s.token.functions.mint(admin.address, 10), admin)
    assert revert(s, fns.depositToken(s2, s.token.address, 10), admin)[0] == "ERC20InsufficientAllowance"
    # plain ETH transfers are refused (no receive function): revenue must name its job
    with pytest.raises((ContractLogicError, ValueError)):
        s.w3.eth.call({"from": admin.address, "to": s.settlement.address, "value": 1})
    max_total = fns.MAX_TOTAL_DEPOSIT().call()
    s.base.ok(s.token.functions.mint(admin.address, max_total), admin)
    s.base.ok(s.token.functions.approve(s.settlement.address, 2**256 - 1), admin)
    s.base.ok(fns.depositToken(s2, s.token.address, max_total), admin)
    assert revert(s, fns.depositToken(s2, s.token.address, 1), admin) == (
        "DepositCapExceeded",
        (s2, s.token.address),
    )
    # at the cap the allocation still works without overflow
    assert sum(fns.entitlements(s2, s.token.address).call()) == max_total


def test_fee_on_transfer_token_is_refused(s: SettlementEnv) -> None:
    a, b = s.members[:2]
    s.setup_job(JOB_SALT, [a, b], [5000, 5000])
    admin = s.base.admin
    s.base.ok(s.fee_token.functions.mint(admin.address, 10_000), admin)
    s.base.ok(s.fee_token.functions.approve(s.settlement.address, 10_000), admin)
    call = s.settlement.functions.depositToken(JOB, s.fee_token.address, 10_000)
    assert revert(s, call, admin) == ("UnsupportedToken", (s.fee_token.address, 10_000, 9_900))
    with pytest.raises(ContractRevertedError) as info:
        s.as_client(admin).deposit_token(JOB, s.fee_token.address, 10_000)
    assert info.value.error_name == "UnsupportedToken"
    assert s.fee_token.functions.balanceOf(s.settlement.address).call() == 0
    assert s.settlement.functions.totalDeposited(JOB, s.fee_token.address).call() == 0


def test_withdraw_denials(s: SettlementEnv) -> None:
    a, b, c = s.members[:3]
    fns = s.settlement.functions
    assert revert(s, fns.withdrawEth(JOB), a) == ("WeightsNotSet", (JOB,))
    s.setup_job(JOB_SALT, [a, b], [5000, 5000])
    assert revert(s, fns.withdrawEth(JOB), a) == ("NothingToRelease", (JOB, ETH, a.address))  # nothing yet
    s.fund(s.base.admin.address, ETHER)
    s.as_client(s.base.admin).deposit_eth(JOB, 1001)
    assert revert(s, fns.withdrawEth(JOB), c) == ("NotSettlementMember", (JOB, c.address))
    assert revert(s, fns.withdrawEth(JOB), s.base.outsider)[0] == "NotSettlementMember"
    assert revert(s, fns.withdrawToken(JOB, s.token.address), a) == (
        "NothingToRelease",
        (JOB, s.token.address, a.address),
    )
    assert revert(s, fns.withdrawToken(JOB, "0x" + "00" * 20), a) == ("ZeroAddress", ())
    first = s.as_client(a).withdraw(JOB)
    assert s.base.events(first, s.settlement, "RevenueReleased")[0]["amount"] == 501
    # withdraw twice: nothing more, a custom error, and no ETH moves
    assert revert(s, fns.withdrawEth(JOB), a) == ("NothingToRelease", (JOB, ETH, a.address))
    with pytest.raises(ContractRevertedError) as info:
        s.as_client(a).withdraw(JOB)
    assert info.value.error_name == "NothingToRelease"
    assert fns.releasable(JOB, ETH, a.address).call() == 0
    assert fns.releasable(JOB, ETH, b.address).call() == 500
    # a suspended member keeps what it earned
    s.base.ok(s.base.registry.functions.suspendMember(b.address), s.base.admin)
    s.as_client(b).withdraw(JOB)
    assert fns.totalReleased(JOB, ETH).call() == 1001


# ------------------------------------------------------------------ reentrancy


def _receiver_job(s: SettlementEnv) -> tuple[LocalAccount, str]:
    """A job of member A and the receiver contract, weights 5000/5000, 1000 wei deposited."""
    a = s.members[0]
    receiver = s.receiver
    fns = receiver.functions
    s.create_job(JOB_SALT, [a, receiver.address])
    proposal = s.proposal(JOB, [a, receiver.address], [5000, 5000])
    approve = s.settlement.functions.approveWeights(JOB, proposal.weights_hash, proposal.record_leaf)
    s.base.ok(fns.forward(s.settlement.address, approve._encode_transaction_data()), a)
    s.base.ok(s.set_weights_call(proposal, [s.signature(a, proposal), b""]), a)
    s.fund(s.base.admin.address, ETHER)
    s.as_client(s.base.admin).deposit_eth(JOB, 1000)
    return a, receiver.address


def test_reentrant_withdrawal_is_blocked(s: SettlementEnv) -> None:
    a, receiver = _receiver_job(s)
    fns = s.receiver.functions
    withdraw = s.settlement.functions.withdrawEth(JOB)._encode_transaction_data()
    # the receiver re-enters withdrawEth when paid and swallows the failure
    s.base.ok(fns.arm(s.settlement.address, withdraw, False), a)
    receipt = s.base.ok(fns.forward(s.settlement.address, withdraw), a)
    assert [e["amount"] for e in s.base.events(receipt, s.settlement, "RevenueReleased")] == [500]
    assert fns.attempts().call() == 1 and fns.receipts().call() == 1
    assert fns.lastSucceeded().call() is False
    assert s.base.decode_revert("0x" + fns.lastReturn().call().hex())[0] == "ReentrancyGuardReentrantCall"
    assert eth_balance(s, receiver) == 500
    assert s.settlement.functions.released(JOB, ETH, receiver).call() == 500
    # cross-function reentry (a deposit from inside the payout) is blocked as well
    s.fund(s.base.admin.address, ETHER)
    s.as_client(s.base.admin).deposit_eth(JOB, 2)
    deposit = s.settlement.functions.depositEth(JOB)._encode_transaction_data()
    s.base.ok(fns.arm(s.settlement.address, deposit, False), a)
    s.base.ok(fns.forward(s.settlement.address, withdraw), a)
    assert s.base.decode_revert("0x" + fns.lastReturn().call().hex())[0] == "ReentrancyGuardReentrantCall"
    assert s.settlement.functions.totalDeposited(JOB, ETH).call() == 1002


def test_a_token_callback_cannot_reenter_a_withdrawal(s: SettlementEnv) -> None:
    """A token that calls its receiver on every transfer (ERC-777/1363 style): the receiver re-enters
    withdrawToken from inside its own payout; the guard refuses the reentry and the share is paid once."""
    a, receiver = _receiver_job(s)
    token = s.callback_token
    payer = s.base.admin
    s.base.ok(token.functions.mint(payer.address, 1000), payer)
    s.as_client(payer).deposit_token(JOB, token.address, 1000)
    fns = s.receiver.functions
    withdraw = s.settlement.functions.withdrawToken(JOB, token.address)._encode_transaction_data()
    s.base.ok(fns.arm(s.settlement.address, withdraw, False), a)
    before = fns.attempts().call()
    # a fixed gas limit: an estimate finds the least gas at which the outer call succeeds, which starves
    # the hook (the token swallows a hook that ran out of gas, so it would never re-enter at all)
    receipt = s.base.send(fns.forward(s.settlement.address, withdraw), a, gas=1_000_000)
    assert receipt["status"] == 1
    assert [e["amount"] for e in s.base.events(receipt, s.settlement, "RevenueReleased")] == [500]
    assert fns.attempts().call() == before + 1 and fns.lastSucceeded().call() is False
    assert s.base.decode_revert("0x" + fns.lastReturn().call().hex())[0] == "ReentrancyGuardReentrantCall"
    assert token.functions.balanceOf(receiver).call() == 500
    assert s.settlement.functions.released(JOB, token.address, receiver).call() == 500
    assert s.settlement.functions.releasable(JOB, token.address, receiver).call() == 0


def test_reentrant_withdrawal_that_bubbles_reverts_everything(s: SettlementEnv) -> None:
    a, receiver = _receiver_job(s)
    fns = s.receiver.functions
    withdraw = s.settlement.functions.withdrawEth(JOB)._encode_transaction_data()
    s.base.ok(fns.arm(s.settlement.address, withdraw, True), a)
    try:
        fns.forward(s.settlement.address, withdraw).call({"from": a.address})
        raise AssertionError("did not revert")
    except ContractLogicError as error:
        name, (inner,) = s.base.decode_revert(error.data)
    assert name == "ForwardFailed"
    assert decoded(s, "0x" + inner.hex()) == ("EthTransferFailed", (receiver, 500))
    receipt = s.base.send(fns.forward(s.settlement.address, withdraw), a, gas=500_000)
    assert receipt["status"] == 0
    assert eth_balance(s, receiver) == 0
    assert s.settlement.functions.released(JOB, ETH, receiver).call() == 0
    assert s.settlement.functions.releasable(JOB, ETH, receiver).call() == 500
    # disarmed, the receiver withdraws its share exactly once
    s.base.ok(fns.arm(s.settlement.address, b"", False), a)
    s.base.ok(fns.forward(s.settlement.address, withdraw), a)
    assert eth_balance(s, receiver) == 500


# ------------------------------------------------------------------ Python helpers


def test_python_helpers() -> None:
    a, b = throwaway("x").address, throwaway("y").address
    assert bps_from_scores([1, 1, 1]) == [3334, 3333, 3333]
    assert bps_from_scores([0.5, 0.25, 0.25]) == [5000, 2500, 2500]
    assert sum(bps_from_scores([0.123, 7.5, 0.0001, 2])) == 10_000
    with pytest.raises(SettlementError):
        bps_from_scores([0, 0])
    with pytest.raises(SettlementError):
        allocate(5, [5000, 4000])
    # the naive rule (all dust to one fixed member) is not monotone; the highest-averages rule is
    assert allocate(3, [3334, 3333, 3333]) == [1, 1, 1]
    assert allocate(4, [3334, 3333, 3333]) == [2, 1, 1]
    record_env_job = keccak(b"j")
    wh = weights_hash(record_env_job, [a, b], [5000, 5000])
    assert wh != weights_hash(record_env_job, [b, a], [5000, 5000])
    with pytest.raises(SettlementError):
        propose_weights(record_env_job, [a, a], [5000, 5000], None, MerkleTree([wh]))  # type: ignore[arg-type]


def test_proposal_requires_the_record_to_carry_the_weights_hash(s: SettlementEnv) -> None:
    a, b = s.members[:2]
    record = s.contribution_record(JOB, [a.address, b.address], [5000, 5000])
    assert record_carries_weights(record, weights_hash(JOB, [a.address, b.address], [5000, 5000]))
    tree = MerkleTree([record.leaf()])
    with pytest.raises(SettlementError, match="weights hash"):
        propose_weights(JOB, [a.address, b.address], [6000, 4000], record, tree)
    with pytest.raises(SettlementError, match="another job"):
        propose_weights(keccak(b"x"), [a.address, b.address], [5000, 5000], record, tree)
    with pytest.raises(SettlementError, match="not in the given tree"):
        propose_weights(JOB, [a.address, b.address], [5000, 5000], record, MerkleTree([keccak(b"z")]))


# ------------------------------------------------------------------ properties


def dhondt_sequential(total: int, bps: list[int]) -> list[int]:
    """Seat-by-seat D'Hondt from zero (the definition the closed form must equal)."""
    alloc = [0] * len(bps)
    for _ in range(total):
        best = 0
        for i in range(1, len(bps)):
            if bps[i] * (alloc[best] + 1) > bps[best] * (alloc[i] + 1):
                best = i
        alloc[best] += 1
    return alloc


@st.composite
def weights(draw: st.DrawFn, min_members: int = 2, max_members: int = 5) -> list[int]:
    n = draw(st.integers(min_members, max_members))
    cuts = sorted(draw(st.lists(st.integers(0, 10_000), min_size=n - 1, max_size=n - 1)))
    edges = [0, *cuts, 10_000]
    return [edges[i + 1] - edges[i] for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(bps=weights(2, 8), total=st.integers(0, 400), step=st.integers(1, 50))
def test_allocation_rule_exact_monotone_and_within_quota(bps: list[int], total: int, step: int) -> None:
    alloc = allocate(total, bps)
    assert alloc == dhondt_sequential(total, bps)
    assert sum(alloc) == total
    later = allocate(total + step, bps)
    assert all(x <= y for x, y in zip(alloc, later, strict=True))
    for share, weight in zip(alloc, bps, strict=True):
        assert share >= total * weight // 10_000
        assert share <= total * weight // 10_000 + len(bps) - 1
        if weight == 0:
            assert share == 0


operation = st.one_of(
    st.tuples(st.just("deposit"), st.one_of(st.integers(1, 30), st.integers(1, 10**12))),
    st.tuples(st.just("withdraw"), st.integers(0, 4)),
)


# The property is about the contract, not the client: 12 examples on anvil; on hardhat's node (the second
# client, which must only agree) 8, to keep the suite's time down (~4 s an example under load; the forge
# invariant tests run the same conservation property with many more calls in seconds).
PROPERTY_EXAMPLES = {"anvil": 12, "hardhat": 8}


def test_property_conservation_and_exact_entitlements(s: SettlementEnv, devchain: DevChain) -> None:
    @settings(
        max_examples=PROPERTY_EXAMPLES[devchain.client],
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        bps=weights(2, 5),
        ops=st.lists(operation, min_size=1, max_size=10),
        use_token=st.booleans(),
    )
    def example(bps: list[int], ops: list[tuple[str, int]], use_token: bool) -> None:
        snapshot = s.snapshot()  # one fixture for every example: revert each example ourselves
        try:
            _run_property_example(s, bps, ops, use_token)
        finally:
            s.revert_to(snapshot)

    example()


def _run_property_example(
    s: SettlementEnv, bps: list[int], ops: list[tuple[str, int]], use_token: bool
) -> None:
    members = s.members[: len(bps)]
    s.setup_job(JOB_SALT, members, bps)
    payer = s.base.admin
    payer_client = s.as_client(payer)
    asset = s.token.address if use_token else ETH
    fns = s.settlement.functions
    if use_token:
        s.base.ok(s.token.functions.mint(payer.address, 10**15), payer)
        s.base.ok(s.token.functions.approve(s.settlement.address, 2**256 - 1), payer)
    else:
        s.fund(payer.address, 10**20)

    def held() -> int:
        if use_token:
            return int(s.token.functions.balanceOf(s.settlement.address).call())
        return eth_balance(s, s.settlement.address)

    deposited = 0
    withdrawn = [0] * len(members)

    def check() -> None:
        expected = allocate(deposited, bps)
        assert fns.entitlements(JOB, asset).call() == expected
        assert sum(withdrawn) + held() == deposited  # conservation
        assert fns.totalReleased(JOB, asset).call() == sum(withdrawn)
        for i, member in enumerate(members):
            assert withdrawn[i] <= expected[i]  # nobody got more than its share
            assert fns.releasable(JOB, asset, member.address).call() == expected[i] - withdrawn[i]

    def withdraw(i: int) -> None:
        member = members[i]
        due = allocate(deposited, bps)[i] - withdrawn[i]
        call = fns.withdrawToken(JOB, asset) if use_token else fns.withdrawEth(JOB)
        if due == 0:
            assert revert(s, call, member) == ("NothingToRelease", (JOB, asset, member.address))
            return
        receipt = s.base.ok(call, member)
        (event,) = s.base.events(receipt, s.settlement, "RevenueReleased")
        assert event["amount"] == due
        withdrawn[i] += due
        # an immediate second withdrawal gets nothing
        assert revert(s, call, member)[0] == "NothingToRelease"

    for kind, value in ops:
        if kind == "deposit":
            if use_token:
                s.base.ok(fns.depositToken(JOB, asset, value), payer)
            else:
                payer_client.deposit_eth(JOB, value)
            deposited += value
        else:
            withdraw(value % len(members))
        check()
    for i in range(len(members)):  # everyone collects: nothing stays behind
        withdraw(i)
    check()
    assert withdrawn == allocate(deposited, bps)
    assert held() == 0


def test_deploy_settlement_and_read_only_client(s: SettlementEnv) -> None:
    from secureflow.ledger.deploy import bytecode_sha256, deploy_settlement
    from secureflow.ledger.errors import ReadOnlyClientError
    from secureflow.ledger.settlement.client import SettlementClient, settlement_contract

    deployed = deploy_settlement(
        s.client, s.sender(s.base.admin), s.base.registry.address, s.base.ledger.address
    )
    assert deployed.bytecode_sha256 == bytecode_sha256("Settlement")
    assert deployed.block_number == s.w3.eth.block_number
    contract = settlement_contract(s.client, deployed.address)
    assert contract.functions.ledger().call() == s.base.ledger.address
    reader = SettlementClient(contract)
    assert not reader.weights_of(JOB).is_set
    assert reader.history(JOB) == []
    with pytest.raises(ReadOnlyClientError, match="read-only"):
        reader.deposit_eth(JOB, 1)
