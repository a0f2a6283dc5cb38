"""The console's search (``GET /v1/search``) and models (``GET /v1/models``) on the live app.

On a job of alice and bob closed on the session's anvil (`closed_job`: records anchored and confirmed by
the real anchoring worker, a model anchored, every event indexed), the search finds it by its id, its
model hash, a record hash, an anchoring transaction's hash and a consent's, by a party's address and by
its creation time; each result names what matched. The attacks first: carol, a member of the API who is
no party of the job, and a service the job is not bound to, search for the same ids and hashes and find
nothing (as for a hash nobody knows), while the parties, the bound service and the auditor find it. Bad
input is a 422 in the one error shape. ``/v1/models`` puts the API's name and hash beside the chain's.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from stack import ALICE
from test_api_service import Env, assert_error, env, submit  # noqa: F401  (the live app fixture)
from test_console import MODEL_HASH, closed_job

from secureflow.api.server.serve import add_member_key
from secureflow.ledger.records import model_key

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
"""The attack and the lookups run on SQLite and PostgreSQL; the rest on SQLite only (the CI budget)."""

CAROL = Account.create().address  # a member of the API (and on chain), party of no job
STRANGER_SERVICE = Account.create().address  # an anchoring service no job is bound to


def _outsiders(env: Env) -> None:  # noqa: F811
    """Keys for carol and the stranger service, each holding its role on chain (reverted after the test)."""
    registry = env.stack.registry()
    registry.register_member(CAROL)
    registry.grant_anchor_service(STRANGER_SERVICE)
    db = env.app.state.api_db
    env.keys["carol"] = add_member_key(db, "carol", CAROL, "member")
    env.keys["stranger"] = add_member_key(db, "stranger", STRANGER_SERVICE, "service")


def _search(env: Env, who: str, q: str = "", **params: Any) -> dict[str, Any]:  # noqa: F811
    response = env.call("GET", "/v1/search", who, params={"q": q, **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _found(env: Env, who: str, q: str, **params: Any) -> set[tuple[str, str]]:  # noqa: F811
    return {(item["kind"], item["job_id"]) for item in _search(env, who, q, **params)["items"]}


def _handles(env: Env, job_id: str) -> dict[str, str]:  # noqa: F811
    """The job's id and hashes an auditor would search for: a record's, the model's, two transactions'."""
    timeline = env.call("GET", f"/v1/jobs/{job_id}/timeline", "auditor").json()
    return {
        "job id": job_id,
        "record hash": timeline["steps"][1]["record_hash"],
        "model hash": MODEL_HASH,
        "anchoring transaction": timeline["steps"][1]["tx_hash"],
        "consent transaction": timeline["consents"][0]["tx_hash"],
        "close transaction": timeline["close"]["tx_hash"],
    }


def test_a_member_or_service_finds_nothing_of_a_job_it_may_not_see(env: Env) -> None:  # noqa: F811
    job_id = closed_job(env, 2)
    _outsiders(env)
    handles = _handles(env, job_id)
    for what, value in handles.items():
        for who in ("auditor", "admin", "member", "bob", "service"):  # parties, the bound service, all-seers
            assert job_id in {j for _k, j in _found(env, who, value)}, (what, who)
        for who in ("carol", "stranger"):
            assert _search(env, who, value)["items"] == [], (what, who)
            assert _search(env, who, value.upper().replace("0X", "0x"))["items"] == [], (what, who)
        # ... exactly as for a hash nobody knows
        assert env.call("GET", f"/v1/jobs/{job_id}/timeline", "carol").status_code == 404
    assert _search(env, "carol", ALICE)["items"] == []  # alice's jobs are not carol's business
    assert _search(env, "carol", since="2000-01-01T00:00:00Z")["items"] == []
    assert (("member", job_id)) in _found(env, "auditor", ALICE)
    assert _search(env, "stranger", since="2000-01-01T00:00:00Z")["items"] == []
    unbound = submit(env, "unbound", service=None)  # alice's job that no service may post steps of
    assert _search(env, "service", unbound)["items"] == []
    assert unbound not in {i["job_id"] for i in _search(env, "service", ALICE)["items"]}
    assert {("job", unbound)} == _found(env, "member", unbound)


def test_each_kind_of_query_finds_the_job_and_says_what_matched(env: Env) -> None:  # noqa: F811
    job_id = closed_job(env, 3)
    handles = _handles(env, job_id)
    timeline = env.call("GET", f"/v1/jobs/{job_id}/timeline", "auditor").json()

    by_id = _search(env, "auditor", job_id)
    assert by_id["classified_as"] == "hash" and by_id["truncated"] is False
    assert [(i["kind"], i["job_id"], i["job_status"]) for i in by_id["items"]] == [
        ("job", job_id, "completed")
    ]
    assert _search(env, "auditor", job_id[2:].upper())["items"] == by_id["items"]  # without 0x, any case

    [record] = _search(env, "auditor", handles["record hash"])["items"]
    assert (record["kind"], record["seq"], record["record_hash"]) == ("record", 1, handles["record hash"])

    [model] = _search(env, "member", MODEL_HASH)["items"]
    assert (model["kind"], model["model_id"], model["version"]) == ("model", "ss_lr.model", 1)

    anchored = _search(env, "auditor", handles["anchoring transaction"])["items"]
    in_batch = [s["seq"] for s in timeline["steps"] if s["tx_hash"] == handles["anchoring transaction"]]
    assert sorted(i["seq"] for i in anchored if i["event"] == "BatchAnchored") == in_batch
    assert {i["kind"] for i in anchored} == {"transaction"}
    consent = _search(env, "auditor", handles["consent transaction"])["items"]
    assert {"JobConsented", "JobOpened"} <= {i["event"] for i in consent}
    closing = _search(env, "auditor", handles["close transaction"])["items"]
    assert "JobClosed" in {i["event"] for i in closing}

    by_party = _search(env, "auditor", ALICE.lower())
    assert by_party["classified_as"] == "address" and ("member", job_id) in {
        (i["kind"], i["job_id"]) for i in by_party["items"]
    }
    created = datetime.fromisoformat(timeline["job"]["created_at"].replace("Z", "+00:00"))
    window = {
        "since": (created - timedelta(seconds=1)).isoformat(),
        "until": (created + timedelta(seconds=1)).isoformat(),
    }
    in_range = _search(env, "auditor", **window)
    assert in_range["classified_as"] == "time_range" and ("job", job_id) in {
        (i["kind"], i["job_id"]) for i in in_range["items"]
    }
    assert _found(env, "auditor", MODEL_HASH, **window) == {("model", job_id)}  # a range narrows a hash
    before = {"until": (created - timedelta(hours=1)).isoformat()}
    assert _search(env, "auditor", MODEL_HASH, **before)["items"] == []
    assert _search(env, "auditor", "0x" + "ab" * 32)["items"] == []  # a hash nobody knows
    assert _search(env, "auditor", since="2000-01-01T00:00:00Z", limit=1)["truncated"] in (True, False)


@SQLITE
def test_bad_queries_are_422_in_the_one_error_shape(env: Env) -> None:  # noqa: F811
    job_id = closed_job(env, 1)
    for params in (
        {"q": "hello"},
        {"q": "0x1234"},
        {"q": "0x" + "g" * 64},
        {"q": "ss_lr.model"},
        {"q": " " + job_id},  # the page trims; the API takes exactly an id, a hash or an address
        {"q": "x" * 201},
        {"since": "2026-01-01T00:00:00"},  # no zone
        {"since": "1767225600"},  # a number is not a date-time here
        {"q": "0x" + "ab" * 32, "limit": "0"},
    ):
        error = assert_error(env.call("GET", "/v1/search", "auditor", params=params), 422)
        assert error["message"], params
    hello = env.call("GET", "/v1/search", "auditor", params={"q": "hello"})
    assert "q" in assert_error(hello, 422, "invalid_request")["message"]
    assert_error(env.call("GET", "/v1/search", params={"q": "0x" + "ab" * 32}), 401, "unauthorized")
    assert_error(env.call("GET", "/v1/search", "metrics", params={"q": "0x" + "ab" * 32}), 403, "forbidden")
    # what the schema admits is answered: nothing given lists the newest jobs; an empty range, bounds at
    # the ends of the UTC calendar, find what they cover
    assert ("job", job_id) in _found(env, "auditor", "")
    empty = {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    assert _search(env, "auditor", job_id, **empty)["items"] == []
    assert _found(env, "auditor", job_id, since="0001-01-01T00:00:00+01:00") == {("job", job_id)}
    assert _found(env, "auditor", job_id, until="9999-12-31T23:59:59-01:00") == {("job", job_id)}
    assert _search(env, "auditor", job_id, since="9999-12-31T23:59:59-01:00")["items"] == []
    assert _search(env, "auditor", job_id, until="0001-01-01T00:00:00+01:00")["items"] == []


@SQLITE
def test_models_show_the_apis_name_and_hash_beside_the_chains(env: Env) -> None:  # noqa: F811
    job_id = closed_job(env, 2)
    [model] = env.call("GET", "/v1/models", "auditor", params={"job_id": job_id}).json()["items"]
    assert model["model_id"] == "0x" + model_key("ss_lr.model").hex() and model["version"] == 1
    shown = (model["name"], model["api_model_hash"], model["model_hash"])
    assert shown == ("ss_lr.model", MODEL_HASH, MODEL_HASH)
    assert model["hash_matches"] is True and model["api_status"] == "confirmed"
    assert model["job_id"] == job_id and model["tx_hash"] and model["block_number"]
    _outsiders(env)
    assert env.call("GET", "/v1/models", "carol").json()["items"] == []


@SQLITE
def test_secureflow_audit_search_prints_what_the_api_found(env: Env) -> None:  # noqa: F811
    """`secureflow audit search` through the typed client: the table, --json, the API's 422 as an error."""
    from typer.testing import CliRunner

    from secureflow.api.cli.main import app as cli_app

    job_id = closed_job(env, 2)
    variables = {"SECUREFLOW_API_URL": env.url, "SECUREFLOW_API_KEY": env.keys["auditor"], "COLUMNS": "250"}
    runner = CliRunner()
    shown = runner.invoke(cli_app, ["audit", "search", MODEL_HASH], env=variables)
    assert shown.exit_code == 0, shown.output
    assert job_id in shown.output and f"model ss_lr.model v1 {MODEL_HASH}" in shown.output
    as_json = runner.invoke(cli_app, ["audit", "search", MODEL_HASH, "--json"], env=variables)
    assert as_json.exit_code == 0, as_json.output
    assert _search(env, "auditor", MODEL_HASH) == json.loads(as_json.stdout)
    bad = runner.invoke(cli_app, ["audit", "search", "hello"], env=variables)
    assert bad.exit_code != 0 and "422 invalid_request" in bad.output and "query.q" in bad.output, bad.output
