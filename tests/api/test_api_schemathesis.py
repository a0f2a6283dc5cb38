"""The live OpenAPI is a contract clients can build on (schemathesis, every check).

``/openapi.json`` of the real app (session anvil, a real database) is loaded by
schemathesis' pytest integration; every operation is called with the
schemathesis phases ``examples``, ``coverage`` (boundary values, each
constraint violated in turn, undeclared methods) and ``fuzzing`` (a bounded
number of generated cases), valid (positive) and invalid (negative) data, as
the admin (who may call every route). Each response goes through every
schemathesis check, as ``--checks all`` on the command line: no 5xx; only
documented status codes, content types, headers and bodies; schema-compliant
requests accepted and schema-violating ones rejected; an undeclared method is
a 405 carrying an ``Allow`` header with the methods of that path; the
``Authorization`` header is not ignored. Each operation is a subtest named by
method and path, so a failure says which operation and which check.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks
from test_api_service import Env, env  # noqa: F401  (the live app fixture)

MAX_EXAMPLES = 25
"""Generated cases per operation and generation mode in the fuzzing phase (the coverage phase adds its own
bounded set: boundary values and one case per violated constraint)."""


@pytest.fixture
def live_schema(env: Env) -> Any:  # noqa: F811
    schema = schemathesis.openapi.from_url(env.url + "/openapi.json")
    schema.config.update(base_url=env.url)
    return schema


schema = schemathesis.pytest.from_fixture("live_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis (4.30) renames the test node per operation through ``Node._nodeid``, which pytest 9.2
    no longer has (it keeps ``_id``): give the node the attribute it reads and writes."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def test_every_schemathesis_check_runs() -> None:
    """The contract test below runs the default set, which is every check schemathesis has (none disabled)."""
    load_all_checks()
    config = schemathesis.openapi.from_dict({"openapi": "3.1.0", "info": {}, "paths": {}}).config.checks
    names = {check.__name__ for check in CHECKS.get_all() if callable(check)}
    assert {"not_a_server_error", "status_code_conformance", "positive_data_acceptance"} <= names
    assert {"negative_data_rejection", "unsupported_method", "ignored_auth"} <= names
    assert all(config.get_by_name(name=name).enabled for name in names)


# The contract is exercised once, on SQLite (the PostgreSQL store runs the role matrix in test_api_service):
# parametrised to the one backend, so no PostgreSQL database is set up for a test that would not use it.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # durations are not asserted in this suite
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_openapi_is_a_contract(case: schemathesis.Case, env: Env, backend: str) -> None:  # noqa: F811
    if case.path.endswith("/events") and "once" not in (case.query or {}):
        case.query = {**(case.query or {}), "once": "true"}  # the live status ends after the current state
    case.call_and_validate(headers={"Authorization": f"Bearer {env.keys['admin']}"}, timeout=30)
