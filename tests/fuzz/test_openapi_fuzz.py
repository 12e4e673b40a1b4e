"""Schemathesis over every operation of the gateway's OpenAPI schema: no request may get a 5xx.

The operations are read from the live schema of `create_app(node)` at run time (see conftest.py),
so a route added later is fuzzed without touching this file. Runs in `.venv-fuzz`, not `.venv`:
schemathesis needs a newer hypothesis than eth-brownie allows (see conftest.py and the Makefile).

    .venv-fuzz/bin/pytest -c tests/fuzz/pytest.ini tests/fuzz
"""

from __future__ import annotations

import schemathesis
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.fuzz.conftest import REGISTRAR_TOKEN

# Resolved from the `api_schema` fixture when the test runs; one subtest per operation.
schema = schemathesis.pytest.from_fixture("api_schema")

# Operations that exist today; the fuzz run must at least cover these.
KNOWN_OPERATIONS = {
    ("GET", "/healthz"),
    ("GET", "/v1/meters/{meter_id}"),
    ("GET", "/v1/meters/{meter_id}/key"),
    ("POST", "/v1/meters"),
    ("POST", "/v1/meters/{meter_id}/rotate"),
    ("POST", "/v1/meters/{meter_id}/revoke"),
    ("POST", "/v1/readings"),
    ("GET", "/v1/meters/{meter_id}/readings/{seq}"),
    ("GET", "/v1/market"),
    ("GET", "/v1/market/nonces/{address}"),
    ("GET", "/v1/offers"),
    ("GET", "/v1/offers/{offer_id}"),
    ("POST", "/v1/offers"),
    ("POST", "/v1/offers/{offer_id}/take"),
    ("GET", "/v1/trades/{trade_id}"),
    ("POST", "/v1/trades/{trade_id}/settle"),
    ("POST", "/v1/trades/{trade_id}/refund"),
    ("GET", "/v1/customers/{address}/trades"),
    ("POST", "/v1/auth/nonce"),
    ("POST", "/v1/auth/sign-in"),
    ("GET", "/v1/auth/session"),
    ("GET", "/v1/complaints/signing"),
    ("GET", "/v1/complaints"),
    ("POST", "/v1/complaints"),
    ("GET", "/v1/complaints/queue"),
    ("GET", "/v1/complaints/statistics"),
    ("GET", "/v1/complaints/{complaint_id}"),
    ("POST", "/v1/complaints/{complaint_id}/rate"),
    ("POST", "/v1/complaints/{complaint_id}/reopen"),
    ("POST", "/v1/complaints/{complaint_id}/steps"),
    ("GET", "/metrics"),
}


@schema.parametrize()
def test_no_server_errors(case: Case) -> None:
    """Every generated request, valid or not, gets a non-5xx answer."""
    case.call_and_validate(
        headers={"Authorization": f"Bearer {REGISTRAR_TOKEN}"}, checks=[not_a_server_error]
    )


@schema.parametrize()
def test_no_server_errors_signed_in_as_a_customer(case: Case, customer_token: str) -> None:
    """The same signed in as the known meter's owner: the private routes (readings, bills,
    consumption, exports) run their handlers for it instead of answering 401."""
    case.call_and_validate(
        headers={"Authorization": f"Bearer {customer_token}"}, checks=[not_a_server_error]
    )


def test_schema_lists_known_operations(api_schema: OpenApiSchema) -> None:
    """Guards the fuzz run against an empty or broken schema, which would pass vacuously."""
    results = list(api_schema.get_all_operations())
    errors = [result.err() for result in results if not isinstance(result, Ok)]
    assert not errors, f"operations the fuzzer cannot use: {errors}"
    listed = {(result.ok().method.upper(), result.ok().path) for result in results}
    missing = KNOWN_OPERATIONS - listed
    assert not missing, f"schema lacks {sorted(missing)}; it lists {sorted(listed)}"
