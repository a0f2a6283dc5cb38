"""Property-based tests of the live OpenAPI contract (schemathesis): no input makes the API fail with 5xx.

Every operation of ``/openapi.json`` is called with bounded generated examples
(valid and invalid), as the admin (who may call every route) and with no key,
against the real app, the session anvil and a real database.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from test_api_service import Env, env  # noqa: F401  (the live app fixture)

EXAMPLES_PER_OPERATION = 8


# The contract is exercised once, on SQLite (the PostgreSQL store runs the role matrix in test_api_service):
# parametrised to the one backend, so no PostgreSQL database is set up for a test that would then skip.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_no_input_makes_the_api_fail(env: Env, backend: str) -> None:  # noqa: F811
    schema = schemathesis.openapi.from_url(env.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, "the OpenAPI document lost its routes"
    admin = {"Authorization": f"Bearer {env.keys['admin']}"}
    statuses: list[int] = []

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), anonymous=st.booleans())
        def call(case: schemathesis.Case, anonymous: bool) -> None:
            if case.path.endswith("/events"):
                case.query = {**(case.query or {}), "once": "true"}
            headers = {} if anonymous else admin
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=30)
            statuses.append(response.status_code)

        call()
    assert len(statuses) >= 2 * len(operations)
    assert any(s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
