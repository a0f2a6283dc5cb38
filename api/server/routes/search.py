"""The console's search: ``GET /v1/search?q=&since=&until=``, one box for ids, addresses, hashes and times.

``q`` is classified, never guessed at loosely:

- a 32-byte hash (``0x`` + 64 hex digits, or the 64 digits alone) is looked up as a job id, a step
  record's hash, a model's hash and a transaction's hash (an anchoring batch's, or any ledger event of a
  job: consent, open, model, close), each by an index (ledger migration 0008);
- an address (``0x`` + 40 hex digits) finds the jobs that member is party to or created;
- nothing: the jobs created in the range ``since``..``until`` (without either, the newest jobs).
  ``since``/``until`` narrow the other two as well (by the job's creation time); an empty range finds
  nothing, as the audit queries' ranges do.

Anything else is a 422 in the one error shape (``q``'s pattern, declared in the OpenAPI).

Who sees what (as every job read): admins and auditors every job; a member only the jobs it is party to
or created (narrowed in SQL, so a member's search for another member's job id, record, model or
transaction finds nothing, exactly as for a hash nobody knows); a service only the jobs bound to it at
submission. Results are ids and hashes only, each with its job, which the console links to the job's
timeline, the models page and the job's settlement.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Depends, Query, Request

from secureflow.api.client.models import SearchResult, SearchResults
from secureflow.api.server.auth import allow, principal_of, scope_address
from secureflow.api.server.context import services
from secureflow.api.server.errors import InvalidRequestError
from secureflow.api.server.routes.audit import QueryTime
from secureflow.api.server.schemas import ERROR_RESPONSES
from secureflow.ledger.store.search import SearchHit, SearchScope

router = APIRouter(prefix="/v1", tags=["console"], responses=ERROR_RESPONSES)

SEARCH = allow("admin", "auditor", "member", "service", scope="own_jobs")
HASH = re.compile(r"^(0x)?([0-9a-fA-F]{64})$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
QUERY_PATTERN = r"^((0x)?[0-9a-fA-F]{64}|0x[0-9a-fA-F]{40})?$"
"""What ``q`` may be (declared in the OpenAPI): a 32-byte hash, an address, or nothing."""
HINT = (
    "search for a job id, a model, record or transaction hash (0x + 64 hex digits), a member's address "
    "(0x + 40 hex digits), or leave q empty for the jobs created between since and until (RFC 3339)"
)


def _hit(hit: SearchHit) -> SearchResult:
    return SearchResult(
        kind=hit.kind,  # type: ignore[arg-type]  # the ledger's kinds are SearchKind's
        job_id=hit.job_id,
        job_status=hit.job_status,
        created_at=hit.created_at,
        seq=hit.seq,
        record_hash=hit.record_hash,
        model_id=hit.model_id,
        version=hit.version,
        model_hash=hit.model_hash,
        tx_hash=hit.tx_hash,
        event=hit.event,
    )


def _utc(value: datetime | None) -> datetime | None:
    """A bound in UTC, as stored; one UTC cannot hold (year 1 at +01:00, year 9999 at -01:00) is clamped to
    the first or last instant UTC can (the same jobs are before or after it)."""
    if value is None:
        return None
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=timezone.utc)


@router.get("/search", dependencies=[Depends(SEARCH)], response_model=SearchResults)
def search(
    request: Request,
    q: Annotated[
        str,
        Query(
            max_length=200,
            pattern=QUERY_PATTERN,
            description="a job id, a model/record/transaction hash (0x + 64 hex digits, the 0x may be "
            "left out) or a member's address (0x + 40 hex digits); empty: the jobs of the time range "
            "(without one, the newest jobs)",
        ),
    ] = "",
    since: Annotated[
        QueryTime | None, Query(description="jobs created at or after (RFC 3339 with its zone)")
    ] = None,
    until: Annotated[
        QueryTime | None, Query(description="jobs created before (RFC 3339 with its zone)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="at most this many results")] = 50,
) -> SearchResults:
    """Find jobs by job id, member address, model hash, record hash, transaction hash and time range: each
    result names what matched and its job (newest job first); members see only their own jobs, services
    only the jobs bound to them. A ``q`` that is none of these is a 422 (its pattern)."""
    text = q
    hash_value = member = None
    matched = HASH.match(text)
    if matched:
        hash_value = "0x" + matched.group(2).lower()
    elif ADDRESS.match(text):
        member = str(to_checksum_address(text))
    elif text:  # the pattern admits nothing else: kept for callers of this function
        raise InvalidRequestError("q is not a job id, a hash or a member's address", hint=HINT)

    svc, principal = services(request), principal_of(request)
    scope = SearchScope(visible_to=scope_address(principal), since=_utc(since), until=_utc(until))
    bound_to = str(to_checksum_address(principal.address)) if principal.role == "service" else None
    hits = svc.db.search(  # a service: only the jobs bound to it at submission (in SQL, as a member's)
        hash_value=hash_value, member=member, scope=scope, limit=limit + 1, service=bound_to
    )
    return SearchResults(
        query=text,
        classified_as="hash" if hash_value else "address" if member else "time_range",
        since=since,
        until=until,
        items=[_hit(h) for h in hits[:limit]],
        truncated=len(hits) > limit,
    )
