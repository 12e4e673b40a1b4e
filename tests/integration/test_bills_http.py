"""Tariffs, issuing runs and bills over real HTTP, on a real chain (Anvil with a past clock).

One billed ledger serves the module (two customers, three meters, six hours of signed, anchored
15-minute readings; see tests/fixtures/billing.py); the correction test builds its own.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.anchoring.merkle import keccak256
from ledger.billing.document import bill_hash, bill_leaf
from ledger.billing.registry import BillRegistryClient
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.billing import (
    EXAMPLE_TARIFF,
    BilledLedger,
    anchor_everything,
    billed_ledger,
    ingest,
    serving,
    sign_readings,
)
from tests.fixtures.gateway import LEDGER_BIN

TOKEN = "operator-secret-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BilledLedger, str]]:
    with billed_ledger(tmp_path_factory.mktemp("bills") / "data", operator_token=TOKEN) as billed:
        with serving(billed.node) as base_url:
            yield billed, base_url


@pytest.fixture(scope="module")
def issued(ledger: tuple[BilledLedger, str]) -> dict[str, Any]:
    billed, base_url = ledger
    response = httpx.post(
        f"{base_url}/v1/bills/runs",
        json={"period_start": billed.period_start, "period_end": billed.period_end},
        headers=AUTH,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def _operator_nonce(billed: BilledLedger) -> int:
    operator = billed.node.chain.operator.address
    return int(billed.node.chain.w3.eth.get_transaction_count(operator, "pending"))


def test_issuing_anchors_one_root_over_every_customers_bill(
    ledger: tuple[BilledLedger, str], issued: dict[str, Any]
) -> None:
    billed, base_url = ledger
    assert issued["issued"] == len(billed.customers) and issued["corrections"] == 0
    registry = BillRegistryClient(billed.node.chain, billed.node.deployment)
    run = registry.run(issued["run_id"])
    assert run.bill_count == len(billed.customers)
    assert (run.period_start, run.period_end) == (billed.period_start, billed.period_end)
    for digest in issued["bills"]:
        bill = httpx.get(f"{base_url}/v1/bills/{digest}", headers=AUTH, timeout=30).json()
        assert bill["status"] == "anchored" and bill["current"] is True
        assert bill_hash(bill["document"]).hex() == digest[2:]
        proof = [bytes.fromhex(p[2:]) for p in bill["anchor"]["proof"]]
        assert registry.verify_bill(issued["run_id"], bytes.fromhex(digest[2:]), proof)
        assert bill["anchor"]["root"] == "0x" + run.root.hex()
        assert bill_leaf(bytes.fromhex(digest[2:])) != run.root or len(issued["bills"]) == 1


def test_a_bills_lines_add_up_to_its_total(
    ledger: tuple[BilledLedger, str], issued: dict[str, Any]
) -> None:
    _, base_url = ledger
    for digest in issued["bills"]:
        document = httpx.get(f"{base_url}/v1/bills/{digest}", headers=AUTH, timeout=30).json()[
            "document"
        ]
        assert document["total_minor"] == sum(line["amount_minor"] for line in document["lines"])
        assert document["total_minor"] > 0


def test_a_second_run_over_the_same_data_issues_nothing_and_mines_nothing(
    ledger: tuple[BilledLedger, str], issued: dict[str, Any]
) -> None:
    billed, base_url = ledger
    before = _operator_nonce(billed)
    response = httpx.post(
        f"{base_url}/v1/bills/runs",
        json={"period_start": billed.period_start, "period_end": billed.period_end},
        headers=AUTH,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["run_id"] is None and response.json()["issued"] == 0
    assert response.json()["unchanged"] == len(billed.customers)
    assert _operator_nonce(billed) == before


def test_a_customers_bill_list_holds_only_that_customers_bills(
    ledger: tuple[BilledLedger, str], issued: dict[str, Any]
) -> None:
    billed, base_url = ledger
    for customer in billed.customers:
        listed = httpx.get(
            f"{base_url}/v1/customers/{customer}/bills", headers=AUTH, timeout=30
        ).json()
        assert len(listed["bills"]) == 1
        assert {b["customer"] for b in listed["bills"]} == {customer}
        assert {b["document"]["customer"] for b in listed["bills"]} == {customer}


def test_bills_need_a_session_or_the_operator_token(
    ledger: tuple[BilledLedger, str], issued: dict[str, Any]
) -> None:
    _, base_url = ledger
    digest = issued["bills"][0]
    for path in (f"/v1/bills/{digest}", f"/v1/bills/{digest}/evidence"):
        anonymous = httpx.get(f"{base_url}{path}", timeout=30)
        assert anonymous.status_code == 401 and _code(anonymous) == "sign_in_required"
        assert "document" not in anonymous.text
        wrong = httpx.get(f"{base_url}{path}", headers={"Authorization": "Bearer x"}, timeout=30)
        assert wrong.status_code == 401
    refused = httpx.post(f"{base_url}/v1/bills/runs", json={"period": "2026-01"}, timeout=30)
    assert refused.status_code == 401


def test_an_unknown_bill_is_404(ledger: tuple[BilledLedger, str]) -> None:
    _, base_url = ledger
    response = httpx.get(f"{base_url}/v1/bills/0x{'ab' * 32}", headers=AUTH, timeout=30)
    assert response.status_code == 404 and _code(response) == "bill_not_found"


def test_a_tariff_is_public_and_its_text_hashes_to_its_id(
    ledger: tuple[BilledLedger, str],
) -> None:
    billed, base_url = ledger
    digest = "0x" + billed.tariff_hash.hex()
    listed = httpx.get(f"{base_url}/v1/tariffs", timeout=30).json()["tariffs"]
    assert digest in {t["tariff_hash"] for t in listed}
    shown = httpx.get(f"{base_url}/v1/tariffs/{digest}", timeout=30).json()
    assert keccak256(shown["text"].encode("utf-8")).hex() == digest[2:]
    assert shown["text"].encode("utf-8") == EXAMPLE_TARIFF.read_bytes()
    assignments = httpx.get(
        f"{base_url}/v1/customers/{billed.customers[0]}/tariff-assignments",
        headers=AUTH,
        timeout=30,
    ).json()["assignments"]
    assert [a["tariff_hash"] for a in assignments] == [digest]


def test_an_invalid_tariff_is_refused_naming_its_field_and_mines_nothing(
    ledger: tuple[BilledLedger, str],
) -> None:
    billed, base_url = ledger
    before = _operator_nonce(billed)
    text = EXAMPLE_TARIFF.read_text().replace('rounding = "half_even"', 'rounding = "nearest"')
    response = httpx.post(f"{base_url}/v1/tariffs", json={"text": text}, headers=AUTH, timeout=30)
    assert response.status_code == 422
    assert _code(response) == "invalid_tariff" and "rounding" in response.json()["error"]["message"]
    assert _operator_nonce(billed) == before


def test_publishing_the_same_tariff_again_is_refused_by_the_registry(
    ledger: tuple[BilledLedger, str],
) -> None:
    _, base_url = ledger
    response = httpx.post(
        f"{base_url}/v1/tariffs",
        json={"text": EXAMPLE_TARIFF.read_text()},
        headers=AUTH,
        timeout=30,
    )
    assert response.status_code == 409, response.text
    assert _code(response) == "bill_registry_tariff_already_published"


def test_a_period_that_is_not_over_is_refused_and_mines_nothing(
    ledger: tuple[BilledLedger, str],
) -> None:
    billed, base_url = ledger
    before = _operator_nonce(billed)
    response = httpx.post(
        f"{base_url}/v1/bills/runs",
        json={"period_start": billed.period_end, "period_end": billed.period_end + 10**8},
        headers=AUTH,
        timeout=30,
    )
    assert response.status_code == 409 and _code(response) == "bill_period_not_over"
    assert _operator_nonce(billed) == before


def test_the_cli_shows_a_bill_and_writes_its_verification_package(
    ledger: tuple[BilledLedger, str], issued: dict[str, Any], tmp_path: Path
) -> None:
    billed, _ = ledger
    settings = billed.node.settings
    env = {
        "PATH": str(LEDGER_BIN.parent),
        "LEDGER_RPC_URL": billed.node.chain.rpc_url,
        "LEDGER_DATA_DIR": str(settings.data_dir),
        "LEDGER_OPERATOR_KEY": DEV_OPERATOR_KEY,
    }
    digest = issued["bills"][0]
    out = tmp_path / "bill.json"
    done = subprocess.run(
        [str(LEDGER_BIN), "bills", "show", digest, "--evidence", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    package = json.loads(out.read_text())
    assert package["format"] == "energy-ledger/bill-evidence/v1"
    assert package["bill_hash"] == digest
    assert bill_hash(package["bill"]).hex() == digest[2:]
    named = sum(int(run[2]) - int(run[1]) + 1 for run in package["bill"]["reading_batches"])
    assert len(package["readings"]) == named
    assert set(package["tariffs"]) == set(package["bill"]["tariffs"])


def test_readings_that_arrive_for_an_estimated_range_bring_a_correction_naming_the_bill(
    tmp_path: Path,
) -> None:
    with billed_ledger(tmp_path / "data", hours=3, meters_per_customer=(1,), withhold=4) as billed:
        service = billed.node.billing
        first = service.issue(billed.period_start, billed.period_end)
        assert len(first.issued) == 1
        estimated = service.bills.bill(bytes.fromhex(first.issued[0][2:]))
        assert estimated is not None and estimated.estimated
        meter = billed.meters[0]
        late = sign_readings(billed.chain_id, meter, 0, 4)
        ingest(billed.node, meter, late)
        anchor_everything(billed.node)
        second = service.issue(billed.period_start, billed.period_end)
        assert second.corrections == second.issued and len(second.issued) == 1
        corrected = service.bills.bill(bytes.fromhex(second.issued[0][2:]))
        assert corrected is not None and not corrected.estimated
        assert corrected.replaces == estimated.bill_hash
        old = service.bills.bill(estimated.bill_hash)
        assert old is not None and old.replaced_by == corrected.bill_hash
        document = json.loads(corrected.document)
        assert document["replaces"] == "0x" + estimated.bill_hash.hex()
        third = service.issue(billed.period_start, billed.period_end)
        assert third.issued == [] and third.unchanged == 1
