"""EnergyMarket: boundary evidence (pinBoundary, and the evidence given to settle): readings in
the window, their predecessors, and anchoring in a batch.

Setup and fixtures: tests/contracts/market/helpers.py and conftest.py.
"""

from __future__ import annotations

import dataclasses

import pytest
from web3.contract import Contract

from ledger.anchoring.merkle import hash_pair
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from tests.contracts.market.helpers import (
    BOUNDARY_WINDOW,
    HOME_BOB,
    HOME_CAROL,
    PV_ALICE,
    PV_DAVE,
    SLOT,
    Delivery,
    MeterSeries,
    boundary_of,
    events,
    settle,
    swap_previous,
    swap_reading,
    trade_of,
)
from tests.contracts.market_helpers import (
    anchor_readings,
    boundary_evidence,
    market_leaf,
    reading,
    reading_fields,
)
from tests.fixtures.chain import reverts

# settle: boundary evidence


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-1, False), (0, True), (BOUNDARY_WINDOW - 1, True), (BOUNDARY_WINDOW, False)],
    ids=["before", "at-boundary", "last-second", "window-end"],
)
def test_boundary_reading_must_be_within_the_boundary_window(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    offset: int,
    accepted: bool,
) -> None:
    before = reading(PV_ALICE, 4, start - 900, 100, 200)
    candidate = reading(PV_ALICE, 5, start + offset, 110, 250)
    batch = anchor_readings(chain, deployment, [before, candidate])
    call = market.functions.pinBoundary(boundary_evidence(start, batch, candidate, before))

    if accepted:
        chain.transact(call)
        assert boundary_of(chain, market, PV_ALICE, start) == (5, 110, 250, True)
    else:
        # A reading just before the boundary also has a valid-looking predecessor: only the
        # window check stops it.
        with reverts("EnergyMarketReadingOutsideBoundary") as caught:
            chain.transact(call)
        assert caught.value.args_decoded == (PV_ALICE, start, start + offset)


@pytest.mark.parametrize("previous_offset", [0, 30])
def test_pin_boundary_reverts_if_previous_reading_is_not_before_the_boundary(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    previous_offset: int,
) -> None:
    first = reading(PV_ALICE, 7, start + previous_offset, 100, 200)
    later = reading(PV_ALICE, 8, start + 60, 110, 260)
    batch = anchor_readings(chain, deployment, [first, later])

    # `later` is in the window, but `first` is the first reading at or after the boundary.
    with reverts("EnergyMarketInvalidPreviousReading") as caught:
        chain.transact(market.functions.pinBoundary(boundary_evidence(start, batch, later, first)))
    assert caught.value.args_decoded == (PV_ALICE, 8, 7, start + previous_offset)


def test_pin_boundary_accepts_seq_zero_without_a_previous_reading(
    chain: Chain, deployment: Deployment, market: Contract, start: int
) -> None:
    first_ever = reading(PV_ALICE, 0, start + 5, 0, 0)
    batch = anchor_readings(chain, deployment, [first_ever])
    unanchored = reading(HOME_BOB, 41, start + 999_999, 1, 1)
    # The previous field is ignored for seq 0, even when it is not anchored at all.
    evidence = (
        start,
        batch.anchored(first_ever),
        (reading_fields(unanchored), bytes(32), bytes(32), 99, []),
    )

    chain.transact(market.functions.pinBoundary(evidence))

    assert boundary_of(chain, market, PV_ALICE, start) == (0, 0, 0, True)


def test_pin_boundary_reverts_if_the_readings_are_of_another_chain(
    chain: Chain, deployment: Deployment, market: Contract, start: int
) -> None:
    # The same readings signed for chain 1 and for this chain (1337), all anchored here.
    elsewhere = MeterSeries.build(PV_ALICE, start, [(30, 4_000)], chain_id=1)
    here = MeterSeries.build(PV_ALICE, start, [(30, 4_000)])
    batch = anchor_readings(chain, deployment, [*elsewhere.readings, *here.readings])

    with reverts("EnergyMarketReadingNotAnchored") as caught:
        chain.transact(market.functions.pinBoundary(elsewhere.evidence(batch, 0)))
    assert caught.value.args_decoded == (PV_ALICE, 1, batch.batch_id)
    chain.transact(market.functions.pinBoundary(here.evidence(batch, 0)))
    assert boundary_of(chain, market, PV_ALICE, start)[3] is True


class TestBoundaryEvidence:
    """Boundary evidence that must not be accepted, on the `delivery` fixture's readings."""

    def test_settle_reverts_if_boundary_reading_is_outside_the_window(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        # The seller's reading before the slot, offered as its start boundary reading.
        evidence[0] = swap_reading(
            evidence[0], delivery.batch.anchored(delivery.seller.readings[0])
        )

        with reverts("EnergyMarketReadingOutsideBoundary") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, delivery.start, delivery.start - 600)

    def test_settle_reverts_if_previous_reading_is_of_another_meter(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        buyer_before = delivery.buyer.readings[0]
        evidence[0] = swap_previous(evidence[0], delivery.batch.anchored(buyer_before))

        with reverts("EnergyMarketInvalidPreviousReading") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, 1, 0, buyer_before.timestamp)

    def test_settle_reverts_if_previous_reading_is_not_seq_minus_one(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        # The end boundary reading (seq 2) with seq 0 as its "previous": both anchored, both before
        # the boundary, but seq 1 lies between them.
        seq0 = delivery.seller.readings[0]
        evidence[1] = swap_previous(evidence[1], delivery.batch.anchored(seq0))

        with reverts("EnergyMarketInvalidPreviousReading") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, 2, 0, seq0.timestamp)

    def test_pin_boundary_reverts_if_time_is_not_a_slot_boundary(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        _, boundary, previous = delivery.seller.evidence(delivery.batch, 0)

        with reverts("EnergyMarketUnalignedTime") as caught:
            chain.transact(market.functions.pinBoundary((delivery.start + 60, boundary, previous)))
        assert caught.value.args_decoded == (delivery.start + 60, SLOT)

    def test_settle_reverts_if_boundary_reading_is_not_in_the_batch(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        anchored = delivery.seller.at(0)
        forged = dataclasses.replace(anchored, export_wh=anchored.export_wh - 1_000)
        # The forged reading's fields with the anchored reading's batch and (valid) proof.
        _, signed_hash, signature_hash, batch_id, proof = delivery.batch.anchored(anchored)
        evidence[0] = swap_reading(
            evidence[0], (reading_fields(forged), signed_hash, signature_hash, batch_id, proof)
        )

        with reverts("EnergyMarketReadingNotAnchored") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, 1, delivery.batch.batch_id)

    @pytest.mark.parametrize("field", ["meter", "seq", "timestamp", "import", "export", "status"])
    def test_settle_reverts_if_any_field_of_a_reading_is_tampered_with(
        self, chain: Chain, market: Contract, delivery: Delivery, field: str
    ) -> None:
        evidence = delivery.evidence()
        time, (fields, signed_hash, signature_hash, batch_id, proof), previous = evidence[3]
        index = ["meter", "seq", "timestamp", "import", "export", "status"].index(field)
        tampered = list(fields)
        tampered[index] = HOME_CAROL if field == "meter" else tampered[index] + 1
        evidence[3] = (
            time,
            (tuple(tampered), signed_hash, signature_hash, batch_id, proof),
            previous,
        )

        with reverts("EnergyMarketReadingNotAnchored") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (tampered[0], tampered[1], batch_id)

    def test_settle_reverts_if_previous_reading_is_not_anchored(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        before = delivery.seller.readings[0]
        (fields, signed_hash, signature_hash, batch_id, proof) = delivery.batch.anchored(before)
        tampered = fields[:4] + (fields[4] + 1,) + fields[5:]
        not_anchored = (tampered, signed_hash, signature_hash, batch_id, proof)
        evidence[0] = swap_previous(evidence[0], not_anchored)

        with reverts("EnergyMarketReadingNotAnchored") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, 0, delivery.batch.batch_id)

    def test_an_inner_node_cannot_pass_as_a_reading(
        self, chain: Chain, deployment: Deployment, market: Contract, delivery: Delivery
    ) -> None:
        ledger = deployment.reading_ledger
        target = delivery.seller.at(0)
        index = delivery.batch.readings.index(target)
        proof = delivery.batch.tree.proof(index)
        inner = hash_pair(market_leaf(target), proof[0])
        # The ledger verifies hashes: an inner node with the rest of the proof passes there...
        assert chain.call(ledger.functions.verifyReading(delivery.batch.batch_id, inner, proof[1:]))
        # ...but the market takes a reading's fields and hashes them into a leaf itself: the reading
        # with that shortened proof does not verify.
        evidence = delivery.evidence()
        _, signed_hash, signature_hash, batch_id, _ = delivery.batch.anchored(target)
        shortened = (reading_fields(target), signed_hash, signature_hash, batch_id, proof[1:])
        evidence[0] = swap_reading(evidence[0], shortened)

        with reverts("EnergyMarketReadingNotAnchored"):
            settle(chain, market, delivery.trade_id, evidence)

    def test_settle_reverts_if_the_reading_is_in_another_batch(
        self, chain: Chain, deployment: Deployment, market: Contract, delivery: Delivery
    ) -> None:
        other = anchor_readings(chain, deployment, [reading(PV_DAVE, 0, delivery.start, 0, 0)])
        evidence = delivery.evidence()
        fields, signed_hash, signature_hash, _, proof = delivery.batch.anchored(
            delivery.seller.at(0)
        )
        evidence[0] = swap_reading(
            evidence[0], (fields, signed_hash, signature_hash, other.batch_id, proof)
        )

        with reverts("EnergyMarketReadingNotAnchored") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, 1, other.batch_id)

    def test_settle_reverts_if_the_batch_is_not_anchored(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        fields, signed_hash, signature_hash, _, proof = delivery.batch.anchored(
            delivery.seller.at(0)
        )
        evidence[0] = swap_reading(evidence[0], (fields, signed_hash, signature_hash, 7, proof))

        with reverts("ReadingLedgerUnknownBatch") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (7,)

    def test_a_pinned_boundary_ignores_later_evidence(
        self, chain: Chain, deployment: Deployment, market: Contract, delivery: Delivery
    ) -> None:
        chain.transact(market.functions.pinBoundary(delivery.seller.evidence(delivery.batch, 0)))
        # A conflicting version of the same boundary reading (same meter and seq, 2,000 Wh more
        # export, so 2,000 Wh less in the slot), anchored later: it verifies, but the boundary was
        # pinned first.
        original = delivery.seller.at(0)
        conflicting = dataclasses.replace(original, export_wh=original.export_wh + 2_000)
        later = anchor_readings(chain, deployment, [delivery.seller.readings[0], conflicting])
        evidence = boundary_evidence(
            delivery.start, later, conflicting, delivery.seller.readings[0]
        )

        receipt = chain.transact(market.functions.pinBoundary(evidence))
        settle(chain, market, delivery.trade_id, [evidence, *delivery.evidence()[1:]])

        assert events(market.events.BoundaryPinned(), receipt) == []
        assert boundary_of(chain, market, PV_ALICE, delivery.start) == (
            original.seq,
            original.import_wh,
            original.export_wh,
            True,
        )
        assert trade_of(chain, market, delivery.trade_id)["deliveredWh"] == 3_000
