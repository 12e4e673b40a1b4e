"""`ledger verify-bill`: one bill checked with nothing but a chain endpoint and its package.

One billed ledger serves the module (tests/fixtures/billing.py: Anvil with a past clock, a
LedgerNode, the example tariff published and assigned, six hours of signed, anchored 15-minute
readings for two customers). The second customer gets a meter that signs OCMF records as well,
so both signature paths are verified. One issuing run bills both; each test takes a bill's
package from `bill_evidence`, changes one thing (or nothing) and verifies it against the chain.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

import ledger.billing.verify as verify_module
from ledger.billing.document import bill_hash
from ledger.billing.evidence import bill_evidence
from ledger.billing.tariff import tariff_hash
from ledger.billing.verify import CHECKS, VerificationReport, verify_bill_package
from ledger.meters.registry import meter_id_bytes
from ledger.readings.native import anchored_leaf, decode
from ledger.readings.results import OcmfSubmission
from tests.fixtures.billing import (
    EXAMPLE_TARIFF,
    HOUR,
    READING_INTERVAL_S,
    BilledLedger,
    anchor_everything,
    billed_ledger,
)
from tests.fixtures.gateway import LEDGER_BIN

pytestmark = pytest.mark.chain

OCMF_SERIAL = "BILL-OCMF-1"


@dataclass
class Scenario:
    billed: BilledLedger
    rpc_url: str
    native: dict[str, Any]  # the first customer's package: two native meters
    with_ocmf: dict[str, Any]  # the second customer's: a native and an OCMF meter


def ocmf_record(key: ec.EllipticCurvePrivateKey, seq: int, timestamp: int, wh: int) -> str:
    """A signed OCMF record of the meter `OCMF_SERIAL`: import `wh`, export 0, at `timestamp`."""
    at = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S,000+0000 S")
    entries = [
        {"TM": at, "TX": "C", "RV": value, "RI": obis, "RU": "Wh", "RT": "AC", "ST": "G"}
        for obis, value in (("1-0:1.8.0", wh), ("1-0:2.8.0", 0))
    ]
    body = {
        "FV": "1.0",
        "GI": "BILL-TEST",
        "GS": "GS-1",
        "GV": "1.0",
        "PG": f"T{seq}",
        "MS": OCMF_SERIAL,
        "RD": entries,
    }
    text = json.dumps(body, separators=(",", ":"))
    signature = key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    section = {"SA": "ECDSA-secp256r1-SHA256", "SD": signature.hex().upper()}
    return f"OCMF|{text}|{json.dumps(section, separators=(',', ':'))}"


def add_ocmf_meter(billed: BilledLedger) -> None:
    """Registers an OCMF meter for the second customer and ingests its records over the period."""
    node = billed.node
    key = ec.generate_private_key(ec.SECP256R1())
    chain_now = int(node.chain.w3.eth.get_block("latest")["timestamp"])
    node.meters.register(
        OCMF_SERIAL, billed.customers[1], key.public_key(), billed.period_start - HOUR
    )
    assert chain_now > billed.period_end  # registered after the period: keys may date back
    first = billed.period_start - READING_INTERVAL_S
    count = (billed.period_end - billed.period_start) // READING_INTERVAL_S + 3
    records = [
        OcmfSubmission(
            meter_id=OCMF_SERIAL,
            ocmf=ocmf_record(key, seq, first + (seq - 1) * READING_INTERVAL_S, 1_000 + 37 * seq),
        )
        for seq in range(1, count + 1)
    ]
    results = node.ingestor.submit(records)
    assert all(r.status == "accepted" for r in results), results
    anchor_everything(node)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with billed_ledger(tmp_path_factory.mktemp("verify") / "data") as billed:
        add_ocmf_meter(billed)
        node = billed.node
        issued = node.billing.issue(billed.period_start, billed.period_end)
        assert len(issued.issued) == 2, issued.as_dict()
        packages = {}
        for digest in issued.issued:
            package = bill_evidence(node.store, node.deployment, bytes.fromhex(digest[2:]))
            packages[package["bill"]["customer"]] = package
        yield Scenario(
            billed,
            node.chain.rpc_url,
            native=packages[billed.customers[0]],
            with_ocmf=packages[billed.customers[1]],
        )


def verify(scenario: Scenario, package: dict[str, Any], **options: Any) -> VerificationReport:
    return verify_bill_package(package, scenario.rpc_url, **options)


def failures(report: VerificationReport) -> list[tuple[str, str, dict[str, Any]]]:
    return [(check, f.code, f.record) for check, f in report.failures]


def rehashed(package: dict[str, Any]) -> dict[str, Any]:
    """The package with `bill_hash` recomputed from its (changed) bill."""
    package["bill_hash"] = "0x" + bill_hash(package["bill"]).hex()
    return package


def run_cli(
    tmp_path: Path, package: dict[str, Any], rpc_url: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bill.json"
    path.write_text(json.dumps(package))
    return subprocess.run(
        [str(LEDGER_BIN), "verify-bill", str(path), "--rpc", rpc_url],
        capture_output=True,
        text=True,
        timeout=120,
        # No LEDGER_* settings at all: the command needs neither a node nor a data directory.
        env={"PATH": str(LEDGER_BIN.parent)},
    )


# --- a genuine bill passes ----------------------------------------------------------------------


def test_verify_bill_command_passes_an_issued_bill_with_exit_0(
    scenario: Scenario, tmp_path: Path
) -> None:
    done = run_cli(tmp_path, scenario.native, scenario.rpc_url)

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert [(c["check"], c["status"]) for c in report["checks"]] == [(c, "ok") for c in CHECKS]
    assert report["failures"] == []


def test_a_bill_with_ocmf_readings_passes_every_check(scenario: Scenario) -> None:
    report = verify(scenario, scenario.with_ocmf)

    assert report.ok, failures(report)
    assert any("ocmf" in r for r in scenario.with_ocmf["readings"])


def test_a_bill_passes_with_the_ledgers_bill_registry_pinned(scenario: Scenario) -> None:
    pinned = scenario.billed.node.deployment.addresses["BillRegistry"]

    assert verify(scenario, scenario.native, bill_registry=pinned).ok


# --- a changed line ------------------------------------------------------------------------------


def first_priced_line(package: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return next(
        (i, line) for i, line in enumerate(package["bill"]["lines"]) if line["amount_minor"]
    )


def test_verify_bill_command_names_a_changed_line_amount_and_exits_1(
    scenario: Scenario, tmp_path: Path
) -> None:
    package = copy.deepcopy(scenario.native)
    index, line = first_priced_line(package)
    line["amount_minor"] += 1

    done = run_cli(tmp_path, package, scenario.rpc_url)

    assert done.returncode == 1
    report = json.loads(done.stdout)
    codes = {(f["check"], f["code"]) for f in report["failures"]}
    assert ("bill_hash", "bill_hash_mismatch") in codes
    named_lines = [f["record"] for f in report["failures"] if f["code"] == "bill_lines_mismatch"]
    assert {"line": index, "kind": line["kind"], "band": line["band"]}.items() <= named_lines[
        0
    ].items()
    assert "[bill_hash_mismatch]" in done.stderr


def test_a_changed_line_with_its_hash_recomputed_is_not_anchored(scenario: Scenario) -> None:
    package = copy.deepcopy(scenario.native)
    index, line = first_priced_line(package)
    line["amount_minor"] += 1
    package["bill"]["total_minor"] += 1
    package["bill"]["amount_due_minor"] += 1

    report = verify(scenario, rehashed(package))

    codes = {code for _, code, _ in failures(report)}
    assert "bill_not_anchored" in codes
    assert "bill_hash_mismatch" not in codes
    assert (
        "lines",
        "bill_lines_mismatch",
        {"line": index, **{k: line[k] for k in ("kind", "band", "tariff", "estimated")}},
    ) in failures(report)


# --- a changed reading ---------------------------------------------------------------------------


def test_a_reading_with_a_changed_import_value_is_neither_in_its_batch_nor_signed(
    scenario: Scenario,
) -> None:
    package = copy.deepcopy(scenario.native)
    item = package["readings"][3]
    canonical = bytearray.fromhex(item["canonical"][2:])
    reading = decode(bytes(canonical))
    canonical[0xA0:0xC0] = (reading.import_wh + 50).to_bytes(32, "big")  # the import_wh word
    item["canonical"] = "0x" + canonical.hex()

    report = verify(scenario, package)

    record = {"meter": item["meter_id"], "seq": item["seq"], "batch_id": item["batch_id"]}
    assert ("readings", "reading_not_in_batch", record) in failures(report)
    assert ("readings", "reading_signature_invalid", record) in failures(report)
    assert not report.ok


def test_an_ocmf_reading_whose_canonical_bytes_differ_from_its_record_is_not_signed(
    scenario: Scenario,
) -> None:
    package = copy.deepcopy(scenario.with_ocmf)
    item = next(r for r in package["readings"] if "ocmf" in r)
    canonical = bytearray.fromhex(item["canonical"][2:])
    canonical[0xBF] ^= 0x01  # the lowest byte of import_wh
    item["canonical"] = "0x" + canonical.hex()

    report = verify(scenario, package)

    record = {"meter": item["meter_id"], "seq": item["seq"], "batch_id": item["batch_id"]}
    assert ("readings", "reading_signature_invalid", record) in failures(report)


def test_a_reading_the_bill_uses_but_the_package_lacks_is_missing(scenario: Scenario) -> None:
    package = copy.deepcopy(scenario.native)
    removed = package["readings"].pop(5)

    report = verify(scenario, package)

    assert (
        "readings",
        "reading_missing",
        {"meter": removed["meter_id"], "seq": removed["seq"], "batch_id": removed["batch_id"]},
    ) in failures(report)


def test_a_bill_meter_of_another_customer_is_not_the_customers(scenario: Scenario) -> None:
    package = copy.deepcopy(scenario.native)
    stranger = "0x" + meter_id_bytes(OCMF_SERIAL).hex()  # the second customer's meter
    package["bill"]["meters"] = sorted([*package["bill"]["meters"], stranger])

    report = verify(scenario, rehashed(package))

    assert ("readings", "reading_not_customers", {"meter": stranger}) in failures(report)


# --- a tariff that is not the one on record -------------------------------------------------------


def other_tariff_text() -> str:
    return EXAMPLE_TARIFF.read_text().replace("peak = 380000", "peak = 280000")


def test_another_tariff_text_under_the_tariffs_hash_does_not_hash_to_it(scenario: Scenario) -> None:
    package = copy.deepcopy(scenario.native)
    (digest,) = package["tariffs"]
    package["tariffs"][digest] = other_tariff_text()

    report = verify(scenario, package)

    assert ("tariffs", "tariff_text_mismatch", {"tariff": digest}) in failures(report)
    assert not report.ok


def test_another_tariff_swapped_in_under_its_own_hash_is_not_on_record(scenario: Scenario) -> None:
    package = copy.deepcopy(scenario.native)
    (old,) = package["tariffs"]
    text = other_tariff_text()
    new = "0x" + tariff_hash(text.encode()).hex()
    package["tariffs"] = {new: text}
    bill = package["bill"]
    bill["tariffs"] = [new]
    for line in bill["lines"]:
        if line["tariff"] == old:
            line["tariff"] = new

    report = verify(scenario, rehashed(package))

    found = failures(report)
    assert ("tariffs", "tariff_not_on_record", {"tariff": new}) in found
    assert ("tariffs", "tariff_not_on_record", {"tariff": old}) in found  # in force, not named
    assert "bill_not_anchored" in report.codes


# --- the chain and the package itself -------------------------------------------------------------


def test_a_bill_registry_other_than_the_pinned_one_is_the_wrong_chain(scenario: Scenario) -> None:
    pinned = scenario.billed.node.deployment.addresses["ReadingLedger"]  # any other address

    report = verify(scenario, scenario.native, bill_registry=pinned)

    assert ("chain", "wrong_chain", {"contract": "BillRegistry"}) in failures(report)
    assert report.check("lines").status == "skipped"


def test_a_package_naming_a_contract_with_other_code_is_a_contracts_mismatch(
    scenario: Scenario,
) -> None:
    package = copy.deepcopy(scenario.native)
    contracts = package["contracts"]
    contracts["MeterRegistry"] = contracts["ReadingLedger"]

    report = verify(scenario, package)

    assert ("chain", "contracts_mismatch", {"contract": "MeterRegistry"}) in failures(report)


def test_a_package_without_its_anchor_is_malformed(scenario: Scenario) -> None:
    package = copy.deepcopy(scenario.native)
    del package["anchor"]

    report = verify(scenario, package)

    assert failures(report) == [("package", "package_malformed", {})]
    assert [c.status for c in report.checks[1:]] == ["skipped"] * (len(CHECKS) - 1)


def test_a_bill_for_another_chain_id_is_the_wrong_chain(scenario: Scenario) -> None:
    package = copy.deepcopy(scenario.native)
    package["bill"]["chain_id"] += 1

    report = verify(scenario, rehashed(package))

    chain_id = scenario.billed.chain_id
    assert ("chain", "wrong_chain", {"chain_id": chain_id}) in failures(report)


# --- a trade that is not the chain's ------------------------------------------------------------


def test_a_p2p_line_naming_a_trade_the_market_does_not_hold_is_a_trade_mismatch(
    scenario: Scenario,
) -> None:
    package = copy.deepcopy(scenario.native)
    bill = package["bill"]
    bill["lines"].append(
        {
            "kind": "p2p_purchase",
            "band": None,
            "tariff": None,
            "quantity": 500,
            "unit": "Wh",
            "unit_price_minor": None,
            "price_per": None,
            "amount_minor": 100_000,
            "estimated": False,
            "estimate_rule": None,
            "evidence": {"readings": [], "trades": [999]},
        }
    )
    package["trades"] = [999]

    report = verify(scenario, rehashed(package))

    assert ("trades", "trade_mismatch", {"trade": 999}) in failures(report)


def _leaves_of(package: dict[str, Any]) -> dict[tuple[bytes, int], bytes]:
    """What an auditor who checked these native readings' signatures already knows."""
    leaves = {}
    for item in package["readings"]:
        canonical = bytes.fromhex(item["canonical"][2:])
        signature = bytes.fromhex(item["signature"][2:])
        reading = decode(canonical)
        leaves[(reading.meter_id, reading.seq)] = anchored_leaf(canonical, canonical, signature)
    return leaves


def test_readings_whose_leaves_the_caller_checked_are_not_verified_again(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaves = _leaves_of(scenario.native)
    verified: list[bytes] = []
    real = verify_module.verify_reading_signature
    monkeypatch.setattr(
        verify_module,
        "verify_reading_signature",
        lambda *args: verified.append(args[2]) or real(*args),
    )

    report = verify(scenario, scenario.native, verified_leaves=lambda m, s: leaves.get((m, s)))
    checked_here = len(verified)
    verify(scenario, scenario.native)

    assert report.ok, failures(report)
    assert checked_here == 0
    assert len(verified) == len(scenario.native["readings"])


def test_a_reading_whose_leaf_is_not_the_one_the_caller_checked_is_verified_and_named(
    scenario: Scenario,
) -> None:
    leaves = _leaves_of(scenario.native)
    package = copy.deepcopy(scenario.native)
    item = package["readings"][3]
    signature = bytearray.fromhex(item["signature"][2:])
    signature[40] ^= 1
    item["signature"] = "0x" + signature.hex()

    report = verify(scenario, package, verified_leaves=lambda m, s: leaves.get((m, s)))

    record = {"meter": item["meter_id"], "seq": item["seq"], "batch_id": item["batch_id"]}
    assert ("readings", "reading_signature_invalid", record) in failures(report)
