"""The typed client (`secureflow.client`) against the real API on a loopback port, real anvil and real
SQLite/PostgreSQL: every route of the live OpenAPI has a client method, typed reads and writes, pagination
across pages, errors with the server's code, message and request id, following the live status with resume,
the async client, retries on 429/503 against a small real HTTP server standing in for a loaded API, and the
README's example as written.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from stack import ALICE, BOB, SERVICE, LedgerStack, anchor_and_index, create_job_on_chain, make_anchorer, step
from test_api_service import live_app, manifest

import secureflow.api.client.aio as client_aio
import secureflow.api.client.sync as client_sync
from secureflow.api.client import (
    NO_RETRY,
    ROUTES,
    ApiResponseError,
    ApiUnreachableError,
    AsyncClient,
    AuditBundle,
    Client,
    ClientConfigError,
    ClientError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    JobOut,
    JobStatusEvent,
    NotFoundError,
    RateLimitedError,
    Receipt,
    RetryEvent,
    RetryPolicy,
    SettlementHistory,
    SettlementOut,
    UnauthorizedError,
    UnavailableError,
)
from secureflow.api.client._http import parse_retry_after
from secureflow.ledger.anchoring import AnchoringWorker
from secureflow.ledger.deploy import connect
from secureflow.ledger.devchain import free_port
from secureflow.ledger.indexer import EventIndexer
from secureflow.ledger.store import SqlLedgerStore
from tools.live_server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
SSE_MAX_SECONDS = 1.0  # live-status streams end after a second: following longer must reconnect
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Env:
    url: str
    app: FastAPI
    store: SqlLedgerStore
    keys: dict[str, str]
    stack: LedgerStack

    def client(self, who: str, **options: Any) -> Client:
        return Client(self.url, api_key=self.keys[who], **options)

    def async_client(self, who: str, **options: Any) -> AsyncClient:
        return AsyncClient(self.url, api_key=self.keys[who], **options)


@pytest.fixture
def env(ledger_stack: LedgerStack, ledger_db_url: str, chain_snapshot: None) -> Iterator[Env]:
    app, store, keys = live_app(ledger_stack, ledger_db_url, sse_max_seconds=SSE_MAX_SECONDS)
    try:
        with LiveServer(app) as server:
            yield Env(server.url, app, store, keys, ledger_stack)
    finally:
        store.close()


def submit(env: Env, steps: int = 1) -> str:
    body = manifest()
    body["steps"] = body["steps"] * steps
    with env.client("member") as member:
        return member.jobs.submit(body, service=SERVICE).job.job_id


def anchor(env: Env, job_id: str, seqs: range) -> None:
    with env.client("service") as service:
        for seq in seqs:
            assert service.steps.anchor(job_id, step(job_id, seq, signed=True)).replayed is False
    anchor_and_index(env.stack, env.store)


# -- the route table is the live OpenAPI ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_route_of_the_live_openapi_has_a_client_method(env: Env) -> None:
    methods = {"get", "post", "put", "patch", "delete"}
    served = {
        (method.upper(), path)
        for path, item in env.app.openapi()["paths"].items()
        for method in item
        if method in methods
    }
    table = {(r.method, r.path) for r in ROUTES}
    assert len(table) == len(ROUTES), "a route is in the table twice"
    assert served - table == set(), "routes of the API without a client method"
    assert table - served == set(), "client methods of routes the API does not have"
    assert {p for _, p in served if p.startswith("/v1")} and len(served) >= 30

    sync_client, async_client = Client("http://127.0.0.1:9"), AsyncClient("http://127.0.0.1:9")
    for r in ROUTES:
        resource, name = r.operation.split(".")
        sync_method = getattr(getattr(sync_client, resource), name)
        async_method = getattr(getattr(async_client, resource), name)
        assert inspect.iscoroutinefunction(async_method) or inspect.isasyncgenfunction(async_method), r
        assert not inspect.iscoroutinefunction(sync_method), r
        same = inspect.signature(sync_method).parameters == inspect.signature(async_method).parameters
        assert same, f"{r.operation}: the sync and async methods take different parameters"
        assert r.idempotent or r.method == "POST", f"{r.method} {r.path} is idempotent by HTTP"
    sync_client.close()
    asyncio.run(async_client.close())


def test_the_server_declares_its_openapi_with_the_clients_models() -> None:
    """One definition: the server's schemas are the client's classes (not copies that could drift)."""
    from secureflow.api.client import models
    from secureflow.api.server import schemas
    from secureflow.api.server.routes import settlements
    from secureflow.ledger.settlement.client import ETH
    from secureflow.ledger.settlement.transactions import Action
    from secureflow.ledger.store.schemas import TERMINAL_JOB_STATUSES

    for name in ("JobOut", "StepOut", "JobStatusEvent", "VerdictOut", "MemberIn", "ErrorResponse", "Page"):
        assert getattr(schemas, name) is getattr(models, name)
    for name in ("ProposalState", "PrepareIn", "SubmitIn", "WeightsOut"):
        assert getattr(settlements, name) is getattr(models, name)
    # the approval body is the settlement service's own `Approval` (the client may not import the ledger):
    # the client's copy must describe the same JSON
    from secureflow.ledger.settlement.approval import Approval

    assert models.ApprovalIn.model_json_schema()["properties"] == Approval.model_json_schema()["properties"]
    assert models.SettlementAction.__args__ == Action.__args__  # type: ignore[attr-defined]
    assert models.ETH == ETH and set(TERMINAL_JOB_STATUSES) == models.TERMINAL_JOB_STATUSES


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_json_answer_of_the_live_openapi_is_a_typed_model_of_the_client(env: Env) -> None:
    """Each route answering a schema of the OpenAPI's components has a client method returning the class of
    that name; the classes of the ledger's formats (receipt, bundle, settlement) are generated from those
    schemas (`tools.client_formats`), so the file must be what the live OpenAPI gives: a change to the
    ledger's models fails here until ``.venv/bin/python -m tools.client_formats`` is run again."""
    from tools.client_formats import TARGET, render

    spec = env.app.openapi()
    assert render(spec) == TARGET.read_text(), "api/client/formats.py is stale: run tools.client_formats"
    typed = {}
    for r in ROUTES:
        answers = spec["paths"][r.path][r.method.lower()]["responses"]
        ok = next(body for status, body in answers.items() if status.startswith("2"))
        schema = ok.get("content", {}).get("application/json", {}).get("schema", {})
        if "$ref" in schema:
            resource, name = r.operation.split(".")
            for module in (client_sync, client_aio):  # the annotation, as written: "Page[StepOut]"
                returned = inspect.signature(
                    getattr(getattr(module, resource.title()), name)
                ).return_annotation
                typed[r.operation] = re.sub(r"[\[\], ]+", "_", str(returned))
                assert typed[r.operation] == schema["$ref"].rsplit("/", 1)[-1], (module.__name__, r)
    untyped = {r.operation for r in ROUTES} - set(typed)  # a JSON object, server-sent events, text
    assert untyped == {"jobs.manifest", "jobs.events", "ops.metrics"}
    assert {"steps.receipt", "bundles.get", "settlements.get", "settlements.submit"} <= set(typed)


def test_importing_the_client_loads_no_chain_db_or_secretflow_code() -> None:
    code = "import sys, secureflow.client; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT / "tests"
    ).stdout.split()
    forbidden = ("web3", "sqlalchemy", "secretflow", "spu", "eth_account", "fastapi", "requests", "typer")
    assert [m for m in loaded if m.split(".")[0] in forbidden] == []
    ours = {m for m in loaded if m.startswith("secureflow.")}
    assert "secureflow.api.client" in ours and "secureflow.client" in ours
    client_modules = ("secureflow.api.client", "secureflow.client")
    assert {m for m in ours if not m.startswith(client_modules)} <= {"secureflow.api"}, ours


# -- typed reads and writes ------------------------------------------------------------------------------


def test_typed_reads_and_writes(env: Env) -> None:
    with env.client("member") as member, env.client("service") as service, env.client("auditor") as auditor:
        submitted = member.jobs.submit({"manifest": manifest("typed")}["manifest"], service=SERVICE)
        job = submitted.job
        assert isinstance(job, JobOut) and job.status == "created" and submitted.execution == "not_configured"
        assert member.jobs.get(job.job_id) == job
        assert member.jobs.manifest(job.job_id)["name"] == "typed"
        assert job.salt is not None
        create_job_on_chain(  # with both parties' consents, under the id the API derived
            env.stack, job.job_id, job.manifest_hash, job.salt, creator=job.creator
        )

        accepted = service.steps.anchor(job.job_id, step(job.job_id, 0, signed=True))
        assert accepted.chain_status == "pending" and accepted.seq == 0 and not accepted.replayed
        again = service.steps.anchor(job.job_id, step(job.job_id, 0, signed=True).model_dump(mode="json"))
        assert again.replayed and again.leaf == accepted.leaf
        anchor_and_index(env.stack, env.store)

        detail = auditor.steps.get(job.job_id, 0)
        assert detail.step.chain_status == "confirmed" and detail.step.confirmed_at is not None
        assert detail.receipt is not None and detail.record["seq"] == 0
        receipt = auditor.steps.receipt(job.job_id, 0)
        assert isinstance(receipt, Receipt) and receipt.leaf == accepted.leaf and receipt.version == 2
        assert receipt.status == "confirmed" and receipt.record["seq"] == 0 and receipt.anchorer is not None
        verdict = auditor.verification.verify(receipt)  # the model goes back exactly as it came
        assert verdict.ok and {c.status for c in verdict.checks} == {"passed"}
        assert detail.receipt == receipt.model_dump(mode="json", exclude_unset=True)
        forged = receipt.model_copy(update={"record": dict(receipt.record, seq=1)})
        assert not auditor.verification.verify(forged).ok

        bundle = auditor.bundles.get(job.job_id)
        assert isinstance(bundle, AuditBundle) and bundle.receipts == [receipt]
        assert bundle.manifest is not None and bundle.manifest["name"] == "typed"
        assert bundle.job.job_id == job.job_id and bundle.job.parties == [ALICE, BOB]
        downloaded = json.loads(auditor.bundles.download(job.job_id))
        assert downloaded == bundle.model_dump(mode="json", exclude_unset=True)
        audit = auditor.audit.records(job_id=job.job_id, member=BOB, verify=True)
        assert [i.seq for i in audit.items] == [0] and audit.items[0].verification is not None
        assert audit.items[0].verification.ok
        later = datetime.now(timezone.utc) + timedelta(days=1)
        assert auditor.audit.records(since=later).items == []
        assert auditor.models.list(job_id=job.job_id).items == []

        me = service.members.me()
        assert me.role == "service" and me.name == "svc"
        cancelled = member.jobs.cancel(job.job_id)
        assert cancelled.status == "cancelled"

    with env.client("admin") as admin:
        assert {r.role for r in admin.roles.list().items} == {
            "admin",
            "member",
            "service",
            "auditor",
            "metrics",
        }
        alice = next(m for m in admin.members.iterate() if m.address == ALICE)
        assert admin.members.get(alice.id) == alice
        assert admin.members.set_role(alice.id, "member").role == "member"
        created = admin.keys.create(alice.id, "sdk")
        assert created.key.startswith("sfk_") and created.label == "sdk"
        assert created.key_id in {k.key_id for k in admin.keys.list(alice.id).items}
        with Client(env.url, api_key=created.key) as fresh:
            assert fresh.members.me().member_id == alice.id
        revoked = admin.keys.revoke(created.key_id)
        assert revoked.revoked_at is not None
        assert admin.keys.revoke(created.key_id).revoked_at == revoked.revoked_at  # idempotent
        with pytest.raises(ConflictError) as refused:
            admin.members.create("stranger", "0x" + "11" * 20, "member")  # not a member on chain (yet)
        assert (
            refused.value.code == "refused_by_contract_rules" and "NotActiveMember" in refused.value.message
        )

        assert admin.ops.health().status == "ok"
        ready = admin.ops.ready()
        assert {c.name for c in ready.checks} == {"database", "chain", "worker"}
        assert "secureflow_api_request_seconds" in admin.ops.metrics()

        settlement = admin.settlements.get(job.job_id)
        assert isinstance(settlement, SettlementOut) and settlement.job_id == job.job_id
        assert (
            settlement.weights_set is False and settlement.total_deposited == 0 and settlement.balances == []
        )
        history = admin.settlements.history(job.job_id)
        assert isinstance(history, SettlementHistory) and history.events == []
        with pytest.raises(NotFoundError) as no_proposal:
            admin.settlements.proposal(job.job_id)
        assert "no contribution proposal" in no_proposal.value.message


# -- pagination ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_iterators_fetch_every_page(env: Env) -> None:
    job_ids = [submit(env) for _ in range(5)]
    with env.client("auditor") as auditor:
        first = auditor.jobs.list(limit=2)
        assert len(first.items) == 2 and first.next_offset == 2
        assert [j.job_id for j in auditor.jobs.iterate(page_size=2)] == job_ids[::-1]  # newest first
        assert list(auditor.jobs.iterate(status="completed", page_size=2)) == []

    anchor(env, job_ids[0], range(5))
    with env.client("auditor") as auditor:
        page = auditor.steps.list(job_ids[0], limit=2)
        assert [s.seq for s in page.items] == [0, 1] and page.next_cursor is not None
        assert [s.seq for s in auditor.steps.iterate(job_ids[0], page_size=2)] == [0, 1, 2, 3, 4]
        records = auditor.audit.iterate_records(member=ALICE, page_size=2)
        assert [(r.job_id, r.seq) for r in records] == [(job_ids[0], seq) for seq in range(5)]
    with env.client("admin") as admin:
        members = [m.name for m in admin.members.iterate(page_size=2)]
        assert len(members) == 6 and {"alice", "bob", "svc", "auditor", "prometheus"} <= set(members)


# -- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_errors_carry_the_servers_code_message_and_request_id(env: Env) -> None:
    job_id = submit(env)
    unknown = "0x" + "00" * 32
    with env.client("auditor") as auditor:
        with pytest.raises(NotFoundError) as missing:
            auditor.jobs.get(unknown)
        error = missing.value
        assert isinstance(error, ApiResponseError) and isinstance(error, ClientError)
        assert (error.status, error.code) == (404, "not_found") and unknown in error.message
        assert REQUEST_ID.match(error.request_id)
        assert str(error) == f"HTTP 404 not_found: {error.message} [request id {error.request_id}]"

        service_key = env.keys["service"]
        with env.client("service") as service:
            service.steps.anchor(job_id, step(job_id, 0, signed=True))
        with pytest.raises(ConflictError) as not_anchored:
            auditor.steps.receipt(job_id, 0)
        assert not_anchored.value.code == "not_anchored" and not_anchored.value.status == 409
        with pytest.raises(ForbiddenError) as forbidden:
            auditor.jobs.submit(manifest())
        assert forbidden.value.code == "forbidden"
        with pytest.raises(InvalidRequestError) as invalid:
            auditor.audit.records(since=datetime(2026, 1, 1))  # a time without a zone
        assert invalid.value.status == 422 and invalid.value.code == "invalid_request"

    wrong = "sfk_" + "0" * 12 + "_" + "x" * 43  # well-formed, unknown to the API
    with Client(env.url, api_key=wrong) as stranger, pytest.raises(UnauthorizedError) as denied:
        stranger.jobs.list()
    assert denied.value.code == "unauthorized" and wrong not in str(denied.value)

    for mangled in ("sfk_" + "0" * 12 + "_SECRET\nPART", service_key + " extra", "not a key"):
        with pytest.raises(ClientConfigError) as refused:  # before any request
            Client(env.url, api_key=mangled)
        assert "SECRET" not in str(refused.value) and mangled not in str(refused.value)
    with pytest.raises(ClientConfigError, match="not an http"):
        Client("localhost:8000")

    dead = f"http://127.0.0.1:{free_port()}"
    with Client(dead, api_key=wrong) as nowhere, pytest.raises(ApiUnreachableError) as unreachable:
        nowhere.jobs.list()
    assert str(unreachable.value) == f"cannot reach the secureflow API at {dead}: connection refused"
    assert len(env.store.list_jobs(limit=100)) == 1  # nothing that failed changed anything


# -- retries: a small real HTTP server stands in for a loaded API (429 / 503 with Retry-After) ---------


class LoadedApi:
    """A real HTTP server on a loopback port that answers each request with the next scripted answer, as a
    loaded or recovering API would (429 / 503 with ``Retry-After``, then the real answer); it records each
    request it got (method, path, body)."""

    def __init__(self, answers: list[tuple[int, dict[str, str], Any]]) -> None:
        self.answers, self.requests = list(answers), []  # type: list[tuple[str, str, Any]]
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                outer.requests.append((self.command, self.path, body))
                status, headers, payload = outer.answers.pop(0) if outer.answers else (500, {}, None)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Request-ID", f"{len(outer.requests):032x}")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoadedApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def busy(status: int, retry_after: str | None, n: int = 1) -> tuple[int, dict[str, str], Any]:
    code = {429: "too_many_requests", 503: "unavailable"}[status]
    body = {"error": {"code": code, "message": "busy, try again", "request_id": f"{n:032x}"}}
    return status, ({"Retry-After": retry_after} if retry_after is not None else {}), body


JOB = {
    "job_id": "0x" + "ab" * 32,
    "manifest_hash": "0x" + "cd" * 32,
    "creator": ALICE,
    "parties": [ALICE, BOB],
    "status": "running",
    "chain_status": "confirmed",
    "created_tx_hash": None,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:01Z",
}
KEY = "sfk_" + "a" * 12 + "_secret"


def test_idempotent_calls_are_retried_on_429_and_503_honouring_retry_after() -> None:
    retries: list[RetryEvent] = []
    policy = RetryPolicy(attempts=4, backoff=0.01, on_retry=retries.append)
    answers = [busy(503, "1"), busy(429, "0"), busy(503, None), (200, {}, JOB)]
    with LoadedApi(answers) as api, Client(api.url, api_key=KEY, retry=policy) as client:
        job = client.jobs.get(JOB["job_id"])
    assert job.job_id == JOB["job_id"] and len(api.requests) == 4
    assert [(e.attempt, e.error.status) for e in retries] == [(1, 503), (2, 429), (3, 503)]
    assert [e.delay for e in retries[:2]] == [1.0, 0.0]  # the server's Retry-After
    assert 0.005 <= retries[2].delay <= 0.04  # no Retry-After: backoff 0.01 * 2**2, jittered down

    async def retried_async(url: str) -> JobOut:
        async with AsyncClient(url, api_key=KEY, retry=policy) as client:
            return await client.jobs.get(JOB["job_id"])

    with LoadedApi([busy(429, "0"), (200, {}, JOB)]) as api:
        assert asyncio.run(retried_async(api.url)).job_id == JOB["job_id"] and len(api.requests) == 2


def test_retries_give_up_and_never_repeat_a_write_that_is_not_idempotent() -> None:
    still_busy = [busy(503, "0", n) for n in range(1, 4)]
    with (
        LoadedApi(still_busy) as api,
        Client(api.url, api_key=KEY, retry=RetryPolicy(attempts=3)) as client,
        pytest.raises(UnavailableError) as gave_up,
    ):
        client.steps.anchor(JOB["job_id"], {"seq": 0})  # idempotent by job id and seq: retried
    assert len(api.requests) == 3 and gave_up.value.request_id == f"{3:032x}"
    assert gave_up.value.code == "unavailable" and gave_up.value.retry_after == 0.0

    with (
        LoadedApi([busy(503, "0"), (201, {}, {})]) as api,
        Client(api.url, api_key=KEY) as client,
        pytest.raises(UnavailableError),
    ):
        client.jobs.submit({"name": "x"})  # a new job each time: never sent twice
    assert [r[:2] for r in api.requests] == [("POST", "/v1/jobs")]

    with (
        LoadedApi([busy(429, "3600"), (200, {}, JOB)]) as api,
        Client(api.url, api_key=KEY) as client,
        pytest.raises(RateLimitedError) as too_long,  # asks for more than max_retry_after
    ):
        client.jobs.get(JOB["job_id"])
    assert too_long.value.retry_after == 3600.0 and len(api.requests) == 1

    with (
        LoadedApi([busy(503, "0"), (200, {}, JOB)]) as api,
        Client(api.url, retry=NO_RETRY) as client,
        pytest.raises(UnavailableError),
    ):
        client.jobs.get(JOB["job_id"])
    assert len(api.requests) == 1


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


# -- following the live status ---------------------------------------------------------------------------


@dataclass
class Connections:
    """The client's connections to the live-status stream (each one's Last-Event-ID) and its status events."""

    opened: list[str | None]
    statuses: list[str]
    changed: threading.Condition

    def wait(self, connections: int = 0, statuses: int = 0) -> None:
        with self.changed:
            done = self.changed.wait_for(
                lambda: len(self.opened) >= connections and len(self.statuses) >= statuses, timeout=60
            )
        assert done, f"waited for {connections} connections and {statuses} events: {self}"


def watch_connections(monkeypatch: pytest.MonkeyPatch) -> Connections:
    seen = Connections([], [], threading.Condition())
    original = client_sync.Jobs.events

    def events(self: client_sync.Jobs, job_id: str, **options: Any) -> Iterator[Any]:
        with seen.changed:
            seen.opened.append(options.get("last_event_id"))
            seen.changed.notify_all()
        for event in original(self, job_id, **options):
            yield event
            with seen.changed:  # after the consumer has taken the event
                seen.statuses.append(event.event)
                seen.changed.notify_all()

    monkeypatch.setattr(client_sync.Jobs, "events", events)
    return seen


def test_follow_resumes_with_last_event_id_after_the_server_ends_the_stream(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = submit(env, steps=3)
    connections = watch_connections(monkeypatch)
    opened = connections.opened
    errors: list[BaseException] = []

    def run_the_job() -> None:
        try:
            connections.wait(statuses=1)  # the client has the job's first state
            anchor(env, job_id, range(2))
            connections.wait(connections=2)  # the server ended the first stream (time limit): it came back
            anchor(env, job_id, range(2, 3))
            env.store.update_job(job_id, status="completed")
        except BaseException as exc:  # re-raised by the test
            errors.append(exc)

    worker = threading.Thread(target=run_the_job, daemon=True)
    worker.start()
    with env.client("auditor") as auditor:
        follow = auditor.jobs.follow(job_id)
        seen = list(follow)
    worker.join(60)
    assert not errors, errors
    assert seen[0].status == "created" and seen[0].records.total == 0
    assert seen[-1].finished and seen[-1].succeeded and seen[-1].records.confirmed == 3
    assert all(a != b for a, b in itertools.pairwise(seen))  # a resumed stream repeats no state
    assert follow.connections == len(opened) >= 2 and opened[0] is None
    assert all(last is not None for last in opened[1:])  # every reconnection resumed with Last-Event-ID
    assert follow.last_event_id is not None and follow.last_event_id.split("-")[0] == str(len(seen))

    with env.client("auditor") as auditor:  # resuming from the current state: nothing new, and done
        again = auditor.jobs.follow(job_id, last_event_id=follow.last_event_id)
        assert list(again) == [] and again.connections == 1
        once = list(auditor.jobs.follow(job_id, once=True))
        assert once == [seen[-1]]


# -- async ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_async_client(env: Env) -> None:
    job_id = submit(env, steps=2)
    anchor(env, job_id, range(2))

    async def main() -> tuple[JobOut, list[int], list[JobStatusEvent], NotFoundError]:
        async with env.async_client("auditor") as auditor:
            job, steps = await asyncio.gather(
                auditor.jobs.get(job_id),
                _collect(auditor.steps.iterate(job_id, page_size=1)),
            )
            receipt, bundle = await asyncio.gather(
                auditor.steps.receipt(job_id, 1), auditor.bundles.get(job_id)
            )
            assert isinstance(receipt, Receipt) and bundle.receipts[1] == receipt
            verdict = await auditor.verification.verify(receipt)  # (the job is not on chain: not ok)
            assert (verdict.job_id, verdict.seq) == (job_id, 1)
            events = [event async for event in auditor.jobs.follow(job_id, once=True)]
            try:
                await auditor.jobs.get("0x" + "00" * 32)
            except NotFoundError as exc:
                return job, [s.seq for s in steps], events, exc
        raise AssertionError("no error")

    job, seqs, events, error = asyncio.run(main())
    assert job.job_id == job_id and seqs == [0, 1]
    assert len(events) == 1 and events[0].records.confirmed == 2 and not events[0].finished
    assert error.code == "not_found" and REQUEST_ID.match(error.request_id)


async def _collect(items: Any) -> list[Any]:
    return [item async for item in items]


# -- the README's example --------------------------------------------------------------------------------


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- client example -->\n```python\n(.*?)```", text, re.S)
    assert found, "README.md lost its client example"
    return found.group(1)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_readme_example_runs(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """The example as written, with a real anchoring worker running beside the API (as `secureflow up`)."""
    client = env.stack.client()
    indexer = EventIndexer(
        env.store,
        client,
        connect(client, env.stack.deployment, "AuditLedger"),
        from_block=env.stack.deployment.deploy_block,
    )
    worker = AnchoringWorker(make_anchorer(env.stack, env.store, client), indexer).start()
    job_id = submit(env)
    stored = env.store.get_job(job_id)
    assert stored is not None and stored.salt is not None
    create_job_on_chain(  # both consents
        env.stack, job_id, stored.manifest_hash, stored.salt, creator=stored.creator
    )
    names = {
        "API_URL": env.url,
        "SERVICE_KEY": env.keys["service"],
        "AUDITOR_KEY": env.keys["auditor"],
        "job_id": job_id,
        "record": step(job_id, 0, signed=True).model_dump(mode="json"),  # signed by every party
    }
    try:
        exec(compile(readme_example(), "README.md", "exec"), names)  # noqa: S102 - our README's own code
    finally:
        worker.stop()
    shown = capsys.readouterr().out
    assert "pending" in shown and "True" in shown, shown
    assert names["verdict"].ok and names["receipt"].record == names["record"]
