"""ReadingLedger fraud proofs: anyone proves an anchored reading's signature bad on chain and its
batch is marked bad; a genuine reading, or one sent with another signature than the anchored one,
proves nothing. Plus the challenge period and batch status that settlement reads.

Readings are real: signed with P-256, secp256k1 and Ed25519 keys registered in the MeterRegistry,
their version-2 leaves (`ledger.readings.native.anchored_leaf`) anchored straight by the operator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from ledger.anchoring.merkle import MerkleTree, keccak256
from ledger.chain.client import Chain
from ledger.chain.compiler import ContractArtifact
from ledger.chain.deployment import Deployment
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, encode_public_key, generate_key
from ledger.readings.fraud_proof import (
    BadReadingClaim,
    BadReadingReason,
    prove_bad_reading,
)
from ledger.readings.native import Reading, anchored_leaf, sign_reading
from tests.fixtures.chain import advance_time, latest_time, reverts

pytestmark = pytest.mark.chain

METER = b"MTR-FRAUD".ljust(32, b"\x00")
KEY_FROM = 1_700_000_000
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def register(
    chain: Chain, deployment: Deployment, algorithm: KeyAlgorithm, owner: str
) -> MeterPrivateKey:
    key = generate_key(algorithm)
    public = encode_public_key(key.public_key())
    chain.transact(
        deployment.meter_registry.functions.registerMeter(
            METER, owner, int(algorithm), public, KEY_FROM
        )
    )
    return key


def reading(seq: int, *, timestamp: int | None = None, export_wh: int = 40) -> Reading:
    return Reading(
        chain_id=1337,
        meter_id=METER,
        seq=seq,
        timestamp=KEY_FROM + 900 * seq if timestamp is None else timestamp,
        import_wh=10_000 + seq,
        export_wh=export_wh,
        status=0,
    )


@dataclass
class Signed:
    reading: Reading
    signed_bytes: bytes
    signature: bytes

    @property
    def leaf(self) -> bytes:
        return anchored_leaf(self.reading.encode(), self.signed_bytes, self.signature)


def native(key: MeterPrivateKey, r: Reading) -> Signed:
    return Signed(r, r.encode(), sign_reading(key, r))


def anchor(chain: Chain, deployment: Deployment, signed: list[Signed]) -> tuple[int, MerkleTree]:
    ledger = deployment.reading_ledger
    batch_id = int(chain.call(ledger.functions.lastBatchId())) + 1
    tree = MerkleTree([s.leaf for s in signed])
    stamps = [s.reading.timestamp for s in signed]
    chain.transact(
        ledger.functions.anchor(batch_id, tree.root, len(signed), min(stamps), max(stamps))
    )
    return batch_id, tree


def claim(batch_id: int, tree: MerkleTree, signed: Signed, index: int) -> BadReadingClaim:
    return BadReadingClaim(
        batch_id, signed.reading, signed.signed_bytes, signed.signature, tuple(tree.proof(index))
    )


def proven_bad(chain: Chain, deployment: Deployment, batch_id: int) -> bool:
    return bool(chain.call(deployment.reading_ledger.functions.batchStatus(batch_id))[2])


def forged_batch(
    chain: Chain, deployment: Deployment, algorithm: KeyAlgorithm, owner: str
) -> tuple[int, MerkleTree, list[Signed]]:
    """A batch of two genuine readings and, between them, one signed with a key the meter never
    had (what an operator without the meter's key can make)."""
    key = register(chain, deployment, algorithm, owner)
    forger = generate_key(algorithm)
    signed = [native(key, reading(1)), native(forger, reading(2)), native(key, reading(3))]
    batch_id, tree = anchor(chain, deployment, signed)
    return batch_id, tree, signed


# proving a forged reading


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.P256, KeyAlgorithm.SECP256K1])
def test_a_forged_reading_proves_its_batch_bad(
    chain: Chain,
    deployment: Deployment,
    alice: LocalAccount,
    stranger: LocalAccount,
    algorithm: KeyAlgorithm,
) -> None:
    batch_id, tree, signed = forged_batch(chain, deployment, algorithm, alice.address)

    outcome = prove_bad_reading(
        chain, deployment.reading_ledger, claim(batch_id, tree, signed[1], 1), sender=stranger
    )

    assert outcome.reason is BadReadingReason.BAD_SIGNATURE
    assert proven_bad(chain, deployment, batch_id)


def test_a_fraud_proof_emits_reading_batch_proven_bad_naming_the_prover(
    chain: Chain, deployment: Deployment, alice: LocalAccount, stranger: LocalAccount
) -> None:
    batch_id, tree, signed = forged_batch(chain, deployment, KeyAlgorithm.P256, alice.address)
    ledger = deployment.reading_ledger

    receipt = chain.transact(
        ledger.functions.proveBadReading(*claim(batch_id, tree, signed[1], 1).arguments()),
        sender=stranger,
    )

    (event,) = ledger.events.ReadingBatchProvenBad().process_receipt(receipt, errors=DISCARD)
    assert dict(event["args"]) == {
        "batchId": batch_id,
        "meterId": METER,
        "seq": 2,
        "prover": stranger.address,
        "reason": int(BadReadingReason.BAD_SIGNATURE),
    }


def test_a_reading_timestamped_before_the_meters_first_key_proves_its_batch_bad(
    chain: Chain, deployment: Deployment, alice: LocalAccount, stranger: LocalAccount
) -> None:
    key = register(chain, deployment, KeyAlgorithm.P256, alice.address)
    early = native(key, reading(1, timestamp=KEY_FROM - 1))
    batch_id, tree = anchor(chain, deployment, [early])

    outcome = prove_bad_reading(
        chain, deployment.reading_ledger, claim(batch_id, tree, early, 0), sender=stranger
    )

    assert outcome.reason is BadReadingReason.NO_KEY_AT_TIME


def test_a_reading_of_an_unregistered_meter_proves_its_batch_bad(
    chain: Chain, deployment: Deployment, stranger: LocalAccount
) -> None:
    nobody = native(generate_key(KeyAlgorithm.P256), reading(1))
    batch_id, tree = anchor(chain, deployment, [nobody])

    outcome = prove_bad_reading(
        chain, deployment.reading_ledger, claim(batch_id, tree, nobody, 0), sender=stranger
    )

    assert outcome.reason is BadReadingReason.NO_KEY_AT_TIME


def test_another_readings_genuine_signature_anchored_for_these_fields_proves_its_batch_bad(
    chain: Chain, deployment: Deployment, alice: LocalAccount, stranger: LocalAccount
) -> None:
    key = register(chain, deployment, KeyAlgorithm.P256, alice.address)
    genuine = native(key, reading(1, export_wh=40))
    # The operator anchors inflated fields with the genuine reading's signed bytes and signature.
    inflated = Signed(
        dataclasses.replace(genuine.reading, export_wh=40_000),
        genuine.signed_bytes,
        genuine.signature,
    )
    batch_id, tree = anchor(chain, deployment, [inflated])

    outcome = prove_bad_reading(
        chain, deployment.reading_ledger, claim(batch_id, tree, inflated, 0), sender=stranger
    )

    assert outcome.reason is BadReadingReason.SIGNED_BYTES_MISMATCH


# refused proofs


def test_a_genuine_reading_with_a_garbage_signature_is_refused_and_marks_nothing(
    chain: Chain, deployment: Deployment, alice: LocalAccount, stranger: LocalAccount
) -> None:
    key = register(chain, deployment, KeyAlgorithm.P256, alice.address)
    genuine = native(key, reading(1))
    batch_id, tree = anchor(chain, deployment, [genuine])
    garbage = dataclasses.replace(genuine, signature=b"\x01" * 64)

    with reverts("ReadingLedgerReadingNotInBatch") as caught:
        prove_bad_reading(
            chain, deployment.reading_ledger, claim(batch_id, tree, garbage, 0), sender=stranger
        )
    assert caught.value.args_decoded == (batch_id, METER, 1)
    assert not proven_bad(chain, deployment, batch_id)


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.P256, KeyAlgorithm.SECP256K1])
def test_a_genuine_reading_is_refused_as_valid(
    chain: Chain,
    deployment: Deployment,
    alice: LocalAccount,
    stranger: LocalAccount,
    algorithm: KeyAlgorithm,
) -> None:
    batch_id, tree, signed = forged_batch(chain, deployment, algorithm, alice.address)

    with reverts("ReadingLedgerReadingValid") as caught:
        prove_bad_reading(
            chain, deployment.reading_ledger, claim(batch_id, tree, signed[2], 2), sender=stranger
        )
    assert caught.value.args_decoded == (batch_id, METER, 3)
    assert not proven_bad(chain, deployment, batch_id)


def test_a_genuine_p256_reading_signed_with_a_high_s_is_refused_as_valid(
    chain: Chain, deployment: Deployment, alice: LocalAccount, stranger: LocalAccount
) -> None:
    # Meters need not normalise s: (r, n - s) is as valid as (r, s), on chain as at the gateway.
    key = register(chain, deployment, KeyAlgorithm.P256, alice.address)
    signed = native(key, reading(1))
    r, s = signed.signature[:32], int.from_bytes(signed.signature[32:], "big")
    if s <= P256_N // 2:
        s = P256_N - s
    high = dataclasses.replace(signed, signature=r + s.to_bytes(32, "big"))
    batch_id, tree = anchor(chain, deployment, [high])

    with reverts("ReadingLedgerReadingValid"):
        prove_bad_reading(
            chain, deployment.reading_ledger, claim(batch_id, tree, high, 0), sender=stranger
        )


def test_a_proof_for_an_unknown_batch_is_refused(
    chain: Chain, deployment: Deployment, alice: LocalAccount, stranger: LocalAccount
) -> None:
    batch_id, tree, signed = forged_batch(chain, deployment, KeyAlgorithm.P256, alice.address)
    unknown = dataclasses.replace(claim(batch_id, tree, signed[1], 1), batch_id=batch_id + 1)

    with reverts("ReadingLedgerUnknownBatch") as caught:
        prove_bad_reading(chain, deployment.reading_ledger, unknown, sender=stranger)
    assert caught.value.args_decoded == (batch_id + 1,)


def test_a_proof_with_a_wrong_merkle_proof_is_refused(
    chain: Chain, deployment: Deployment, alice: LocalAccount, stranger: LocalAccount
) -> None:
    batch_id, tree, signed = forged_batch(chain, deployment, KeyAlgorithm.P256, alice.address)
    wrong = dataclasses.replace(claim(batch_id, tree, signed[1], 1), proof=tuple(tree.proof(0)))

    with reverts("ReadingLedgerReadingNotInBatch"):
        prove_bad_reading(chain, deployment.reading_ledger, wrong, sender=stranger)
    assert not proven_bad(chain, deployment, batch_id)


def test_a_second_proof_for_a_bad_batch_is_refused(
    chain: Chain, deployment: Deployment, alice: LocalAccount, stranger: LocalAccount
) -> None:
    batch_id, tree, signed = forged_batch(chain, deployment, KeyAlgorithm.P256, alice.address)
    prove_bad_reading(chain, deployment.reading_ledger, claim(batch_id, tree, signed[1], 1))

    with reverts("ReadingLedgerBatchAlreadyProvenBad") as caught:
        prove_bad_reading(
            chain, deployment.reading_ledger, claim(batch_id, tree, signed[1], 1), sender=stranger
        )
    assert caught.value.args_decoded == (batch_id,)


def test_a_reading_under_an_ed25519_key_is_refused_as_not_checkable(
    chain: Chain, deployment: Deployment, alice: LocalAccount, stranger: LocalAccount
) -> None:
    register(chain, deployment, KeyAlgorithm.ED25519, alice.address)
    forged = native(generate_key(KeyAlgorithm.ED25519), reading(1))
    batch_id, tree = anchor(chain, deployment, [forged])

    with reverts("ReadingLedgerKeyNotCheckable") as caught:
        prove_bad_reading(
            chain, deployment.reading_ledger, claim(batch_id, tree, forged, 0), sender=stranger
        )
    assert caught.value.args_decoded == (METER, int(KeyAlgorithm.ED25519))


def test_an_ecdsa_signature_over_sha384_is_refused_as_not_checkable(
    chain: Chain, deployment: Deployment, alice: LocalAccount, stranger: LocalAccount
) -> None:
    register(chain, deployment, KeyAlgorithm.P256, alice.address)
    payload = b'{"FV":"1.0","RD":[]}'
    sha384_form = Signed(reading(1), payload, b"\x02" * 64 + b"SHA384")
    batch_id, tree = anchor(chain, deployment, [sha384_form])

    with reverts("ReadingLedgerSignatureNotCheckable") as caught:
        prove_bad_reading(
            chain, deployment.reading_ledger, claim(batch_id, tree, sha384_form, 0), sender=stranger
        )
    assert caught.value.args_decoded == (METER, 1, 70)


@pytest.mark.parametrize(
    "signature",
    [b"\x02" * 65, b"\x02" * 64 + b"SHA999", b"\x02" * 32],
    ids=["65-bytes", "unknown-digest-name", "32-bytes"],
)
def test_an_ecdsa_signature_in_a_form_no_meter_signs_proves_its_batch_bad(
    chain: Chain,
    deployment: Deployment,
    alice: LocalAccount,
    stranger: LocalAccount,
    signature: bytes,
) -> None:
    # The operator cannot hide a forged reading behind a signature the chain cannot check.
    register(chain, deployment, KeyAlgorithm.P256, alice.address)
    payload = b'{"FV":"1.0","RD":[]}'
    odd_form = Signed(reading(1), payload, signature)
    batch_id, tree = anchor(chain, deployment, [odd_form])

    outcome = prove_bad_reading(
        chain, deployment.reading_ledger, claim(batch_id, tree, odd_form, 0), sender=stranger
    )

    assert outcome.reason is BadReadingReason.MALFORMED_SIGNATURE
    assert deployment.reading_ledger.functions.batchStatus(batch_id).call()[2] is True


# challenge period and batch status


def test_batch_status_gives_the_anchoring_time_and_the_end_of_the_challenge_period(
    chain: Chain, deployment: Deployment, alice: LocalAccount
) -> None:
    batch_id, _, _ = forged_batch(chain, deployment, KeyAlgorithm.P256, alice.address)
    ledger = deployment.reading_ledger
    period = int(chain.call(ledger.functions.challengePeriod()))

    anchored_at, challenge_ends_at, bad = chain.call(ledger.functions.batchStatus(batch_id))

    assert anchored_at == latest_time(chain)
    assert (challenge_ends_at, bad) == (anchored_at + period, False)


def test_every_batch_keeps_its_own_anchoring_time_across_the_packed_groups_of_six(
    chain: Chain, deployment: Deployment
) -> None:
    ledger = deployment.reading_ledger
    first = int(chain.call(ledger.functions.lastBatchId())) + 1
    anchored_at = {}
    for offset in range(14):  # two full groups of six and more, wherever the ids start
        advance_time(chain, 10 + offset)
        batch_id = first + offset
        root = keccak256(batch_id.to_bytes(32, "big"))
        receipt = chain.transact(ledger.functions.anchor(batch_id, root, 1, 0, 0))
        anchored_at[batch_id] = int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])

    statuses = {b: chain.call(ledger.functions.batchStatus(b)) for b in anchored_at}

    assert {b: status[0] for b, status in statuses.items()} == anchored_at
    assert chain.call(ledger.functions.lastBatchId()) == first + 13
    assert len(set(anchored_at.values())) == 14


def test_batch_status_of_an_unknown_batch_reverts(chain: Chain, deployment: Deployment) -> None:
    with reverts("ReadingLedgerUnknownBatch"):
        chain.call(deployment.reading_ledger.functions.batchStatus(1))


def test_the_ledger_names_its_meter_registry(chain: Chain, deployment: Deployment) -> None:
    ledger = deployment.reading_ledger

    assert chain.call(ledger.functions.meterRegistry()) == deployment.meter_registry.address


def test_constructor_reverts_if_the_challenge_period_is_zero(
    chain: Chain, deployment: Deployment, artifacts: dict[str, ContractArtifact]
) -> None:
    artifact = artifacts["ReadingLedger"]
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)

    with reverts("ReadingLedgerInvalidChallengePeriod") as caught:
        chain.transact(
            factory.constructor(chain.operator.address, deployment.meter_registry.address, 0)
        )
    assert caught.value.args_decoded == (0,)
