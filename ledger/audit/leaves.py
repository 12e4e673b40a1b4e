"""The one place the audit turns a bundle's reading into its Merkle leaf.

Every leaf the audit rebuilds a batch root from goes through `leaf_of`, so that a change of the
leaf's definition (a later leaf version that also commits to the signature, chosen per batch) is
one edit here, never a second definition drifting from the first.
"""

from __future__ import annotations

from ledger.anchoring.bundle import BundleReading
from ledger.readings.native import reading_leaf


def leaf_of(reading: BundleReading) -> bytes:
    """The reading's Merkle leaf as the chain's batch root commits to it, from the signed bytes
    (never the `leaf` the bundle states).

    Raises:
        ReadingFormatError: `canonical` is not 256 bytes starting with the domain tag.
    """
    return reading_leaf(reading.canonical)
