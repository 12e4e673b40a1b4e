"""Reading ingestion against a real temporary SQLite store and an in-memory key registry: what is
accepted and stored, the checks of format, identity, chain, clock and key, and a chain outage.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import utils

from ledger.meters.keys import (
    KeyAlgorithm,
    MeterPrivateKey,
    generate_key,
)
from ledger.readings.ingest import BatchTooLarge, Ingestor, ReadingNotFound
from ledger.readings.native import anchored_leaf, sign_reading
from ledger.readings.results import Outcome, Rejection, Submission
from ledger.store.database import Store
from tests.fixtures.postgres import store_location
from tests.unit.readings.ingest_support import (
    METER,
    METER_ID,
    NOW,
    FakeRegistry,
    assert_rejected,
    reading,
    submission,
    submit_one,
)

# --- accepted readings and what is stored -----------------------------------------------------


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_a_valid_reading_is_accepted_with_a_receipt(
    ingestor: Ingestor, registry: FakeRegistry, algorithm: KeyAlgorithm
) -> None:
    key = generate_key(algorithm)
    registry.register(METER_ID, key)
    signed = submission(key, reading(1))
    result = submit_one(ingestor, signed)
    assert (result.status, result.code) == (Outcome.ACCEPTED, None)
    assert result.receipt is not None
    assert (result.receipt.meter_id, result.receipt.seq) == (METER, 1)
    assert result.receipt.timestamp == reading(1).timestamp
    canonical = reading(1).encode()
    form = bytes.fromhex(signed.signature.removeprefix("0x"))
    assert result.receipt.leaf == anchored_leaf(canonical, canonical, form)
    assert result.receipt.key_epoch == 0


def test_the_exact_canonical_bytes_and_der_signature_received_are_stored(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    raw = sign_reading(meter_key, reading(1))
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    result = submit_one(ingestor, submission(meter_key, reading(1), signature=der))
    stored = ingestor.reading(METER, 1)
    assert result.receipt is not None
    assert stored.canonical == reading(1).encode()
    assert stored.signature == der
    assert stored.receipt_id == result.receipt.receipt_id
    assert stored.batch_id is None


def test_a_der_signature_is_stored_as_received_with_the_leaf_of_its_r_s_form(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    # The fraud proof on chain reads a signature as r || s: the leaf must commit to that form,
    # or a genuine DER-signed reading could not be told from a forged one there.
    raw = sign_reading(meter_key, reading(1))
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )

    result = submit_one(ingestor, submission(meter_key, reading(1), signature=der))

    canonical = reading(1).encode()
    assert result.receipt is not None
    assert result.receipt.leaf == anchored_leaf(canonical, canonical, raw)


def test_accepted_readings_are_committed_when_submit_returns(
    ingestor: Ingestor, database_url: str, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(1)))
    other = Store(store_location(database_url))  # another connection sees only committed rows
    try:
        count = other.count_readings()
    finally:
        other.close()
    assert count == 1


def test_results_come_one_per_reading_in_request_order(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    items = [
        submission(meter_key, reading(1)),
        Submission(METER, "0xzz", "0x00"),
        submission(meter_key, reading(2)),
    ]
    results = ingestor.submit(items)
    assert [r.index for r in results] == [0, 1, 2]
    assert [r.status for r in results] == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]


def test_rejected_readings_are_not_stored(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    other = generate_key(KeyAlgorithm.P256)
    submit_one(ingestor, submission(other, reading(1)))
    assert store.count_readings(METER_ID) == 0


def test_more_readings_than_max_batch_raise_batch_too_large_and_store_nothing(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    items = [submission(meter_key, reading(seq)) for seq in range(1, 12)]
    with pytest.raises(BatchTooLarge) as caught:
        ingestor.submit(items)
    assert caught.value.code == "batch_too_large"
    assert store.count_readings(METER_ID) == 0


def test_a_reading_that_is_not_stored_raises_reading_not_found(ingestor: Ingestor) -> None:
    with pytest.raises(ReadingNotFound) as caught:
        ingestor.reading(METER, 7)
    assert caught.value.code == "reading_not_found"


# --- format, identity, chain and clock --------------------------------------------------------


def test_canonical_that_is_not_hex_is_malformed_reading(ingestor: Ingestor) -> None:
    result = submit_one(ingestor, Submission(METER, "0xnot-hex", "0x00"))
    assert_rejected(result, Rejection.MALFORMED_READING)


def test_canonical_bytes_of_the_wrong_length_are_malformed_reading(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    good = submission(meter_key, reading(1))
    result = submit_one(ingestor, replace(good, canonical=good.canonical[:-2]))
    assert_rejected(result, Rejection.MALFORMED_READING)


def test_signature_that_is_not_hex_is_malformed_reading(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    good = submission(meter_key, reading(1))
    result = submit_one(ingestor, replace(good, signature="0x12 34"))
    assert_rejected(result, Rejection.MALFORMED_READING)


def test_body_meter_id_other_than_the_readings_is_meter_mismatch(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    result = submit_one(ingestor, submission(meter_key, reading(1), meter_id="MTR-OTHER"))
    assert_rejected(result, Rejection.METER_MISMATCH)
    assert (result.meter_id, result.seq) == (METER, 1)


def test_body_meter_id_that_is_no_valid_id_is_meter_mismatch(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    result = submit_one(ingestor, submission(meter_key, reading(1), meter_id="x" * 40))
    assert_rejected(result, Rejection.METER_MISMATCH)


def test_body_meter_id_in_hex_form_matches_the_serial(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    hex_id = "0x" + METER_ID.hex()
    result = submit_one(ingestor, submission(meter_key, reading(1), meter_id=hex_id))
    assert result.status is Outcome.ACCEPTED


def test_reading_for_another_chain_is_wrong_chain(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    result = submit_one(ingestor, submission(meter_key, reading(1, chain_id=1)))
    assert_rejected(result, Rejection.WRONG_CHAIN)


def test_reading_more_than_the_allowed_skew_ahead_is_clock_skew(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    result = submit_one(ingestor, submission(meter_key, reading(1, timestamp=NOW + 301)))
    assert_rejected(result, Rejection.CLOCK_SKEW)


def test_reading_exactly_at_the_skew_limit_is_accepted(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    result = submit_one(ingestor, submission(meter_key, reading(1, timestamp=NOW + 300)))
    assert result.status is Outcome.ACCEPTED


# --- keys -------------------------------------------------------------------------------------


def test_unregistered_meter_is_unknown_meter(ingestor: Ingestor) -> None:
    key = generate_key(KeyAlgorithm.P256)
    result = submit_one(ingestor, submission(key, reading(1)))
    assert_rejected(result, Rejection.UNKNOWN_METER)


def test_reading_before_the_first_key_is_no_key_at_time(
    ingestor: Ingestor, registry: FakeRegistry
) -> None:
    key = generate_key(KeyAlgorithm.P256)
    registry.register(METER_ID, key, valid_from=NOW - 100)
    result = submit_one(ingestor, submission(key, reading(1, timestamp=NOW - 101)))
    assert_rejected(result, Rejection.NO_KEY_AT_TIME)


def test_reading_at_the_revocation_time_is_key_revoked(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    registry.revoke(METER_ID, 0, at=NOW - 1_000)
    result = submit_one(ingestor, submission(meter_key, reading(1, timestamp=NOW - 1_000)))
    assert_rejected(result, Rejection.KEY_REVOKED)


def test_reading_signed_before_the_revocation_is_accepted(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    registry.revoke(METER_ID, 0, at=NOW - 1_000)
    result = submit_one(ingestor, submission(meter_key, reading(1, timestamp=NOW - 1_001)))
    assert result.status is Outcome.ACCEPTED


def test_signature_by_another_key_is_bad_signature(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    intruder = generate_key(KeyAlgorithm.P256)
    result = submit_one(ingestor, submission(intruder, reading(1)))
    assert_rejected(result, Rejection.BAD_SIGNATURE)


def test_signature_over_other_bytes_is_bad_signature(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    signature = sign_reading(meter_key, reading(2))
    result = submit_one(ingestor, submission(meter_key, reading(1), signature=signature))
    assert_rejected(result, Rejection.BAD_SIGNATURE)


def test_reading_after_a_rotation_verifies_under_the_new_epoch(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    new_key = generate_key(KeyAlgorithm.ED25519)
    registry.rotate(METER_ID, new_key, valid_from=NOW - 2_000)
    result = submit_one(ingestor, submission(new_key, reading(1, timestamp=NOW - 1_500)))
    assert result.receipt is not None and result.receipt.key_epoch == 1


def test_reading_from_before_a_rotation_still_needs_the_old_key(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    new_key = generate_key(KeyAlgorithm.ED25519)
    registry.rotate(METER_ID, new_key, valid_from=NOW - 2_000)
    result = submit_one(ingestor, submission(new_key, reading(1, timestamp=NOW - 2_001)))
    assert_rejected(result, Rejection.BAD_SIGNATURE)


# --- chain outage -----------------------------------------------------------------------------


def test_during_a_chain_outage_readings_verify_against_the_last_known_keys(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    assert submit_one(ingestor, submission(meter_key, reading(1))).status is Outcome.ACCEPTED
    registry.down = True
    later = reading(2, timestamp=NOW + 100)  # after the cached block: would need a refresh
    assert submit_one(ingestor, submission(meter_key, later)).status is Outcome.ACCEPTED


def test_during_a_chain_outage_a_meter_never_seen_is_keys_unavailable(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    registry.down = True
    assert_rejected(
        submit_one(ingestor, submission(meter_key, reading(1))), Rejection.KEYS_UNAVAILABLE
    )
