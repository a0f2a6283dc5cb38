"""``secureflow audit search``: the console's search from a terminal (``GET /v1/search``, typed client).

One query: a job id, a model, record or transaction hash (0x + 64 hex digits), or a member's address; and/or
a time range (``--since``/``--until``, RFC 3339 with a zone). Each result names what matched and its job;
a member's key finds only its own jobs. ``--json`` prints the API's answer.
"""

from __future__ import annotations

from typing import Annotated

import typer

from secureflow.api.cli.errors import console, friendly_errors
from secureflow.api.cli.job import ApiKey, ApiUrl, JsonOutput, _client, _print_json, _print_rows
from secureflow.api.client import DEFAULT_API_URL
from secureflow.api.client.models import SearchResult


def _what(hit: SearchResult) -> str:
    if hit.kind == "record":
        return f"record of step {hit.seq} {hit.record_hash}"
    if hit.kind == "model":
        return f"model {hit.model_id} v{hit.version} {hit.model_hash}"
    if hit.kind == "transaction":
        step = f" of step {hit.seq}" if hit.seq is not None else ""
        return f"{hit.event}{step} in {hit.tx_hash}"
    return "a party of the job" if hit.kind == "member" else "the job id"


@friendly_errors
def audit_search(
    query: Annotated[
        str,
        typer.Argument(
            help="a job id, a model/record/transaction hash or a member's address", show_default=False
        ),
    ] = "",
    since: Annotated[str | None, typer.Option(help="jobs created at or after (RFC 3339 with a zone)")] = None,
    until: Annotated[str | None, typer.Option(help="jobs created before (RFC 3339 with a zone)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="at most this many results")] = 50,
    json_output: JsonOutput = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Find jobs by job id, member address, model, record or transaction hash, and time range."""
    with _client(api_url, api_key) as client:
        found = client.audit.search(query, since=since, until=until, limit=limit)
    if json_output:
        _print_json(found.model_dump(mode="json"))
        return
    if not found.items:
        console.print("nothing found" + (f" for {found.query}" if found.query else ""))
        return
    rows = [
        [hit.job_id, hit.job_status, hit.created_at.strftime("%Y-%m-%d %H:%M:%S"), _what(hit)]
        for hit in found.items
    ]
    _print_rows(["job id", "status", "created", "found"], rows, {1})
    if found.truncated:
        console.print("more matched: narrow the query or the time range (or raise --limit)")
