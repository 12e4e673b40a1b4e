"""Reading bundles from a running gateway, on Ganache and Anvil: `GET /v1/bundle` and
`ledger export-bundle` over native and OCMF readings, checked against the chain alone."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ledger.anchoring.bundle import (
    BundleBatch,
    BundleHeader,
    BundleItem,
    BundleReading,
    BundleTrailer,
    open_bundle,
    read_bundle,
)
from ledger.anchoring.merkle import MerkleTree
from ledger.anchoring.merkle import verify as verify_proof
from ledger.chain.client import Chain, connect, free_port
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, encode_public_key, generate_key
from ledger.meters.registry import MeterAdmin
from ledger.readings.native import anchored_leaf, verify_reading_signature
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.verify import ocmf_signature_form, verify_ocmf
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.chain import dev_account
from tests.fixtures.gateway import (
    LEDGER_BIN,
    OPERATOR_HEADERS,
    Gateway,
    ledger_env,
    start_gateway,
)
from tests.integration.test_ocmf_http import register_corpus_meter
from tests.integration.test_readings_http import signed
from tests.unit.readings.test_ocmf_corpus import CorpusRecord, load_records

METER = "MTR-BUNDLE-01"


@dataclass
class Fleet:
    """A gateway whose readings (native P-256 and OCMF) are all anchored."""

    gateway: Gateway
    chain: Chain
    deployment: Deployment
    native_key: MeterPrivateKey
    ocmf: list[CorpusRecord]
    readings: int
    last_batch: int


def wait_anchored(gateway: Gateway, views: list[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answers = [httpx.get(gateway.base_url + v, headers=OPERATOR_HEADERS) for v in views]
        anchors = [a.json().get("anchor") for a in answers]
        if all(anchor is not None and anchor["final"] for anchor in anchors):
            return
        time.sleep(0.2)  # polling the gateway's state, not waiting for a thread
    raise AssertionError("readings were not anchored within 60 s")


@pytest.fixture(scope="module", params=["ganache", "anvil"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp(f"bundle-{request.param}")
    env = ledger_env(tmp / "data", request.param, free_port(), LEDGER_ANCHOR_INTERVAL_S="0.2")
    gateway = start_gateway(env, tmp / "gateway.log")
    try:
        chain = connect(f"http://127.0.0.1:{env['LEDGER_CHAIN_PORT']}", DEV_OPERATOR_KEY)
        deployment = ensure_deployed(chain, tmp / "data")
        key = generate_key(KeyAlgorithm.P256)
        start = int(time.time()) - 3_600
        MeterAdmin(chain, deployment).register(
            METER, dev_account(1).address, key.public_key(), valid_from=start
        )
        ebee = load_records("test_ocmf_ebee_01.xml")
        ebee_meter = register_corpus_meter(gateway, ebee[0])
        views = []
        for first in (1, 7):  # two submissions: most likely two batches
            body = {"readings": [signed(key, start, seq, METER) for seq in range(first, first + 6)]}
            assert httpx.post(f"{gateway.base_url}/v1/readings", json=body).json()["accepted"] == 6
            views += [f"/v1/meters/{METER}/readings/{seq}" for seq in range(first, first + 6)]
        body = {"readings": [{"meter_id": ebee_meter, "ocmf": r.text} for r in ebee]}
        assert httpx.post(f"{gateway.base_url}/v1/readings", json=body).json()["accepted"] == 2
        views += [f"/v1/meters/{ebee_meter}/readings/{seq}" for seq in (28, 29)]
        wait_anchored(gateway, views)
        last = int(chain.call(deployment.reading_ledger.functions.lastBatchId()))
        yield Fleet(gateway, chain, deployment, key, ebee, 14, last)
    finally:
        gateway.stop()


def bundle(fleet: Fleet, **params: str) -> list[BundleItem]:
    response = httpx.get(
        f"{fleet.gateway.base_url}/v1/bundle", params=params, headers=OPERATOR_HEADERS
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/jsonl"
    return list(read_bundle(response.content.splitlines(keepends=True)))


def version_2_leaf(reading: BundleReading) -> bytes:
    """The leaf an auditor computes from a bundle's reading line (docs/reading-format.md): the
    fleet's native meters send raw r || s, so the signature is its own fixed form."""
    if reading.ocmf is None:
        return anchored_leaf(reading.canonical, reading.canonical, reading.signature)
    record = parse_ocmf(reading.ocmf)
    return anchored_leaf(reading.canonical, record.payload_bytes, ocmf_signature_form(record))


def test_every_signature_and_proof_of_a_gateways_bundle_verifies_against_the_chain(
    fleet: Fleet,
) -> None:
    items = bundle(fleet, batches=f"1-{fleet.last_batch}")

    ledger = fleet.deployment.reading_ledger
    batches = [b for b in items if isinstance(b, BundleBatch)]
    readings = [r for r in items if isinstance(r, BundleReading)]
    assert [b.batch_id for b in batches] == list(range(1, fleet.last_batch + 1))
    assert len(readings) == fleet.readings
    native_key = encode_public_key(fleet.native_key.public_key())
    for batch in batches:
        chain_root = bytes(fleet.chain.call(ledger.functions.batchRoot(batch.batch_id)))
        members = [r for r in readings if r.batch_id == batch.batch_id]
        assert batch.leaf_version == 2
        leaves = [version_2_leaf(r) for r in members]
        assert batch.root == chain_root
        assert (batch.count, [r.leaf_index for r in members]) == (
            len(members),
            list(range(len(members))),
        )
        assert MerkleTree(leaves).root == chain_root
        for reading, leaf in zip(members, leaves, strict=True):
            assert verify_proof(list(reading.proof), chain_root, leaf)
            assert fleet.chain.call(
                ledger.functions.verifyReading(batch.batch_id, leaf, list(reading.proof))
            )
            if reading.source == "native":
                verify_reading_signature(
                    KeyAlgorithm.P256, native_key, reading.canonical, reading.signature
                )
            else:
                assert reading.ocmf is not None
                record = parse_ocmf(reading.ocmf)
                assert record.signature.data == reading.signature
                verify_ocmf(record, fleet.ocmf[0].public_key)
    assert sorted(r.source for r in readings) == ["native"] * 12 + ["ocmf"] * 2


def test_a_time_range_bundle_holds_whole_every_batch_with_a_reading_in_it(fleet: Fleet) -> None:
    # The OCMF corpus records are of 2021, the native ones of the last hour; a batch may hold both.
    start, end = 1_609_459_200, 1_640_995_200  # 2021
    every = [i for i in bundle(fleet, batches=f"1-{fleet.last_batch}")]

    items = bundle(fleet, **{"from": str(start), "to": str(end)})

    in_range = {
        r.batch_id for r in every if isinstance(r, BundleReading) and start <= r.timestamp < end
    }
    assert {b.batch_id for b in items if isinstance(b, BundleBatch)} == in_range
    assert [i for i in items if isinstance(i, BundleReading)] == [
        r for r in every if isinstance(r, BundleReading) and r.batch_id in in_range
    ]
    assert sum(1 for r in items if isinstance(r, BundleReading) and r.source == "ocmf") == 2


def test_export_bundle_writes_the_same_bundle_as_the_route(fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "bundle.jsonl.gz"
    run = subprocess.run(
        [str(LEDGER_BIN), "export-bundle", "--batches", f"1-{fleet.last_batch}", "--out", str(out)],
        env=fleet.gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    with open_bundle(out) as stream:
        exported = [i for i in read_bundle(stream) if not isinstance(i, BundleHeader)]
    served = [i for i in bundle(fleet, batches=f"1-{fleet.last_batch}")]
    assert exported == served[1:]
    assert exported[-1] == BundleTrailer(batches=fleet.last_batch, readings=fleet.readings)


def test_export_bundle_of_an_empty_range_exits_with_bundle_invalid_range(fleet: Fleet) -> None:
    run = subprocess.run(
        [str(LEDGER_BIN), "export-bundle", "--batches", "3-1"],
        env=fleet.gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 1
    assert run.stderr.startswith("error [bundle_invalid_range]")


def error_of(fleet: Fleet, **params: str) -> tuple[int, str]:
    response = httpx.get(
        f"{fleet.gateway.base_url}/v1/bundle", params=params, headers=OPERATOR_HEADERS
    )
    return response.status_code, response.json()["error"]["code"]


def test_the_route_refuses_batches_the_gateway_lacks_with_bundle_unknown_batches(
    fleet: Fleet,
) -> None:
    assert error_of(fleet, batches=f"1-{fleet.last_batch + 1}") == (404, "bundle_unknown_batches")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"batches": "2-1"},
        {"from": "10", "to": "10"},
        {"from": "5"},
        {"batches": "1", "to": "9"},
    ],
)
def test_the_route_refuses_a_selection_that_is_not_one_with_bundle_invalid_range(
    fleet: Fleet, params: dict[str, str]
) -> None:
    assert error_of(fleet, **params) == (422, "bundle_invalid_range")


def test_the_route_refuses_a_caller_who_did_not_sign_in_with_sign_in_required(
    fleet: Fleet,
) -> None:
    response = httpx.get(f"{fleet.gateway.base_url}/v1/bundle", params={"batches": "1"})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "sign_in_required")
