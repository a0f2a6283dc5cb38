"""`Client`: the audit API over HTTP (httpx), one resource per attribute, one typed method per route."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from secureflow.api.client import _calls as calls
from secureflow.api.client._calls import Body, JsonObject
from secureflow.api.client._http import (
    API_KEY_ENV,
    API_URL_ENV,
    DEFAULT_API_URL,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    Call,
    FollowState,
    RetryPolicy,
    ServerSentEvent,
    SseDecoder,
    check_api_key,
    check_base_url,
    error_from,
    headers_for,
    unreachable,
)
from secureflow.api.client.errors import ApiResponseError, ApiUnreachableError, ServerError
from secureflow.api.client.formats import (
    AuditBundle,
    PreparedTransaction,
    Receipt,
    SettlementHistory,
    SettlementOut,
    SubmittedTransaction,
)
from secureflow.api.client.models import (
    ETH,
    AcceptedStep,
    ApprovalAccepted,
    ApprovalIn,
    AuditItem,
    Health,
    JobLogs,
    JobOut,
    JobStatusEvent,
    JobSubmitted,
    JobTimeline,
    KeyCreated,
    KeyOut,
    Me,
    MemberOut,
    ModelOut,
    OffsetPage,
    Overview,
    Page,
    ProposalCreated,
    ProposalState,
    Readiness,
    Role,
    RoleOut,
    SearchResults,
    SettlementAction,
    StepDetail,
    StepOut,
    VerdictOut,
)

T = TypeVar("T")


class _Resource:
    def __init__(self, client: Client) -> None:
        self._client = client

    def _run(self, call: Call[T]) -> T:
        return self._client._run(call)

    def _by_cursor(self, page: Callable[[str | None], Call[Page[T]]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            got = self._run(page(cursor))
            yield from got.items
            if not got.next_cursor:
                return
            cursor = got.next_cursor


class Ops(_Resource):
    """Operations (public, no key needed): liveness, readiness, Prometheus metrics."""

    def health(self) -> Health:
        return self._run(calls.health())

    def ready(self) -> Readiness:
        """Readiness with each check (database, chain, worker); ``ready`` is false when one fails."""
        return self._run(calls.ready())

    def metrics(self) -> str:
        return self._run(calls.metrics())


class Jobs(_Resource):
    """Jobs: submit a manifest, read, list, cancel, and follow the live status."""

    def submit(self, manifest: Body, *, service: str | None = None) -> JobSubmitted:
        """Submit a job manifest (a member key of a party of the job); ``service``: the address of the
        anchoring service that will post its steps (only it may; leave out when the API runs the job)."""
        return self._run(calls.job_submit(manifest, service))

    def list(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0, stuck: bool = False
    ) -> OffsetPage[JobOut]:
        """One page of jobs, newest first (``next_offset`` is the next page's ``offset``); ``stuck``: only
        running jobs that stopped moving, longest idle first."""
        return self._run(calls.job_list(status, limit, offset, stuck))

    def iterate(
        self, *, status: str | None = None, page_size: int = 100, stuck: bool = False
    ) -> Iterator[JobOut]:
        """Every job, newest first, fetching pages of ``page_size`` as the iteration goes."""
        offset: int | None = 0
        while offset is not None:
            page = self.list(status=status, limit=page_size, offset=offset, stuck=stuck)
            yield from page.items
            offset = page.next_offset

    def get(self, job_id: str) -> JobOut:
        return self._run(calls.job_get(job_id))

    def manifest(self, job_id: str) -> JsonObject:
        """The manifest the job was submitted with (`NotFoundError` if not submitted through the API)."""
        return self._run(calls.job_manifest(job_id))

    def timeline(self, job_id: str) -> JobTimeline:
        """The job from manifest to close: consents, every step's record with its signatures checked, models
        with their on-chain hash, and the close on chain beside the API's."""
        return self._run(calls.job_timeline(job_id))

    def cancel(self, job_id: str) -> JobOut:
        return self._run(calls.job_cancel(job_id))

    def logs(self, job_id: str, *, party: str | None = None, after: int = 0) -> JobLogs:
        """Each party's log lines of the job (or ``party``'s alone), from line ``after`` on, as the party
        keeps them; `ApiError` 503 naming the party when its node does not answer."""
        return self._run(calls.job_logs(job_id, party, after))

    def events(
        self, job_id: str, *, once: bool = False, last_event_id: str | None = None
    ) -> Iterator[ServerSentEvent]:
        """The job's live-status stream, one connection: each event as sent (``status`` events carry a
        `JobStatusEvent` as JSON, the last one is ``end``). `follow` reconnects and resumes for you."""
        decoder = SseDecoder(last_event_id)
        with self._client._stream(calls.job_events(job_id, once, last_event_id)) as response:
            try:
                for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
            except httpx.TransportError as exc:
                raise unreachable(self._client.base_url, exc) from None

    def follow(
        self, job_id: str, *, last_event_id: str | None = None, once: bool = False, max_failures: int = 5
    ) -> JobFollow:
        """Iterate over the job's status changes until it has finished and its records are settled on chain.

        Connects again when the server ends the stream early (its time limit) or the connection drops,
        resuming after the last event seen (``Last-Event-ID``: a state already seen is not sent again);
        `StreamLostError` after ``max_failures`` failed connections in a row."""
        return JobFollow(self, job_id, last_event_id=last_event_id, once=once, max_failures=max_failures)


class JobFollow:
    """The status events of one job across connections (`Jobs.follow`); ``last``, ``last_event_id`` and
    ``connections`` tell where it stands."""

    def __init__(
        self, jobs: Jobs, job_id: str, *, last_event_id: str | None, once: bool, max_failures: int
    ) -> None:
        self._jobs = jobs
        self.state = FollowState(
            jobs._client.base_url, job_id, last_event_id, once=once, max_failures=max_failures
        )

    @property
    def last(self) -> JobStatusEvent | None:
        return self.state.last

    @property
    def last_event_id(self) -> str | None:
        return self.state.last_event_id

    @property
    def connections(self) -> int:
        return self.state.connections

    def __iter__(self) -> Iterator[JobStatusEvent]:
        state = self.state
        while not state.done:
            state.connected()
            try:
                for sse in self._jobs.events(
                    state.job_id, once=state.once, last_event_id=state.last_event_id
                ):
                    event = state.on_event(sse)
                    if event is not None:
                        yield event
            except (ApiUnreachableError, ServerError) as exc:
                wait = state.on_failure(exc)
            else:
                wait = state.stream_ended()
            if wait and not state.done:
                time.sleep(wait)


class Steps(_Resource):
    """A job's steps: anchoring a record (services), reading records, their chain status and receipts."""

    def list(self, job_id: str, *, limit: int = 100, cursor: str | None = None) -> Page[StepOut]:
        """One page of the job's steps in sequence order (``next_cursor`` is the next page's ``cursor``)."""
        return self._run(calls.step_list(job_id, limit, cursor))

    def iterate(self, job_id: str, *, page_size: int = 100) -> Iterator[StepOut]:
        """Every step of the job in sequence order, fetching pages as the iteration goes."""
        return self._by_cursor(lambda cursor: calls.step_list(job_id, page_size, cursor))

    def anchor(self, job_id: str, record: Body) -> AcceptedStep:
        """Hand a step record (a mapping, or the ledger's ``StepRecord``) to the anchoring pipeline
        (a service key with the ANCHOR role). Idempotent: the same record again is ``replayed``."""
        return self._run(calls.step_anchor(job_id, record))

    def get(self, job_id: str, seq: int) -> StepDetail:
        """The step's record, its chain status and its receipt once anchored."""
        return self._run(calls.step_get(job_id, seq))

    def receipt(self, job_id: str, seq: int) -> Receipt:
        """The step's receipt (record, leaf, Merkle proof, batch root, transaction, block), to verify
        anywhere (`Verification.verify`; ``receipt.model_dump_json(exclude_unset=True)`` is the file for
        ``secureflow verify``); `ConflictError` with code ``not_anchored`` until it is anchored."""
        return self._run(calls.step_receipt(job_id, seq))


class Bundles(_Resource):
    """Audit bundles: the manifest, the job, every record and a receipt per anchored record."""

    def get(self, job_id: str) -> AuditBundle:
        return self._run(calls.bundle_get(job_id))

    def download(self, job_id: str) -> bytes:
        """The bundle file exactly as the API sends it (to write to disk for ``secureflow verify``)."""
        return self._run(calls.bundle_download(job_id))


class Audit(_Resource):
    """Audit queries over step records, each with its chain status (``verify``: re-checked on chain)."""

    def overview(self, hours: int = 6) -> Overview:
        """The consortium at a glance (members: the figures of their own jobs): registry accounts, jobs by
        status, records anchored per minute and their latency, backlog, last block, failed and stuck jobs."""
        return self._run(calls.overview(hours))

    def search(
        self, q: str = "", *, since: str | None = None, until: str | None = None, limit: int = 50
    ) -> SearchResults:
        """Find jobs by job id, member address, model, record or transaction hash, and time range (RFC 3339
        with a zone); each result names what matched and its job (members: their own jobs only)."""
        return self._run(calls.search(q, since, until, limit))

    def records(
        self,
        *,
        job_id: str | None = None,
        member: str | None = None,
        algorithm: str | None = None,
        model_hash: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
        verify: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[AuditItem]:
        """One page of step records in acceptance order, filtered (times with a timezone)."""
        return self._run(
            calls.audit_records(
                job_id=job_id,
                member=member,
                algorithm=algorithm,
                model_hash=model_hash,
                since=since,
                until=until,
                status=status,
                verify=verify,
                limit=limit,
                cursor=cursor,
            )
        )

    def iterate_records(
        self,
        *,
        job_id: str | None = None,
        member: str | None = None,
        algorithm: str | None = None,
        model_hash: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
        verify: bool = False,
        page_size: int = 100,
    ) -> Iterator[AuditItem]:
        """Every matching step record, fetching pages as the iteration goes."""
        filters: dict[str, Any] = {"job_id": job_id, "member": member, "algorithm": algorithm}
        filters |= {"model_hash": model_hash, "since": since, "until": until, "status": status}
        return self._by_cursor(
            lambda cursor: calls.audit_records(**filters, verify=verify, limit=page_size, cursor=cursor)
        )


class Verification(_Resource):
    """Verifying a receipt against the chain node of the API (do it against your own node too)."""

    def verify(self, receipt: Body) -> VerdictOut:
        return self._run(calls.verify(receipt))


class Models(_Resource):
    """Models recorded on chain (id, version, hash) and the job that produced them."""

    def list(
        self,
        *,
        job_id: str | None = None,
        model_hash: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ModelOut]:
        return self._run(calls.model_list(job_id, model_hash, limit, cursor))

    def iterate(
        self, *, job_id: str | None = None, model_hash: str | None = None, page_size: int = 100
    ) -> Iterator[ModelOut]:
        return self._by_cursor(lambda cursor: calls.model_list(job_id, model_hash, page_size, cursor))


class Members(_Resource):
    """Members of the API and their roles (admin), and ``me``: who this key belongs to (any role)."""

    def me(self) -> Me:
        return self._run(calls.me())

    def list(self, *, limit: int = 100, cursor: str | None = None) -> Page[MemberOut]:
        return self._run(calls.member_list(limit, cursor))

    def iterate(self, *, page_size: int = 100) -> Iterator[MemberOut]:
        return self._by_cursor(lambda cursor: calls.member_list(page_size, cursor))

    def create(self, name: str, address: str, role: Role) -> MemberOut:
        return self._run(calls.member_create(name, address, role))

    def get(self, member_id: int) -> MemberOut:
        return self._run(calls.member_get(member_id))

    def set_role(self, member_id: int, role: Role) -> MemberOut:
        return self._run(calls.member_set_role(member_id, role))


class Keys(_Resource):
    """API keys of members (admin): listed without the secret, created (the key is shown once), revoked."""

    def list(self, member_id: int) -> Page[KeyOut]:
        return self._run(calls.key_list(member_id))

    def create(self, member_id: int, label: str = "default") -> KeyCreated:
        return self._run(calls.key_create(member_id, label))

    def revoke(self, key_id: str) -> KeyOut:
        return self._run(calls.key_revoke(key_id))


class Roles(_Resource):
    """Each role and the routes it may call (admin)."""

    def list(self) -> Page[RoleOut]:
        return self._run(calls.role_list())


class Settlements(_Resource):
    """Settlement of a job: state and history from the contract, proposals, approvals, and the member's
    own transactions (prepared here, signed by the member, relayed). The contract's state, history and
    transactions are the ledger's formats (`secureflow.api.client.formats`, generated from the OpenAPI)."""

    def get(self, job_id: str, *, asset: str = ETH) -> SettlementOut:
        return self._run(calls.settlement_get(job_id, asset))

    def history(self, job_id: str) -> SettlementHistory:
        return self._run(calls.settlement_history(job_id))

    def propose(self, job_id: str, inputs: Body) -> ProposalCreated:
        """Contribution inputs (``method`` data_share, leave_one_out or shapley) -> weights, record."""
        return self._run(calls.settlement_propose(job_id, inputs))

    def proposal(self, job_id: str) -> ProposalState:
        return self._run(calls.settlement_proposal(job_id))

    def approve(self, job_id: str, approval: ApprovalIn | Mapping[str, Any]) -> ApprovalAccepted:
        return self._run(calls.settlement_approve(job_id, approval))

    def prepare(
        self, job_id: str, action: SettlementAction, *, asset: str = ETH, amount: int | None = None
    ) -> PreparedTransaction:
        """An unsigned legacy transaction for the key's address, simulated first."""
        return self._run(calls.settlement_prepare(job_id, action, asset, amount))

    def submit(self, job_id: str, raw_transaction: str | bytes) -> SubmittedTransaction:
        """Relay a signed settlement transaction; the answer has its receipt's settlement events."""
        return self._run(calls.settlement_submit(job_id, raw_transaction))


class Client:
    """The secureflow audit API at ``base_url`` with one API key (sent as a bearer token, never shown).

    ``with Client(url, api_key=key) as api: api.jobs.get(job_id)``. Resources: ``ops``, ``jobs``,
    ``steps``, ``bundles``, ``audit``, ``verification``, ``models``, ``members``, ``keys``, ``roles``,
    ``settlements``. Idempotent calls are retried on 429 and 503 (``retry``; `NO_RETRY` to turn off).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        user_agent: str = USER_AGENT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers_for(check_api_key(api_key), user_agent),
            timeout=timeout,
            transport=transport,
        )
        self.ops = Ops(self)
        self.jobs = Jobs(self)
        self.steps = Steps(self)
        self.bundles = Bundles(self)
        self.audit = Audit(self)
        self.verification = Verification(self)
        self.models = Models(self)
        self.members = Members(self)
        self.keys = Keys(self)
        self.roles = Roles(self)
        self.settlements = Settlements(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Client:
        """The API at ``SECUREFLOW_API_URL`` (default http://127.0.0.1:8000) with ``SECUREFLOW_API_KEY``."""
        env = os.environ if environ is None else environ
        return cls(env.get(API_URL_ENV) or DEFAULT_API_URL, env.get(API_KEY_ENV) or None, **options)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _send(self, call: Call[Any], *, stream: bool) -> httpx.Response:
        """The answer to ``call`` (retried as the policy says); an error answer raises, read."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.send(call.request(self._http), stream=stream)
            except httpx.TransportError as exc:
                raise unreachable(self.base_url, exc) from None
            if response.is_success or response.status_code in call.answers:
                return response
            try:
                response.read()
            except httpx.TransportError as exc:
                raise unreachable(self.base_url, exc) from None
            finally:
                response.close()
            error: ApiResponseError = error_from(response)
            wait = self.retry.next_wait(call, attempt, error)
            if wait is None:
                raise error
            time.sleep(wait)

    def _run(self, call: Call[T]) -> T:
        return call.parse(self._send(call, stream=False))

    @contextmanager
    def _stream(self, call: Call[Any]) -> Iterator[httpx.Response]:
        response = self._send(call, stream=True)
        try:
            yield response
        finally:
            response.close()
