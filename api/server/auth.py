"""Authentication (per-member API keys) and authorisation (roles and data scope), deny by default.

Every route declares who may call it with exactly one of :func:`allow` (the
roles, and the data scope: ``own_jobs`` means a ``member`` sees only jobs it is
party to) or :func:`public` (health, readiness). `create_app` refuses
to build an app in which any route declares neither
(:func:`assert_every_route_guarded`), and the test suite enumerates
``app.routes`` against the same declarations.

Roles: ``admin`` (members, roles and keys; reads everything), ``member``
(submits and cancels its jobs, reads the jobs it is party to), ``service``
(anchors step records: POST /v1/jobs/{id}/steps), ``auditor`` (reads and
verifies everything, writes nothing), ``metrics`` (scrapes ``/metrics``, nothing else: the key to give
Prometheus). A ``member`` key works only while its address is an active member
in the on-chain registry (a suspended member is refused within ``registry_cache_seconds``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from secureflow.api.server.context import Services
from secureflow.api.server.db import ROLES, ApiDb, Principal, Role
from secureflow.api.server.errors import ForbiddenError, NotFoundError, UnauthorizedError
from secureflow.ledger.store.schemas import Job

Scope = Literal["all", "own_jobs", "none"]


@dataclass(frozen=True)
class Access:
    """A route's declared access: who may call it and which data it may see."""

    roles: tuple[Role, ...]
    scope: Scope
    public: bool = False


class Guard:
    """The dependency that authenticates the caller and checks the route's roles."""

    def __init__(self, access: Access) -> None:
        self.access = access

    async def __call__(self, request: Request) -> Principal | None:
        # async: a key this process saw in the last seconds is checked on the event loop (no thread hop, no
        # query); only a cache miss reads the database, in a worker thread.
        if self.access.public:
            return None
        db: ApiDb = request.app.state.api_db
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthorizedError("this route needs an API key")
        principal = db.cached_principal(token)
        if principal is None:
            principal = await run_in_threadpool(db.authenticate, token)
        if principal is None:
            raise UnauthorizedError("the API key is unknown or revoked")
        if principal.role == "member":
            await _check_still_member(request, principal)
        request.state.principal = principal
        if principal.role not in self.access.roles:
            raise ForbiddenError(
                f"role {principal.role!r} may not call this route (allowed: {', '.join(self.access.roles)})",
                hint="use a key of a member with one of the allowed roles, or ask an admin",
            )
        return principal


async def _check_still_member(request: Request, principal: Principal) -> None:
    """Refuse a ``member`` key whose address is no longer an active member on chain (suspended by the
    registry's admin, or its MEMBER_ROLE revoked): its keys stop working within ``registry_cache_seconds``
    (the registry answer's cache), whatever the key cache holds."""
    svc: Services = request.app.state.services
    active = svc.cached_active_member(principal.address)
    if active is None:
        active = await run_in_threadpool(svc.is_active_member, principal.address)
    if not active:
        raise ForbiddenError(
            f"member {principal.name} ({principal.address}) is suspended or no longer an active member "
            "in the ConsortiumRegistry: its API keys are refused",
            hint="the consortium admin reinstates it on chain (ConsortiumRegistry.reinstateMember)",
        )


def still_allowed(request: Request, principal: Principal) -> bool:
    """Whether the request's key still stands for ``principal`` (not revoked, same role) and, for a member,
    its address is still an active member on chain: for responses that outlive their request (live-status
    streams). Blocking (database, chain; both cached): call it in a worker thread."""
    db: ApiDb = request.app.state.api_db
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    current = db.authenticate(token)
    if current is None or current.role != principal.role:
        return False
    if current.role != "member":
        return True
    svc: Services = request.app.state.services
    return svc.is_active_member(current.address)


def allow(*roles: Role, scope: Scope = "all") -> Guard:
    """Declare the roles a route admits; with ``scope="own_jobs"`` members see only their jobs."""
    unknown = set(roles) - set(ROLES)
    assert roles and not unknown, f"declare at least one known role, not {roles}"  # noqa: S101 - invariant for the type checker, not input validation
    return Guard(Access(tuple(roles), scope))


def public() -> Guard:
    """Declare a route that needs no key (health, readiness)."""
    return Guard(Access((), "none", public=True))


def route_access(route: APIRoute) -> Access | None:
    """The access a route declares (through its dependencies), or None."""
    found = [d.call.access for d in route.dependant.dependencies if isinstance(d.call, Guard)]
    for dep in route.dependant.dependencies:
        found.extend(sub.call.access for sub in dep.dependencies if isinstance(sub.call, Guard))
    return found[0] if len(found) == 1 else None


def assert_every_route_guarded(app: FastAPI) -> None:
    """Raise if any API route declares no access (deny by default) or more than one."""
    missing = [
        f"{sorted(r.methods or ())} {r.path}"
        for r in app.routes
        if isinstance(r, APIRoute) and route_access(r) is None
    ]
    if missing:
        raise RuntimeError(f"routes without exactly one allow()/public() declaration: {missing}")


def principal_of(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:  # pragma: no cover - guarded routes always set it
        raise UnauthorizedError("this route needs an API key")
    assert isinstance(principal, Principal)  # noqa: S101 - invariant for the type checker, not input validation
    return principal


def can_see(principal: Principal, creator: str, parties: Sequence[str]) -> bool:
    """Members see the jobs they are party to or created; every other allowed role sees all."""
    if principal.role != "member":
        return True
    address = principal.address.lower()
    return creator.lower() == address or any(p.lower() == address for p in parties)


def can_see_job(principal: Principal, job: Job) -> bool:
    """`can_see` for a job."""
    return can_see(principal, job.creator, job.parties)


def job_not_visible(job_id: str) -> NotFoundError:
    """The 404 for a job that does not exist or that the caller may not see (the two look the same)."""
    return NotFoundError(
        f"no job {job_id} visible to you",
        hint="check the job id; members see only jobs they are party to (GET /v1/jobs lists them)",
    )


def visible_job(principal: Principal, job: Job | None, job_id: str) -> Job:
    """The job if the caller may see it; otherwise 404 (a member cannot probe other members' jobs)."""
    if job is None or not can_see_job(principal, job):
        raise job_not_visible(job_id)
    return job


def scope_address(principal: Principal) -> str | None:
    """The address whose jobs a list is restricted to (members), or None (all)."""
    return principal.address if principal.role == "member" else None


CurrentPrincipal = Annotated[Principal, Depends(principal_of)]
