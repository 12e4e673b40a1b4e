"""Pre-signed readings: a simulated fleet, signed in worker processes before anything is timed.

The readings are the simulator's (`ledger.sim.fleet.make_fleet` and `generate`, no faults), so
each meter sends seq 1, 2, 3, ... at increasing past timestamps with non-decreasing registers.
`generate` draws each meter's energy from its own random stream (seed, meter id, start), so
signing disjoint groups of meters in separate processes gives exactly the readings one process
would. Each reading is kept as its JSON object, already encoded, so a request body is a join.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.meters.keys import KeyAlgorithm, private_key_pem
from ledger.sim.fleet import FaultRates, FleetMeter, MeterKind, MeterState, generate, make_fleet


@dataclass(frozen=True)
class _MeterSpec:
    """What a worker process needs to rebuild one FleetMeter (keys do not pickle)."""

    meter_id: str
    pem: bytes
    kind: str
    load_pct: int
    pv_peak_w: int
    state: dict[str, int]

    @classmethod
    def of(cls, meter: FleetMeter) -> _MeterSpec:
        return cls(
            meter.meter_id,
            private_key_pem(meter.key),
            meter.kind.value,
            meter.load_pct,
            meter.pv_peak_w,
            meter.state.as_dict(),
        )

    def meter(self) -> FleetMeter:
        key = serialization.load_pem_private_key(self.pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{self.meter_id}: not an ECDSA key")
        return FleetMeter(
            meter_id=self.meter_id,
            key=key,
            kind=MeterKind(self.kind),
            load_pct=self.load_pct,
            pv_peak_w=self.pv_peak_w,
            state=MeterState(**self.state),
        )


@dataclass(frozen=True)
class _Job:
    specs: tuple[_MeterSpec, ...]
    chain_id: int
    start: int
    interval_s: int
    ticks: int
    seed: int


def _sign(job: _Job) -> list[list[bytes]]:
    """Per meter of the job, its readings' JSON objects for ticks 1..ticks (seq 1..ticks)."""
    fleet = [spec.meter() for spec in job.specs]
    out: list[list[bytes]] = [[] for _ in fleet]
    ticks = generate(
        fleet,
        chain_id=job.chain_id,
        start=job.start,
        interval_s=job.interval_s,
        ticks=job.ticks,
        faults=FaultRates(),
        seed=job.seed,
    )
    for planned_tick in ticks:
        # Without faults a tick is exactly one reading per meter, in fleet order.
        for readings, planned in zip(out, planned_tick, strict=True):
            readings.append(json.dumps(planned.body(), separators=(",", ":")).encode())
    return out


def body(objects: Sequence[bytes]) -> bytes:
    """A `POST /v1/readings` batch body from encoded reading objects."""
    return b'{"readings":[' + b",".join(objects) + b"]}"


def decode_object(encoded: bytes) -> tuple[bytes, bytes]:
    """(canonical, signature) bytes back from an encoded reading object."""
    data: dict[str, Any] = json.loads(encoded)
    return bytes.fromhex(data["canonical"][2:]), bytes.fromhex(data["signature"][2:])


class SignedFleet:
    """`meters` P-256 meters and `ticks` signed readings each, signed by `workers` processes.

    The keys exist at once (to register the meters); the readings are signed in the background
    until `wait()`. `objects[m][k]` is then meter m's reading with seq k + 1 (timestamp
    start + (k + 1) * interval).
    """

    def __init__(
        self,
        meters: int,
        ticks: int,
        *,
        chain_id: int,
        start: int,
        interval_s: int,
        seed: int = 1,
        workers: int = 2,
    ) -> None:
        self.fleet = make_fleet(meters, seed=seed, algorithm=KeyAlgorithm.P256, prefix="BENCH-")
        self.ticks = ticks
        self.chain_id = chain_id
        self.start = start
        self.interval_s = interval_s
        self.objects: list[list[bytes]] = []
        specs = [_MeterSpec.of(m) for m in self.fleet]
        # Several small jobs per worker, so an uneven share of a noisy machine evens out.
        self._parts = max(1, min(len(specs), workers * 4))
        jobs = [
            _Job(tuple(specs[i :: self._parts]), chain_id, start, interval_s, ticks, seed)
            for i in range(self._parts)
        ]
        # fork: the caller has started no thread yet, and the workers skip re-importing web3.
        self._pool = multiprocessing.get_context("fork").Pool(workers)
        self._signing = self._pool.map_async(_sign, jobs)

    def wait(self) -> SignedFleet:
        """Waits for every signature; returns self."""
        if not self.objects:
            results = self._signing.get()
            self._pool.close()
            self._pool.join()
            self.objects = [[] for _ in self.fleet]
            for i, result in enumerate(results):
                for j, readings in enumerate(result):
                    self.objects[i + j * self._parts] = readings
        return self

    def close(self) -> None:
        """Stops the signing processes (after a failure elsewhere)."""
        self._pool.terminate()
        self._pool.join()

    @property
    def count(self) -> int:
        return len(self.fleet) * self.ticks

    def tick_major(self, ticks: range) -> list[bytes]:
        """The readings of `ticks` (0-based), every meter's per tick, tick after tick."""
        self.wait()
        return [meter[k] for k in ticks for meter in self.objects]

    def streams(self, ticks: range, count: int) -> list[list[bytes]]:
        """`ticks` split over `count` clients by meter, so each meter's readings stay in order
        on one connection."""
        self.wait()
        return [
            [self.objects[m][k] for k in ticks for m in range(c, len(self.objects), count)]
            for c in range(count)
        ]
