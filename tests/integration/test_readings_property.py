"""Property: `POST /v1/readings` accepts exactly the validly signed readings, and nothing else.

Three meters (P-256, Ed25519, secp256k1) are registered in a freshly deployed MeterRegistry on the
session Ganache. Each Hypothesis example then opens its own SQLite file and gateway app, and sends
one to four requests through the HTTP stack (httpx on an ASGI transport, in-process). Each request
is a shuffled mix of:

- valid: a meter's next reading (seq + 1, a later time, registers not lower), signed by its key;
- forged: a plausible new reading, or a stored reading's exact bytes, signed by another key (a
  fresh one of the same algorithm, or another registered meter's);
- replayed: a reading accepted by an earlier request, sent again as is, or with the same ECDSA
  signature in another encoding (DER, or (r, n - s)): a duplicate with the original receipt;
- mutated: a validly signed reading with one byte of its canonical bytes or signature flipped, or
  one field changed, and not signed again;
- echoed: a valid reading of the same request sent a second time.

`LedgerModel` (readings_model.py) predicts each result from the documented rules
(docs/reading-format.md and the code table in README.md), the bytes sent, and the ground truth of
who signed which bytes. It parses the canonical bytes itself and shares no code with
`ledger.readings.ingest`. Per reading the test checks the status, the rejection code (a set of
codes only where the gateway's clock decides between `clock_skew` and the next check) and the
receipt; after every example, that the database holds exactly the model's rows, with no integrity
event and no open gap. What Hypothesis draws, and how a drawn plan becomes signed readings, is in
readings_plans.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from api.main import create_app
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.meters.keys import KeyAlgorithm, generate_key
from ledger.meters.registry import MeterAdmin
from ledger.node import LedgerNode
from ledger.readings.fraud_proof import commitments_for_leaf
from ledger.settings import Settings
from ledger.store.database import Store
from tests.integration.readings_model import (
    ACCEPTED,
    DUPLICATE,
    REJECTED,
    LedgerModel,
    Sent,
    parse_canonical,
)
from tests.integration.readings_plans import (
    HISTORY_S,
    P256_ORDER,
    PLANS,
    SECP256K1_ORDER,
    Meter,
    Plan,
    Scenario,
)

# --- the gateway, in-process --------------------------------------------------------------------


class InProcessGateway:
    """The app behind httpx on an ASGI transport: the whole HTTP stack, without a socket."""

    def __init__(self, app: FastAPI) -> None:
        self._runner = asyncio.Runner()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        )

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self._runner.run(self._client.post(path, json=body))

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()


@dataclass(frozen=True)
class FreshGateway:
    """A gateway on a new SQLite file, sharing the chain and the contracts."""

    client: InProcessGateway
    store: Store
    db_path: Path
    clock_skew_s: int

    def stored_rows(self) -> list[tuple[bytes, bytes, bytes, str]]:
        """(meter_id, canonical, signature, receipt_id) of every row, read from the file."""
        with closing(sqlite3.connect(self.db_path)) as db:
            rows = db.execute("SELECT meter_id, canonical, signature, receipt_id FROM readings")
            return sorted(rows.fetchall())


@contextmanager
def fresh_gateway(chain: Chain, deployment: Deployment, data_dir: Path) -> Iterator[FreshGateway]:
    db_path = data_dir / f"{uuid.uuid4().hex}.db"
    node_settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{db_path}")
    # Built as `ledger serve` builds it, minus the anchorer (never started here).
    node = LedgerNode(node_settings, chain, deployment, Store.open(node_settings))
    client = InProcessGateway(create_app(node))
    try:
        yield FreshGateway(client, node.store, db_path, node_settings.clock_skew_s)
    finally:
        client.close()
        node.stop()


# --- the property ------------------------------------------------------------------------------


METER_KINDS = (
    ("PROP-P256", KeyAlgorithm.P256, P256_ORDER),
    ("PROP-ED25519", KeyAlgorithm.ED25519, None),
    ("PROP-SECP256K1", KeyAlgorithm.SECP256K1, SECP256K1_ORDER),
)


@pytest.fixture
def meters(chain: Chain, deployment: Deployment, alice: LocalAccount) -> list[Meter]:
    """One meter per key algorithm, its key valid from HISTORY_S before now.

    The start is explicit (registration may date a key back), so the window of valid readings
    is set by the wall clock the gateway checks against, not by the session chain's clock,
    which other tests may have moved forward.
    """
    admin = MeterAdmin(chain, deployment)
    valid_from = int(time.time()) - HISTORY_S
    registered = []
    for serial, algorithm, order in METER_KINDS:
        key = generate_key(algorithm)
        admin.register(serial, alice.address, key.public_key(), valid_from=valid_from)
        (epoch,) = admin.show(serial).epochs
        registered.append(Meter(serial, key, order, epoch.valid_from))
    # Forgers: a fresh key of the meter's own algorithm, and the two other meters' real keys.
    return [
        replace(
            meter,
            forgers=(
                generate_key(algorithm),
                *(other.key for other in registered if other.serial != meter.serial),
            ),
        )
        for meter, (_, algorithm, _) in zip(registered, METER_KINDS, strict=True)
    ]


def check_kind(sent: Sent, result: dict[str, Any], where: str) -> None:
    """What each kind must get, whatever the model says."""
    outcome = (result["status"], result["code"])
    if sent.kind == "forged":
        assert outcome == (REJECTED, "bad_signature"), where
    elif sent.kind == "replayed":
        assert outcome == (DUPLICATE, None), where
    elif sent.kind == "mutated":
        assert result["status"] == REJECTED, where
    else:  # valid or echoed: the first copy processed is accepted, later ones are duplicates
        assert outcome in {(ACCEPTED, None), (DUPLICATE, None)}, where


def check_receipt(sent: Sent, result: dict[str, Any]) -> None:
    fields = parse_canonical(sent.canonical)
    assert fields is not None
    receipt = result["receipt"]
    serial = fields.meter_id.rstrip(b"\x00").decode()
    assert (receipt["meter_id"], receipt["seq"], receipt["timestamp"]) == (
        serial,
        fields.seq,
        fields.timestamp,
    )
    # The version-2 leaf of these bytes and this signature (raw or DER, as sent).
    leaf = bytes.fromhex(receipt["leaf"][2:])
    assert commitments_for_leaf(sent.canonical, sent.signature, "native", None, leaf) is not None
    assert receipt["key_epoch"] == 0


# The deployment and the meters are shared by every example on purpose (registering is slow);
# each example opens its own database and gateway, so no example sees another's readings. No
# example database: with one, Hypothesis 6.27 spends about half the run shrinking its Pareto
# front, which a test this slow cannot afford.
@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Hypothesis 6.27 reports a failing example through a pytest API that pytest 9 deprecates; under
# `-W error` that warning would replace the report of the falsifying example.
@pytest.mark.filterwarnings(
    "ignore:A private pytest class or function was used:pytest.PytestDeprecationWarning"
)
@given(plan=PLANS)
def test_exactly_the_validly_signed_readings_are_accepted(
    plan: Plan, chain: Chain, deployment: Deployment, meters: list[Meter], tmp_path: Path
) -> None:
    with fresh_gateway(chain, deployment, tmp_path) as fresh:
        scenario = Scenario(
            meters, plan.starts, chain_id=chain.chain_id, clock_skew_s=fresh.clock_skew_s
        )
        model = LedgerModel(
            {meter.meter_id: meter.valid_from for meter in meters},
            chain_id=chain.chain_id,
            clock_skew_s=fresh.clock_skew_s,
        )
        for number, request in enumerate(plan.requests):
            sent = scenario.build(request, list(model.rows.values()), int(time.time()))
            if not sent:
                continue
            body: dict[str, Any]
            if request.single and len(sent) == 1:
                body = sent[0].body()
            else:
                body = {"readings": [item.body() for item in sent]}
            now_lo = int(time.time())
            response = fresh.client.post("/v1/readings", body)
            now_hi = int(time.time())

            assert response.status_code == 202, response.text
            answer = response.json()
            assert len(answer["results"]) == len(sent)
            for index, (item, result) in enumerate(zip(sent, answer["results"], strict=True)):
                where = f"request {number}, reading {index} ({item.kind}): {result}"
                expected = model.predict(item, now_lo, now_hi)
                assert result["index"] == index, where
                assert result["status"] == expected.status, where
                check_kind(item, result, where)
                if expected.status == REJECTED:
                    assert result["code"] in expected.codes, f"expected {expected.codes}: {where}"
                    assert result["receipt"] is None, where
                elif expected.status == DUPLICATE:
                    assert expected.original is not None
                    assert result["receipt"] == expected.original.receipt, where
                else:
                    check_receipt(item, result)
                    model.store(item, result["receipt"])
            statuses = [result["status"] for result in answer["results"]]
            assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (
                statuses.count(ACCEPTED),
                statuses.count(DUPLICATE),
                statuses.count(REJECTED),
            )

        # The database holds exactly the model's rows: one per accepted reading, with the bytes
        # and signature first accepted, and the receipt given then.
        assert fresh.stored_rows() == sorted(
            (row.fields.meter_id, row.canonical, row.signature, row.receipt["receipt_id"])
            for row in model.rows.values()
        )
        for meter in meters:
            # Nothing validly signed ever conflicted, and every valid seq was sent.
            assert fresh.store.integrity_events(meter.meter_id) == []
            assert fresh.store.gaps(meter.meter_id, open_only=True) == []
