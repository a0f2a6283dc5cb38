"""`AsyncClient`: `Client` for asyncio (httpx.AsyncClient): the same resources and methods, awaited."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
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
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _run(self, call: Call[T]) -> T:
        return await self._client._run(call)

    async def _by_cursor(self, page: Callable[[str | None], Call[Page[T]]]) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            got = await self._run(page(cursor))
            for item in got.items:
                yield item
            if not got.next_cursor:
                return
            cursor = got.next_cursor


class Ops(_Resource):
    """Operations (public, no key needed): liveness, readiness, Prometheus metrics."""

    async def health(self) -> Health:
        return await self._run(calls.health())

    async def ready(self) -> Readiness:
        """Readiness with each check (database, chain, worker); ``ready`` is false when one fails."""
        return await self._run(calls.ready())

    async def metrics(self) -> str:
        return await self._run(calls.metrics())


class Jobs(_Resource):
    """Jobs: submit a manifest, read, list, cancel, and follow the live status."""

    async def submit(self, manifest: Body, *, service: str | None = None) -> JobSubmitted:
        """Submit a job manifest (a member key of a party of the job); ``service``: the address of the
        anchoring service that will post its steps (only it may; leave out when the API runs the job)."""
        return await self._run(calls.job_submit(manifest, service))

    async def list(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0, stuck: bool = False
    ) -> OffsetPage[JobOut]:
        """One page of jobs, newest first (``next_offset`` is the next page's ``offset``); ``stuck``: only
        running jobs that stopped moving, longest idle first."""
        return await self._run(calls.job_list(status, limit, offset, stuck))

    async def iterate(
        self, *, status: str | None = None, page_size: int = 100, stuck: bool = False
    ) -> AsyncIterator[JobOut]:
        """Every job, newest first, fetching pages of ``page_size`` as the iteration goes."""
        offset: int | None = 0
        while offset is not None:
            page = await self.list(status=status, limit=page_size, offset=offset, stuck=stuck)
            for job in page.items:
                yield job
            offset = page.next_offset

    async def get(self, job_id: str) -> JobOut:
        return await self._run(calls.job_get(job_id))

    async def manifest(self, job_id: str) -> JsonObject:
        """The manifest the job was submitted with (`NotFoundError` if not submitted through the API)."""
        return await self._run(calls.job_manifest(job_id))

    async def timeline(self, job_id: str) -> JobTimeline:
        """The job from manifest to close: consents, every step's record with its signatures checked, models
        with their on-chain hash, and the close on chain beside the API's."""
        return await self._run(calls.job_timeline(job_id))

    async def cancel(self, job_id: str) -> JobOut:
        return await self._run(calls.job_cancel(job_id))

    async def logs(self, job_id: str, *, party: str | None = None, after: int = 0) -> JobLogs:
        """Each party's log lines of the job (or ``party``'s alone), from line ``after`` on, as the party
        keeps them; `ApiError` 503 naming the party when its node does not answer."""
        return await self._run(calls.job_logs(job_id, party, after))

    async def events(
        self, job_id: str, *, once: bool = False, last_event_id: str | None = None
    ) -> AsyncGenerator[ServerSentEvent, None]:
        """The job's live-status stream, one connection: each event as sent (``status`` events carry a
        `JobStatusEvent` as JSON, the last one is ``end``). `follow` reconnects and resumes for you."""
        decoder = SseDecoder(last_event_id)
        async with self._client._stream(calls.job_events(job_id, once, last_event_id)) as response:
            try:
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
            except httpx.TransportError as exc:
                raise unreachable(self._client.base_url, exc) from None

    def follow(
        self, job_id: str, *, last_event_id: str | None = None, once: bool = False, max_failures: int = 5
    ) -> AsyncJobFollow:
        """Iterate over the job's status changes until it has finished and its records are settled on chain.

        Connects again when the server ends the stream early (its time limit) or the connection drops,
        resuming after the last event seen (``Last-Event-ID``: a state already seen is not sent again);
        `StreamLostError` after ``max_failures`` failed connections in a row."""
        return AsyncJobFollow(self, job_id, last_event_id=last_event_id, once=once, max_failures=max_failures)


class AsyncJobFollow:
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

    def __aiter__(self) -> AsyncIterator[JobStatusEvent]:
        return self._follow()

    async def _follow(self) -> AsyncIterator[JobStatusEvent]:
        state = self.state
        while not state.done:
            state.connected()
            try:
                stream = self._jobs.events(state.job_id, once=state.once, last_event_id=state.last_event_id)
                async with aclosing(stream):  # closed (its connection too) when the caller stops early
                    async for sse in stream:
                        event = state.on_event(sse)
                        if event is not None:
                            yield event
            except (ApiUnreachableError, ServerError) as exc:
                wait = state.on_failure(exc)
            else:
                wait = state.stream_ended()
            if wait and not state.done:
                await asyncio.sleep(wait)


class Steps(_Resource):
    """A job's steps: anchoring a record (services), reading records, their chain status and receipts."""

    async def list(self, job_id: str, *, limit: int = 100, cursor: str | None = None) -> Page[StepOut]:
        """One page of the job's steps in sequence order (``next_cursor`` is the next page's ``cursor``)."""
        return await self._run(calls.step_list(job_id, limit, cursor))

    def iterate(self, job_id: str, *, page_size: int = 100) -> AsyncIterator[StepOut]:
        """Every step of the job in sequence order, fetching pages as the iteration goes."""
        return self._by_cursor(lambda cursor: calls.step_list(job_id, page_size, cursor))

    async def anchor(self, job_id: str, record: Body) -> AcceptedStep:
        """Hand a step record (a mapping, or the ledger's ``StepRecord``) to the anchoring pipeline
        (a service key with the ANCHOR role). Idempotent: the same record again is ``replayed``."""
        return await self._run(calls.step_anchor(job_id, record))

    async def get(self, job_id: str, seq: int) -> StepDetail:
        """The step's record, its chain status and its receipt once anchored."""
        return await self._run(calls.step_get(job_id, seq))

    async def receipt(self, job_id: str, seq: int) -> Receipt:
        """The step's receipt (record, leaf, Merkle proof, batch root, transaction, block), to verify
        anywhere (`Verification.verify`; ``receipt.model_dump_json(exclude_unset=True)`` is the file for
        ``secureflow verify``); `ConflictError` with code ``not_anchored`` until it is anchored."""
        return await self._run(calls.step_receipt(job_id, seq))


class Bundles(_Resource):
    """Audit bundles: the manifest, the job, every record and a receipt per anchored record."""

    async def get(self, job_id: str) -> AuditBundle:
        return await self._run(calls.bundle_get(job_id))

    async def download(self, job_id: str) -> bytes:
        """The bundle file exactly as the API sends it (to write to disk for ``secureflow verify``)."""
        return await self._run(calls.bundle_download(job_id))


class Audit(_Resource):
    """Audit queries over step records, each with its chain status (``verify``: re-checked on chain)."""

    async def overview(self, hours: int = 6) -> Overview:
        """The consortium at a glance (members: the figures of their own jobs): registry accounts, jobs by
        status, records anchored per minute and their latency, backlog, last block, failed and stuck jobs."""
        return await self._run(calls.overview(hours))

    async def search(
        self, q: str = "", *, since: str | None = None, until: str | None = None, limit: int = 50
    ) -> SearchResults:
        """Find jobs by job id, member address, model, record or transaction hash, and time range (RFC 3339
        with a zone); each result names what matched and its job (members: their own jobs only)."""
        return await self._run(calls.search(q, since, until, limit))

    async def records(
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
        return await self._run(
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
    ) -> AsyncIterator[AuditItem]:
        """Every matching step record, fetching pages as the iteration goes."""
        filters: dict[str, Any] = {"job_id": job_id, "member": member, "algorithm": algorithm}
        filters |= {"model_hash": model_hash, "since": since, "until": until, "status": status}
        return self._by_cursor(
            lambda cursor: calls.audit_records(**filters, verify=verify, limit=page_size, cursor=cursor)
        )


class Verification(_Resource):
    """Verifying a receipt against the chain node of the API (do it against your own node too)."""

    async def verify(self, receipt: Body) -> VerdictOut:
        return await self._run(calls.verify(receipt))


class Models(_Resource):
    """Models recorded on chain (id, version, hash) and the job that produced them."""

    async def list(
        self,
        *,
        job_id: str | None = None,
        model_hash: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ModelOut]:
        return await self._run(calls.model_list(job_id, model_hash, limit, cursor))

    def iterate(
        self, *, job_id: str | None = None, model_hash: str | None = None, page_size: int = 100
    ) -> AsyncIterator[ModelOut]:
        return self._by_cursor(lambda cursor: calls.model_list(job_id, model_hash, page_size, cursor))


class Members(_Resource):
    """Members of the API and their roles (admin), and ``me``: who this key belongs to (any role)."""

    async def me(self) -> Me:
        return await self._run(calls.me())

    async def list(self, *, limit: int = 100, cursor: str | None = None) -> Page[MemberOut]:
        return await self._run(calls.member_list(limit, cursor))

    def iterate(self, *, page_size: int = 100) -> AsyncIterator[MemberOut]:
        return self._by_cursor(lambda cursor: calls.member_list(page_size, cursor))

    async def create(self, name: str, address: str, role: Role) -> MemberOut:
        return await self._run(calls.member_create(name, address, role))

    async def get(self, member_id: int) -> MemberOut:
        return await self._run(calls.member_get(member_id))

    async def set_role(self, member_id: int, role: Role) -> MemberOut:
        return await self._run(calls.member_set_role(member_id, role))


class Keys(_Resource):
    """API keys of members (admin): listed without the secret, created (the key is shown once), revoked."""

    async def list(self, member_id: int) -> Page[KeyOut]:
        return await self._run(calls.key_list(member_id))

    async def create(self, member_id: int, label: str = "default") -> KeyCreated:
        return await self._run(calls.key_create(member_id, label))

    async def revoke(self, key_id: str) -> KeyOut:
        return await self._run(calls.key_revoke(key_id))


class Roles(_Resource):
    """Each role and the routes it may call (admin)."""

    async def list(self) -> Page[RoleOut]:
        return await self._run(calls.role_list())


class Settlements(_Resource):
    """Settlement of a job: state and history from the contract, proposals, approvals, and the member's
    own transactions (prepared here, signed by the member, relayed). The contract's state, history and
    transactions are the ledger's formats (`secureflow.api.client.formats`, generated from the OpenAPI)."""

    async def get(self, job_id: str, *, asset: str = ETH) -> SettlementOut:
        return await self._run(calls.settlement_get(job_id, asset))

    async def history(self, job_id: str) -> SettlementHistory:
        return await self._run(calls.settlement_history(job_id))

    async def propose(self, job_id: str, inputs: Body) -> ProposalCreated:
        """Contribution inputs (``method`` data_share, leave_one_out or shapley) -> weights, record."""
        return await self._run(calls.settlement_propose(job_id, inputs))

    async def proposal(self, job_id: str) -> ProposalState:
        return await self._run(calls.settlement_proposal(job_id))

    async def approve(self, job_id: str, approval: ApprovalIn | Mapping[str, Any]) -> ApprovalAccepted:
        return await self._run(calls.settlement_approve(job_id, approval))

    async def prepare(
        self, job_id: str, action: SettlementAction, *, asset: str = ETH, amount: int | None = None
    ) -> PreparedTransaction:
        """An unsigned legacy transaction for the key's address, simulated first."""
        return await self._run(calls.settlement_prepare(job_id, action, asset, amount))

    async def submit(self, job_id: str, raw_transaction: str | bytes) -> SubmittedTransaction:
        """Relay a signed settlement transaction; the answer has its receipt's settlement events."""
        return await self._run(calls.settlement_submit(job_id, raw_transaction))


class AsyncClient:
    """`Client` for asyncio, with the same resources and methods, awaited:
    ``async with AsyncClient(url, api_key=key) as api: await api.jobs.get(job_id)``;
    ``async for event in api.jobs.follow(job_id)``, ``async for step in api.steps.iterate(job_id)``.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        user_agent: str = USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
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
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> AsyncClient:
        """The API at ``SECUREFLOW_API_URL`` (default http://127.0.0.1:8000) with ``SECUREFLOW_API_KEY``."""
        env = os.environ if environ is None else environ
        return cls(env.get(API_URL_ENV) or DEFAULT_API_URL, env.get(API_KEY_ENV) or None, **options)

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _send(self, call: Call[Any], *, stream: bool) -> httpx.Response:
        """The answer to ``call`` (retried as the policy says); an error answer raises, read."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.send(call.request(self._http), stream=stream)
            except httpx.TransportError as exc:
                raise unreachable(self.base_url, exc) from None
            if response.is_success or response.status_code in call.answers:
                return response
            try:
                await response.aread()
            except httpx.TransportError as exc:
                raise unreachable(self.base_url, exc) from None
            finally:
                await response.aclose()
            error: ApiResponseError = error_from(response)
            wait = self.retry.next_wait(call, attempt, error)
            if wait is None:
                raise error
            await asyncio.sleep(wait)

    async def _run(self, call: Call[T]) -> T:
        return call.parse(await self._send(call, stream=False))

    @asynccontextmanager
    async def _stream(self, call: Call[Any]) -> AsyncIterator[httpx.Response]:
        response = await self._send(call, stream=True)
        try:
            yield response
        finally:
            await response.aclose()
