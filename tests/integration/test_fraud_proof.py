"""A root anchored over a forged P-256 reading is proven bad on chain by an outsider, and the trade
relying on it cannot be settled and is refunded (issue 13, "Done when").

The operator holds no meter key. It writes a reading of alice's PV meter, signed with a key of its
own, straight into its database (what an operator that made readings up would do), and its real
anchorer anchors it with the genuine readings. Anyone holding the reading, its signature and its
proof (a bundle gives them) proves it bad with `ReadingLedger.proveBadReading`; from then on the
gateway refuses to settle from that batch without sending anything, the contract refuses too, and
the buyer's escrow comes back by `refund` once the settlement window closes. Runs on SQLite and
PostgreSQL (the `store` fixture).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from ledger.anchoring.anchorer import Anchorer, ProofService
from ledger.anchoring.bundle import BundleSelection, export_bundle
from ledger.anchoring.evidence import EvidenceProvenBad, boundary_evidence
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.market.orders import OfferTerms
from ledger.market.service import Market
from ledger.market.views import TradeState
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, encode_public_key, generate_key
from ledger.readings.fraud_proof import (
    BadReadingReason,
    claim_for_reading,
    leaf_commitments,
    prove_bad_reading,
)
from ledger.readings.native import Reading, anchored_leaf, sign_reading
from ledger.store.backends import utc_now_iso
from ledger.store.database import Store
from ledger.store.read_model import ReadModel
from ledger.store.readings import StoredReading
from tests.fixtures.chain import advance_time, latest_time, reverts
from tests.fixtures.gateway import LEDGER_BIN

PV_ALICE = b"PV-ALICE-FRAUD".ljust(32, b"\x00")
HOME_BOB = b"HOME-BOB-FRAUD".ljust(32, b"\x00")
SLOT = 3_600
QUANTITY_WH = 5_000
PRICE = 250_000  # minor units per kWh: escrow 1,250,000
ESCROW = QUANTITY_WH * PRICE // 1000


@pytest.fixture
def anchorer(store: Store, chain: Chain, deployment: Deployment) -> Iterator[Anchorer]:
    started = Anchorer(store, chain, deployment, interval_s=0.05, max_readings=1000)
    yield started
    started.stop()


def register(chain: Chain, deployment: Deployment, meter: bytes, owner: str) -> MeterPrivateKey:
    key = generate_key(KeyAlgorithm.P256)
    public = encode_public_key(key.public_key())
    registry = deployment.meter_registry
    chain.transact(
        registry.functions.registerMeter(meter, owner, int(KeyAlgorithm.P256), public, 0)
    )
    return key


def store_signed(store: Store, reading: Reading, signer: MeterPrivateKey) -> None:
    """Writes a reading signed by `signer` straight into the database, as the gateway would have
    stored it: its version-2 leaf is that of its own bytes and signature."""
    canonical = reading.encode()
    signature = sign_reading(signer, reading)
    row = StoredReading(
        meter_id=reading.meter_id,
        seq=reading.seq,
        timestamp=reading.timestamp,
        import_wh=reading.import_wh,
        export_wh=reading.export_wh,
        status=0,
        canonical=canonical,
        signature=signature,
        key_epoch=0,
        leaf=anchored_leaf(canonical, canonical, signature),
        receipt_id=uuid.uuid4().hex,
        received_at=utc_now_iso(),
    )
    with store.reading_transaction() as writer:
        writer.insert_reading(row)


def around_slot(
    chain: Chain, meter: bytes, start: int, exported: int, imported: int
) -> list[Reading]:
    """Readings before the slot, a minute into it and a minute after it."""
    times = (start - 600, start + 60, start + SLOT + 60)
    registers = ((1_000, 5_000), (1_000, 5_000), (1_000 + imported, 5_000 + exported))
    return [
        reading(chain, meter, seq, t, imp, exp)
        for seq, (t, (imp, exp)) in enumerate(zip(times, registers, strict=True))
    ]


def reading(
    chain: Chain, meter: bytes, seq: int, timestamp: int, import_wh: int, export_wh: int
) -> Reading:
    return Reading(
        chain_id=chain.chain_id,
        meter_id=meter,
        seq=seq,
        timestamp=timestamp,
        import_wh=import_wh,
        export_wh=export_wh,
        status=0,
    )


def forged_trade(
    store: Store,
    chain: Chain,
    deployment: Deployment,
    anchorer: Anchorer,
    alice: LocalAccount,
    bob: LocalAccount,
) -> int:
    """alice sells bob 5 kWh of a slot; she exports nothing, but the operator anchors, beside
    the genuine readings, a reading of her meter it signed itself saying 6 kWh. Returns the
    slot's start; the forged reading is PV-ALICE-FRAUD's seq 2."""
    market = deployment.energy_market
    token = deployment.settlement_token
    alice_key = register(chain, deployment, PV_ALICE, alice.address)
    bob_key = register(chain, deployment, HOME_BOB, bob.address)
    operators_key = generate_key(KeyAlgorithm.P256)  # not alice's: the operator has no meter key
    chain.transact(token.functions.mint(bob.address, ESCROW))
    chain.transact(token.functions.approve(market.address, ESCROW), sender=bob)
    start = (latest_time(chain) // SLOT + 2) * SLOT
    terms = OfferTerms(PV_ALICE, QUANTITY_WH, PRICE, start, start - 60)
    chain.transact(market.functions.createOffer(terms.as_tuple()), sender=alice)
    chain.transact(market.functions.takeOffer(1, HOME_BOB, QUANTITY_WH), sender=bob)

    # alice exported nothing; the operator makes up a reading at the slot's end that says 6 kWh.
    alice_readings = around_slot(chain, PV_ALICE, start, exported=0, imported=0)
    forged = reading(chain, PV_ALICE, 2, start + SLOT + 60, 1_000, 11_000)
    for genuine in alice_readings[:2]:
        store_signed(store, genuine, alice_key)
    store_signed(store, forged, operators_key)
    for genuine in around_slot(chain, HOME_BOB, start, exported=0, imported=6_000):
        store_signed(store, genuine, bob_key)
    advance_time(chain, start + SLOT + 120 - latest_time(chain))
    anchorer.run_once()

    return start


def test_a_forged_p256_reading_anchored_is_proven_bad_and_its_trade_refunded(
    store: Store,
    chain: Chain,
    deployment: Deployment,
    anchorer: Anchorer,
    alice: LocalAccount,
    bob: LocalAccount,
    stranger: LocalAccount,
) -> None:
    market = deployment.energy_market
    token = deployment.settlement_token
    start = forged_trade(store, chain, deployment, anchorer, alice, bob)

    # An outsider proves it bad from the reading, its signature and its proof.
    stored = store.reading(PV_ALICE, 2)
    assert stored is not None and stored.batch_id is not None
    proof = ProofService(store).proof(stored)
    assert proof is not None
    root = bytes(chain.call(deployment.reading_ledger.functions.batchRoot(stored.batch_id)))
    claim = claim_for_reading(
        batch_id=stored.batch_id,
        canonical=stored.canonical,
        signature=stored.signature,
        source=stored.source,
        raw=stored.raw,
        proof=proof.proof,
        root=root,
    )
    outcome = prove_bad_reading(chain, deployment.reading_ledger, claim, sender=stranger)
    assert outcome.reason is BadReadingReason.BAD_SIGNATURE
    advance_time(chain, int(chain.call(deployment.reading_ledger.functions.challengePeriod())))

    # The gateway refuses to settle from the bad batch and sends nothing ...
    service = Market(chain, deployment, store, ProofService(store), read_model=ReadModel(store))
    block = chain.w3.eth.block_number
    with pytest.raises(EvidenceProvenBad):
        service.settle(1)
    assert chain.w3.eth.block_number == block
    # ... and the market refuses the same evidence sent by anyone.
    evidence = [
        boundary_evidence(
            store, ProofService(store), meter, time, window_s=900, commitments=leaf_commitments
        )
        for meter in (PV_ALICE, HOME_BOB)
        for time in (start, start + SLOT)
    ]
    with reverts("EnergyMarketBatchProvenBad") as caught:
        chain.transact(market.functions.settle(1, evidence), sender=stranger)
    assert caught.value.args_decoded == (stored.batch_id,)

    # Once the settlement window closes, the buyer's escrow comes back whole.
    deadline = start + SLOT + int(chain.call(market.functions.settlementWindow()))
    advance_time(chain, deadline - latest_time(chain))
    refunded = service.refund(1)

    assert refunded.refunded == ESCROW
    assert service.trade(1).state is TradeState.REFUNDED
    assert int(chain.call(token.functions.balanceOf(bob.address))) == ESCROW
    assert int(chain.call(token.functions.balanceOf(alice.address))) == 0


def test_prove_bad_reading_command_proves_a_bundled_reading_with_the_provers_key(
    store: Store,
    chain: Chain,
    deployment: Deployment,
    anchorer: Anchorer,
    alice: LocalAccount,
    bob: LocalAccount,
    stranger: LocalAccount,
    tmp_path: Path,
) -> None:
    forged_trade(store, chain, deployment, anchorer, alice, bob)
    stored = store.reading(PV_ALICE, 2)
    assert stored is not None and stored.batch_id is not None
    bundle = tmp_path / "bundle.jsonl.gz"
    export_bundle(store, BundleSelection.parse_batches(str(stored.batch_id)), bundle)
    key_file = tmp_path / "prover.key"
    key_file.write_text("0x" + bytes(stranger.key).hex())
    ledger = deployment.reading_ledger
    command = [
        str(LEDGER_BIN),
        "prove-bad-reading",
        "--batch", str(stored.batch_id),
        "--meter", "PV-ALICE-FRAUD",
        "--seq", "2",
        "--rpc", chain.rpc_url,
        "--bundle", str(bundle),
        "--key-file", str(key_file),
        "--reading-ledger", ledger.address,
    ]  # fmt: skip
    env = {**os.environ, "LEDGER_DATA_DIR": str(tmp_path / "data")}

    proved = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert proved.returncode == 0, proved.stderr
    assert json.loads(proved.stdout)["reason"] == "bad_signature"
    assert chain.call(ledger.functions.batchStatus(stored.batch_id))[2] is True
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert "[reading_ledger_batch_already_proven_bad]" in again.stderr
