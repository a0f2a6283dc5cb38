"""The console's search: ``GET /v1/search?q=&since=&until=``, one box for ids, addresses, hashes and times.

``q`` is classified, never guessed at loosely:

- a 32-byte hash (``0x`` + 64 hex digits, or the 64 digits alone) is looked up as a job id, a step
  record's hash, a model's hash and a transaction's hash (an anchoring batch's, or any ledger event of a
  job: consent, open, model, close), each by an index (ledger migration 0008);
- an address (``0x`` + 40 hex digits) finds the jobs that member is party to or created;
- nothing, with ``since`` and/or ``until``: the jobs created in that range. ``since``/``until`` narrow
  the other two as well (by the job's creation time).

Anything else is a 422 in the one error shape, saying what ``q`` may be.

Who sees what (as every job read): admins and auditors every job; a member only the jobs it is party to
or created (narrowed in SQL, so a member's search for another member's job id, record, model or
transaction finds nothing, exactly as for a hash nobody knows); a service only the jobs bound to it at
submission. Results are ids and hashes only, each with its job, which the console links to the job's
timeline, the models page and the job's settlement.
"""

from __future__ import annotations

import re
from datetime import timezone
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
HINT = (
    "search for a job id, a model, record or transaction hash (0x + 64 hex digits), a member's address "
    "(0x + 40 hex digits), or leave q empty and give since and/or until (RFC 3339 with a zone)"
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


@router.get("/search", dependencies=[Depends(SEARCH)], response_model=SearchResults)
def search(
    request: Request,
    q: Annotated[
        str,
        Query(max_length=200, description="a job id, a model/record/transaction hash, or a member's address"),
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
    result names what matched and its job (newest job first); members see only their own jobs."""
    text = q.strip()
    try:  # stored times are UTC: a bound UTC cannot hold (year 1 at +01:00) is the caller's error
        since, until = (None if t is None else t.astimezone(timezone.utc) for t in (since, until))
    except OverflowError:
        raise InvalidRequestError("since or until is outside the years 1 to 9999 in UTC", hint=HINT) from None
    if since is not None and until is not None and since >= until:
        raise InvalidRequestError("since must be before until", hint=HINT)
    hash_value = member = None
    matched = HASH.match(text)
    if matched:
        hash_value = "0x" + matched.group(2).lower()
    elif ADDRESS.match(text):
        member = str(to_checksum_address(text))
    elif text:
        raise InvalidRequestError("q is not a job id, a hash or a member's address", hint=HINT)
    elif since is None and until is None:
        raise InvalidRequestError("give something to search for", hint=HINT)

    svc, principal = services(request), principal_of(request)
    scope = SearchScope(visible_to=scope_address(principal), since=since, until=until)
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
