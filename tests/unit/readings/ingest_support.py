"""What the ingestion tests share: an in-memory key registry, a settable clock, and readings
signed and submitted in one call (the fixtures that build an Ingestor on them are in conftest.py).
"""

from __future__ import annotations

from dataclasses import replace

from ledger.errors import ChainUnavailable
from ledger.meters.keys import (
    MeterPrivateKey,
    algorithm_of,
    encode_public_key,
)
from ledger.meters.registry import KeyEpochView, meter_id_bytes
from ledger.readings.ingest import Ingestor
from ledger.readings.keys import BlockRef
from ledger.readings.native import Reading, sign_reading
from ledger.readings.results import IngestResult, Outcome, Rejection, Submission

CHAIN_ID = 1337
NOW = 1_700_000_000
METER = "MTR-UNIT-1"
METER_ID = meter_id_bytes(METER)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class FakeRegistry:
    """An in-memory MeterRegistry: key histories by meter id, and the latest block."""

    def __init__(self) -> None:
        self.block = BlockRef(number=10, timestamp=NOW)
        self.histories: dict[bytes, tuple[KeyEpochView, ...]] = {}
        self.history_calls = 0
        self.block_calls = 0
        self.down = False  # True: the chain does not answer

    def latest_block(self) -> BlockRef:
        self._answer()
        self.block_calls += 1
        return self.block

    def key_history(self, meter_id: bytes) -> tuple[KeyEpochView, ...] | None:
        self._answer()
        self.history_calls += 1
        return self.histories.get(meter_id)

    def _answer(self) -> None:
        if self.down:
            raise ChainUnavailable(rpc_url="http://127.0.0.1:1", reason="connection refused")

    def register(
        self, meter_id: bytes, key: MeterPrivateKey, valid_from: int = NOW - 10_000
    ) -> None:
        self.histories[meter_id] = (key_epoch(0, key, valid_from),)

    def rotate(self, meter_id: bytes, key: MeterPrivateKey, valid_from: int) -> None:
        epochs = self.histories[meter_id]
        self.histories[meter_id] = (*epochs, key_epoch(len(epochs), key, valid_from))

    def revoke(self, meter_id: bytes, epoch: int, at: int) -> None:
        epochs = list(self.histories[meter_id])
        epochs[epoch] = replace(epochs[epoch], revoked_at=at)
        self.histories[meter_id] = tuple(epochs)

    def mine(self, timestamp: int) -> None:
        self.block = BlockRef(self.block.number + 1, timestamp)


def key_epoch(
    index: int, key: MeterPrivateKey, valid_from: int, revoked_at: int = 0
) -> KeyEpochView:
    public = key.public_key()
    return KeyEpochView(
        index, algorithm_of(public), encode_public_key(public), valid_from, revoked_at
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def reading(
    seq: int,
    timestamp: int | None = None,
    import_wh: int | None = None,
    export_wh: int = 0,
    *,
    meter_id: bytes = METER_ID,
    chain_id: int = CHAIN_ID,
) -> Reading:
    """Reading `seq`: by default one minute and 100 Wh after the one before."""
    return Reading(
        chain_id=chain_id,
        meter_id=meter_id,
        seq=seq,
        timestamp=NOW - 5_000 + 60 * seq if timestamp is None else timestamp,
        import_wh=100 * seq if import_wh is None else import_wh,
        export_wh=export_wh,
    )


def submission(
    key: MeterPrivateKey, value: Reading, *, meter_id: str = METER, signature: bytes | None = None
) -> Submission:
    signed = sign_reading(key, value) if signature is None else signature
    return Submission(meter_id, "0x" + value.encode().hex(), "0x" + signed.hex())


def submit_one(ingestor: Ingestor, item: Submission) -> IngestResult:
    (result,) = ingestor.submit([item])
    return result


def assert_rejected(result: IngestResult, code: Rejection) -> None:
    assert (result.status, result.code) == (Outcome.REJECTED, code), result.message
    assert result.receipt is None
