"""`settle_garbage_collector`, which every `ledger serve` worker runs once its app exists: what
exists then is left out of later collections, and cycles made afterwards are still collected
without anyone calling `gc.collect()`. Run in a fresh interpreter: it changes process-wide state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_PROBE = """
import gc, json, weakref
from api.main import YOUNG_GC_THRESHOLD, settle_garbage_collector

settle_garbage_collector()
frozen = gc.get_freeze_count()

class Node:
    pass

freed = []
for _ in range(3):
    node = Node()
    node.self = node  # a cycle: reference counting alone never frees it
    weakref.finalize(node, freed.append, 1)
    del node
    # Enough new containers for several young collections; no gc.collect().
    keep = [[] for _ in range(5 * YOUNG_GC_THRESHOLD)]
    del keep
print(json.dumps({
    "frozen": frozen,
    "threshold": gc.get_threshold(),
    "young": YOUNG_GC_THRESHOLD,
    "enabled": gc.isenabled(),
    "freed": len(freed),
}))
"""


def test_serving_freezes_what_exists_and_still_collects_later_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=Path(__file__).resolve().parents[3],  # the checkout: `api` is importable from it
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["frozen"] > 10_000  # the modules and app imported before, not rescanned
    assert seen["threshold"][0] == seen["young"] > 700
    assert seen["enabled"] is True
    assert seen["freed"] == 3
