"""Where the gateway spends its time per reading on `POST /v1/readings` (a development aid).

    python -m bench.profile_ingest [--batch 5000] [--cprofile]

Runs in one process, without a chain: the real FastAPI app (`api.main.create_app`) around a real
`Ingestor` on a temporary SQLite store (WAL, synchronous=FULL, as the gateway opens it), with an
in-memory key registry. It times each stage of a batch request on fresh readings, in
microseconds per reading, and with `--cprofile` also prints the hottest functions of whole
requests. Missing from the in-process request: uvicorn's HTTP parsing and the socket.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from api.main import create_app
from api.schemas.readings import ReadingResultsPublic, ReadingsRequestIn, readings_answer
from bench.fleet import SignedFleet, body
from ledger.meters.keys import KeyAlgorithm, decode_public_key, encode_public_key
from ledger.meters.registry import KeyEpochView, meter_id_bytes
from ledger.readings.checks import parse_hex
from ledger.readings.ingest import Ingestor, _receipt_ids
from ledger.readings.keys import BlockRef, KeyCache
from ledger.readings.native import (
    anchored_leaf,
    decode,
    verify_reading_signature,
    verify_signature,
)
from ledger.readings.results import IngestResult, Outcome, Submission
from ledger.settings import Settings
from ledger.store.database import Store

INTERVAL_S = 60


class Registry:
    """An in-memory MeterRegistry with the fleet's keys (the key cache reads it once per meter)."""

    def __init__(self, fleet: SignedFleet, now: int) -> None:
        self._now = now
        self._epochs = {
            meter_id_bytes(m.meter_id): (
                KeyEpochView(
                    0, KeyAlgorithm.P256, encode_public_key(m.key.public_key()), fleet.start, 0
                ),
            )
            for m in fleet.fleet
        }

    def latest_block(self) -> BlockRef:
        return BlockRef(100, self._now)

    def key_history(self, meter_id: bytes) -> tuple[KeyEpochView, ...] | None:
        return self._epochs.get(meter_id)


def _per_reading_us(seconds: float, count: int) -> float:
    return round(seconds / count * 1e6, 1)


def _timed(function: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """The best wall time of `repeat` calls (the machine is shared), and the last value."""
    best = float("inf")
    value: Any = None
    for _ in range(repeat):
        began = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - began)
    return best, value


def _ingestor(path: Path, fleet: SignedFleet, now: int, max_batch: int) -> Ingestor:
    return Ingestor(
        Store(path),
        KeyCache(Registry(fleet, now)),
        chain_id=Settings().chain_id,
        max_batch=max_batch,
        clock_skew_s=300,
    )


def stages(fleet: SignedFleet, batches: Sequence[list[bytes]], work: Path) -> dict[str, float]:
    """Microseconds per reading of each stage of a batch request, each timed on its own.

    Pure stages take the best of three runs on the first batch; `Ingestor.submit` needs fresh
    readings, so it takes the best over the remaining batches, each on the same store.
    """
    now = int(time.time())
    n = len(batches[0])
    out: dict[str, float] = {}
    payload = body(batches[0])

    seconds, parsed = _timed(lambda: json.loads(payload))
    out["json.loads of the body (Starlette request.json)"] = _per_reading_us(seconds, n)
    adapter: TypeAdapter[Any] = TypeAdapter(ReadingsRequestIn)
    seconds, model = _timed(lambda: adapter.validate_python(parsed))
    out["pydantic validation of the body (ReadingsRequestIn)"] = _per_reading_us(seconds, n)
    submissions = [Submission(r.meter_id, r.canonical, r.signature) for r in model.readings]

    seconds, raw = _timed(
        lambda: [(parse_hex(s.canonical), parse_hex(s.signature)) for s in submissions]
    )
    out["hex decode (checks.parse_hex: binascii.a2b_hex, x 2)"] = _per_reading_us(seconds, n)
    seconds, _ = _timed(
        lambda: [
            (bytes.fromhex(s.canonical[2:]), bytes.fromhex(s.signature[2:])) for s in submissions
        ]
    )
    out["  (for comparison: bytes.fromhex alone, x 2)"] = _per_reading_us(seconds, n)
    canonicals = [c for c, _ in raw if c is not None]
    seconds, readings = _timed(lambda: [decode(c) for c in canonicals])
    out["canonical decode (readings.decode)"] = _per_reading_us(seconds, n)
    seconds, _ = _timed(lambda: [r.encode() for r in readings])
    out["  (for comparison: an eth_abi re-encode, Reading.encode)"] = _per_reading_us(seconds, n)
    keys = {meter_id_bytes(m.meter_id): encode_public_key(m.key.public_key()) for m in fleet.fleet}
    pairs = [
        (keys[r.meter_id], c, s) for r, c, (_, s) in zip(readings, canonicals, raw, strict=True)
    ]

    def verify_all() -> None:
        for key, canonical, signature in pairs:
            verify_reading_signature(KeyAlgorithm.P256, key, canonical, signature or b"")

    seconds, _ = _timed(verify_all)
    out["signature verify, key parsed per call (verify_reading_signature)"] = _per_reading_us(
        seconds, n
    )
    seconds, _ = _timed(lambda: [decode_public_key(KeyAlgorithm.P256, k) for k, _, _ in pairs])
    out["  of which the public key parse (decode_public_key)"] = _per_reading_us(seconds, n)
    parsed = {k: decode_public_key(KeyAlgorithm.P256, k) for k in keys.values()}
    parsed_pairs = [(parsed[k], c, s or b"") for k, c, s in pairs]

    def verify_parsed() -> None:
        for key, canonical, signature in parsed_pairs:
            verify_signature(KeyAlgorithm.P256, key, canonical, signature)

    seconds, _ = _timed(verify_parsed)
    out["signature verify, key parsed once (verify_signature, as _verify)"] = _per_reading_us(
        seconds, n
    )

    def leaves() -> None:
        # The signature's form comes from its verification (raw r || s here, as signed).
        for _, canonical, signature in parsed_pairs:
            anchored_leaf(canonical, canonical, signature)

    seconds, _ = _timed(leaves)
    out["Merkle leaf v2 (keccak x 4, computed in _verify)"] = _per_reading_us(seconds, n)
    seconds, _ = _timed(lambda: _receipt_ids(n, int(time.time() * 1000)))
    out["receipt ids (_receipt_ids, drawn for the request)"] = _per_reading_us(seconds, n)
    seconds, _ = _timed(lambda: [uuid.uuid4().hex for _ in range(n)])
    out["  (for comparison: uuid.uuid4().hex)"] = _per_reading_us(seconds, n)

    ingestor = _ingestor(work / "stages.db", fleet, now, n)
    ingestor.submit([_submission(o) for o in fleet.tick_major(range(0, 1))])  # keys now cached
    subs = [_submission(o) for o in batches[0]]
    seconds, _ = _timed(lambda: [ingestor._verify(i, s, now, set()) for i, s in enumerate(subs)])
    verify_us = _per_reading_us(seconds, n)
    out["Ingestor._verify total (all checks outside the lock)"] = verify_us
    # The write phase alone, as `submit` runs it after the checks (private API).
    best = float("inf")
    results: list[IngestResult] = []
    for objects in batches[1:]:
        subs = [_submission(o) for o in objects]
        checked = [ingestor._verify(i, s, now, set()) for i, s in enumerate(subs)]
        began = time.perf_counter()
        results = ingestor._store_checked(checked)
        best = min(best, time.perf_counter() - began)
        if not all(r.status is Outcome.ACCEPTED for r in results):
            raise SystemExit(f"not all accepted: {results[:3]}")
    out["write phase (Ingestor._store_checked: the transaction)"] = _per_reading_us(best, n)
    ingestor._store.close()

    accepted = results
    seconds, _ = _timed(lambda: readings_answer(accepted))
    out["answer JSON (readings_answer, as the route sends it)"] = _per_reading_us(seconds, n)
    response_adapter: TypeAdapter[Any] = TypeAdapter(ReadingResultsPublic)
    seconds, _ = _timed(lambda: response_adapter.dump_json(ReadingResultsPublic.of(accepted)))
    out["  (for comparison: the response model and its dump_json)"] = _per_reading_us(seconds, n)
    return out


def _submission(encoded: bytes) -> Submission:
    data = json.loads(encoded)
    return Submission(data["meter_id"], data["canonical"], data["signature"])


def handler_profile(fleet: SignedFleet, objects: list[bytes], work: Path) -> pstats.Stats:
    """cProfile of what the route does for one batch, in this thread: parse, validate, submit,
    and answer (cProfile does not follow the app's worker threads)."""
    now = int(time.time())
    ingestor = _ingestor(work / "profile.db", fleet, now, len(objects))
    ingestor.submit([_submission(o) for o in fleet.tick_major(range(0, 1))])
    adapter: TypeAdapter[Any] = TypeAdapter(ReadingsRequestIn)
    payload = body(objects)
    profiler = cProfile.Profile()
    profiler.enable()
    model = adapter.validate_python(json.loads(payload))
    results = ingestor.submit(
        [Submission(r.meter_id, r.canonical, r.signature) for r in model.readings]
    )
    readings_answer(results)
    profiler.disable()
    ingestor._store.close()
    return pstats.Stats(profiler)


def whole_request(fleet: SignedFleet, batches: Sequence[list[bytes]], work: Path) -> float:
    """Microseconds per reading of whole in-process requests (FastAPI TestClient), best one."""
    now = int(time.time())
    store = Store(work / "app.db")
    ingestor = Ingestor(
        store,
        KeyCache(Registry(fleet, now)),
        chain_id=Settings().chain_id,
        max_batch=max(len(b) for b in batches),
        clock_skew_s=300,
    )
    # What create_app reads of a node for this route: the settings (body limit, admission
    # bounds), the store (pending readings, for admission) and the ingestor.
    node = SimpleNamespace(settings=Settings(), store=store, ingestor=ingestor)
    app = create_app(node)  # type: ignore[arg-type]
    client = TestClient(app)
    headers = {"content-type": "application/json"}
    warm = client.post("/v1/readings", content=body(fleet.tick_major(range(0, 1))), headers=headers)
    if warm.status_code != 202:
        raise SystemExit(f"warm-up answered {warm.status_code}: {warm.text[:300]}")
    best = float("inf")
    for objects in batches:
        payload = body(objects)
        began = time.perf_counter()
        response = client.post("/v1/readings", content=payload, headers=headers)
        best = min(best, (time.perf_counter() - began) / len(objects))
        if response.status_code != 202 or response.json()["accepted"] != len(objects):
            raise SystemExit(f"answered {response.status_code}: {response.text[:300]}")
    ingestor._store.close()
    return best * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_ingest")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--cprofile", action="store_true", help="print the hottest functions")
    args = parser.parse_args(argv)

    meters = 50
    per_batch = -(-args.batch // meters)
    count = 8  # 1 for pure stages, 3 for submit, 3 whole requests, 1 profiled
    ticks = 1 + count * per_batch
    now = int(time.time())
    start = (now - ticks * INTERVAL_S - 3600) // INTERVAL_S * INTERVAL_S
    fleet = SignedFleet(
        meters, ticks, chain_id=Settings().chain_id, start=start, interval_s=INTERVAL_S
    ).wait()
    batches = [
        fleet.tick_major(range(1 + i * per_batch, 1 + (i + 1) * per_batch))[: args.batch]
        for i in range(count)
    ]
    with tempfile.TemporaryDirectory(prefix="ledger-profile-") as tmp:
        work = Path(tmp)
        table = stages(fleet, batches[:4], work)
        per_reading = whole_request(fleet, batches[4:7], work)
        stats = handler_profile(fleet, batches[7], work) if args.cprofile else None
    print(f"batch of {args.batch} readings, microseconds per reading (best of several):")
    for name, value in table.items():
        print(f"  {name:<66} {value:>8.1f}")
    print(f"  {'whole in-process request (TestClient, no socket)':<66} {per_reading:>8.1f}")
    print(f"  => {1e6 / per_reading:.0f} readings/s on one core, before HTTP parsing")
    if stats is not None:
        print("\nthe route's work for one batch under cProfile (inflates Python-heavy code):")
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(45)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
