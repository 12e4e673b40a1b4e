"""Who may call what: every route of the OpenAPI schema x every role, against the table below.

The gateway serves one billed ledger (tests/fixtures/billing.py: customer 1 owns a meter with
anchored readings and a bill). Each role asks for customer 1's data:

- a route a role may call never answers it 401 or 403; a private read answers it 200;
- a role that may not call it gets 401, 403 or 404 with an error and nothing else; another
  signed-in customer asking for customer 1's off-chain data gets 404, as for data that does
  not exist (the registrar, not a customer, gets the same);
- POST /v1/readings is the meter's: no token opens it or closes it, the reading's signature
  decides (an unsigned one is rejected in its result, whoever sends it).

Write routes are called with an empty body: an allowed role gets as far as validation (422),
so nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_utils.crypto import keccak

from tests.fixtures.billing import BilledLedger, billed_ledger, serving
from tests.fixtures.chain import dev_account
from tests.fixtures.sign_in import bearer, sign_in

OPERATOR_TOKEN = "operator-token-for-the-matrix"
REGISTRAR_TOKEN = "registrar-token-for-the-matrix"

ROLES = ("anonymous", "meter", "customer", "other_customer", "auditor", "registrar", "operator")
PUBLIC = {"anonymous", "customer", "other_customer", "auditor", "registrar", "operator"}
PRIVATE = {"customer", "auditor", "operator"}
"""Customer 1's off-chain data: customer 1, the auditors, the operator (other_customer: 404)."""

TABLE: dict[tuple[str, str], set[str]] = {
    ("GET", "/healthz"): PUBLIC,
    ("POST", "/v1/auth/nonce"): PUBLIC,
    ("POST", "/v1/auth/sign-in"): PUBLIC,
    ("GET", "/v1/auth/session"): PUBLIC,
    ("GET", "/v1/meters/{meter_id}"): PUBLIC,
    ("GET", "/v1/meters/{meter_id}/key"): PUBLIC,
    ("POST", "/v1/meters"): {"registrar"},
    ("POST", "/v1/meters/{meter_id}/rotate"): {"registrar"},
    ("POST", "/v1/meters/{meter_id}/revoke"): {"registrar"},
    ("GET", "/v1/meters/{meter_id}/suspect-readings"): {"registrar"},
    ("POST", "/v1/readings"): {"meter"},
    ("GET", "/v1/meters/{meter_id}/readings/{seq}"): PRIVATE,
    ("GET", "/v1/bundle"): {"auditor", "operator"},
    ("GET", "/v1/market"): PUBLIC,
    ("GET", "/v1/market/nonces/{address}"): PUBLIC,
    ("GET", "/v1/offers"): PUBLIC,
    ("GET", "/v1/offers/{offer_id}"): PUBLIC,
    ("POST", "/v1/offers"): PUBLIC,
    ("POST", "/v1/offers/{offer_id}/take"): PUBLIC,
    ("GET", "/v1/trades/{trade_id}"): PUBLIC,
    ("POST", "/v1/trades/{trade_id}/settle"): PUBLIC,
    ("POST", "/v1/trades/{trade_id}/refund"): PUBLIC,
    ("GET", "/v1/customers/{address}/trades"): PUBLIC,
    ("GET", "/v1/tariffs"): PUBLIC,
    ("GET", "/v1/tariffs/{tariff_hash}"): PUBLIC,
    ("POST", "/v1/tariffs"): {"operator"},
    ("GET", "/v1/customers/{address}/tariff-assignments"): PRIVATE,
    ("POST", "/v1/customers/{address}/tariff-assignments"): {"operator"},
    ("POST", "/v1/bills/runs"): {"operator"},
    ("GET", "/v1/customers/{address}/bills"): PRIVATE,
    ("GET", "/v1/bills/{bill_hash}"): PRIVATE,
    ("GET", "/v1/bills/{bill_hash}/evidence"): PRIVATE,
    # Consumption and exports (docs/usage.md): a meter's readings in other shapes.
    ("GET", "/v1/meters/{meter_id}/consumption"): PRIVATE,
    ("GET", "/v1/meters/{meter_id}/export.json"): PRIVATE,
    ("GET", "/v1/meters/{meter_id}/export.csv"): PRIVATE,
    ("GET", "/v1/meters/{meter_id}/export.xml"): PRIVATE,
    # Complaints (docs/complaints.md): a customer's own, signed steps; the operator's queue and
    # steps; every complaint and the statistics for auditors. Complaint 1 is customer 1's.
    ("GET", "/v1/complaints/signing"): {"customer", "other_customer", "auditor"},
    ("GET", "/v1/complaints"): {"customer", "other_customer", "auditor", "operator"},
    ("POST", "/v1/complaints"): {"customer", "other_customer"},
    ("GET", "/v1/complaints/queue"): {"operator"},
    ("GET", "/v1/complaints/statistics"): {"auditor", "operator"},
    ("GET", "/v1/complaints/{complaint_id}"): PRIVATE,
    ("POST", "/v1/complaints/{complaint_id}/rate"): {"customer", "other_customer"},
    ("POST", "/v1/complaints/{complaint_id}/reopen"): {"customer", "other_customer"},
    ("POST", "/v1/complaints/{complaint_id}/steps"): {"operator"},
    # Operating the gateway: the operator, or a scraper's LEDGER_METRICS_TOKEN (not a role
    # any request here proves; tests/integration/test_operations_http.py uses it).
    ("GET", "/metrics"): {"operator", "metrics"},
}
"""(method, path) -> the roles that may call it. "meter" sends no token: it may call what
"anonymous" may, and POST /v1/readings, where the reading's signature decides."""


class World:
    def __init__(self, billed: BilledLedger, base_url: str, bill_hash: str) -> None:
        self.billed = billed
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self.bill_hash = bill_hash
        registry = billed.node.deployment.meter_registry
        billed.node.chain.transact(
            registry.functions.grantRole(keccak(text="AUDITOR_ROLE"), dev_account(3).address)
        )
        self.headers: dict[str, dict[str, str]] = {
            "anonymous": {},
            "meter": {},
            "customer": bearer(sign_in(self.http, dev_account(1))),
            "other_customer": bearer(sign_in(self.http, dev_account(2))),
            "auditor": bearer(sign_in(self.http, dev_account(3))),
            "registrar": {"Authorization": f"Bearer {REGISTRAR_TOKEN}"},
            "operator": {"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        }
        # Complaint 1: customer 1's, opened by calling the registry directly.
        complaints = billed.node.deployment.complaint_registry
        billed.node.chain.transact(
            complaints.functions.open(4, bytes(32), keccak(text="complaint 1")),
            sender=dev_account(1),
        )
        billed.node.indexer.index_now()

    def url(self, path: str) -> str:
        meter = self.billed.meters[0]
        values = {
            "meter_id": meter.meter_id,
            "seq": "0",
            "address": meter.owner,
            "bill_hash": self.bill_hash,
            "tariff_hash": "0x" + self.billed.tariff_hash.hex(),
            "offer_id": "1",
            "trade_id": "1",
            "complaint_id": "1",
        }
        filled = path.format(**values)
        if path.endswith("/key"):
            filled += f"?at={self.billed.period_start}"
        if path.endswith("/complaints/statistics"):
            filled += "?month=2026-11"
        if path.endswith("/consumption") or "/export." in path:
            filled += f"?period_from={self.billed.period_start}&period_to={self.billed.period_end}"
        return filled


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("authorization") / "data"
    with billed_ledger(
        data_dir,
        hours=1,
        meters_per_customer=(1, 1),
        operator_token=OPERATOR_TOKEN,
        registrar_token=REGISTRAR_TOKEN,
    ) as billed:
        with serving(billed.node) as base_url:
            run = httpx.post(
                f"{base_url}/v1/bills/runs",
                json={"period_start": billed.period_start, "period_end": billed.period_end},
                headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
                timeout=120,
            )
            assert run.status_code == 201, run.text
            customer = billed.meters[0].owner
            bills = httpx.get(
                f"{base_url}/v1/customers/{customer}/bills",
                headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
                timeout=30,
            ).json()["bills"]
            world = World(billed, base_url, bills[0]["bill_hash"])
            yield world
            world.http.close()


def _operations(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    schema = world.http.get("/openapi.json").json()
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


def test_every_route_declares_its_roles_as_the_table_says(world: World) -> None:
    declared = {
        (method, path): set(operation.get("x-roles", ()))
        for method, path, operation in _operations(world)
    }

    undeclared = sorted(key for key, roles in declared.items() if not roles)
    assert undeclared == []
    for key, roles in declared.items():
        assert key in TABLE, f"{key} is not in the table"
        assert roles == TABLE[key] - {"other_customer"}, key


def _call(world: World, method: str, path: str, role: str) -> httpx.Response:
    url = world.url(path)
    if method == "GET":
        return world.http.get(url, headers=world.headers[role])
    return world.http.request(method, url, json={}, headers=world.headers[role])


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_what_the_table_gives_it_on_every_route(world: World, role: str) -> None:
    wrong: list[str] = []
    for method, path, _ in _operations(world):
        if (method, path) == ("POST", "/v1/auth/sign-in") or (method, path) not in TABLE:
            continue  # sign-in has its own tests; a missing row fails the test above
        allowed = TABLE[(method, path)]
        response = _call(world, method, path, role)
        status = response.status_code
        if "meter" in allowed:  # the body's signature decides, not a token
            if status in (401, 403):
                wrong.append(f"{role} {method} {path}: {status}, the signature should decide")
        elif role in allowed or (role == "meter" and "anonymous" in allowed):
            if status in (401, 403) or (allowed == PRIVATE and status != 200):
                wrong.append(f"{role} {method} {path}: {status} {response.text[:200]}")
        elif role == "other_customer" and allowed == PRIVATE:
            if status != 404 or set(response.json()) != {"error"}:
                wrong.append(f"{role} {method} {path}: {status}, expected 404 and no data")
        elif status not in (401, 403, 404) or set(response.json()) != {"error"}:
            wrong.append(f"{role} {method} {path}: {status}, expected a refusal")
    assert wrong == []


def test_another_customer_gets_the_same_answer_as_for_a_bill_that_does_not_exist(
    world: World,
) -> None:
    headers = world.headers["other_customer"]
    theirs = world.http.get(f"/v1/bills/{world.bill_hash}", headers=headers)
    missing = world.http.get(f"/v1/bills/0x{'ab' * 32}", headers=headers)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "bill_not_found"


def test_another_customer_gets_the_same_answer_as_for_a_reading_that_is_not_stored(
    world: World,
) -> None:
    meter = world.billed.meters[0].meter_id
    headers = world.headers["other_customer"]
    theirs = world.http.get(f"/v1/meters/{meter}/readings/0", headers=headers)
    missing = world.http.get(f"/v1/meters/{meter}/readings/999999", headers=headers)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == {
        "error": {
            **missing.json()["error"],
            "message": missing.json()["error"]["message"].replace("999999", "0"),
        }
    }
