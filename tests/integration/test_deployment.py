"""Deployment records: reused when the code matches (immutables aside), completed when a record
from an older build lacks contracts, refused when an address holds other code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.chain.client import Chain
from ledger.chain.deployment import MarketParameters, ensure_deployed, record_path
from ledger.errors import DeploymentError


def test_a_recorded_deployment_with_constructor_arguments_is_reused(
    chain: Chain, tmp_path: Path
) -> None:
    first = ensure_deployed(chain, tmp_path, market=MarketParameters(900, 300, 86_400))
    again = ensure_deployed(chain, tmp_path)

    assert first.deployed_now and not again.deployed_now
    assert again.addresses == first.addresses
    # The recorded market keeps its own parameters, whatever the caller's defaults are.
    assert again.energy_market.functions.slotSeconds().call() == 900


def test_a_record_from_an_older_build_gets_the_missing_contracts(
    chain: Chain, tmp_path: Path
) -> None:
    full = ensure_deployed(chain, tmp_path)
    path = record_path(tmp_path, chain.chain_id)
    record = json.loads(path.read_text())
    older = {name: record["contracts"][name] for name in ("MeterRegistry", "ReadingLedger")}
    path.write_text(json.dumps({**record, "contracts": older}))

    completed = ensure_deployed(chain, tmp_path)

    assert completed.deployed_now
    for name, address in older.items():
        assert completed.addresses[name] == address
    assert completed.addresses["EnergyMarket"] != full.addresses["EnergyMarket"]
    market = completed.energy_market.functions
    assert market.readingLedger().call() == older["ReadingLedger"]
    assert market.meterRegistry().call() == older["MeterRegistry"]
    assert market.settlementToken().call() == completed.addresses["SettlementToken"]
    assert set(json.loads(path.read_text())["contracts"]) == set(completed.addresses)


def test_a_record_from_before_bill_registry_gets_it_beside_its_reading_ledger(
    chain: Chain, tmp_path: Path
) -> None:
    full = ensure_deployed(chain, tmp_path)
    path = record_path(tmp_path, chain.chain_id)
    record = json.loads(path.read_text())
    older = {k: v for k, v in record["contracts"].items() if k != "BillRegistry"}
    path.write_text(json.dumps({**record, "contracts": older}))

    completed = ensure_deployed(chain, tmp_path)

    assert completed.deployed_now
    assert {k: v for k, v in completed.addresses.items() if k != "BillRegistry"} == older
    assert completed.addresses["BillRegistry"] != full.addresses["BillRegistry"]
    reading_ledger = completed.bill_registry.functions.readingLedger().call()
    assert reading_ledger == older["ReadingLedger"]
    recorded = json.loads(path.read_text())["contracts"]
    assert recorded["BillRegistry"] == completed.addresses["BillRegistry"]


def test_a_record_from_before_complaint_registry_gets_it_with_the_operator_role(
    chain: Chain, tmp_path: Path
) -> None:
    ensure_deployed(chain, tmp_path)
    path = record_path(tmp_path, chain.chain_id)
    record = json.loads(path.read_text())
    older = {k: v for k, v in record["contracts"].items() if k != "ComplaintRegistry"}
    path.write_text(json.dumps({**record, "contracts": older}))

    completed = ensure_deployed(chain, tmp_path)

    assert {k: v for k, v in completed.addresses.items() if k != "ComplaintRegistry"} == older
    registry = completed.complaint_registry.functions
    operator_role = registry.OPERATOR_ROLE().call()
    assert registry.hasRole(operator_role, chain.operator.address).call()
    recorded = json.loads(path.read_text())["contracts"]
    assert recorded["ComplaintRegistry"] == completed.addresses["ComplaintRegistry"]


def test_a_recorded_address_holding_other_code_is_refused(chain: Chain, tmp_path: Path) -> None:
    ensure_deployed(chain, tmp_path)
    path = record_path(tmp_path, chain.chain_id)
    record = json.loads(path.read_text())
    contracts = record["contracts"]
    contracts["EnergyMarket"] = contracts["SettlementToken"]
    path.write_text(json.dumps(record))

    with pytest.raises(DeploymentError, match="different code"):
        ensure_deployed(chain, tmp_path)
