"""Gas snapshot: gas used by the state-changing calls, compared with `snapshots/gas.json`.

A change that makes registering, rotating, revoking or anchoring dearer (or cheaper) fails here
and, once accepted with `UPDATE_GAS_SNAPSHOT=1`, shows in the snapshot file's diff. Every input is
a constant (no block times), because calldata gas depends on the argument bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ledger.chain import Chain
from ledger.compiler import PROJECT_ROOT
from ledger.deployment import Deployment

SNAPSHOT = PROJECT_ROOT / "snapshots" / "gas.json"
METER = b"METER-GAS-0001".ljust(32, b"\x00")
P256 = 0
FIRST_KEY = b"\x04" + keccak(b"first x") + keccak(b"first y")
SECOND_KEY = b"\x04" + keccak(b"second x") + keccak(b"second y")
# Fixed times: 2023-11-14 for the first key, 2096 for the rotation (always in the future).
FIRST_VALID_FROM = 1_700_000_000
ROTATION_VALID_FROM = 4_000_000_000


def measure(chain: Chain, deployment: Deployment, owner: str) -> dict[str, int]:
    """Gas used by one call of each measured function on a fresh deployment."""
    registry = deployment.meter_registry
    ledger = deployment.reading_ledger
    calls = {
        "MeterRegistry.registerMeter": registry.functions.registerMeter(
            METER, owner, P256, FIRST_KEY, FIRST_VALID_FROM
        ),
        "MeterRegistry.rotateKey": registry.functions.rotateKey(
            METER, P256, SECOND_KEY, ROTATION_VALID_FROM
        ),
        "MeterRegistry.revokeKey": registry.functions.revokeKey(METER),
        # The first batch also turns the last-batch-id slot from zero to non-zero; every later
        # batch is the steady state that the gas-per-reading target is about.
        "ReadingLedger.anchor (first batch)": ledger.functions.anchor(
            1, keccak(text="batch 1"), 96, FIRST_VALID_FROM, FIRST_VALID_FROM + 86_399
        ),
        "ReadingLedger.anchor": ledger.functions.anchor(
            2, keccak(text="batch 2"), 1000, FIRST_VALID_FROM + 86_400, FIRST_VALID_FROM + 172_799
        ),
    }
    return {name: int(chain.transact(call)["gasUsed"]) for name, call in calls.items()}


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


def test_anchoring_a_batch_of_1000_costs_at_most_60_gas_per_reading(
    chain: Chain, deployment: Deployment
) -> None:
    ledger = deployment.reading_ledger
    first_ts = FIRST_VALID_FROM
    for batch_id in (1, 2):
        receipt = chain.transact(
            ledger.functions.anchor(
                batch_id, keccak(batch_id.to_bytes(32, "big")), 1000, first_ts, first_ts + 899
            )
        )

    assert int(receipt["gasUsed"]) <= 60 * 1000


def test_gas_used_matches_the_committed_snapshot(
    chain: Chain, deployment: Deployment, alice: LocalAccount
) -> None:
    measured = measure(chain, deployment, alice.address)

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
