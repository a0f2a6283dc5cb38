"""The audit API against the real app on a loopback port, real anvil and real SQLite/PostgreSQL.

Role x route matrix generated from ``app.routes``; bad input changes nothing;
end to end: submit a job, anchor its steps through the service route, run the
anchoring worker until confirmed, fetch a receipt and verify it with the
standalone verifier against anvil.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_utils.crypto import keccak
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from stack import (
    ALICE,
    BOB,
    LedgerStack,
    anchor_and_index,
    create_job_on_chain,
    make_anchorer,
    signed_by_parties,
    step,
)
from tcp_proxy import TcpProxy

from secureflow.api.dev.compute_executor import LocalComputeExecutor
from secureflow.api.server.app import create_app
from secureflow.api.server.auth import allow, assert_every_route_guarded, route_access
from secureflow.api.server.db import ROLES
from secureflow.api.server.manifests import validate_manifest
from secureflow.api.server.serve import add_member_key, ensure_admin_key
from secureflow.api.server.settings import ApiSettings
from secureflow.api.server.tables import (
    ApiKeyOrm,
    ManifestOrm,
    MemberOrm,
    SettlementApprovalOrm,
    SettlementProposalOrm,
)
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.anchoring import AnchoringWorker
from secureflow.ledger.deploy import connect
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS
from secureflow.ledger.indexer import EventIndexer
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import manifest_commitment
from secureflow.ledger.signing import sign_party
from secureflow.ledger.store import SqlLedgerStore, open_store
from secureflow.ledger.store.models import StepRecordOrm
from secureflow.ledger.verify import PinnedDeployment, verify_receipt
from tools.live_server import LiveServer

ADMIN = Account.from_key(DEV_PRIVATE_KEYS[0]).address
SERVICE = Account.from_key(DEV_PRIVATE_KEYS[3]).address
AUDITOR = Account.from_key(DEV_PRIVATE_KEYS[4]).address
PROMETHEUS = Account.create().address  # a key of role metrics: needs no on-chain role
OTHER = Account.create().address


def manifest(name: str = "t") -> dict[str, Any]:
    return {
        "name": name,
        "parties": [{"name": "alice", "address": ALICE}, {"name": "bob", "address": BOB}],
        "datasets": {"raw": {"alice": "a.csv", "bob": "b.csv"}},
        "steps": [{"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}}],
    }


@dataclass
class Env:
    url: str
    app: FastAPI
    store: SqlLedgerStore
    keys: dict[str, str]
    stack: LedgerStack
    server: LiveServer

    def call(self, method: str, path: str, who: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.keys[who]}"
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)


def live_app(
    ledger_stack: LedgerStack, ledger_db_url: str, *, worker: AnchoringWorker | None = None, **settings: Any
) -> tuple[FastAPI, SqlLedgerStore, dict[str, str]]:
    """The API app on the session's chain and this test's database, with a key per role (and bob's)."""
    store = open_store(ledger_db_url)
    api_settings = ApiSettings(
        _env_file=None,  # type: ignore[call-arg]
        rpc_url=ledger_stack.rpc_url,
        chain_id=DEV_CHAIN_ID,
        database_url=ledger_db_url,
        **{"registry_cache_seconds": 0, "sse_poll_interval": 0.05, **settings},
    )
    app = create_app(
        api_settings,
        store=store,
        client=ledger_stack.client(),
        deployment=ledger_stack.deployment,
        worker=worker,
    )
    db = app.state.api_db
    admin_key = ensure_admin_key(db, ADMIN)
    assert admin_key is not None
    keys = {
        "admin": admin_key,
        "member": add_member_key(db, "alice", ALICE, "member"),
        "bob": add_member_key(db, "bob", BOB, "member"),
        "service": add_member_key(db, "svc", SERVICE, "service"),
        "auditor": add_member_key(db, "auditor", AUDITOR, "auditor"),
        "metrics": add_member_key(db, "prometheus", PROMETHEUS, "metrics"),
    }
    return app, store, keys


@pytest.fixture
def env(ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None) -> Iterator[Env]:
    app, store, keys = live_app(ledger_stack, ledger_db_url)
    try:
        with LiveServer(app) as server:
            yield Env(server.url, app, store, keys, ledger_stack, server)
    finally:
        store.close()


def assert_error(response: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


def submit(env: Env, name: str = "t", service: str | None = SERVICE) -> str:
    """A job of alice and bob submitted by alice, bound to the test's anchoring service (``service``)."""
    response = env.call("POST", "/v1/jobs", "member", json={"manifest": manifest(name), "service": service})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["execution"] == "not_configured"
    return str(body["job"]["job_id"])


API_STATE_TABLES = (MemberOrm, ApiKeyOrm, ManifestOrm, SettlementProposalOrm, SettlementApprovalOrm)
WATCHED = [Account.from_key(k).address for k in DEV_PRIVATE_KEYS[:6]] + [OTHER]


def _rows(env: Env) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the API's own tables, every column: members (name, address, role), keys (member,
    label, secret hash, revoked_at), stored manifests and service bindings, settlement proposals and
    approvals. (The record index is a read cache of the outbox, rebuilt by reads; the outbox is below.)"""
    with env.app.state.api_db.engine.connect() as conn:
        return {
            orm.__tablename__: sorted((tuple(row) for row in conn.execute(select(orm.__table__))), key=repr)
            for orm in API_STATE_TABLES
        }


def _chain_state(env: Env, job_ids: list[str]) -> dict[str, Any]:
    """Block-independent state of the session's contracts: each watched account's registry roles and
    transaction count (a transaction sent by any key the API holds moves one), and each job's on-chain
    header, consents and settlement."""
    client = env.stack.client()
    registry = connect(client, env.stack.deployment, "ConsortiumRegistry").functions
    ledger = connect(client, env.stack.deployment, "AuditLedger").functions
    settlement = connect(client, env.stack.deployment, "Settlement").functions
    state: dict[str, Any] = {}
    for account in WATCHED:
        state[account] = (
            registry.isActiveMember(account).call(),
            registry.isSuspended(account).call(),
            registry.isAnchorService(account).call(),
            registry.isAuditor(account).call(),
            client.w3.eth.get_transaction_count(account),  # type: ignore[arg-type]
        )
    for job_id in job_ids:
        raw = bytes.fromhex(job_id[2:])
        state[job_id] = (
            ledger.getJob(raw).call(),
            ledger.jobParties(raw).call(),
            ledger.missingConsents(raw).call(),
            settlement.weightsSet(raw).call(),
            settlement.totalDeposited(raw, "0x" + "00" * 20).call(),
        )
    return state


def _chain_head(env: Env) -> tuple[int, int]:
    """The chain's head and its pending transactions: on the session's automining anvil, any
    transaction a request makes the API send (a role change, a revoke, a settlement) moves one of them,
    so an unchanged head means unchanged contract state, at two calls instead of ``_chain_state``'s ~50."""
    w3 = env.stack.client().w3
    return w3.eth.block_number, w3.eth.get_block_transaction_count("pending")


def snapshot(env: Env, *, chain: str = "state") -> tuple[Any, ...]:
    """What a refused request must not change: ledger jobs and records, every row of the API's tables
    (API keys incl. revoked_at, member roles) and the chain: ``chain="state"`` reads the contract state
    of ``_chain_state``, ``chain="head"`` only the chain's head (``_chain_head``), for the route matrix's
    hundreds of requests."""
    jobs = env.store.list_jobs(limit=1000)
    return (
        [(j.job_id, j.status) for j in jobs],
        sorted(
            (r.job_id, r.seq, r.record_hash, r.status)
            for j in jobs
            for r in env.store.records_for_job(j.job_id)
        ),
        _rows(env),
        _chain_state(env, [j.job_id for j in jobs]) if chain == "state" else _chain_head(env),
    )


# -- deny by default ---------------------------------------------------------------------------------


def test_every_route_declares_access_and_undeclared_routes_are_refused(env: Env) -> None:
    routes = [r for r in env.app.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 20
    for route in routes:
        access = route_access(route)
        assert access is not None, route.path
        # public: outside /v1, but /metrics (outside /v1 for Prometheus) needs a key as /v1 does
        assert access.public == (not route.path.startswith("/v1") and route.path != "/metrics"), route.path
    bad = FastAPI()

    @bad.get("/v1/unguarded")
    def unguarded() -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError, match="unguarded"):
        assert_every_route_guarded(bad)
    twice = FastAPI()
    from fastapi import Depends

    @twice.get("/v1/twice", dependencies=[Depends(allow("admin")), Depends(allow("member"))])
    def double() -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError):
        assert_every_route_guarded(twice)


def _path(route: APIRoute, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_role_route_matrix(env: Env) -> None:
    """Every route x (anonymous and each role): denied roles get 401/403 and nothing changes.

    Each write is sent with a body that would change something if it ran: a role change to the role the
    spare member does not have, a new admin member, a revoke of a key nobody revoked yet."""
    db = env.app.state.api_db
    job_id = submit(env)
    spare = db.create_member("spare", OTHER, "auditor")
    values = {"job_id": job_id, "seq": "0", "member_id": str(spare.id), "key_id": ""}
    routes = [r for r in env.app.routes if isinstance(r, APIRoute)]
    checked = 0
    for route in sorted(routes, key=lambda r: (r.path, sorted(r.methods or ()))):
        access = route_access(route)
        assert access is not None
        for method in sorted(route.methods or ()):
            for who in (None, *ROLES):
                values["key_id"] = db.create_key(spare.id, "spare")[0].key_id  # live until revoked
                body: dict[str, Any] | None = {} if method in ("POST", "PUT") else None
                if (method, route.path) == ("PUT", "/v1/members/{member_id}/role"):
                    body = {"role": "admin" if db.get_member(spare.id).role == "auditor" else "auditor"}
                elif (method, route.path) == ("POST", "/v1/members"):
                    body = {"name": f"new-{checked}", "address": Account.create().address, "role": "admin"}
                denied = not access.public and (who is None or who not in access.roles)
                before = snapshot(env, chain="head") if denied else None
                key = {r: r for r in ROLES}
                response = env.call(
                    method,
                    _path(route, values),
                    key[who] if who else None,
                    params={"once": "true"},
                    json=body,
                )
                label = f"{method} {route.path} as {who}"
                if access.public:
                    assert response.status_code < 500 and response.status_code not in (401, 403), label
                elif who is None:
                    assert_error(response, 401, "unauthorized")
                    assert snapshot(env, chain="head") == before, label
                elif who not in access.roles:
                    assert_error(response, 403, "forbidden")
                    assert snapshot(env, chain="head") == before, label
                else:
                    assert response.status_code not in (401, 403, 500), (label, response.text)
                checked += 1
    assert checked >= 5 * len(routes)
    # the settlement writes are in the matrix, each admitting exactly these roles
    declared = {
        (method, r.path): sorted(access.roles)
        for r in routes
        if (access := route_access(r)) is not None
        for method in r.methods or ()
    }
    settlement_writes = {
        ("POST", "/v1/settlements/{job_id}/proposals"): ["admin", "member"],
        ("GET", "/v1/settlements/{job_id}/proposal"): ["admin", "auditor", "member"],
        ("POST", "/v1/settlements/{job_id}/approvals"): ["member"],
        ("POST", "/v1/settlements/{job_id}/transactions/prepare"): ["admin", "member"],
        ("POST", "/v1/settlements/{job_id}/transactions"): ["admin", "member"],
    }
    assert {k: declared.get(k) for k in settlement_writes} == settlement_writes


def test_member_sees_only_its_jobs(env: Env) -> None:
    from secureflow.ledger.store.schemas import NewJob

    job_id = submit(env)
    other = "0x" + "ab" * 32
    env.store.create_job(
        NewJob(job_id=other, manifest_hash="0x" + "cd" * 32, creator=BOB, parties=[BOB, SERVICE])
    )
    mine = {j["job_id"] for j in env.call("GET", "/v1/jobs", "member").json()["items"]}
    assert mine == {job_id}
    everything = {j["job_id"] for j in env.call("GET", "/v1/jobs", "auditor").json()["items"]}
    assert everything == {job_id, other}
    assert_error(env.call("GET", f"/v1/jobs/{other}", "member"), 404, "not_found")
    assert env.call("GET", f"/v1/jobs/{other}", "auditor").status_code == 200
    assert_error(env.call("POST", f"/v1/jobs/{other}/cancel", "member"), 404)


# -- bad input ----------------------------------------------------------------------------------------


def test_bad_input_is_4xx_in_one_shape_and_changes_nothing(env: Env) -> None:
    job_id = submit(env)
    before = snapshot(env)
    raw = {"Content-Type": "application/json"}
    assert_error(
        env.call("POST", "/v1/jobs", "member", data="{not json", headers=raw), 422, "invalid_request"
    )
    assert_error(env.call("POST", "/v1/jobs", "member", json={"manifest": "x"}), 422)
    assert_error(env.call("POST", "/v1/jobs", "member", json={"manifest": {"parties": 3}}), 422)
    assert_error(env.call("POST", f"/v1/jobs/{job_id}/steps", "service", json={"seq": "zero"}), 422)
    assert_error(
        env.call("POST", f"/v1/jobs/{job_id}/steps", "service", data=b"[" * 2_000_000, headers=raw), 413
    )
    assert_error(env.call("GET", f"/v1/jobs/0x{'00' * 32}", "auditor"), 404, "not_found")
    assert_error(env.call("GET", "/v1/jobs/not-a-job", "auditor"), 422)
    assert_error(env.call("GET", "/v1/jobs?limit=0", "auditor"), 422)
    assert_error(env.call("GET", "/v1/audit/records?cursor=-1", "auditor"), 422)
    assert_error(env.call("GET", "/v1/audit/records?until=0.5", "auditor"), 422)  # not a Unix time
    assert_error(env.call("GET", "/v1/audit/records?since=2026-01-31", "auditor"), 422)  # a date-time
    assert_error(env.call("PUT", "/v1/jobs", "auditor"), 405)
    assert env.call("PUT", "/v1/jobs", "auditor").headers["Allow"] == "GET, POST"
    body = b"\xff\xfe"  # not UTF-8: the same answer as a body that is not JSON
    assert_error(env.call("POST", "/v1/jobs", "member", data=body, headers=raw), 422, "invalid_request")
    verified = env.call("GET", "/v1/audit/records?verify=true&limit=1000", "auditor")  # capped, not refused
    assert verified.status_code == 200
    assert_error(env.call("GET", "/v1/nowhere"), 404, "not_found")
    assert_error(env.call("DELETE", "/v1/jobs", "auditor"), 405, "method_not_allowed")
    assert_error(env.call("GET", f"/v1/jobs/{job_id}/steps/0/receipt", "auditor"), 404)
    rec = step(job_id, 0).model_dump(mode="json")
    rec["job_id"] = "0x" + "ee" * 32
    assert_error(env.call("POST", f"/v1/jobs/{job_id}/steps", "service", json=rec), 422)
    stranger = step(job_id, 0).model_dump(mode="json")
    stranger["parties"][0]["party"] = AUDITOR
    assert_error(env.call("POST", f"/v1/jobs/{job_id}/steps", "service", json=stranger), 422)
    assert snapshot(env) == before
    # keys: garbage, wrong secret for a real id, revoked (replayed after revocation)
    assert_error(env.call("GET", "/v1/me", headers={"Authorization": "Bearer nope"}), 401)
    key = env.keys["auditor"]
    assert_error(env.call("GET", "/v1/me", headers={"Authorization": f"Bearer {key[:-2]}xx"}), 401)
    key_id = env.call("GET", "/v1/me", "auditor").json()["key_id"]
    assert env.call("POST", f"/v1/keys/{key_id}/revoke", "admin").json()["revoked_at"]
    assert_error(env.call("GET", "/v1/me", "auditor"), 401, "unauthorized")
    assert_error(env.call("GET", "/v1/jobs", "auditor"), 401)


def test_contract_rules_refused_first(env: Env) -> None:
    before = snapshot(env)
    outsider = manifest()
    outsider["parties"][1]["address"] = AUDITOR  # not a registered member
    error = assert_error(  # refused by the registry's state, as the members routes refuse: a conflict
        env.call("POST", "/v1/jobs", "member", json={"manifest": outsider}), 409, "refused_by_contract_rules"
    )
    assert f"NotActiveMember({AUDITOR})" in error["message"]
    not_party = manifest()
    not_party["parties"][0]["address"] = SERVICE
    error = assert_error(  # refused whatever the registry holds: the manifest itself is unacceptable
        env.call("POST", "/v1/jobs", "member", json={"manifest": not_party}), 422, "refused_by_contract_rules"
    )
    assert "CallerNotParty" in error["message"]
    error = assert_error(  # well-formed, refused by the registry's state: a conflict, not invalid input
        env.call("POST", "/v1/members", "admin", json={"name": "x", "address": AUDITOR, "role": "member"}),
        409,
        "refused_by_contract_rules",
    )
    assert "NotActiveMember" in error["message"]
    assert snapshot(env) == before
    documented = env.call("GET", "/openapi.json").json()["paths"]["/v1/jobs"]["post"]["responses"]
    for status in ("409", "422"):  # both refusals are in the contract clients build on, in the error shape
        assert documented[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
        assert "refused_by_contract_rules" in documented[status]["description"]


def test_service_posts_only_attributable_records_of_its_own_jobs_in_seq_order(env: Env) -> None:
    """The attack of issue 11 (3): with the service key, records for a job a member had just submitted were
    accepted at any seq and unsigned. Now every job party must have signed its part, seqs come in ledger
    order, and only the service the job is bound to may post; each refusal changes nothing."""
    job_id = submit(env)
    unbound = submit(env, "not bound", service=None)
    post = lambda record: env.call(  # noqa: E731
        "POST", f"/v1/jobs/{job_id}/steps", "service", json=record.model_dump(mode="json")
    )
    before = snapshot(env)
    unsigned = assert_error(post(step(job_id, 0)), 422, "invalid_request")
    assert f"job party {ALICE} has not signed its part" in unsigned["message"]
    assert f"job party {BOB} has not signed its part" in unsigned["message"]
    service_key = bytes.fromhex(DEV_PRIVATE_KEYS[3][2:])
    forged = step(job_id, 0)
    forged = forged.model_copy(
        update={
            "parties": tuple(
                p.model_copy(update={"signature": sign_party(forged, p, service_key)}) for p in forged.parties
            )
        }
    )
    wrong_key = assert_error(post(forged), 422)
    assert f"the part of job party {ALICE} is signed by {SERVICE}, not by {ALICE}" in wrong_key["message"]
    signed = step(job_id, 0, signed=True)
    only_alice = signed.model_copy(
        update={"parties": (signed.parties[0], signed.parties[1].model_copy(update={"signature": None}))}
    )
    assert f"job party {BOB} has not signed" in assert_error(post(only_alice), 422)["message"]
    without_bob = signed.model_copy(update={"parties": signed.parties[:1]})
    assert f"job party {BOB} has no part in the record" in assert_error(post(without_bob), 422)["message"]
    jump = assert_error(post(step(job_id, 7, signed=True)), 409, "conflict")
    assert f"job {job_id} takes step 0 next, not step 7" in jump["message"]
    refused = env.call(
        "POST",
        f"/v1/jobs/{unbound}/steps",
        "service",
        json=step(unbound, 0, signed=True).model_dump(mode="json"),
    )
    assert f"NotJobService({SERVICE})" in assert_error(refused, 403, "forbidden")["message"]
    not_a_service = env.call(
        "POST", "/v1/jobs", "member", json={"manifest": manifest("x"), "service": AUDITOR}
    )
    refusal = assert_error(not_a_service, 409, "refused_by_contract_rules")
    assert f"NotAnchorService({AUDITOR})" in refusal["message"]
    assert snapshot(env) == before
    # the job's own records, signed by both parties, in order
    for seq in range(3):
        assert post(step(job_id, seq, signed=True)).status_code == 201
    assert [r.seq for r in env.store.records_for_job(job_id)] == [0, 1, 2]
    assert env.call("GET", f"/v1/jobs/{job_id}", "member").json()["service"] == SERVICE


def test_members_and_keys_admin_flow(env: Env) -> None:
    created = env.call(
        "POST", "/v1/members", "admin", json={"name": "aud2", "address": OTHER, "role": "auditor"}
    )
    assert created.status_code == 201, created.text
    member_id = created.json()["id"]
    key = env.call("POST", f"/v1/members/{member_id}/keys", "admin", json={"label": "ci"}).json()
    assert key["key"].startswith("sfk_")
    me = env.call("GET", "/v1/me", headers={"Authorization": f"Bearer {key['key']}"}).json()
    assert me["role"] == "auditor" and me["address"] == OTHER
    listed = env.call("GET", f"/v1/members/{member_id}/keys", "admin").json()["items"]
    assert [k["key_id"] for k in listed] == [key["key_id"]] and "key" not in listed[0]
    page = env.call("GET", "/v1/members?limit=2", "admin").json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = env.call("GET", f"/v1/members?limit=100&cursor={page['next_cursor']}", "admin").json()
    assert len(page["items"]) + len(rest["items"]) == 7
    no_anchor_role = env.call("PUT", f"/v1/members/{member_id}/role", "admin", json={"role": "service"})
    assert "NotAnchorService" in assert_error(no_anchor_role, 409, "refused_by_contract_rules")["message"]
    roles = {r["role"]: r["routes"] for r in env.call("GET", "/v1/roles", "admin").json()["items"]}
    assert "POST /v1/jobs/{job_id}/steps" in roles["service"]
    assert not any(r.startswith("POST") for r in roles["auditor"] if "verify" not in r)
    # the key is stored only as a hash
    from sqlalchemy import text

    with env.store.engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT secret_hash FROM api_keys"))]
    assert key["key"] not in stored and all(len(h) == 64 for h in stored)


def test_reads_return_what_was_stored(env: Env) -> None:
    """GET /v1/jobs/{id}/manifest, /v1/models, /v1/members/{id} and a role change answer with the stored
    content, not merely without a server error."""
    job_id = submit(env, "reads")
    job = env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()
    stored = validate_manifest(manifest("reads"))  # the submitted manifest, normalised (a new secret)
    for who in ("member", "auditor"):
        got = env.call("GET", f"/v1/jobs/{job_id}/manifest", who).json()
        assert got == stored.manifest, (who, got)
        # and it is the manifest the job committed to: its commitment under the job's secret
        assert manifest_commitment(got, env.app.state.api_db.get_job_secret(job_id)) == job["manifest_hash"]

    # a model recorded on chain by the real anchoring worker and indexed by the real indexer
    create_job_on_chain(env.stack, job_id, job["manifest_hash"], job["salt"], creator=job["creator"])
    model_hash = "0x" + keccak(b"model weights of the reads job").hex()
    OutboxRecorder(env.store).record_model(job_id, "credit_lr-reads", 1, model_hash)
    client = env.stack.client(receipt_timeout=60)
    anchorer = make_anchorer(env.stack, env.store, client)
    anchorer.run_once()
    (sent,) = env.store.models(job_id=job_id)
    mined = client.w3.eth.wait_for_transaction_receipt(sent.tx_hash, timeout=60)  # type: ignore[arg-type]
    anchorer.run_once()
    ledger = connect(client, env.stack.deployment, "AuditLedger")
    EventIndexer(env.store, client, ledger, from_block=env.stack.deployment.deploy_block).poll()
    expected = {
        "job_id": job_id,
        "model_id": "0x" + keccak(text="credit_lr-reads").hex(),
        "version": 1,
        "model_hash": model_hash,
        "block_number": int(mined["blockNumber"]),
        "tx_hash": sent.tx_hash,
        "name": "credit_lr-reads",  # and what this API holds for it: the same hash, confirmed
        "api_model_hash": model_hash,
        "api_status": "confirmed",
        "hash_matches": True,
    }
    for who in ("auditor", "member"):  # alice is a party of the job
        page = env.call("GET", f"/v1/models?job_id={job_id}", who).json()
        assert page == {"items": [expected], "next_cursor": None}, (who, page)
    by_hash = env.call("GET", f"/v1/models?model_hash={model_hash}", "auditor").json()["items"]
    assert by_hash == [expected]
    other = "0x" + keccak(b"no such model").hex()
    assert env.call("GET", f"/v1/models?model_hash={other}", "auditor").json()["items"] == []

    # a member and a successful role change, read back and in force on the member's next request
    spare = env.app.state.api_db.create_member("reader", OTHER, "auditor")
    key = env.call("POST", f"/v1/members/{spare.id}/keys", "admin", json={"label": "r"}).json()["key"]
    got = env.call("GET", f"/v1/members/{spare.id}", "admin").json()
    assert {k: got[k] for k in ("id", "name", "address", "role")} == {
        "id": spare.id,
        "name": "reader",
        "address": OTHER,
        "role": "auditor",
    }
    assert_error(env.call("GET", "/v1/members", headers={"Authorization": f"Bearer {key}"}), 403, "forbidden")
    changed = env.call("PUT", f"/v1/members/{spare.id}/role", "admin", json={"role": "admin"})
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("id", "address", "role")} == {
        "id": spare.id,
        "address": OTHER,
        "role": "admin",
    }
    assert env.call("GET", f"/v1/members/{spare.id}", "admin").json()["role"] == "admin"
    assert env.call("GET", "/v1/me", headers={"Authorization": f"Bearer {key}"}).json()["role"] == "admin"
    members = env.call("GET", "/v1/members", headers={"Authorization": f"Bearer {key}"})
    assert members.status_code == 200 and spare.id in [m["id"] for m in members.json()["items"]]


# -- end to end ---------------------------------------------------------------------------------------


def test_end_to_end_anchor_receipt_verify(env: Env) -> None:
    job_id = submit(env)
    job = env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()
    create_job_on_chain(env.stack, job_id, job["manifest_hash"], job["salt"], creator=job["creator"])
    records = [step(job_id, seq, signed=True).model_dump(mode="json") for seq in range(5)]
    for record in records:
        response = env.call("POST", f"/v1/jobs/{job_id}/steps", "service", json=record)
        assert response.status_code == 201, response.text
        assert response.json()["chain_status"] == "pending"
    replay = env.call("POST", f"/v1/jobs/{job_id}/steps", "service", json=records[2])
    assert replay.status_code == 200 and replay.json()["replayed"] is True
    changed = signed_by_parties(step(job_id, 2).model_copy(update={"finished_at_ms": 99}))
    changed_json = changed.model_dump(mode="json")
    assert_error(env.call("POST", f"/v1/jobs/{job_id}/steps", "service", json=changed_json), 409, "conflict")
    assert env.store.count_records_by_status()["pending"] == 5
    not_yet = env.call("GET", f"/v1/jobs/{job_id}/steps/1/receipt", "auditor")
    assert_error(not_yet, 409, "not_anchored")

    anchor_and_index(env.stack, env.store)

    receipt = env.call("GET", f"/v1/jobs/{job_id}/steps/3/receipt", "member")
    assert receipt.status_code == 200, receipt.text
    pin = PinnedDeployment.of_deployment(env.stack.deployment)
    verdict = verify_receipt(receipt.json(), env.stack.rpc_url, pin)  # standalone, straight against anvil
    assert verdict.ok, verdict.summary()
    assert receipt.json()["record"] == records[3]

    api_verdict = env.call("POST", "/v1/verify", "auditor", json=receipt.json()).json()
    assert api_verdict["ok"] and {c["status"] for c in api_verdict["checks"]} == {"passed"}
    deployment = env.stack.deployment.contracts
    assert api_verdict["pinned"] == {
        "source": "this API's configured deployment",
        "chain_id": 1337,
        "ledger": deployment["AuditLedger"].address,
        "ledger_code_hash": deployment["AuditLedger"].code_hash,
        "registry": deployment["ConsortiumRegistry"].address,
        "registry_code_hash": deployment["ConsortiumRegistry"].code_hash,
    }
    assert api_verdict["warnings"] == []
    elsewhere = dict(receipt.json(), contract=deployment["ConsortiumRegistry"].address)
    named = env.call("POST", "/v1/verify", "auditor", json=elsewhere).json()
    assert not named["ok"] and [c["name"] for c in named["checks"] if c["status"] == "failed"] == [
        "contract_pinned"
    ]
    forged = dict(receipt.json(), record=dict(records[3], seq=4))
    bad = env.call("POST", "/v1/verify", "auditor", json=forged).json()
    assert not bad["ok"] and any(c["status"] == "failed" for c in bad["checks"])

    detail = env.call("GET", f"/v1/jobs/{job_id}/steps/0", "bob").json()
    assert detail["step"]["chain_status"] == "confirmed" and detail["receipt"]["proof"] is not None
    page1 = env.call("GET", f"/v1/jobs/{job_id}/steps?limit=2", "auditor").json()
    assert [s["seq"] for s in page1["items"]] == [0, 1] and page1["next_cursor"] == "1"
    page3 = env.call("GET", f"/v1/jobs/{job_id}/steps?limit=2&cursor=3", "auditor").json()
    assert [s["seq"] for s in page3["items"]] == [4] and page3["next_cursor"] is None

    audit = env.call(
        "GET", f"/v1/audit/records?member={BOB}&algorithm=psi&verify=true&limit=3", "auditor"
    ).json()
    assert len(audit["items"]) == 3 and all(i["verification"]["ok"] for i in audit["items"])
    more = env.call("GET", f"/v1/audit/records?member={BOB}&cursor={audit['next_cursor']}", "auditor").json()
    assert [i["seq"] for i in more["items"]] == [3, 4]
    assert env.call("GET", "/v1/audit/records?algorithm=ss_lr", "auditor").json()["items"] == []
    assert env.call("GET", "/v1/audit/records?status=pending", "auditor").json()["items"] == []
    future = env.call("GET", "/v1/audit/records?since=2100-01-01T00:00:00Z", "auditor").json()
    assert future["items"] == []

    bundle = env.call("GET", f"/v1/jobs/{job_id}/bundle", "auditor")
    assert "attachment" in bundle.headers["content-disposition"]
    body = bundle.json()
    assert len(body["receipts"]) == 5 and body["manifest"]["name"] == "t"
    assert all(verify_receipt(r, env.stack.rpc_url, pin).ok for r in body["receipts"])

    events = env.call("GET", f"/v1/jobs/{job_id}/events?once=true", "member")
    assert events.headers["content-type"].startswith("text/event-stream")
    first = json.loads(events.text.split("data: ", 1)[1].split("\n", 1)[0])
    assert first["records"]["confirmed"] == 5 and first["status"] == "running"
    assert env.call("POST", f"/v1/jobs/{job_id}/cancel", "member").json()["status"] == "cancelled"
    stream = env.call("GET", f"/v1/jobs/{job_id}/events", "auditor")  # ends: job finished, records settled
    assert "cancelled" in stream.text and stream.text.rstrip().endswith('data: {"reason": "finished"}')
    assert_error(
        env.call(
            "POST",
            f"/v1/jobs/{job_id}/steps",
            "service",
            json=step(job_id, 9, signed=True).model_dump(mode="json"),
        ),
        409,
    )
    metrics = env.call("GET", "/metrics", "metrics").text
    assert 'secureflow_records{status="confirmed"} 5.0' in metrics
    assert (
        "secureflow_anchoring_queue_depth 0.0" in metrics
        and "secureflow_api_request_seconds_bucket" in metrics
    )


def test_metrics_include_the_in_process_anchoring_workers(
    ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None
) -> None:
    worker_store = open_store(ledger_db_url)
    worker = AnchoringWorker(make_anchorer(ledger_stack, worker_store))
    app, store, keys = live_app(ledger_stack, ledger_db_url, worker=worker)
    worker.start()
    try:
        with LiveServer(app) as server:
            env = Env(server.url, app, store, keys, ledger_stack, server)
            deadline = time.monotonic() + 30
            while worker.passes < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert worker.passes >= 1, worker.last_error
            text = env.call("GET", "/metrics", "metrics").text
            passes = re.search(r"^secureflow_anchoring_passes_total (\S+)$", text, re.M)
            assert passes is not None and float(passes.group(1)) >= 1, text
            assert "secureflow_anchoring_batch_latency_seconds_bucket" in text
            assert "secureflow_records{" in text  # the API's own figures are still there
    finally:
        worker.stop()
        store.close()
        worker_store.close()


def sse_events(text: str) -> list[dict[str, str]]:
    """The dispatched events of a server-sent event stream (fields of each; comments dropped)."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            events.append(fields)
    return events


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_live_status_events_have_ids_and_resume_from_last_event_id(env: Env) -> None:
    job_id = submit(env)
    path = f"/v1/jobs/{job_id}/events?once=true"
    first = sse_events(env.call("GET", path, "member").text)
    assert [e["event"] for e in first] == ["status", "end"]
    number, digest = first[0]["id"].split("-")
    assert number == "1" and re.fullmatch(r"[0-9a-f]{16}", digest)

    resumed = sse_events(env.call("GET", path, "member", headers={"Last-Event-ID": first[0]["id"]}).text)
    assert [e["event"] for e in resumed] == ["end"]  # the client has this state: it is not sent again

    posted = env.call(
        "POST",
        f"/v1/jobs/{job_id}/steps",
        "service",
        json=step(job_id, 0, signed=True).model_dump(mode="json"),
    )
    assert posted.status_code == 201, posted.text
    changed = sse_events(env.call("GET", path, "member", headers={"Last-Event-ID": first[0]["id"]}).text)
    assert [e["event"] for e in changed] == ["status", "end"]
    assert changed[0]["id"].startswith("2-")  # numbering goes on from the id the client sent
    assert json.loads(changed[0]["data"])["records"]["pending"] == 1 and "id" not in changed[1]
    assert json.loads(changed[1]["data"]) == {"reason": "once"}

    for junk in ("", "x", "7", "1-nothex", "9" * 40 + "-" + digest):  # ignored: a fresh stream
        fresh = sse_events(env.call("GET", path, "member", headers={"Last-Event-ID": junk}).text)
        assert [e["event"] for e in fresh] == ["status", "end"] and fresh[0]["id"].startswith("1-"), junk
    too_long = env.call("GET", path, "member", headers={"Last-Event-ID": "1-" + "a" * 200})
    assert_error(too_long, 422, "invalid_request")


def test_operations_endpoints(env: Env) -> None:
    assert env.call("GET", "/healthz").json() == {"status": "ok"}
    ready = env.call("GET", "/readyz")
    assert ready.status_code == 200, ready.text
    assert {c["name"] for c in ready.json()["checks"]} == {"database", "chain", "worker"}
    given = env.call("GET", "/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    unsafe = env.call("GET", "/healthz", headers={"X-Request-ID": "<script>" + "x" * 100})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])
    spec = env.call("GET", "/openapi.json").json()
    assert "/v1/jobs/{job_id}/steps" in spec["paths"] and "ErrorResponse" in spec["components"]["schemas"]


@pytest.mark.postgres
def test_readyz_fails_on_the_database_when_it_goes_down(
    ledger_stack: LedgerStack, postgres_schema_url: str, chain_snapshot: None
) -> None:
    url = make_url(postgres_schema_url)
    relay = TcpProxy(url.host or "127.0.0.1", url.port or 5432)  # the network to the shared server
    relay.up()
    app, store, _keys = live_app(
        ledger_stack, url.set(host="127.0.0.1", port=relay.port).render_as_string(False)
    )
    try:
        with LiveServer(app) as server:
            ready = requests.get(server.url + "/readyz", timeout=60)
            assert ready.status_code == 200, ready.text
            relay.cut()
            down = requests.get(server.url + "/readyz", timeout=60)
            assert down.status_code == 503, down.text
            checks = {c["name"]: c for c in down.json()["checks"]}
            assert not down.json()["ready"] and not checks["database"]["ok"], checks
            detail = checks["database"]["detail"]
            assert detail.startswith("StoreUnavailableError: cannot use the ledger database"), detail
            assert f"port {relay.port} failed" in detail, detail
            assert checks["chain"]["ok"], checks  # it names the database, not everything
    finally:
        store.close()
        relay.cut()


def test_readyz_fails_on_the_worker_when_a_record_waits_too_long(env: Env) -> None:
    """No anchoring worker runs here (the API's is external): a record accepted an hour ago (its accepted_at
    set back, instead of waiting) fails the worker check; anchoring it makes the API ready again."""
    job_id = submit(env, "stalled")
    job = env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()
    create_job_on_chain(env.stack, job_id, job["manifest_hash"], job["salt"], creator=job["creator"])
    record = step(job_id, 0, signed=True).model_dump(mode="json")
    assert env.call("POST", f"/v1/jobs/{job_id}/steps", "service", json=record).status_code == 201
    assert env.call("GET", "/readyz").status_code == 200  # just accepted: nothing waits too long yet
    with env.store.engine.begin() as conn:
        conn.execute(
            update(StepRecordOrm)
            .where(StepRecordOrm.job_id == job_id)
            .values(accepted_at=datetime.now(timezone.utc) - timedelta(hours=1))
        )
    stalled = env.call("GET", "/readyz")
    assert stalled.status_code == 503, stalled.text
    checks = {c["name"]: c for c in stalled.json()["checks"]}
    assert [name for name, c in checks.items() if not c["ok"]] == ["worker"], checks
    assert "the oldest pending record has waited 3600 s" in checks["worker"]["detail"]
    assert "secureflow anchor-worker" in checks["worker"]["detail"]
    anchor_and_index(env.stack, env.store)
    assert env.call("GET", "/readyz").status_code == 200


def test_a_quarantined_step_is_served_failed_with_its_reason(env: Env) -> None:
    """A record the anchoring worker gave up on (as it quarantines a poison row) is listed ``failed`` with
    its ``failure_reason``; the OpenAPI schema declares the field."""
    job_id = submit(env, "poisoned")
    record = step(job_id, 0, signed=True).model_dump(mode="json")
    assert env.call("POST", f"/v1/jobs/{job_id}/steps", "service", json=record).status_code == 201
    stored = env.store.get_record(job_id, 0)
    assert stored is not None
    reason = "quarantined: the stored leaf is not leaf_hash(job_id, seq, record_hash) of its record"
    env.store.mark_record_failed(stored.id, reason)
    (item,) = env.call("GET", f"/v1/jobs/{job_id}/steps", "auditor").json()["items"]
    assert (item["chain_status"], item["failure_reason"]) == ("failed", reason)
    spec = env.call("GET", "/openapi.json").json()
    assert "failure_reason" in spec["components"]["schemas"]["StepOut"]["properties"]


def test_readyz_names_the_failing_dependency(env: Env) -> None:
    env.app.state.services.client.config.rpc_url  # noqa: B018 - the real client stays untouched
    from secureflow.ledger.chain import ChainClient, ChainConfig
    from secureflow.ledger.devchain import free_port

    env.app.state.services.client = ChainClient(ChainConfig(rpc_url=f"http://127.0.0.1:{free_port()}"))
    ready = env.call("GET", "/readyz")
    assert ready.status_code == 503
    failed = [c["name"] for c in ready.json()["checks"] if not c["ok"]]
    assert failed == ["chain"]


# -- why a job did not complete, and jobs that stopped moving ----------------------------------------------


def test_a_cancelled_job_says_who_cancelled_it(env: Env) -> None:
    job_id = submit(env, "to-cancel")
    assert env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()["reason"] is None
    cancelled = env.call("POST", f"/v1/jobs/{job_id}/cancel", "bob")
    assert cancelled.status_code == 200, cancelled.text
    why = f"cancelled by bob (member {BOB})"
    assert (cancelled.json()["status"], cancelled.json()["reason"]) == ("cancelled", why)
    shown = env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()
    assert (shown["status"], shown["reason"], shown["stuck"]) == ("cancelled", why, False)
    listed = env.call("GET", "/v1/jobs?status=cancelled", "member").json()["items"]
    assert [(j["job_id"], j["reason"]) for j in listed] == [(job_id, why)]
    event = sse_events(env.call("GET", f"/v1/jobs/{job_id}/events?once=true", "member").text)[0]
    assert json.loads(event["data"])["reason"] == why  # the live status carries it too


def test_a_consent_refusal_keeps_every_refusing_partys_reasons(env: Env, tmp_path: Path) -> None:
    """The embedded stack's executor checks each party's policy before anything runs; with the default
    policy neither party lets PSI reveal the intersection to the other. The API answers 409 and the job,
    stored failed, says which party refused and why (no SecretFlow worker is started for this)."""
    client = env.stack.client()
    executor = LocalComputeExecutor(
        Engine(["alice", "bob"], tmp_path / "parties"),
        env.store,
        client,
        connect(client, env.stack.deployment, "AuditLedger"),
        {
            "alice": Account.from_key(DEV_PRIVATE_KEYS[1]).address,
            "bob": Account.from_key(DEV_PRIVATE_KEYS[2]).address,
        },
    )
    env.app.state.services.executor = executor
    try:
        refused = env.call("POST", "/v1/jobs", "member", json={"manifest": manifest("refused")})
    finally:
        executor.close()
    message = assert_error(refused, 409, "conflict")["message"]
    job_id = re.search(r"refused job (0x[0-9a-f]{64})", message).group(1)  # type: ignore[union-attr]
    job = env.call("GET", f"/v1/jobs/{job_id}", "member").json()
    assert job["status"] == "failed", job
    reason = job["reason"]
    assert reason.startswith("the compute executor refused it: ConsentRefusedError: "), reason
    assert f"party 'alice': step 0 (psi): reveals to bob ({BOB})" in reason
    assert f"party 'bob': step 0 (psi): reveals to alice ({ALICE})" in reason
    assert job["close_reason"] is None  # the on-chain close's reason is another field


@pytest.fixture
def stuck_env(ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None) -> Iterator[Env]:
    """The API with ``stuck_after_seconds=0``: a running job is stuck as soon as it is not moving."""
    app, store, keys = live_app(ledger_stack, ledger_db_url, stuck_after_seconds=0)
    try:
        with LiveServer(app) as server:
            yield Env(server.url, app, store, keys, ledger_stack, server)
    finally:
        store.close()


def _stuck_metric(env: Env) -> float:
    text = env.call("GET", "/metrics", "metrics").text
    found = re.search(r"^secureflow_jobs_stuck (\S+)$", text, re.M)
    assert found is not None, text
    return float(found.group(1))


def test_a_running_job_that_stopped_moving_is_reported_stuck(stuck_env: Env) -> None:
    env = stuck_env
    waiting = submit(env, "waiting")  # created, never started: not stuck
    job_id = submit(env, "stalled")
    posted = env.call(
        "POST",
        f"/v1/jobs/{job_id}/steps",
        "service",
        json=step(job_id, 0, signed=True).model_dump(mode="json"),
    )
    assert posted.status_code == 201, posted.text
    shown = env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()
    assert (shown["status"], shown["stuck"]) == ("running", True)
    assert env.call("GET", f"/v1/jobs/{waiting}", "auditor").json()["stuck"] is False
    for who in ("member", "bob", "auditor", "admin"):
        listed = env.call("GET", "/v1/jobs?stuck=true", who).json()
        assert [j["job_id"] for j in listed["items"]] == [job_id], who
        assert listed["items"][0]["stuck"] is True and listed["next_offset"] is None
    assert env.call("GET", "/v1/jobs?stuck=true&status=created", "auditor").json()["items"] == []
    everything = env.call("GET", "/v1/jobs", "auditor").json()["items"]
    assert {j["job_id"]: j["stuck"] for j in everything} == {job_id: True, waiting: False}
    assert _stuck_metric(env) == 1
    env.call("POST", f"/v1/jobs/{job_id}/cancel", "member")  # ended: no longer stuck
    assert env.call("GET", "/v1/jobs?stuck=true", "auditor").json()["items"] == []
    assert env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()["stuck"] is False
    assert _stuck_metric(env) == 0


def test_with_the_default_threshold_a_running_job_is_not_stuck(env: Env) -> None:
    job_id = submit(env, "moving")
    posted = env.call(
        "POST",
        f"/v1/jobs/{job_id}/steps",
        "service",
        json=step(job_id, 0, signed=True).model_dump(mode="json"),
    )
    assert posted.status_code == 201, posted.text
    assert env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()["stuck"] is False
    assert env.call("GET", "/v1/jobs?stuck=true", "auditor").json()["items"] == []
    assert _stuck_metric(env) == 0


def test_a_service_reads_only_the_jobs_bound_to_it(env: Env) -> None:
    """The attack (review): any service key downloaded the bundle — with the job secret that opens its
    parameter commitments to guessing — and the manifest of every job, bound to it or not. Now a job not
    bound to the caller's service is a 404 like another member's job; the bound service reads its own."""
    mine, unbound = submit(env, "bound"), submit(env, "unbound", service=None)
    for path in ("", "/manifest", "/bundle"):
        assert env.call("GET", f"/v1/jobs/{mine}{path}", "service").status_code == 200, path
        assert_error(env.call("GET", f"/v1/jobs/{unbound}{path}", "service"), 404, "not_found")
        assert env.call("GET", f"/v1/jobs/{unbound}{path}", "auditor").status_code == 200, path
    assert env.call("GET", f"/v1/jobs/{mine}/timeline", "service").status_code == 403
    assert env.call("GET", "/v1/overview", "service").status_code == 403
