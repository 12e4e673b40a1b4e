"""Gas snapshot: gas used by the state-changing calls, compared with `snapshots/gas.json`.

A change that makes registering, rotating, revoking, anchoring, trading, settling, publishing
or assigning a tariff, anchoring bills or a complaint's step dearer (or cheaper) fails here
and, once accepted with `UPDATE_GAS_SNAPSHOT=1`, shows in the snapshot file's diff. Every input
is a constant (no block times), because calldata gas depends on the argument bytes:
- the market's slot is in 2100 and the chain's clock is moved past it (`evm_increaseTime`)
  rather than the times moved to the clock; the measurement runs on a chain snapshot that is
  reverted afterwards, so the session's clock and accounts are as they were;
- the contracts are deployed by a deployer of their own, fresh in every run, so their addresses
  are the same every time; the EIP-712 domain holds the market's address, and with it fixed (and
  the nonces and deadlines constant) the RFC 6979 signatures are the same bytes every run;
- the readings batch has constant contents, so the Merkle proofs are the same bytes every run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.contract.contract import ContractFunction

from ledger.anchoring.merkle import MerkleTree, keccak256
from ledger.chain.client import Chain, connect
from ledger.chain.compiler import PROJECT_ROOT
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.complaints.signing import open_typed_data, rate_typed_data, reopen_typed_data
from ledger.market.orders import (
    MarketDomain,
    OfferTerms,
    PermitSignature,
    offer_typed_data,
    permit_typed_data,
    read_eip712_domain,
    sign_typed_data,
    take_typed_data,
)
from ledger.meters.keys import KeyAlgorithm, encode_public_key
from ledger.readings.fraud_proof import BadReadingClaim
from ledger.readings.native import Reading, anchored_leaf, sign_reading
from tests.fixtures.chain import advance_time, latest_time

SNAPSHOT = PROJECT_ROOT / "snapshots" / "gas.json"
METER = b"METER-GAS-0001".ljust(32, b"\x00")
P256 = 0
FIRST_KEY = b"\x04" + keccak(b"first x") + keccak(b"first y")
SECOND_KEY = b"\x04" + keccak(b"second x") + keccak(b"second y")
# Fixed times: 2023-11-14 for the first key, 2096 for the rotation (always in the future).
FIRST_VALID_FROM = 1_700_000_000
ROTATION_VALID_FROM = 4_000_000_000

# Deploys the measured contracts: fresh in every run, so they always get the same addresses.
DEPLOYER = Account.from_key(keccak(text="energy ledger gas snapshot deployer"))
# The market: one slot from 2100-01-01T00:00Z (a multiple of the 3,600 s slot), far enough ahead
# that offers made now have not expired; the signatures' deadline is the slot's start.
SLOT = 3_600
SETTLEMENT_WINDOW = 7 * 86_400
SLOT_START = 4_102_444_800
OFFER_EXPIRY = SLOT_START - 60
DEADLINE = SLOT_START
SELLER_METER = b"PV-GAS-0001".ljust(32, b"\x00")
BUYER_METER = b"HOME-GAS-0001".ljust(32, b"\x00")
FILLER_METER = b"FILLER-GAS-0001".ljust(32, b"\x00")
OFFER = OfferTerms(SELLER_METER, 6_000, 250_000, SLOT_START, OFFER_EXPIRY)  # 0.25 per kWh
TAKE_WH = 2_000  # three takes of the offer: settled with proofs, settled pinned, refunded
BUDGET = 2_000_000  # the buyer's units, all of them permitted to the market
BATCH_SIZE = 1_000  # readings per anchored batch, as the anchoring target assumes
# Bills: a tariff version's hash, and a run of 1,000 bills (the gas-per-bill target's size) for
# November 2023 (UTC), long over.
GAS_TARIFF = keccak(text="gas snapshot tariff")
BILLS_PER_RUN = 1_000
BILLING_PERIOD = (1_698_796_800, 1_701_388_800)
# Complaints: constant hashes and handler, so calldata (and gas) is the same every run.
COMPLAINT_SUBJECT = keccak(text="gas snapshot bill line")
COMPLAINT_TEXT = keccak(text="gas snapshot complaint text")
HANDLER = b"HANDLER-GAS".ljust(32, b"\x00")
# Fraud proofs: one meter per curve with a constant key, and a forged reading of each signed with
# another constant key (RFC 6979 signatures: the same bytes every run), each in a 1,000-reading
# batch of its own (a proof of realistic depth).
FRAUD_METERS = {
    KeyAlgorithm.P256: b"FRAUD-P256-GAS".ljust(32, b"\x00"),
    KeyAlgorithm.SECP256K1: b"FRAUD-K1-GAS".ljust(32, b"\x00"),
}


def measure(
    chain: Chain, data_dir: Path, seller: LocalAccount, buyer: LocalAccount
) -> dict[str, int]:
    """Gas used by one call of each measured function, on a fresh deployment by DEPLOYER."""
    with reverted_afterwards(chain):
        deployer_chain = fund_deployer(chain)
        deployment = ensure_deployed(deployer_chain, data_dir)
        return _measure(deployer_chain, deployment, seller, buyer)


def _measure(
    chain: Chain, deployment: Deployment, seller: LocalAccount, buyer: LocalAccount
) -> dict[str, int]:
    registry = deployment.meter_registry
    ledger = deployment.reading_ledger
    token = deployment.settlement_token
    market = deployment.energy_market
    measured: dict[str, int] = {}

    def run(name: str | None, call: ContractFunction, sender: LocalAccount | None = None) -> None:
        receipt = chain.transact(call, sender=sender)
        if name is not None:
            measured[name] = int(receipt["gasUsed"])

    run(
        "MeterRegistry.registerMeter",
        registry.functions.registerMeter(METER, seller.address, P256, FIRST_KEY, FIRST_VALID_FROM),
    )
    run(
        "MeterRegistry.rotateKey",
        registry.functions.rotateKey(METER, P256, SECOND_KEY, ROTATION_VALID_FROM),
    )
    run("MeterRegistry.revokeKey", registry.functions.revokeKey(METER))
    # The first batch also turns the last-batch-id slot from zero to non-zero; every later batch
    # is the steady state that the gas-per-reading target is about.
    run(
        "ReadingLedger.anchor (first batch)",
        ledger.functions.anchor(
            1, keccak(text="batch 1"), 96, FIRST_VALID_FROM, FIRST_VALID_FROM + 86_399
        ),
    )
    run(
        "ReadingLedger.anchor",
        ledger.functions.anchor(
            2, keccak(text="batch 2"), 1000, FIRST_VALID_FROM + 86_400, FIRST_VALID_FROM + 172_799
        ),
    )

    # Bills: a tariff published and assigned (from 2096, ahead of any clock), one issuing run of
    # 1,000 bills over a past month and the two batches above. Before the market moves the clock.
    bills = deployment.bill_registry
    run(
        "BillRegistry.publishTariff",
        bills.functions.publishTariff(GAS_TARIFF, ROTATION_VALID_FROM),
    )
    run(
        "BillRegistry.assignTariff",
        bills.functions.assignTariff(buyer.address, GAS_TARIFF, ROTATION_VALID_FROM),
    )
    run(
        "BillRegistry.anchorBills",
        bills.functions.anchorBills(
            1, keccak(text="bills of run 1"), BILLS_PER_RUN, *BILLING_PERIOD, 1, 2
        ),
    )

    _measure_complaints(chain, deployment, buyer, run)

    # The market: alice offers, bob takes three times, by signature first.
    for meter, owner in ((SELLER_METER, seller), (BUYER_METER, buyer)):
        run(None, registry.functions.registerMeter(meter, owner.address, P256, FIRST_KEY, 0))
    run(None, token.functions.mint(buyer.address, BUDGET))
    domain = MarketDomain("EnergyMarket", "1", chain.chain_id, market.address)
    offer_signature = sign_typed_data(
        seller.key, offer_typed_data(domain, OFFER, seller.address, 0, DEADLINE)
    )
    run(
        "EnergyMarket.createOfferBySig",
        market.functions.createOfferBySig(
            OFFER.as_tuple(), seller.address, DEADLINE, offer_signature
        ),
    )
    # The first take carries the buyer's permit for the whole budget; the second uses what is
    # left of that allowance.
    permit = permit_typed_data(
        read_eip712_domain(chain, token), buyer.address, market.address, BUDGET, 0, DEADLINE
    )
    permit_signature = PermitSignature(BUDGET, DEADLINE, sign_typed_data(buyer.key, permit))
    for nonce, name in enumerate(
        ("EnergyMarket.takeOfferBySigWithPermit", "EnergyMarket.takeOfferBySig")
    ):
        take_signature = sign_typed_data(
            buyer.key,
            take_typed_data(domain, 1, BUYER_METER, TAKE_WH, buyer.address, nonce, DEADLINE),
        )
        args = (1, BUYER_METER, TAKE_WH, buyer.address, DEADLINE, take_signature)
        if nonce == 0:
            call = market.functions.takeOfferBySigWithPermit(*args, permit_signature.as_tuple())
        else:
            call = market.functions.takeOfferBySig(*args)
        run(name, call)
    run(None, market.functions.takeOffer(1, BUYER_METER, TAKE_WH), sender=buyer)

    readings, tree = slot_batch()
    run(None, ledger.functions.anchor(3, tree.root, len(readings), *time_range(readings)))
    # Past the slot, and so past batch 3's challenge period too (anchored before the slot).
    advance_time(chain, SLOT_START + SLOT + 60 - latest_time(chain))
    run(
        "EnergyMarket.settle (4 boundaries with proofs)",
        market.functions.settle(1, slot_evidence(readings, tree)),
    )
    run("EnergyMarket.settle (boundaries already pinned)", market.functions.settle(2, []))
    advance_time(chain, SLOT_START + SLOT + SETTLEMENT_WINDOW - latest_time(chain))
    run("EnergyMarket.refund", market.functions.refund(3))

    # Fraud proofs: P-256 runs OpenZeppelin's Solidity verifier (no RIP-7212 precompile on
    # Ganache's shanghai), secp256k1 the ecrecover precompile (twice at most: no recovery id).
    for batch_id, (algorithm, label) in enumerate(
        ((KeyAlgorithm.P256, "P-256"), (KeyAlgorithm.SECP256K1, "secp256k1")), start=4
    ):
        meter = FRAUD_METERS[algorithm]
        public = encode_public_key(constant_key(algorithm, "meter").public_key())
        run(
            None, registry.functions.registerMeter(meter, seller.address, int(algorithm), public, 0)
        )
        claim = forged_claim(batch_id, algorithm)
        run(None, ledger.functions.anchor(batch_id, claim_root(claim), BATCH_SIZE, 0, 1))
        run(
            f"ReadingLedger.proveBadReading ({label}, 1,000-reading batch)",
            ledger.functions.proveBadReading(*claim.arguments()),
        )
    return measured


def constant_key(algorithm: KeyAlgorithm, name: str) -> ec.EllipticCurvePrivateKey:
    curve = ec.SECP256R1() if algorithm is KeyAlgorithm.P256 else ec.SECP256K1()
    secret = int.from_bytes(keccak(text=f"gas snapshot {algorithm.label} {name}"), "big") % 2**250
    return ec.derive_private_key(secret, curve)


def forged_claim(batch_id: int, algorithm: KeyAlgorithm) -> BadReadingClaim:
    """A reading of the fraud meter signed with a key it never had, first of a 1,000-reading
    batch (the rest filler), as `proveBadReading` takes it."""
    forged = gas_reading(FRAUD_METERS[algorithm], 1, FIRST_VALID_FROM, 1, 1)
    signature = sign_reading(constant_key(algorithm, "forger"), forged)
    leaves = [anchored_leaf(forged.encode(), forged.encode(), signature)]
    leaves += [keccak(text=f"filler {i}") for i in range(BATCH_SIZE - 1)]
    tree = MerkleTree(leaves)
    return BadReadingClaim(batch_id, forged, forged.encode(), signature, tuple(tree.proof(0)))


def claim_root(claim: BadReadingClaim) -> bytes:
    node = claim.leaf
    for sibling in claim.proof:
        node = keccak256(min(node, sibling) + max(node, sibling))
    return node


def _measure_complaints(
    chain: Chain,
    deployment: Deployment,
    customer: LocalAccount,
    run: Callable[[str | None, ContractFunction], None],
) -> None:
    """Complaints: one opened by the customer's signature (relayed, as the gateway does), every
    operator step, then the customer's rating and reopening, both relayed. No step takes a time,
    so the clock the bills left does not change a byte of calldata."""
    complaints = deployment.complaint_registry
    domain = read_eip712_domain(chain, complaints)
    open_signature = sign_typed_data(
        customer.key,
        open_typed_data(
            domain,
            kind=0,
            subject_ref=COMPLAINT_SUBJECT,
            text_hash=COMPLAINT_TEXT,
            customer=customer.address,
            nonce=0,
            deadline=DEADLINE,
        ),
    )
    run(
        "ComplaintRegistry.openBySig",
        complaints.functions.openBySig(
            0, COMPLAINT_SUBJECT, COMPLAINT_TEXT, customer.address, DEADLINE, open_signature
        ),
    )
    run("ComplaintRegistry.respond", complaints.functions.respond(1, COMPLAINT_TEXT))
    run("ComplaintRegistry.assign", complaints.functions.assign(1, HANDLER, COMPLAINT_TEXT))
    run("ComplaintRegistry.plan", complaints.functions.plan(1, COMPLAINT_TEXT))
    run("ComplaintRegistry.resolve", complaints.functions.resolve(1, COMPLAINT_TEXT))
    rate_signature = sign_typed_data(
        customer.key,
        rate_typed_data(
            domain, complaint_id=1, rating=4, customer=customer.address, nonce=1, deadline=DEADLINE
        ),
    )
    run(
        "ComplaintRegistry.rateBySig",
        complaints.functions.rateBySig(1, 4, customer.address, DEADLINE, rate_signature),
    )
    reopen_signature = sign_typed_data(
        customer.key,
        reopen_typed_data(
            domain,
            complaint_id=1,
            text_hash=COMPLAINT_TEXT,
            customer=customer.address,
            nonce=2,
            deadline=DEADLINE,
        ),
    )
    run(
        "ComplaintRegistry.reopenBySig",
        complaints.functions.reopenBySig(
            1, COMPLAINT_TEXT, customer.address, DEADLINE, reopen_signature
        ),
    )


@contextmanager
def reverted_afterwards(chain: Chain) -> Iterator[None]:
    """Reverts the chain (state and clock) to where it was when the block was entered."""
    snapshot = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield
    finally:
        chain.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]


def fund_deployer(chain: Chain) -> Chain:
    """Sends DEPLOYER ether for its deployments; returns the chain with DEPLOYER as operator."""
    w3 = chain.w3
    operator = chain.operator
    transfer = {
        "to": DEPLOYER.address,
        "value": w3.to_wei(10, "ether"),
        "gas": 21_000,
        "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(operator.address, "pending"),
        "chainId": chain.chain_id,
    }
    signed = operator.sign_transaction(transfer)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    assert w3.eth.get_transaction_count(DEPLOYER.address) == 0, "DEPLOYER must be fresh"
    return connect(chain.rpc_url, "0x" + bytes(DEPLOYER.key).hex())


def slot_batch() -> tuple[list[Reading], MerkleTree]:
    """The seller's and the buyer's readings around the slot (before it, a minute after its start,
    a minute after its end), padded with another meter's to BATCH_SIZE readings."""
    readings = []
    for meter, registers in (
        (SELLER_METER, ((1_000, 50_000), (1_010, 50_400), (1_020, 56_400))),
        (BUYER_METER, ((70_000, 10), (70_300, 10), (77_300, 10))),
    ):
        times = (SLOT_START - 600, SLOT_START + 60, SLOT_START + SLOT + 60)
        for seq, (time, (import_wh, export_wh)) in enumerate(zip(times, registers, strict=True)):
            readings.append(gas_reading(meter, seq, time, import_wh, export_wh))
    for seq in range(BATCH_SIZE - len(readings)):
        readings.append(gas_reading(FILLER_METER, seq, SLOT_START + seq, seq, 0))
    return readings, MerkleTree([gas_leaf(r) for r in readings])


def gas_signature(r: Reading) -> bytes:
    """A constant 64-byte stand-in signature (the market never checks signatures)."""
    return keccak256(r.encode()) * 2


def gas_leaf(r: Reading) -> bytes:
    return anchored_leaf(r.encode(), r.encode(), gas_signature(r))


def gas_reading(meter: bytes, seq: int, time: int, import_wh: int, export_wh: int) -> Reading:
    return Reading(
        chain_id=1337,
        meter_id=meter,
        seq=seq,
        timestamp=time,
        import_wh=import_wh,
        export_wh=export_wh,
        status=0,
    )


def time_range(readings: list[Reading]) -> tuple[int, int]:
    times = [r.timestamp for r in readings]
    return min(times), max(times)


def slot_evidence(readings: list[Reading], tree: MerkleTree) -> list[tuple[Any, ...]]:
    """Seller start and end, buyer start and end: each boundary reading with its predecessor."""

    def anchored(index: int) -> tuple[Any, ...]:
        r = readings[index]
        fields = (r.meter_id, r.seq, r.timestamp, r.import_wh, r.export_wh, r.status)
        signed_hash, signature_hash = keccak256(r.encode()), keccak256(gas_signature(r))
        return (fields, signed_hash, signature_hash, 3, tree.proof(index))

    return [
        (SLOT_START + k * SLOT, anchored(first + k + 1), anchored(first + k))
        for first in (0, 3)
        for k in (0, 1)
    ]


def differences(snapshot: dict[str, int], measured: dict[str, int]) -> list[str]:
    lines = []
    for name in sorted(snapshot.keys() | measured.keys()):
        before, after = snapshot.get(name), measured.get(name)
        if before == after:
            continue
        if before is None or after is None:
            lines.append(f"{name}: snapshot {before}, measured {after}")
        else:
            lines.append(f"{name}: snapshot {before}, measured {after} ({after - before:+d})")
    return lines


def write_snapshot(path: Path, measured: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(measured, indent=2, sort_keys=True) + "\n")


def test_anchoring_batches_of_1000_costs_at_most_65_gas_per_reading_on_average(
    chain: Chain, deployment: Deployment
) -> None:
    # Four batches after the first: the anchoring times are packed four to a slot, so one batch
    # in four opens a new slot; the average over four is the steady state. (60 before the
    # challenge period needed each batch's anchoring time on chain.)
    ledger = deployment.reading_ledger
    first_ts = FIRST_VALID_FROM
    used = []
    for batch_id in range(1, 6):
        receipt = chain.transact(
            ledger.functions.anchor(
                batch_id, keccak(batch_id.to_bytes(32, "big")), 1000, first_ts, first_ts + 899
            )
        )
        used.append(int(receipt["gasUsed"]))

    assert sum(used[1:]) <= 65 * 1000 * 4


def test_anchoring_a_run_of_1000_bills_costs_at_most_100_gas_per_bill(
    chain: Chain, deployment: Deployment
) -> None:
    ledger = deployment.reading_ledger
    for batch_id in (1, 2):
        root = keccak(batch_id.to_bytes(32, "big"))
        chain.transact(ledger.functions.anchor(batch_id, root, 1000, *BILLING_PERIOD))
    bills = deployment.bill_registry
    used = []
    # The first run and a later one: neither may cost more (the run counter starts non-zero).
    for run_id in (1, 2):
        root = keccak(text=f"bills of run {run_id}")
        receipt = chain.transact(
            bills.functions.anchorBills(run_id, root, BILLS_PER_RUN, *BILLING_PERIOD, 1, 2)
        )
        used.append(int(receipt["gasUsed"]))

    assert max(used) <= 100 * BILLS_PER_RUN


def test_gas_used_matches_the_committed_snapshot(
    chain: Chain, tmp_path: Path, alice: LocalAccount, bob: LocalAccount
) -> None:
    measured = measure(chain, tmp_path, alice, bob)

    if os.environ.get("UPDATE_GAS_SNAPSHOT") == "1":
        write_snapshot(SNAPSHOT, measured)
        return
    if not SNAPSHOT.exists():
        pytest.fail(f"{SNAPSHOT} is missing: run this test once with UPDATE_GAS_SNAPSHOT=1")
    snapshot = json.loads(SNAPSHOT.read_text())
    changed = differences(snapshot, measured)
    assert not changed, (
        f"gas differs from {SNAPSHOT.relative_to(PROJECT_ROOT)} "
        "(rerun with UPDATE_GAS_SNAPSHOT=1 to accept):\n" + "\n".join(changed)
    )
