"""The bounded seq jump, the documented recovery of a meter whose counter or clock jumped, and
which code wins when two checks of a native reading fail (docs/reading-format.md, "Checks")."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, generate_key
from ledger.meters.registry import meter_id_bytes
from ledger.readings.checks import FIRST_SEQ_LIMIT, MAX_SEQ_JUMP
from ledger.readings.ingest import Ingestor
from ledger.readings.keys import KeyCache
from ledger.readings.native import Reading
from ledger.readings.results import IngestResult, Outcome, Rejection, Submission
from ledger.store.database import Store
from tests.unit.readings.ingest_support import (
    CHAIN_ID,
    METER_ID,
    NOW,
    Clock,
    FakeRegistry,
    reading,
    submission,
)

DOCS = Path(__file__).resolve().parents[3] / "docs" / "reading-format.md"
SMALL_JUMP = 5


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def meter_key(registry: FakeRegistry) -> MeterPrivateKey:
    key = generate_key(KeyAlgorithm.P256)
    registry.register(METER_ID, key)
    return key


@pytest.fixture
def clock() -> Clock:
    """The gateway's wall clock, half a second after NOW."""
    return Clock(NOW + 0.5)


def make_ingestor(
    store: Store, registry: FakeRegistry, clock: Clock, *, max_seq_jump: int = MAX_SEQ_JUMP
) -> Ingestor:
    return Ingestor(
        store,
        KeyCache(registry, monotonic=Clock(1000.0)),
        chain_id=CHAIN_ID,
        max_batch=10,
        clock_skew_s=300,
        max_seq_jump=max_seq_jump,
        clock=clock,
    )


@pytest.fixture
def ingestor(store: Store, registry: FakeRegistry, clock: Clock) -> Ingestor:
    """The default limit (MAX_SEQ_JUMP)."""
    return make_ingestor(store, registry, clock)


@pytest.fixture
def small_jump(store: Store, registry: FakeRegistry, clock: Clock) -> Ingestor:
    """A gateway configured with max_seq_jump = SMALL_JUMP."""
    return make_ingestor(store, registry, clock, max_seq_jump=SMALL_JUMP)


def send(ingestor: Ingestor, key: MeterPrivateKey, *readings: Reading) -> list[IngestResult]:
    return ingestor.submit([submission(key, r) for r in readings])


def outcome(result: IngestResult) -> tuple[Outcome, Rejection | None]:
    return (result.status, result.code)


def continue_from(result: IngestResult) -> int:
    """The seq a seq_jump_too_large refusal tells the meter to continue from."""
    found = re.search(r"continue from seq (\d+)", result.message)
    assert found is not None, result.message
    return int(found.group(1))


def first_reading(seq: int) -> Reading:
    return reading(seq, timestamp=NOW - 100, import_wh=100)


# A valid reading (signed by the meter's key, its time and registers after seq 1's) at the top
# of the seq range: unbounded, no later reading of the meter could ever be stored.
POISON = reading(2**64 - 1, timestamp=reading(2).timestamp, import_wh=200)
ACCEPTED = (Outcome.ACCEPTED, None)
JUMP_REFUSED = (Outcome.REJECTED, Rejection.SEQ_JUMP_TOO_LARGE)


# --- the bound -------------------------------------------------------------------------------


def test_a_reading_at_the_top_of_the_seq_range_is_refused_as_seq_jump_too_large(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    send(ingestor, meter_key, reading(1))
    (poison,) = send(ingestor, meter_key, POISON)
    assert outcome(poison) == JUMP_REFUSED
    assert "continue from seq 2" in poison.message
    assert store.count_readings(METER_ID) == 1


def test_after_a_refused_seq_jump_the_meters_next_reading_is_accepted(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    send(ingestor, meter_key, reading(1))
    send(ingestor, meter_key, POISON)
    (following,) = send(ingestor, meter_key, reading(2))
    assert outcome(following) == ACCEPTED


def test_a_jump_of_exactly_max_seq_jump_is_accepted_and_one_more_is_refused(
    small_jump: Ingestor, meter_key: MeterPrivateKey
) -> None:
    send(small_jump, meter_key, reading(1))
    too_far, furthest = send(
        small_jump, meter_key, reading(1 + SMALL_JUMP + 1), reading(1 + SMALL_JUMP)
    )
    assert (outcome(too_far), outcome(furthest)) == (JUMP_REFUSED, ACCEPTED)


def test_the_default_limit_accepts_a_jump_that_a_configured_smaller_one_refuses(
    ingestor: Ingestor, small_jump: Ingestor, meter_key: MeterPrivateKey
) -> None:
    # Both gateways share the store: the first reading and the jump go through different ones.
    send(ingestor, meter_key, reading(1))
    (refused,) = send(small_jump, meter_key, reading(1 + SMALL_JUMP + 1))
    (accepted,) = send(ingestor, meter_key, reading(1 + SMALL_JUMP + 1))
    assert (outcome(refused), outcome(accepted)) == (JUMP_REFUSED, ACCEPTED)


def test_a_meters_first_reading_may_start_anywhere_below_two_to_the_63(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    (first,) = send(ingestor, meter_key, first_reading(FIRST_SEQ_LIMIT - 1))
    assert outcome(first) == ACCEPTED


def test_a_meters_first_reading_at_two_to_the_63_is_seq_jump_too_large(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    (first,) = send(ingestor, meter_key, first_reading(FIRST_SEQ_LIMIT))
    assert outcome(first) == JUMP_REFUSED


def test_a_late_reading_far_below_the_latest_is_not_a_seq_jump(
    small_jump: Ingestor, meter_key: MeterPrivateKey
) -> None:
    send(small_jump, meter_key, reading(100))
    (late,) = send(small_jump, meter_key, reading(1))
    assert outcome(late) == ACCEPTED


# --- the documented recovery -----------------------------------------------------------------


def test_a_meter_whose_counter_jumped_too_far_is_accepted_again_once_it_continues_after_its_highest_accepted_seq(  # noqa: E501
    small_jump: Ingestor, meter_key: MeterPrivateKey
) -> None:
    send(small_jump, meter_key, reading(1), reading(2))
    # The counter jumps by a billion: every reading from there on is refused ...
    jumped = [reading(10**9 + n, timestamp=reading(3 + n).timestamp) for n in range(2)]
    refused = send(small_jump, meter_key, *jumped)
    # ... and the refusal names the seq to continue from: the meter renumbers from there.
    (resume,) = {continue_from(r) for r in refused}
    renumbered = [replace(r, seq=resume + n) for n, r in enumerate(jumped)]
    assert [outcome(r) for r in refused] == [JUMP_REFUSED] * 2
    assert [outcome(r) for r in send(small_jump, meter_key, *renumbered)] == [ACCEPTED] * 2


def test_a_meter_that_jumped_within_the_limit_continues_after_the_jump(
    small_jump: Ingestor, meter_key: MeterPrivateKey
) -> None:
    send(small_jump, meter_key, reading(1))
    (jump,) = send(small_jump, meter_key, reading(1 + SMALL_JUMP))
    # Readings below the jump are now late: they must fit below it, in time and registers.
    (behind,) = send(small_jump, meter_key, reading(2, timestamp=reading(1 + SMALL_JUMP).timestamp))
    (after,) = send(small_jump, meter_key, reading(2 + SMALL_JUMP))
    assert outcome(jump) == ACCEPTED
    assert outcome(behind) == (Outcome.REJECTED, Rejection.TIMESTAMP_OUT_OF_ORDER)
    assert outcome(after) == ACCEPTED


def test_a_reading_at_the_skew_limit_blocks_the_meter_only_until_the_clock_passes_it(
    ingestor: Ingestor, clock: Clock, meter_key: MeterPrivateKey
) -> None:
    send(ingestor, meter_key, reading(1, timestamp=NOW - 60))
    ahead = NOW + ingestor.clock_skew_s  # a clock running 300 s fast
    (early,) = send(ingestor, meter_key, reading(2, timestamp=ahead, import_wh=200))
    (blocked,) = send(ingestor, meter_key, reading(3, timestamp=NOW + 10, import_wh=300))
    clock.now = ahead + 1  # at most clock_skew_s later
    (again,) = send(ingestor, meter_key, reading(3, timestamp=ahead + 1, import_wh=300))
    assert outcome(early) == ACCEPTED
    assert outcome(blocked) == (Outcome.REJECTED, Rejection.TIMESTAMP_OUT_OF_ORDER)
    assert outcome(again) == ACCEPTED


# --- which code wins -------------------------------------------------------------------------


@dataclass(frozen=True)
class Overlap:
    """Two faults in one reading, the setup that makes both apply, and the code that wins."""

    faults: tuple[Rejection, Rejection]
    build: Callable[[Ingestor, FakeRegistry, MeterPrivateKey], Submission]


def _wrong_key(value: Reading) -> Submission:
    return submission(generate_key(KeyAlgorithm.P256), value)


def _malformed_and_mismatch(_: Ingestor, __: FakeRegistry, key: MeterPrivateKey) -> Submission:
    good = submission(key, reading(1), meter_id="MTR-SOMEONE-ELSE")
    return replace(good, signature="0xnothex")


def _mismatch_and_wrong_chain(_: Ingestor, __: FakeRegistry, key: MeterPrivateKey) -> Submission:
    return submission(key, reading(1, chain_id=CHAIN_ID + 1), meter_id="MTR-SOMEONE-ELSE")


def _wrong_chain_and_skew(_: Ingestor, __: FakeRegistry, key: MeterPrivateKey) -> Submission:
    return submission(key, reading(1, timestamp=NOW + 3_600, chain_id=CHAIN_ID + 1))


def _skew_and_unknown(_: Ingestor, __: FakeRegistry, key: MeterPrivateKey) -> Submission:
    other = "MTR-UNREGISTERED"
    value = reading(1, timestamp=NOW + 3_600, meter_id=meter_id_bytes(other))
    return submission(key, value, meter_id=other)


def _no_key_and_bad_signature(_: Ingestor, __: FakeRegistry, ___: MeterPrivateKey) -> Submission:
    return _wrong_key(reading(1, timestamp=NOW - 20_000))  # the key is valid from NOW - 10,000


def _revoked_and_bad_signature(
    _: Ingestor, registry: FakeRegistry, __: MeterPrivateKey
) -> Submission:
    registry.revoke(METER_ID, 0, at=NOW - 6_000)
    return _wrong_key(reading(1))


def _bad_signature_and_conflict(
    ingestor: Ingestor, _: FakeRegistry, key: MeterPrivateKey
) -> Submission:
    send(ingestor, key, reading(1))
    return _wrong_key(reading(1, import_wh=999))


def _conflict_and_register(ingestor: Ingestor, _: FakeRegistry, key: MeterPrivateKey) -> Submission:
    send(ingestor, key, reading(1), reading(2))
    return submission(key, reading(1, import_wh=10_000))  # above seq 2's registers too


def _jump_and_register(ingestor: Ingestor, _: FakeRegistry, key: MeterPrivateKey) -> Submission:
    send(ingestor, key, reading(1))
    return submission(key, reading(2 + MAX_SEQ_JUMP, timestamp=reading(2).timestamp, import_wh=0))


def _register_and_timestamp(
    ingestor: Ingestor, _: FakeRegistry, key: MeterPrivateKey
) -> Submission:
    send(ingestor, key, reading(1))
    return submission(key, reading(2, timestamp=reading(1).timestamp, import_wh=0))


OVERLAPS = [
    Overlap((Rejection.MALFORMED_READING, Rejection.METER_MISMATCH), _malformed_and_mismatch),
    Overlap((Rejection.METER_MISMATCH, Rejection.WRONG_CHAIN), _mismatch_and_wrong_chain),
    Overlap((Rejection.WRONG_CHAIN, Rejection.CLOCK_SKEW), _wrong_chain_and_skew),
    Overlap((Rejection.CLOCK_SKEW, Rejection.UNKNOWN_METER), _skew_and_unknown),
    Overlap((Rejection.NO_KEY_AT_TIME, Rejection.BAD_SIGNATURE), _no_key_and_bad_signature),
    Overlap((Rejection.KEY_REVOKED, Rejection.BAD_SIGNATURE), _revoked_and_bad_signature),
    Overlap((Rejection.BAD_SIGNATURE, Rejection.CONFLICTING_READING), _bad_signature_and_conflict),
    Overlap((Rejection.CONFLICTING_READING, Rejection.REGISTER_DECREASED), _conflict_and_register),
    Overlap((Rejection.SEQ_JUMP_TOO_LARGE, Rejection.REGISTER_DECREASED), _jump_and_register),
    Overlap(
        (Rejection.REGISTER_DECREASED, Rejection.TIMESTAMP_OUT_OF_ORDER), _register_and_timestamp
    ),
]


@pytest.mark.parametrize("overlap", OVERLAPS, ids=lambda o: "-over-".join(o.faults))
def test_of_two_failing_checks_the_one_documented_first_wins(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey, overlap: Overlap
) -> None:
    item = overlap.build(ingestor, registry, meter_key)
    (result,) = ingestor.submit([item])
    assert outcome(result) == (Outcome.REJECTED, overlap.faults[0]), result.message


def test_the_documented_order_of_the_checks_is_the_order_of_the_rejection_codes() -> None:
    # Rejection lists the native codes in the order the checks run; the pairs above pin it.
    section = DOCS.read_text().split("### Order of the checks", 1)[1].split("\n#", 1)[0]
    documented = re.findall(r"^\d+\. `([a-z_]+)`", section, flags=re.MULTILINE)
    native = [r.value for r in Rejection if not r.value.startswith("ocmf_")]
    native.remove(Rejection.KEYS_UNAVAILABLE.value)  # the unknown_meter step, chain down
    assert documented == native


def test_every_overlap_pairs_two_checks_in_their_documented_order() -> None:
    order = list(Rejection)
    assert all(order.index(o.faults[0]) < order.index(o.faults[1]) for o in OVERLAPS)
