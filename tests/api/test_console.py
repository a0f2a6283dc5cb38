"""The console's reads (``GET /v1/overview``, ``GET /v1/jobs/{id}/timeline``) on the live app.

A job of alice and bob is created on the session's anvil with both consents, its steps are posted by the
service (each signed by both parties' keys), anchored and confirmed by the real anchoring worker, a model
is anchored and the job is closed on chain; the indexer follows every event. The timeline shows what the
chain and the store hold (consents with their transactions, the records with each party's signature
checked, the model's on-chain hash, the close beside the API's own final root); the overview counts what
the caller may see: a member only the jobs it is party to, an auditor all of them; a non-party member
gets 404 for the timeline, like every job read.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import update
from stack import ALICE, BOB, anchor_and_index, close_job_on_chain, step
from test_api_service import Env, env, stuck_env, submit  # noqa: F401  (the live app fixtures)
from test_web_ui import anchored_job, other_members_job

from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.records import model_key
from secureflow.ledger.settlement.contribution import DataShareInputs, PartyData, prepare_contribution
from secureflow.ledger.store.models import StepRecordOrm
from secureflow.ledger.store.schemas import NewModel

MODEL_HASH = "0x" + "5e" * 32


def closed_job(env: Env, steps: int) -> str:  # noqa: F811
    """A job whose ``steps`` steps are confirmed on chain, with a model anchored, closed on chain."""
    job_id = anchored_job(env, steps)
    env.store.accept_model(NewModel(model_id="ss_lr.model", version=1, job_id=job_id, model_hash=MODEL_HASH))
    anchor_and_index(env.stack, env.store)
    close_job_on_chain(env.stack, env.store, job_id)
    anchor_and_index(env.stack, env.store)  # the indexer sees JobClosed
    return job_id


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_timeline_shows_consents_signed_steps_models_and_the_close(env: Env) -> None:  # noqa: F811
    job_id = closed_job(env, 3)
    timeline = env.call("GET", f"/v1/jobs/{job_id}/timeline", "auditor")
    assert timeline.status_code == 200, timeline.text
    body = timeline.json()
    assert body["job"]["job_id"] == job_id and body["job"]["status"] == "completed"
    assert body["manifest"]["parties"][0]["address"] == ALICE
    assert [(c["party"], c["consented"]) for c in body["consents"]] == [(ALICE, True), (BOB, True)]
    assert all(c["tx_hash"] and c["block_number"] for c in body["consents"])
    assert body["opened_tx_hash"] == body["consents"][0]["tx_hash"]  # created with both consents in one tx

    steps = env.call("GET", f"/v1/jobs/{job_id}/steps", "auditor").json()["items"]
    assert [s["seq"] for s in body["steps"]] == [0, 1, 2]
    for shown, listed in zip(body["steps"], steps, strict=True):
        record = step(job_id, shown["seq"])
        assert shown["algorithm"] == record.algorithm and shown["params_hash"] == record.params_hash
        assert shown["record_hash"] == listed["record_hash"] and shown["tx_hash"] == listed["tx_hash"]
        assert shown["chain_status"] == "confirmed" and shown["duration_ms"] == 1
        assert shown["signatures_valid"] is True
        assert [(p["party"], p["signature_valid"]) for p in shown["parties"]] == [(ALICE, True), (BOB, True)]
        assert shown["parties"][0]["inputs"] == dict(record.parties[0].inputs)
    [model] = body["models"]
    assert (model["model_id"], model["version"], model["model_hash"]) == ("ss_lr.model", 1, MODEL_HASH)
    assert model["status"] == "confirmed" and model["on_chain_hash"] == MODEL_HASH and model["tx_hash"]
    close = body["close"]
    assert close["on_chain"] is True and close["matches"] is True and close["succeeded"] is True
    assert close["step_count"] == close["api_step_count"] == 3
    assert close["final_root"] == close["api_final_root"]
    assert close["final_record_hash"] == steps[-1]["record_hash"]
    models = env.call("GET", f"/v1/models?job_id={job_id}", "auditor").json()["items"]
    assert models[0]["model_id"] == "0x" + model_key("ss_lr.model").hex()

    assert env.call("GET", f"/v1/jobs/{job_id}/timeline", "member").status_code == 200  # alice: a party
    theirs = other_members_job(env, "ef")
    refused = env.call("GET", f"/v1/jobs/{theirs}/timeline", "member")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert env.call("GET", f"/v1/jobs/{theirs}/timeline", "auditor").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_record_signed_by_the_wrong_key_shows_which_party(env: Env) -> None:  # noqa: F811
    """A record whose bob part carries alice's signature (stored directly: the API refuses it) is shown
    with bob's signature invalid, naming the signer."""
    job_id = submit(env, "forged")
    good = step(job_id, 0, signed=True)
    alice_part, bob_part = good.parties
    forged = good.model_copy(
        update={"parties": (alice_part, bob_part.model_copy(update={"signature": alice_part.signature}))}
    )
    env.store.accept_records([to_outbox(forged)])
    shown = env.call("GET", f"/v1/jobs/{job_id}/timeline", "auditor").json()["steps"][0]
    assert shown["signatures_valid"] is False
    assert shown["parties"][0]["signature_valid"] is True
    assert shown["parties"][1]["signature_valid"] is False
    assert "not by " + BOB in shown["parties"][1]["problem"]
    assert shown["chain_status"] == "pending" and shown["tx_hash"] is None


def test_overview_counts_what_the_caller_may_see(env: Env) -> None:  # noqa: F811
    job_id = closed_job(env, 2)
    theirs = other_members_job(env, "ab")
    env.store.accept_records([to_outbox(step(theirs, 0))])  # pending: the backlog
    env.store.update_job(theirs, status="failed", reason="step 0 (psi) failed: WorkerError: bob stopped")

    auditor = env.call("GET", "/v1/overview?hours=2", "auditor")
    assert auditor.status_code == 200, auditor.text
    seen = auditor.json()
    assert seen["scope"] == "all"
    assert seen["jobs_by_status"]["completed"] == 1 and seen["jobs_by_status"]["failed"] == 1
    assert seen["jobs_total"] == 2
    assert sum(b["anchored"] for b in seen["activity"]) == 2
    for bucket in seen["activity"]:
        start = datetime.fromisoformat(bucket["start"].replace("Z", "+00:00"))
        assert start.second == 0 and bucket["latency_max_seconds"] >= bucket["latency_avg_seconds"] >= 0
    assert seen["backlog"]["pending"] == 1 and seen["backlog"]["oldest_pending_at"] is not None
    assert seen["last_block"]["number"] > 0
    assert [(a["job_id"], a["reason"]) for a in seen["attention"]] == [
        (theirs, "step 0 (psi) failed: WorkerError: bob stopped")
    ]
    roles = {a["address"]: (a["name"], a["roles"]) for a in seen["accounts"]}
    assert roles[ALICE] == ("alice", ["member"]) and "member" in roles[BOB][1]

    member = env.call("GET", "/v1/overview", "member").json()  # alice: party to job_id only
    assert member["scope"] == "own_jobs"
    assert member["jobs_total"] == 1 and member["jobs_by_status"]["failed"] == 0
    assert member["backlog"]["pending"] == 0 and member["attention"] == []
    assert sum(b["anchored"] for b in member["activity"]) == 2
    # the registry's addresses and roles are public on chain; the API's names of them are not: a member
    # sees its own name only (review: alice learnt which address is the API's "admin", "bob", "svc")
    on_chain = [{**a, "name": None} for a in seen["accounts"]]
    assert [{**a, "name": None} for a in member["accounts"]] == on_chain
    assert {a["address"]: a["name"] for a in member["accounts"] if a["name"]} == {ALICE: "alice"}
    bob = env.call("GET", "/v1/overview", "bob").json()  # party to both
    assert bob["jobs_total"] == 2 and bob["backlog"]["pending"] == 1
    assert job_id in {j["job_id"] for j in env.call("GET", "/v1/jobs", "member").json()["items"]}
    assert env.call("GET", "/v1/overview", "metrics").status_code == 403
    assert env.call("GET", "/v1/overview").status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_overview_lists_stuck_jobs(stuck_env: Env) -> None:  # noqa: F811
    """With stuck_after_seconds=0 a running job is stuck as soon as it stops moving: the overview lists it
    (stuck, no reason yet) among the jobs to look at, for the auditor and for its parties."""
    job_id = submit(stuck_env, "slow")
    stuck_env.store.accept_records([to_outbox(step(job_id, 0))])  # running now
    for who in ("auditor", "member"):
        attention = stuck_env.call("GET", "/v1/overview", who).json()["attention"]
        assert [(a["job_id"], a["status"], a["stuck"], a["reason"]) for a in attention] == [
            (job_id, "running", True, None)
        ], who


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_timeline_shows_only_the_record_its_hash_names_and_counts_the_close_without_contribution(
    env: Env,  # noqa: F811
) -> None:
    """Review: (1) a stored record is shown and its signatures checked only if it hashes to the record hash
    and leaf of its row and names the row's job and seq (a tampered row held step 1's record, signed by
    both, under seq 0: the timeline said 'signatures valid'); (2) a settlement's contribution record after
    the close is not one of the job's steps: the close still matches the chain."""
    job_id = closed_job(env, 2)
    inputs = DataShareInputs(
        parties=(PartyData(party=ALICE, features=2, label_columns=1), PartyData(party=BOB, features=3))
    )
    proposal = prepare_contribution(job_id, 2, inputs, job_parties=[ALICE, BOB])
    env.store.accept_record(to_outbox(proposal.step_record()), after_close=True)
    anchor_and_index(env.stack, env.store)
    timeline = env.call("GET", f"/v1/jobs/{job_id}/timeline", "auditor").json()
    assert timeline["close"]["matches"] is True, timeline["close"]
    assert timeline["close"]["api_step_count"] == 2
    contribution = timeline["steps"][2]
    assert contribution["algorithm"] == "contribution" and not contribution["signatures_valid"]
    assert "Settlement" in contribution["parties"][0]["problem"]

    other = step(job_id, 1, signed=True).canonical_json().decode()
    with env.store.engine.begin() as conn:  # a tampered database: seq 0's row holds step 1's record
        conn.execute(
            update(StepRecordOrm)
            .where(StepRecordOrm.job_id == job_id, StepRecordOrm.seq == 0)
            .values(record_json=other)
        )
    shown = env.call("GET", f"/v1/jobs/{job_id}/timeline", "auditor").json()["steps"][0]
    assert shown["seq"] == 0 and shown["signatures_valid"] is False
    assert shown["status"].startswith("unreadable") and shown["parties"] == [], shown
