"""The one place the audit turns a bundle's reading into its Merkle leaf.

Every leaf the audit rebuilds a batch root from goes through `leaf_of`, so that the leaf's
definition lives in one place here, never a second copy drifting from the first.

The leaf is version 2 (`ledger.readings.native.anchored_leaf`, docs/reading-format.md): it
commits to the reading's fields, the exact bytes the meter signed (native: the canonical bytes;
OCMF: the record's payload) and the signature in its one fixed form, which is what lets anyone
prove a forged reading on chain (`ReadingLedger.proveBadReading`). Every batch of a ReadingLedger
of this build holds version-2 leaves; the audit binds no other (`ledger.audit.chain`), so it
never rebuilds a version-1 root: a batch anchored with version-1 leaves there could never be
proven bad, and shows as `batch_root_mismatch`.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import utils

from ledger.anchoring.bundle import BundleReading
from ledger.readings.native import SIGNATURE_LENGTH, anchored_leaf
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.verify import ocmf_signature_form


def leaf_of(reading: BundleReading, verified_form: bytes | None = None) -> bytes:
    """The reading's Merkle leaf as the chain's batch root commits to it, from the signed bytes
    and the signature (never the `leaf` the bundle states).

    Args:
        reading: The bundle's reading.
        verified_form: A native signature's fixed form as its verification under the meter's
            key found it (`native.verify_signature`'s answer: a 64-byte signature that is also
            strict DER is read in whichever form verifies). Without it (no key, or a signature
            that verifies in no form), a 64-byte signature is taken as r || s and a DER one as
            its r || s.

    Raises:
        ReadingFormatError: `canonical` is not 256 bytes starting with the domain tag.
        LedgerError: an OCMF record that cannot be parsed (OcmfError).
    """
    if reading.source == "ocmf":
        assert reading.ocmf is not None  # the bundle's reader requires it of an OCMF line
        record = parse_ocmf(reading.ocmf)
        return anchored_leaf(reading.canonical, record.payload_bytes, ocmf_signature_form(record))
    form = verified_form if verified_form is not None else _unverified_form(reading.signature)
    return anchored_leaf(reading.canonical, reading.canonical, form)


def _unverified_form(signature: bytes) -> bytes:
    """A forged signature's form, as it would have been anchored given."""
    if len(signature) == SIGNATURE_LENGTH or signature[:1] != b"\x30":
        return signature
    try:
        r, s = utils.decode_dss_signature(signature)
    except ValueError:
        return signature
    if r >= 2**256 or s >= 2**256:
        return signature
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
