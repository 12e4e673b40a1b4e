"""Auditing readings: `audit_readings_per_s`, the pass of `ledger audit` over a reading bundle.

The bundle holds `readings` of the bench's signed fleet (P-256, native, tick-major: every meter's
seq in turn), in batches of 1,000 with their leaf indexes, as `ledger export-bundle` writes them.
What the audit reads of the chain (the meters' key epochs, the batches' roots and counts) is given
to it ready-made, as `ChainFacts.read` would return it: reading a chain's events is a few
`eth_getLogs` requests, not per reading, and is not what this figure is about. Timed: everything
`run_audit` then does, with `--jobs` worker processes (spawned, so their start is in the figure):
parse every line, decode the signed bytes, compute each leaf, pick the key valid at the
reading's time, verify every signature, rebuild every batch's root, check sequences and
registers.

The ratio base is the run's own `raw_p256_verify_per_s` (one core); the target, 1.5 x with
every core, asks that the audit's overheads stay small beside the signatures. Both figures are
bests of rounds taken in turns (a raw round after each of the audit's, besides the run's first
raw round): this machine's speed wanders by a third from one minute to the next (the same
20,000 checks took 118 to 158 us a reading in one session), and a best of short raw rounds
taken at one moment set beside a single audit a moment later compared the machine at two
different speeds. The bench runs the audit once its gateway and chain have stopped, as an
auditor runs it: beside them, idle, the audit on every core lost what they took of a core
(2-4 %), which one core's raw rounds did not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.fleet import SignedFleet, decode_object
from ledger.anchoring.bundle import FORMAT
from ledger.anchoring.merkle import MerkleTree
from ledger.audit.auditor import AuditOptions, default_jobs, run_audit
from ledger.audit.chain import ChainBatch, ChainFacts
from ledger.meters.keys import KeyAlgorithm, encode_public_key
from ledger.meters.registry import KeyEpochView
from ledger.readings.native import anchored_leaf, decode

BATCH_READINGS = 1_000


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def write_bundle(fleet: SignedFleet, readings: int, path: Path) -> dict[int, ChainBatch]:
    """Writes the bundle of the fleet's first `readings` readings; returns its batches as the
    chain would record them."""
    objects = fleet.tick_major(range(fleet.ticks))[:readings]
    batches: dict[int, ChainBatch] = {}
    with path.open("wb") as out:
        selection = {"batches": {"first": 1, "last": -(-len(objects) // BATCH_READINGS)}}
        out.write(_line({"type": "header", "format": FORMAT, "selection": selection,
                         "created_at": "2026-01-01T00:00:00.000000Z"}))  # fmt: skip
        for first in range(0, len(objects), BATCH_READINGS):
            batch_id = first // BATCH_READINGS + 1
            signed = [decode_object(o) for o in objects[first : first + BATCH_READINGS]]
            decoded = [decode(canonical) for canonical, _ in signed]
            leaves = [anchored_leaf(c, c, signature) for c, signature in signed]
            times = [r.timestamp for r in decoded]
            root = MerkleTree(leaves).root
            batches[batch_id] = ChainBatch(
                batch_id, root, len(signed), min(times), max(times), batch_id
            )
            out.write(_line({"type": "batch", "batch_id": batch_id, "root": "0x" + root.hex(),
                             "count": len(signed), "from_ts": min(times), "to_ts": max(times),
                             "tx_hash": None, "block_number": batch_id,
                             "final": True, "leaf_version": 2}))  # fmt: skip
            for index, ((canonical, signature), reading, leaf) in enumerate(
                zip(signed, decoded, leaves, strict=True)
            ):
                out.write(
                    _line({
                        "type": "reading", "batch_id": batch_id, "leaf_index": index,
                        "meter_id": "0x" + reading.meter_id.hex(), "seq": reading.seq,
                        "timestamp": reading.timestamp, "import_wh": reading.import_wh,
                        "export_wh": reading.export_wh, "status": reading.status,
                        "key_epoch": 0, "source": "native", "canonical": "0x" + canonical.hex(),
                        "signature": "0x" + signature.hex(), "leaf": "0x" + leaf.hex(),
                        "proof": [],
                    })
                )  # fmt: skip
        out.write(_line({"type": "trailer", "batches": len(batches), "readings": len(objects)}))
    return batches


def measure_audit(
    fleet: SignedFleet,
    work: Path,
    *,
    readings: int,
    say: Any,
    jobs: int = 0,
    rounds: int = 3,
    after_round: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """`audit_readings_per_s` (see the module docstring): the best of `rounds` audits, with
    `after_round` called after each (the bench measures a round of its ratio base there)."""
    path = work / "audit-bundle.jsonl"
    batches = write_bundle(fleet, readings, path)
    count = sum(b.count for b in batches.values())
    meters: dict[bytes, tuple[KeyEpochView, ...]] = {
        meter.raw_id: (
            KeyEpochView(
                0, KeyAlgorithm.P256, encode_public_key(meter.key.public_key()), fleet.start, 0
            ),
        )
        for meter in fleet.fleet
    }
    facts = ChainFacts(
        chain_id=fleet.chain_id,
        addresses={},
        head=0,
        slot_s=3600,
        boundary_window_s=900,
        meters=meters,
        batches=batches,
    )
    jobs = jobs or default_jobs()
    options = AuditOptions(rpc_url="", deployment=Path(), bundle=path, jobs=jobs)
    best = 0.0
    for _ in range(rounds):
        began = time.perf_counter()
        report = run_audit(options, facts=facts)
        elapsed = time.perf_counter() - began
        if not report.ok:
            raise RuntimeError(f"the bench's own bundle failed its audit: {report.summary()}")
        per_s = count / elapsed
        best = max(best, per_s)
        say(f"audit: {count} readings in {elapsed:.1f} s with {jobs} processes: {per_s:.0f}/s")
        if after_round is not None:
            after_round()
    return {"audit_readings_per_s": round(best), "audit_jobs": jobs, "audit_readings": count}
