"""Meter identities and the MeterRegistry calls that manage them.

Meter ids are bytes32 on chain. A meter's serial number (printable, at most 32 bytes) is used as
its id, right-padded with zero bytes, so the id reads back as the serial; a 0x-prefixed 64-digit
hex string is taken as the raw id.

Public keys are parsed and encoded in `ledger.meters.keys` (every key format in one place); the
registry holds one fixed encoding per algorithm (SEC1 uncompressed for ECDSA, raw Ed25519).

Times: a key's `valid_from` may lie far in the past (an old record imported) but at most
`MAX_VALID_FROM_AHEAD_S` ahead of now; times read back from the chain (any uint64) are shown in
UTC only up to the end of year 9999 (`LATEST_UTC_TIME`), as Unix seconds beyond.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.errors import MeterError
from ledger.meters.keys import KeyAlgorithm, MeterPublicKey, algorithm_of, encode_public_key
from ledger.store.database import Store
from ledger.store.readings import StoredReading

ROTATION_MARGIN_S = 60
"""A rotation's default start, in seconds after the later of the wall clock and the latest
block's time: the transaction must be mined before the new key's start (a rotation may not take
effect in the past). Five seconds were too few where a block takes longer to come (a public
chain's 12 s), or where a dev chain's clock runs ahead of the wall clock and its latest block
is minutes old (its next block's time is then later than anything readable beforehand)."""

MAX_VALID_FROM_AHEAD_S = 10 * 366 * 86_400
"""How far ahead of now a key's `valid_from` may be set through the gateway or the CLI (about ten
years): a meter's key is not scheduled further ahead, and a typo of a few digits would otherwise
leave the meter without a usable key for centuries."""

LATEST_UTC_TIME = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second an ISO 8601 UTC string (and Python's datetime) can show.
The registry holds any uint64; a later time is shown as Unix seconds with a null UTC string."""

UINT64_MAX = 2**64 - 1


def meter_id_bytes(meter_id: str) -> bytes:
    """The bytes32 id for a meter serial (or a 0x-prefixed 32-byte hex id)."""
    if meter_id.startswith("0x") and len(meter_id) == 66:
        try:
            return bytes.fromhex(meter_id[2:])
        except ValueError as error:
            raise MeterError(f"meter id {meter_id!r} is not valid hex") from error
    raw = meter_id.encode("utf-8")
    if not raw or len(raw) > 32 or not meter_id.isprintable() or "\x00" in meter_id:
        raise MeterError(
            f"meter id {meter_id!r} must be 1-32 printable bytes, or 0x followed by 64 hex digits"
        )
    return raw.ljust(32, b"\x00")


def meter_id_text(raw: bytes) -> str:
    """The readable form of a bytes32 meter id (the serial when it is one)."""
    stripped = raw.rstrip(b"\x00")
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    if text and text.isprintable() and b"\x00" not in stripped:
        return text
    return "0x" + raw.hex()


def check_valid_from(valid_from: int, now: int) -> None:
    """Refuses a key start the registry could hold but nobody should set (see
    `MAX_VALID_FROM_AHEAD_S`); any past time is fine (a meter installed, or a record signed,
    long before it was registered).

    Raises:
        MeterError: `valid_from` is negative, or more than `MAX_VALID_FROM_AHEAD_S` ahead of now.
    """
    if valid_from < 0:
        raise MeterError(f"valid_from {valid_from} is before 1970")
    if valid_from > now + MAX_VALID_FROM_AHEAD_S:
        raise MeterError(
            f"valid_from {valid_from} is more than {MAX_VALID_FROM_AHEAD_S} s (about ten years) "
            f"ahead of now ({now})"
        )


@dataclass(frozen=True)
class KeyEpochView:
    """One key epoch as read from the registry."""

    index: int
    algorithm: KeyAlgorithm
    public_key: bytes
    valid_from: int
    revoked_at: int


@dataclass(frozen=True)
class MeterView:
    """A meter's owner and full key history."""

    meter_id: str
    owner: str
    epochs: tuple[KeyEpochView, ...]


def utc_text(timestamp: int) -> str | None:
    """The ISO 8601 UTC form of a Unix time, or None past year 9999 (`LATEST_UTC_TIME`)."""
    if not 0 <= timestamp <= LATEST_UTC_TIME:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


def _epoch_view(index: int, raw: Any) -> KeyEpochView:
    algorithm, valid_from, revoked_at, public_key = raw
    return KeyEpochView(index, KeyAlgorithm(algorithm), bytes(public_key), valid_from, revoked_at)


class MeterAdmin:
    """Registers, rotates, revokes and reads meters in the MeterRegistry."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self._chain = chain
        self._registry = deployment.meter_registry

    def register(
        self, meter_id: str, owner: str, public_key: MeterPublicKey, valid_from: int | None = None
    ) -> dict[str, Any]:
        """Registers a meter; `valid_from` defaults to the latest block's time."""
        if not self._chain.w3.is_address(owner):
            raise MeterError(f"owner {owner!r} is not an account address")
        now = self._now()
        if valid_from is not None:
            check_valid_from(valid_from, now)
        receipt = self._chain.transact(
            self._registry.functions.registerMeter(
                meter_id_bytes(meter_id),
                self._chain.w3.to_checksum_address(owner),
                int(algorithm_of(public_key)),
                encode_public_key(public_key),
                now if valid_from is None else valid_from,
            )
        )
        return dict(receipt)

    def rotate(
        self, meter_id: str, public_key: MeterPublicKey, valid_from: int | None = None
    ) -> dict[str, Any]:
        """Appends a key epoch; `valid_from` defaults to a minute from now (`ROTATION_MARGIN_S`).

        The margin lets the transaction be mined before the new key's start: a rotation may not
        take effect in the past (MeterRegistryValidFromInPast).
        """
        now = self._now()
        if valid_from is not None:
            check_valid_from(valid_from, now)
        receipt = self._chain.transact(
            self._registry.functions.rotateKey(
                meter_id_bytes(meter_id),
                int(algorithm_of(public_key)),
                encode_public_key(public_key),
                now + ROTATION_MARGIN_S if valid_from is None else valid_from,
            )
        )
        return dict(receipt)

    def revoke(self, meter_id: str, compromised_since: int | None = None) -> dict[str, Any]:
        """Revokes the meter's current key from the block's time on, or from
        `compromised_since` (at or after the key's start, not in the future): readings of that
        key timestamped from then on are refused, and those already accepted become suspect
        (`suspect_readings`).

        Raises:
            MeterError: `compromised_since` is not a uint64.
            ContractRevert: e.g. MeterRegistryCompromiseInFuture,
                MeterRegistryCompromiseBeforeKey, MeterRegistryKeyAlreadyRevoked.
        """
        raw_id = meter_id_bytes(meter_id)
        if compromised_since is None:
            call = self._registry.functions.revokeKey(raw_id)
        else:
            if not 0 <= compromised_since <= UINT64_MAX:
                raise MeterError(f"compromised_since {compromised_since} is not a uint64")
            call = self._registry.functions.revokeKeyCompromisedSince(raw_id, compromised_since)
        return dict(self._chain.transact(call))

    def show(self, meter_id: str) -> MeterView:
        """The meter's owner and every key epoch."""
        raw_id = meter_id_bytes(meter_id)
        owner = self._chain.call(self._registry.functions.ownerOf(raw_id))
        count = self._chain.call(self._registry.functions.keyEpochCount(raw_id))
        epochs = tuple(
            _epoch_view(i, self._chain.call(self._registry.functions.keyEpoch(raw_id, i)))
            for i in range(count)
        )
        return MeterView(meter_id=meter_id_text(raw_id), owner=owner, epochs=epochs)

    def key_at(self, meter_id: str, timestamp: int) -> KeyEpochView:
        """The key valid for the meter at `timestamp`.

        Raises:
            ContractRevert: MeterRegistryNoKeyAt when the meter had no valid key then.
        """
        index, raw = self._chain.call(
            self._registry.functions.keyAt(meter_id_bytes(meter_id), timestamp)
        )
        return _epoch_view(index, raw)

    def _now(self) -> int:
        """The later of the wall clock and the latest block's time (a chain may run ahead)."""
        latest = int(self._chain.w3.eth.get_block("latest")["timestamp"])
        return max(latest, int(time.time()))


@dataclass(frozen=True)
class SuspectReadings:
    """Readings a revocation from a compromise time puts in doubt: accepted under a key epoch
    and timestamped at or after that epoch's `revoked_at` (when the revocation was sent, the
    gateway had no way to know). `count` is all of them, `readings` one page by seq."""

    meter_id: str
    count: int
    readings: tuple[StoredReading, ...]


def suspect_readings(
    store: Store, meter: MeterView, *, after_seq: int = -1, limit: int = 1000
) -> SuspectReadings:
    """The stored readings of `meter` signed under a key at or after its revocation."""
    raw_id = meter_id_bytes(meter.meter_id)
    count = 0
    page: list[StoredReading] = []
    for epoch in meter.epochs:
        if not epoch.revoked_at:
            continue
        total, rows = store.readings_of_key_from(
            raw_id, epoch.index, epoch.revoked_at, after_seq=after_seq, limit=limit
        )
        count += total
        page.extend(rows)
    page.sort(key=lambda reading: reading.seq)
    return SuspectReadings(meter.meter_id, count, tuple(page[:limit]))
