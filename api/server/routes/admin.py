"""Members, roles and API keys (admin only), and ``GET /v1/me`` (any role: who the key belongs to).

A member of role ``member`` must be an active member in the on-chain registry
(its jobs would be refused by the contract otherwise); a ``service`` must hold
the ANCHOR role. Keys are returned in plaintext once, at creation.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.routing import APIRoute

from secureflow.api.server.auth import allow, principal_of, route_access
from secureflow.api.server.context import Services, services
from secureflow.api.server.db import ROLES, Role
from secureflow.api.server.errors import RegistryConflictError
from secureflow.api.server.schemas import (
    ERROR_RESPONSES,
    ErrorResponse,
    KeyCreated,
    KeyIn,
    KeyOut,
    Me,
    MemberIn,
    MemberOut,
    Page,
    RoleIn,
    RoleOut,
    key_out,
    member_out,
)

router = APIRouter(prefix="/v1", tags=["administration"], responses=ERROR_RESPONSES)
ADMIN = allow("admin")
MemberId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _check_on_chain(svc: Services, address: str, role: Role) -> None:
    if role == "member" and not svc.is_active_member(address):
        raise RegistryConflictError(
            f"NotActiveMember({address}): the address is not an active member in the ConsortiumRegistry",
            hint="register it on chain first (RegistryClient.register_member), then create the API member",
        )
    if role == "service" and not svc.is_anchor_service(address):
        raise RegistryConflictError(
            f"NotAnchorService({address}): the address has no ANCHOR role in the ConsortiumRegistry",
            hint="grant it on chain first (RegistryClient.grant_anchor_service)",
        )


@router.get("/me", dependencies=[Depends(allow(*ROLES))], response_model=Me)
def me(request: Request) -> Me:
    """The member, role and address behind the API key used."""
    p = principal_of(request)
    return Me(member_id=p.member_id, name=p.name, role=p.role, address=p.address, key_id=p.key_id)


@router.get("/members", dependencies=[Depends(ADMIN)], response_model=Page[MemberOut])
def list_members(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,10}$")] = None,
) -> Page[MemberOut]:
    """Members of the API (name, on-chain address, role)."""
    rows = services(request).db.list_members(limit + 1, int(cursor) if cursor else 0)
    page = rows[:limit]
    return Page[MemberOut](
        items=[member_out(m) for m in page], next_cursor=str(page[-1].id) if len(rows) > limit else None
    )


@router.post(
    "/members",
    dependencies=[Depends(ADMIN)],
    status_code=201,
    response_model=MemberOut,
    responses={
        409: {
            "model": ErrorResponse,
            "description": "a member with this name or address exists, or the registry on chain refuses the "
            "role (not an active member, no ANCHOR role: code refused_by_contract_rules)",
        }
    },
)
def create_member(request: Request, body: MemberIn) -> MemberOut:
    """Add a member with a role, mapped to its on-chain address (checked against the registry)."""
    from eth_utils.address import to_checksum_address

    svc = services(request)
    address = str(to_checksum_address(body.address))
    _check_on_chain(svc, address, body.role)
    return member_out(svc.db.create_member(body.name, address, body.role))


@router.get("/members/{member_id}", dependencies=[Depends(ADMIN)], response_model=MemberOut)
def get_member(request: Request, member_id: MemberId) -> MemberOut:
    return member_out(services(request).db.get_member(member_id))


@router.put(
    "/members/{member_id}/role",
    dependencies=[Depends(ADMIN)],
    response_model=MemberOut,
    responses={
        409: {
            "model": ErrorResponse,
            "description": "the registry on chain refuses the role (not an active member, no ANCHOR role: "
            "code refused_by_contract_rules)",
        }
    },
)
def set_role(request: Request, member_id: MemberId, body: RoleIn) -> MemberOut:
    """Change a member's role (takes effect on its next request)."""
    svc = services(request)
    member = svc.db.get_member(member_id)
    _check_on_chain(svc, member.address, body.role)
    return member_out(svc.db.set_role(member_id, body.role))


@router.get("/members/{member_id}/keys", dependencies=[Depends(ADMIN)], response_model=Page[KeyOut])
def list_keys(request: Request, member_id: MemberId) -> Page[KeyOut]:
    """The member's keys (ids, labels, revocation), never the keys themselves."""
    svc = services(request)
    svc.db.get_member(member_id)
    return Page[KeyOut](items=[key_out(k) for k in svc.db.list_keys(member_id)])


@router.post(
    "/members/{member_id}/keys", dependencies=[Depends(ADMIN)], status_code=201, response_model=KeyCreated
)
def create_key(request: Request, member_id: MemberId, body: KeyIn | None = None) -> KeyCreated:
    """Create an API key for the member. The key is in this answer only: only its hash is stored."""
    info, plaintext = services(request).db.create_key(member_id, (body or KeyIn()).label)
    return KeyCreated(**key_out(info).model_dump(), key=plaintext)


@router.post("/keys/{key_id}/revoke", dependencies=[Depends(ADMIN)], response_model=KeyOut)
def revoke_key(request: Request, key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]) -> KeyOut:
    """Revoke a key (idempotent): this process refuses it at once; other API processes within the 2 s of
    their authentication cache (SECUREFLOW_API_WORKERS > 1)."""
    return key_out(services(request).db.revoke_key(key_id))


@router.get("/roles", dependencies=[Depends(ADMIN)], response_model=Page[RoleOut])
def list_roles(request: Request) -> Page[RoleOut]:
    """Each role and the routes it may call, as the routes declare them."""
    by_role: dict[str, list[str]] = {role: [] for role in ROLES}
    for route in request.app.routes:
        if not isinstance(route, APIRoute):
            continue
        access = route_access(route)
        if access is None or access.public:
            continue
        for role in access.roles:
            scope = " (own jobs)" if access.scope == "own_jobs" and role == "member" else ""
            by_role[role].extend(f"{m} {route.path}{scope}" for m in sorted(route.methods or ()))
    return Page[RoleOut](items=[RoleOut(role=r, routes=sorted(v)) for r, v in by_role.items()])
