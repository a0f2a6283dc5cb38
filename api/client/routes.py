"""The route table: every operation of the audit API (method and OpenAPI path) and the client method that
calls it (``resource.method`` on `Client` and, awaited, on `AsyncClient`).

The test suite compares this table with the live app's OpenAPI both ways, and checks that every method
named here exists on both clients: a route added to the server without a client method fails the tests.
``idempotent`` marks the calls the client may send again after a 429 or 503: GET and PUT, and the POSTs
the server makes idempotent (the same body changes nothing the second time and answers the same).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    operation: str
    idempotent: bool


ROUTES: tuple[Route, ...] = (
    # operations (outside /v1; public but /metrics, which needs a key of role metrics or admin)
    Route("GET", "/healthz", "ops.health", True),
    Route("GET", "/readyz", "ops.ready", True),
    Route("GET", "/metrics", "ops.metrics", True),
    # jobs
    Route("POST", "/v1/jobs", "jobs.submit", False),  # a new job each time
    Route("GET", "/v1/jobs", "jobs.list", True),
    Route("GET", "/v1/jobs/{job_id}", "jobs.get", True),
    Route("GET", "/v1/jobs/{job_id}/manifest", "jobs.manifest", True),
    Route("GET", "/v1/jobs/{job_id}/timeline", "jobs.timeline", True),
    Route("POST", "/v1/jobs/{job_id}/cancel", "jobs.cancel", False),  # a second cancel is a 409
    Route("GET", "/v1/jobs/{job_id}/events", "jobs.events", True),
    Route("GET", "/v1/jobs/{job_id}/logs", "jobs.logs", True),
    # steps and receipts
    Route("GET", "/v1/jobs/{job_id}/steps", "steps.list", True),
    Route("POST", "/v1/jobs/{job_id}/steps", "steps.anchor", True),  # by job id and seq: replayed
    Route("GET", "/v1/jobs/{job_id}/steps/{seq}", "steps.get", True),
    Route("GET", "/v1/jobs/{job_id}/steps/{seq}/receipt", "steps.receipt", True),
    # audit bundles
    Route("GET", "/v1/jobs/{job_id}/bundle", "bundles.get", True),
    # audit queries, verification, models
    Route("GET", "/v1/audit/records", "audit.records", True),
    Route("GET", "/v1/overview", "audit.overview", True),
    Route("GET", "/v1/search", "audit.search", True),
    Route("POST", "/v1/verify", "verification.verify", True),  # reads the chain only
    Route("GET", "/v1/models", "models.list", True),
    # members, keys, roles
    Route("GET", "/v1/me", "members.me", True),
    Route("GET", "/v1/members", "members.list", True),
    Route("POST", "/v1/members", "members.create", False),  # a second one is a 409
    Route("GET", "/v1/members/{member_id}", "members.get", True),
    Route("PUT", "/v1/members/{member_id}/role", "members.set_role", True),
    Route("GET", "/v1/members/{member_id}/keys", "keys.list", True),
    Route("POST", "/v1/members/{member_id}/keys", "keys.create", False),  # a new key each time
    Route("POST", "/v1/keys/{key_id}/revoke", "keys.revoke", True),  # idempotent on the server
    Route("GET", "/v1/roles", "roles.list", True),
    # settlement
    Route("GET", "/v1/settlements/{job_id}", "settlements.get", True),
    Route("GET", "/v1/settlements/{job_id}/history", "settlements.history", True),
    Route("POST", "/v1/settlements/{job_id}/proposals", "settlements.propose", True),  # same inputs: replayed
    Route("GET", "/v1/settlements/{job_id}/proposal", "settlements.proposal", True),
    Route("POST", "/v1/settlements/{job_id}/approvals", "settlements.approve", True),  # replayed
    Route("POST", "/v1/settlements/{job_id}/transactions/prepare", "settlements.prepare", True),  # no write
    # one signed transaction has one hash and nonce: sent again, it is answered as replayed, never twice
    Route("POST", "/v1/settlements/{job_id}/transactions", "settlements.submit", True),
)

_BY_KEY = {(r.method, r.path): r for r in ROUTES}


def route(method: str, path: str) -> Route:
    """The table's route ``method path`` (KeyError: not in the table)."""
    return _BY_KEY[(method, path)]
