"""Settlement writes over HTTP against the real app, a real anvil and real SQLite/PostgreSQL, no mocks.

The whole flow with ETH and with an ERC-20: propose -> anchor (the real anchoring worker and indexer) ->
each party signs the EIP-712 approval with its own key -> prepare set_weights -> the member signs the
unsigned transaction locally -> submit -> deposit -> each member withdraws -> the balances the API reads
from the chain equal `settlement.weights.allocate`. And the denials, each a 4xx in the one error shape
with nothing changed on chain (no block mined, no nonce used) or in the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account
from leaks import numeric_leaks
from stack import (
    ALICE,
    BOB,
    accept,
    anchor_and_index,
    new_job,
    open_job_on_chain,
)
from test_api_service import ADMIN, Env, assert_error, env, snapshot  # noqa: F401  (the live app fixture)
from web3 import Web3

from secureflow.api.client import Client, PreparedTransaction, SubmittedTransaction
from secureflow.api.server.serve import add_member_key
from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.chain import TransactionSender
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.settlement.approval import sign_approval
from secureflow.ledger.settlement.weights import allocate

ADMIN_KEY, ALICE_KEY, BOB_KEY = DEV_PRIVATE_KEYS[0], DEV_PRIVATE_KEYS[1], DEV_PRIVATE_KEYS[2]
CAROL = Account.create()  # a member of the API, party of no job
TEST_ARTIFACTS = Path(__file__).resolve().parents[2] / "contracts" / "artifacts" / "test"
LEAVE_ONE_OUT = {
    "method": "leave_one_out",
    "metric": "auc",
    "full": 0.8137,
    "parties": [{"party": ALICE, "without": 0.7901}, {"party": BOB, "without": 0.6523}],
}
LEAVE_ONE_OUT_BPS = [1275, 8725]
DATA_SHARE = {
    "method": "data_share",
    "parties": [
        {"party": ALICE, "features": 6, "rows": 500},
        {"party": BOB, "features": 3, "label_columns": 1, "rows": 500},
    ],
}
ETHER = 10**18


# ------------------------------------------------------------------ helpers


@pytest.fixture
def job(env: Env) -> str:  # noqa: F811
    """A job of Alice and Bob in the store and on chain; Carol is an API member of no job."""
    job_id = str(new_job(env.store, 4242))
    open_job_on_chain(env.stack, job_id, 4242)
    env.stack.registry().register_member(CAROL.address)  # an active member on chain, as API members are
    env.keys["carol"] = add_member_key(env.app.state.api_db, "carol", CAROL.address, "member")
    env.keys["alice"] = env.keys["member"]
    return job_id


def w3(live: Env) -> Web3:
    web3: Web3 = live.stack.client().w3
    return web3


def chain_state(live: Env) -> tuple[Any, ...]:
    """Blocks (automine: every mined transaction makes one) and the nonces of everyone who signs here."""
    web3 = w3(live)
    return (
        web3.eth.block_number,
        *(web3.eth.get_transaction_count(a, "pending") for a in (ALICE, BOB, ADMIN)),
    )


def db_state(live: Env) -> tuple[Any, ...]:
    return snapshot(live)  # jobs, records by status, members, settlement proposals and approvals


def anchor(live: Env) -> None:
    anchor_and_index(live.stack, live.store)


def settlement_address(live: Env) -> str:
    return str(live.stack.deployment.address_of("Settlement"))


def settlement(live: Env) -> Any:
    address = Web3.to_checksum_address(settlement_address(live))
    return w3(live).eth.contract(address=address, abi=load_artifact("Settlement").abi)


def raw(tx: dict[str, Any], key: str) -> str:
    return "0x" + bytes(Account.sign_transaction(tx, key).raw_transaction).hex()


def prepare(live: Env, job_id: str, who: str, action: str, **body: Any) -> requests.Response:
    return live.call(
        "POST", f"/v1/settlements/{job_id}/transactions/prepare", who, json={"action": action, **body}
    )


def submit(live: Env, job_id: str, who: str, raw_tx: str) -> requests.Response:
    return live.call("POST", f"/v1/settlements/{job_id}/transactions", who, json={"raw_transaction": raw_tx})


def transact(live: Env, job_id: str, who: str, key: str, action: str, **body: Any) -> dict[str, Any]:
    """Prepare for ``who``, sign locally with ``key``, submit, through the typed client (its
    `PreparedTransaction` and `SubmittedTransaction`): the mined result, as JSON."""
    with Client(live.url, api_key=live.keys[who]) as api:
        prepared = api.settlements.prepare(job_id, action, **body)
        tx = prepared.transaction
        assert tx.to == settlement_address(live) and tx.chainId == DEV_CHAIN_ID and tx.gasPrice == 0
        assert (
            isinstance(prepared, PreparedTransaction)
            and prepared.sender.lower() == Account.from_key(key).address.lower()
        )
        done = api.settlements.submit(job_id, raw(tx.model_dump(), key))
    assert isinstance(done, SubmittedTransaction) and done.tx_hash.startswith("0x")
    assert done.status == "succeeded" and done.replayed is False
    return done.model_dump(mode="json")


def proposal_state(live: Env, job_id: str, who: str = "alice") -> dict[str, Any]:
    response = live.call("GET", f"/v1/settlements/{job_id}/proposal", who)
    assert response.status_code == 200, response.text
    return dict(response.json())


def approve(live: Env, job_id: str, who: str, body: dict[str, Any]) -> requests.Response:
    return live.call("POST", f"/v1/settlements/{job_id}/approvals", who, json=body)


def eth_balance(live: Env, address: str) -> int:
    return int(w3(live).eth.get_balance(Web3.to_checksum_address(address)))


# ------------------------------------------------------------------ the flow with ETH


def test_propose_approve_set_deposit_withdraw_with_eth(env: Env, job: str) -> None:  # noqa: F811
    # deposits wait for the weights: the contract's reason, nothing sent
    before = chain_state(env)
    early = assert_error(
        prepare(env, job, "admin", "deposit", amount=ETHER), 409, "refused_by_contract_rules"
    )
    assert f"WeightsNotSet(jobId={job})" in early["message"]
    assert_error(env.call("GET", f"/v1/settlements/{job}/proposal", "alice"), 404, "not_found")

    # propose (a party); the record goes to the outbox, pending
    created = env.call("POST", f"/v1/settlements/{job}/proposals", "alice", json=LEAVE_ONE_OUT)
    assert created.status_code == 201, created.text
    proposal = created.json()["proposal"]
    assert proposal["bps"] == LEAVE_ONE_OUT_BPS and proposal["members"] == [ALICE, BOB]
    assert proposal["seq"] == 0 and created.json()["chain_status"] == "pending"
    row = env.store.get_record(job, 0)
    assert row is not None and row.status == "pending"
    # no metric, no salt on record
    assert numeric_leaks(row.record_json, ("0.8137", "8137", "0.7901", "7901", "0.6523", "6523")) == []
    assert proposal["salt"][2:].lower() not in row.record_json.lower()
    # the same inputs again: the same proposal, nothing new recorded
    counts = (env.store.count_records_by_status(), env.app.state.api_db.settlement_counts())
    again = env.call("POST", f"/v1/settlements/{job}/proposals", "bob", json=LEAVE_ONE_OUT)
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["proposal"]["salt"] == proposal["salt"]
    assert (env.store.count_records_by_status(), env.app.state.api_db.settlement_counts()) == counts

    pending = proposal_state(env, job, "bob")
    assert pending["chain_status"] == "pending" and pending["weights"] is None
    assert pending["typed_data"] is None and "not anchored yet" in pending["not_ready"]
    assert pending["proposal"]["inputs"]["full"] == 0.8137  # a party sees the inputs ...
    audited = proposal_state(env, job, "auditor")
    assert audited["proposal"]["inputs"] is None and audited["proposal"]["salt"] is None  # ... others not
    assert audited["proposal"]["record_hash"] == proposal["record_hash"]

    # nothing to approve before the record is confirmed
    alice_sig_early = "0x" + "11" * 65
    assert_error(approve(env, job, "alice", {"signature": alice_sig_early}), 409, "not_anchored")
    assert_error(prepare(env, job, "alice", "set_weights"), 409, "not_anchored")
    assert chain_state(env) == before

    anchor(env)
    before = chain_state(env)  # the anchoring worker mined a block; from here on only members send
    state = proposal_state(env, job, "alice")
    assert state["chain_status"] == "confirmed" and state["not_ready"] is None
    weights = state["weights"]
    assert weights["bps"] == LEAVE_ONE_OUT_BPS and weights["record_hash"] == proposal["record_hash"]
    assert weights["weights_hash"] == proposal["weights_hash"] and weights["proof"] is not None
    assert [a["approved"] for a in state["approvals"]] == [False, False] and not state["ready_to_set"]

    # Alice signs the typed data the API hands out; it is the approval the CLI would write
    typed = state["typed_data"]
    alice_sig = Account.sign_typed_data(ALICE_KEY, full_message=typed).signature
    expected = sign_approval(
        ALICE_KEY,
        DEV_CHAIN_ID,
        settlement_address(env),
        bytes.fromhex(job[2:]),
        bytes.fromhex(weights["weights_hash"][2:]),
        bytes.fromhex(weights["record_leaf"][2:]),
    )
    assert bytes(alice_sig) == expected
    on_chain_digest = (
        settlement(env)
        .functions.approvalDigest(
            bytes.fromhex(job[2:]),
            bytes.fromhex(weights["weights_hash"][2:]),
            bytes.fromhex(weights["record_leaf"][2:]),
        )
        .call()
    )
    assert state["digest"] == "0x" + bytes(on_chain_digest).hex()
    stored = approve(env, job, "alice", {"signature": "0x" + expected.hex()})
    assert stored.status_code == 201, stored.text
    assert stored.json()["party"] == ALICE and stored.json()["replayed"] is False
    assert approve(env, job, "alice", {"signature": "0x" + expected.hex()}).json()["replayed"] is True

    # bad approvals: refused with the reason, nothing stored
    bob_sig = sign_approval(
        BOB_KEY,
        DEV_CHAIN_ID,
        settlement_address(env),
        bytes.fromhex(job[2:]),
        bytes.fromhex(weights["weights_hash"][2:]),
        bytes.fromhex(weights["record_leaf"][2:]),
    )
    other_weights = sign_approval(
        BOB_KEY, DEV_CHAIN_ID, settlement_address(env), bytes.fromhex(job[2:]), b"\x01" * 32, b"\x02" * 32
    )
    saved = db_state(env)
    wrong = assert_error(approve(env, job, "bob", {"signature": "0x" + expected.hex()}), 403, "forbidden")
    assert f"recovers to {ALICE}, not to {BOB}" in wrong["message"]
    assert_error(approve(env, job, "bob", {"signature": "0x" + other_weights.hex()}), 403, "forbidden")
    unreadable = assert_error(approve(env, job, "bob", {"signature": "0x" + "00" * 65}), 422)
    assert "cannot be read" in unreadable["message"]
    assert_error(approve(env, job, "bob", {"signature": "0x1234"}), 422, "invalid_request")
    mismatch = {"signature": "0x" + bob_sig.hex(), "weights_hash": "0x" + "ab" * 32}
    assert "approves another proposal" in assert_error(approve(env, job, "bob", mismatch), 422)["message"]
    named = {"signature": "0x" + bob_sig.hex(), "party": ALICE}
    assert_error(approve(env, job, "bob", named), 403, "forbidden")
    assert_error(approve(env, job, "auditor", {"signature": "0x" + bob_sig.hex()}), 403, "forbidden")
    assert_error(approve(env, job, "admin", {"signature": "0x" + bob_sig.hex()}), 403, "forbidden")
    assert_error(approve(env, job, "carol", {"signature": "0x" + bob_sig.hex()}), 404, "not_found")
    assert db_state(env) == saved

    # set_weights before Bob approved: the contract's MissingApproval, nothing sent
    missing = assert_error(prepare(env, job, "alice", "set_weights"), 409, "refused_by_contract_rules")
    assert f"MissingApproval(jobId={job}, party={BOB.lower()})" in missing["message"]

    # Bob posts the approval file `secureflow settle approve --out` writes, as is
    approval_file = {
        "version": 1,
        "chain_id": DEV_CHAIN_ID,
        "settlement": settlement_address(env),
        "job_id": job,
        "party": BOB,
        "weights_hash": weights["weights_hash"],
        "record_leaf": weights["record_leaf"],
        "signature": "0x" + bob_sig.hex(),
    }
    assert approve(env, job, "bob", approval_file).status_code == 201
    ready = proposal_state(env, job, "bob")
    assert ready["ready_to_set"] and [a["signed"] for a in ready["approvals"]] == [True, True]
    assert chain_state(env) == before

    # both parties prepare set_weights; Alice's is mined first, Bob's is then refused unsent
    bob_prepared = prepare(env, job, "bob", "set_weights")
    assert bob_prepared.status_code == 200, bob_prepared.text
    assert bob_prepared.json()["function"] == "setWeights"
    bob_raw = raw(bob_prepared.json()["transaction"], BOB_KEY)
    alice_prepared = prepare(env, job, "alice", "set_weights").json()
    alice_raw = raw(alice_prepared["transaction"], ALICE_KEY)
    done = submit(env, job, "alice", alice_raw)
    assert done.status_code == 201, done.text
    assert [e["name"] for e in done.json()["events"]] == ["WeightsSet"]
    assert done.json()["events"][0]["args"]["bps"] == LEAVE_ONE_OUT_BPS
    replay = submit(env, job, "alice", alice_raw)
    assert replay.status_code == 200 and replay.json()["replayed"] is True
    assert replay.json()["tx_hash"] == done.json()["tx_hash"]

    set_state = chain_state(env)
    double = assert_error(submit(env, job, "bob", bob_raw), 409, "refused_by_contract_rules")
    assert f"WeightsAlreadySet(jobId={job})" in double["message"]
    assert_error(prepare(env, job, "bob", "set_weights"), 409, "refused_by_contract_rules")
    late = assert_error(approve(env, job, "bob", {"signature": "0x" + bob_sig.hex()}), 409)
    assert "WeightsAlreadySet" in late["message"]
    second = {**LEAVE_ONE_OUT, "full": 0.9}
    refused = env.call("POST", f"/v1/settlements/{job}/proposals", "alice", json=second)
    assert "WeightsAlreadySet" in assert_error(refused, 409, "refused_by_contract_rules")["message"]
    assert chain_state(env) == set_state
    assert proposal_state(env, job)["weights_set"] is True

    # revenue: the admin deposits ETH, Bob a few wei more
    deposit = transact(env, job, "admin", ADMIN_KEY, "deposit", amount=10 * ETHER)
    assert [e["name"] for e in deposit["events"]] == ["RevenueDeposited"]
    assert deposit["events"][0]["args"]["amount"] == 10 * ETHER
    transact(env, job, "bob", BOB_KEY, "deposit", amount=7)
    total = 10 * ETHER + 7
    shares = allocate(total, LEAVE_ONE_OUT_BPS)

    for who, key, address, share in (
        ("alice", ALICE_KEY, ALICE, shares[0]),
        ("bob", BOB_KEY, BOB, shares[1]),
    ):
        start = eth_balance(env, address)
        withdrawn = transact(env, job, who, key, "withdraw")
        assert withdrawn["events"][0]["name"] == "RevenueReleased"
        assert withdrawn["events"][0]["args"]["amount"] == share
        assert eth_balance(env, address) - start == share  # gas price 0: exact

    # withdrawing twice: refused at prepare, and a hand-built signed withdrawal is refused unsent
    assert "NothingToRelease" in assert_error(prepare(env, job, "alice", "withdraw"), 409)["message"]
    web3 = w3(env)
    again_tx = {
        "to": settlement_address(env),
        "data": settlement(env).functions.withdrawEth(bytes.fromhex(job[2:]))._encode_transaction_data(),
        "value": 0,
        "gas": 200_000,
        "gasPrice": 0,
        "nonce": web3.eth.get_transaction_count(ALICE, "pending"),
        "chainId": DEV_CHAIN_ID,
    }
    paid = chain_state(env)
    twice = assert_error(
        submit(env, job, "alice", raw(again_tx, ALICE_KEY)), 409, "refused_by_contract_rules"
    )
    assert f"NothingToRelease(jobId={job}" in twice["message"]
    assert chain_state(env) == paid

    balances = env.call("GET", f"/v1/settlements/{job}", "auditor").json()
    assert balances["weights_set"] and balances["total_deposited"] == total == balances["total_released"]
    assert [m["bps"] for m in balances["balances"]] == LEAVE_ONE_OUT_BPS
    assert [m["entitled"] for m in balances["balances"]] == shares
    assert [m["released"] for m in balances["balances"]] == shares
    assert [m["releasable"] for m in balances["balances"]] == [0, 0]
    history = env.call("GET", f"/v1/settlements/{job}/history", "bob").json()["events"]
    assert [e["name"] for e in history] == [
        "WeightsSet",
        "RevenueDeposited",
        "RevenueDeposited",
        "RevenueReleased",
        "RevenueReleased",
    ]


# ------------------------------------------------------------------ ERC-20 revenue, on-chain approval


def test_token_revenue_and_on_chain_approval(env: Env, job: str) -> None:  # noqa: F811
    created = env.call("POST", f"/v1/settlements/{job}/proposals", "admin", json=DATA_SHARE)
    assert created.status_code == 201, created.text
    assert created.json()["proposal"]["bps"] == [6000, 4000] and created.json()["proposal"]["seq"] == 0
    # the admin is no party: the raw inputs and their salt are not shown to it
    assert created.json()["proposal"]["inputs"] is None and created.json()["proposal"]["salt"] is None
    anchor(env)
    state = proposal_state(env, job, "bob")
    signature = Account.sign_typed_data(ALICE_KEY, full_message=state["typed_data"]).signature
    assert approve(env, job, "alice", {"signature": "0x" + bytes(signature).hex()}).status_code == 201

    # Bob approves on chain instead (approve_weights), then sets the weights with Alice's signature
    approved = transact(env, job, "bob", BOB_KEY, "approve_weights")
    assert [e["name"] for e in approved["events"]] == ["WeightsApproved"]
    assert approved["events"][0]["args"]["party"] == BOB
    state = proposal_state(env, job, "bob")
    assert [(a["signed"], a["on_chain"]) for a in state["approvals"]] == [(True, False), (False, True)]
    assert state["ready_to_set"]
    assert "AlreadyApproved" in assert_error(prepare(env, job, "bob", "approve_weights"), 409)["message"]
    transact(env, job, "bob", BOB_KEY, "set_weights")

    client = env.stack.client()
    admin = TransactionSender(client, ADMIN_KEY, ChainNonceSource(client.w3))
    artifact = load_artifact("TestToken", TEST_ARTIFACTS)
    token = client.w3.eth.contract(
        address=admin.deploy(artifact.abi, artifact.bytecode)["contractAddress"], abi=artifact.abi
    )
    admin.transact(token.functions.mint(ALICE, 1001))

    # without an allowance the token refuses, and the API says so with the token's error
    before = chain_state(env)
    refused = assert_error(prepare(env, job, "alice", "deposit", asset=token.address, amount=1001), 422)
    assert (
        "ERC20InsufficientAllowance" in refused["message"] and "approves the settlement" in refused["message"]
    )
    assert chain_state(env) == before
    # the allowance is a transaction to the token, which Alice sends herself
    alice = TransactionSender(client, ALICE_KEY, ChainNonceSource(client.w3))
    alice.transact(token.functions.approve(settlement_address(env), 1001))

    deposited = transact(env, job, "alice", ALICE_KEY, "deposit", asset=token.address, amount=1001)
    assert deposited["events"][0]["args"]["asset"] == token.address
    assert token.functions.balanceOf(settlement_address(env)).call() == 1001
    shares = allocate(1001, [6000, 4000])
    assert shares == [601, 400]
    for who, key in (("alice", ALICE_KEY), ("bob", BOB_KEY)):
        transact(env, job, who, key, "withdraw", asset=token.address)
    assert [token.functions.balanceOf(a).call() for a in (ALICE, BOB)] == shares
    eth = assert_error(prepare(env, job, "bob", "withdraw"), 409, "refused_by_contract_rules")
    assert "NothingToRelease" in eth["message"]  # nothing was deposited in ETH

    balances = env.call("GET", f"/v1/settlements/{job}?asset={token.address}", "alice").json()
    assert balances["total_deposited"] == 1001 == balances["total_released"]
    assert [m["released"] for m in balances["balances"]] == shares


# ------------------------------------------------------------------ submissions are checked first


def test_submissions_are_checked_and_refusals_change_nothing(env: Env, job: str) -> None:  # noqa: F811
    web3 = w3(env)
    key = bytes.fromhex(job[2:])
    contract = settlement(env)

    def tx(data: str, *, sender: str = ALICE, **fields: Any) -> dict[str, Any]:
        return {
            "to": settlement_address(env),
            "data": data,
            "value": 0,
            "gas": 200_000,
            "gasPrice": 0,
            "nonce": web3.eth.get_transaction_count(Web3.to_checksum_address(sender), "pending"),
            "chainId": DEV_CHAIN_ID,
            **fields,
        }

    withdraw = contract.functions.withdrawEth(key)._encode_transaction_data()
    other_job = contract.functions.withdrawEth(b"\x07" * 32)._encode_transaction_data()
    view = contract.functions.weightsHash(key, [], [])._encode_transaction_data()
    ledger = env.stack.deployment.address_of("AuditLedger")
    chain_before, db_before = chain_state(env), db_state(env)

    cases: list[tuple[str, str, int, str]] = [
        # (who submits, raw transaction, status, what the message says)
        ("alice", raw(tx(withdraw, sender=BOB), BOB_KEY), 403, f"signed by {BOB}, not by {ALICE}"),
        ("admin", raw(tx(withdraw), ALICE_KEY), 403, "not by"),
        ("alice", raw(tx(withdraw, to=ledger), ALICE_KEY), 422, "not to the Settlement contract"),
        ("alice", raw(tx(other_job), ALICE_KEY), 422, "not on job"),
        ("alice", raw(tx(view), ALICE_KEY), 422, "weightsHash is not a settlement write"),
        ("alice", raw(tx("0x12345678"), ALICE_KEY), 422, "not a Settlement function call"),
        ("alice", raw(tx(withdraw, chainId=1), ALICE_KEY), 422, "for chain 1"),
        ("alice", raw({k: v for k, v in tx(withdraw).items() if k != "chainId"}, ALICE_KEY), 422, "chain id"),
        ("alice", raw({**tx(withdraw), "type": 1, "accessList": []}, ALICE_KEY), 422, "typed transaction"),
        ("alice", "0xf8ff", 422, "not valid RLP"),
        ("alice", "0x1234", 422, "typed transaction"),
        ("alice", "0xc0", 422, "9 RLP fields"),
        ("alice", "0x" + "ab" * 40, 422, ""),
        ("alice", "0xzz", 422, "raw_transaction"),
        ("alice", "0x123", 422, "raw_transaction"),
        ("alice", raw({**tx(withdraw), "nonce": tx(withdraw)["nonce"] + 5}, ALICE_KEY), 409, "leaves a gap"),
        ("alice", raw({**tx(withdraw), "nonce": tx(withdraw)["nonce"] - 1}, ALICE_KEY), 409, "used already"),
        ("alice", raw(tx(withdraw), ALICE_KEY), 409, f"WeightsNotSet(jobId={job})"),
        ("alice", raw(tx(withdraw, gas=21_500), ALICE_KEY), 422, "gas"),
    ]
    for who, raw_tx, status, says in cases:
        error = assert_error(submit(env, job, who, raw_tx), status)
        assert says in error["message"], (says, error)

    # roles and scope: auditors and services write nothing, a member of other jobs sees nothing
    body = {"raw_transaction": raw(tx(withdraw), ALICE_KEY)}
    for path, payload in (
        ("proposals", LEAVE_ONE_OUT),
        ("approvals", {"signature": "0x" + "11" * 65}),
        ("transactions/prepare", {"action": "withdraw"}),
        ("transactions", body),
    ):
        for who in ("auditor", "service"):
            assert_error(
                env.call("POST", f"/v1/settlements/{job}/{path}", who, json=payload), 403, "forbidden"
            )
        assert_error(
            env.call("POST", f"/v1/settlements/{job}/{path}", "carol", json=payload), 404, "not_found"
        )
        assert_error(env.call("POST", f"/v1/settlements/{job}/{path}", json=payload), 401, "unauthorized")
    assert_error(env.call("GET", f"/v1/settlements/{job}/proposal", "carol"), 404, "not_found")

    # proposals that cannot be weights: other parties, bad inputs, a step number that is taken
    for inputs in (
        {**DATA_SHARE, "parties": DATA_SHARE["parties"][:1]},
        {"method": "data_share", "parties": [{"party": ALICE, "features": 0}, {"party": BOB, "features": 0}]},
        {"method": "nonsense"},
        {**LEAVE_ONE_OUT, "extra": 1},
    ):
        assert_error(env.call("POST", f"/v1/settlements/{job}/proposals", "alice", json=inputs), 422)
    assert_error(prepare(env, job, "alice", "deposit"), 422, "invalid_request")  # no amount
    assert_error(prepare(env, job, "alice", "refund"), 422, "invalid_request")
    assert chain_state(env) == chain_before and db_state(env) == db_before

    created = env.call("POST", f"/v1/settlements/{job}/proposals", "alice", json=LEAVE_ONE_OUT)
    assert created.status_code == 201
    superseding = env.call("POST", f"/v1/settlements/{job}/proposals", "bob", json=DATA_SHARE)
    assert superseding.status_code == 201 and superseding.json()["proposal"]["seq"] == 1
    assert proposal_state(env, job)["proposal"]["seq"] == 1  # the newest proposal is the one to approve


def test_api_tables_match_the_migrations(env: Env) -> None:  # noqa: F811
    """The ORM models of every API table are what the API migrations create (indexes and constraints too)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from secureflow.api.server.tables import Base

    mine = set(Base.metadata.tables)

    def ours(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in mine

    with env.store.engine.connect() as connection:
        assert mine <= set(connection.dialect.get_table_names(connection))
        context = MigrationContext.configure(connection, opts={"include_object": ours})
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == []


def test_a_compute_job_is_proposed_for_after_its_last_step_once_completed(env: Env, job: str) -> None:  # noqa: F811
    """A job run by the compute engine records step N at seq N: a proposal while it runs would take a step's
    number (its record then refused), so it waits for the job, and its record goes after the last step."""
    steps = [{"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}}] * 4
    env.app.state.api_db.put_manifest(job, {"name": "m", "steps": steps}, 1)
    accept(env.store, job, 2)  # steps 0 and 1 recorded, 2 and 3 still to run
    before = db_state(env)
    running = env.call("POST", f"/v1/settlements/{job}/proposals", "alice", json=DATA_SHARE)
    assert "still being recorded" in assert_error(running, 409, "conflict")["message"]
    seq_param = env.call("POST", f"/v1/settlements/{job}/proposals?seq=1", "alice", json=DATA_SHARE)
    assert seq_param.status_code == 409  # the caller never chooses the step number (the query is ignored)
    assert db_state(env) == before

    env.store.update_job(job, status="completed")
    created = env.call("POST", f"/v1/settlements/{job}/proposals", "alice", json=DATA_SHARE)
    assert created.status_code == 201, created.text
    assert created.json()["proposal"]["seq"] == 4  # after the manifest's last step, not after the last record
    assert created.json()["proposal"]["inputs"] is not None  # a party sees its inputs
