"""Reading bundles: the raw signed readings of anchored batches, with their Merkle proofs, as one
stream an auditor checks against the chain alone (docs/bundle.md is the format's reference).

A bundle is JSON Lines (UTF-8, one object per line, optionally gzip-compressed):

    {"type": "header", "format": "energy-ledger/reading-bundle/v2", "selection": ..., ...}
    {"type": "batch", "batch_id": 7, "root": "0x..", "count": 3, "leaf_version": 2, ...}
    {"type": "reading", "batch_id": 7, "leaf_index": 0, ..., "proof": ["0x..", ...]}
    ... every stored reading of batch 7, in leaf order, then the next batch ...
    {"type": "trailer", "batches": 1, "readings": 3}

Each batch line says the root and count as the gateway holds them, and the batch's readings
follow it in full: an auditor rebuilds the root from the leaves, compares it with the chain's,
and names any leaf index missing (a reading withheld). Whole batches are written, so a time range
selects the anchored batches whose readings' times meet it. Readings not yet anchored are in no
bundle: they have nothing on chain to be checked against.

`bundle_lines` writes one line at a time (memory bounded by the largest batch's leaves, never
by the bundle); `read_bundle` parses one line at a time and checks the form (the order of the
lines, every field's type and length, the trailer's counts), not the content: whether the
signatures verify and the batches are complete is what the audit decides.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from ledger.anchoring.merkle import MerkleError, MerkleTree
from ledger.errors import LedgerError
from ledger.store.backends import utc_now_iso
from ledger.store.batches import BatchRecord
from ledger.store.bundle_queries import anchored_batches, census_of_batch_ids, readings_of_batch
from ledger.store.database import Store
from ledger.store.readings import StoredReading

FORMAT = "energy-ledger/reading-bundle/v2"
"""Version 2: a reading's `leaf` is the leaf of its batch's `leaf_version` (2: it commits to the
signed bytes and the signature too, docs/reading-format.md), and each batch line says that
version. A v1 bundle (every leaf version 1) is still read, its batches with `leaf_version` 1."""
FORMAT_V1 = "energy-ledger/reading-bundle/v1"
MAX_UINT64 = 2**64 - 1
CANONICAL_LENGTH = 256
HASH_LENGTH = 32
MAX_LINE_BYTES = 1 << 20
"""A reading line is ~1-2 KB (an OCMF record is the largest part); a longer line is refused
before it is parsed as JSON."""
GZIP_MAGIC = b"\x1f\x8b"


class BundleError(LedgerError):
    """A reading bundle cannot be written or read as asked."""

    code = "bundle_error"
    http_status = 422


class InvalidBundleRange(BundleError):
    """A time range or batch range that selects nothing by construction (from >= to, A > B,
    values out of range, text that is not a range)."""

    code = "bundle_invalid_range"
    http_status = 422


class UnknownBundleBatches(BundleError):
    """Batch ids the gateway holds no batch under."""

    code = "bundle_unknown_batches"
    http_status = 404


class BundleBatchesNotAnchored(BundleError):
    """Batch ids the gateway holds, but not anchored (an intent not yet mined, or foreign)."""

    code = "bundle_batches_not_anchored"
    http_status = 409


class BundleMalformed(BundleError):
    """A bundle line that is not what the format says; the message names the line."""

    code = "bundle_malformed"
    http_status = 422

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        super().__init__(f"bundle line {line}: {reason}")


class BundleUnsupportedFormat(BundleError):
    """A bundle whose header names another format or version than `FORMAT`."""

    code = "bundle_unsupported_format"
    http_status = 422


class BundleTruncated(BundleError):
    """A bundle that ends before its trailer (an interrupted download or export)."""

    code = "bundle_truncated"
    http_status = 422


# --- selection ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleSelection:
    """What a bundle holds: the anchored batches whose readings' times meet [from_ts, to_ts), or
    the batches first_batch..last_batch (inclusive), every one of which must be anchored."""

    from_ts: int | None = None
    to_ts: int | None = None
    first_batch: int | None = None
    last_batch: int | None = None

    @classmethod
    def time_range(cls, from_ts: int, to_ts: int) -> BundleSelection:
        """Raises: InvalidBundleRange: a bound outside uint64, or from_ts >= to_ts."""
        for name, value in (("from", from_ts), ("to", to_ts)):
            if not 0 <= value <= MAX_UINT64:
                raise InvalidBundleRange(f"{name} {value} is not a Unix time in 0..2^64-1")
        if from_ts >= to_ts:
            raise InvalidBundleRange(f"from {from_ts} is not before to {to_ts}")
        return cls(from_ts=from_ts, to_ts=to_ts)

    @classmethod
    def batch_range(cls, first: int, last: int) -> BundleSelection:
        """Raises: InvalidBundleRange: an id below 1 or above 2^63-1, or first > last."""
        for value in (first, last):
            if not 1 <= value < 2**63:
                raise InvalidBundleRange(f"batch id {value} is not in 1..2^63-1")
        if first > last:
            raise InvalidBundleRange(f"batch range {first}-{last} is empty: {first} > {last}")
        return cls(first_batch=first, last_batch=last)

    @classmethod
    def parse_batches(cls, text: str) -> BundleSelection:
        """`A-B` (inclusive) or a single id `A`.

        Raises: InvalidBundleRange: anything else, or an empty or out-of-range range.
        """
        first, dash, last = text.strip().partition("-")
        # ASCII digits only: str.isdigit() also passes "²", which int() refuses.
        if not _ascii_digits(first) or (dash and not _ascii_digits(last)):
            raise InvalidBundleRange(f"batches {text!r} is not A-B or A (batch ids)")
        return cls.batch_range(int(first), int(last) if dash else int(first))

    def as_json(self) -> dict[str, Any]:
        if self.first_batch is not None:
            return {"batches": {"first": self.first_batch, "last": self.last_batch}}
        return {"time": {"from": self.from_ts, "to": self.to_ts}}


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def check_selection(store: Store, selection: BundleSelection) -> None:
    """Refuses a batch range with an id the store holds no anchored batch under, before a
    single line is written (an HTTP answer cannot change its status once streaming).

    Raises:
        UnknownBundleBatches: ids with no batch (the first ten named).
        BundleBatchesNotAnchored: ids of batches not anchored (the first ten named).
    """
    if selection.first_batch is None or selection.last_batch is None:
        return
    census = census_of_batch_ids(store, selection.first_batch, selection.last_batch)
    if census.missing:
        raise UnknownBundleBatches(
            f"no batch {', '.join(map(str, census.missing))} in "
            f"{selection.first_batch}-{selection.last_batch} (the last batch is "
            f"{store.last_batch_id()})"
        )
    if census.other:
        named = ", ".join(f"{batch_id} ({status})" for batch_id, status in census.other)
        raise BundleBatchesNotAnchored(f"batches not anchored: {named}")


# --- writing ------------------------------------------------------------------------------------


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def batch_line(batch: BatchRecord) -> dict[str, Any]:
    return {
        "type": "batch",
        "batch_id": batch.batch_id,
        "root": _hex(batch.root),
        "count": batch.count,
        "from_ts": batch.from_ts,
        "to_ts": batch.to_ts,
        "leaf_version": batch.leaf_version,
        "tx_hash": None if batch.tx_hash is None else _hex(batch.tx_hash),
        "block_number": batch.block_number,
        "final": batch.final,
    }


def reading_line(reading: StoredReading, proof: list[bytes]) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "reading",
        "batch_id": reading.batch_id,
        "leaf_index": reading.leaf_index,
        "meter_id": _hex(reading.meter_id),
        "seq": reading.seq,
        "timestamp": reading.timestamp,
        "import_wh": reading.import_wh,
        "export_wh": reading.export_wh,
        "status": reading.status,
        "key_epoch": reading.key_epoch,
        "source": reading.source,
        "canonical": _hex(reading.canonical),
        "signature": _hex(reading.signature),
        "leaf": _hex(reading.leaf),
        "proof": [_hex(sibling) for sibling in proof],
    }
    if reading.raw is not None:
        # The exact record received; its signature signs the payload inside it.
        line["ocmf"] = reading.raw.decode("utf-8", errors="surrogateescape")
    return line


def bundle_lines(
    store: Store, selection: BundleSelection, *, created_at: str | None = None
) -> Iterator[bytes]:
    """The bundle of `selection`, one encoded line at a time (call `check_selection` first to
    refuse unknown batches with an error rather than an incomplete bundle).

    Memory: one batch's leaves and tree (the proofs need the whole tree) and one page of
    readings, whatever the bundle's size.
    """
    yield _line(
        {
            "type": "header",
            "format": FORMAT,
            "selection": selection.as_json(),
            "created_at": created_at or utc_now_iso(),
        }
    )
    batch_count = reading_count = 0
    batches = anchored_batches(
        store,
        batch_ids=None
        if selection.first_batch is None or selection.last_batch is None
        else (selection.first_batch, selection.last_batch),
        time_range=None
        if selection.from_ts is None or selection.to_ts is None
        else (selection.from_ts, selection.to_ts),
    )
    for batch in batches:
        yield _line(batch_line(batch))
        batch_count += 1
        leaves = store.batch_leaves(batch.batch_id)
        try:
            tree: MerkleTree | None = MerkleTree(leaves)
        except MerkleError:
            # Stored leaves that make no tree (none, or one repeated) are a database at odds
            # with its anchored root: the readings are still written, without proofs, for the
            # audit to name.
            tree = None
        # The position in the stored leaf order, not the stored leaf_index: the proof must be
        # the one of the tree these leaves make, even if a row went missing.
        for position, reading in enumerate(readings_of_batch(store, batch.batch_id)):
            proof = tree.proof(position) if tree is not None and position < len(tree) else []
            yield _line(reading_line(reading, proof))
            reading_count += 1
    yield _line({"type": "trailer", "batches": batch_count, "readings": reading_count})


def write_bundle(
    store: Store,
    selection: BundleSelection,
    out: BinaryIO,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Writes the bundle of `selection` to `out`; returns (batches, readings) written.
    `progress` is called with 1 after each reading written (the command's progress bar).

    Raises:
        UnknownBundleBatches, BundleBatchesNotAnchored: see `check_selection`.
    """
    check_selection(store, selection)
    trailer: dict[str, int] = {}
    for line in bundle_lines(store, selection):
        out.write(line)
        if progress is not None and line.startswith(b'{"type":"reading"'):
            progress(1)
        if line.startswith(b'{"type":"trailer"'):
            trailer = json.loads(line)
    return int(trailer["batches"]), int(trailer["readings"])


def export_bundle(
    store: Store,
    selection: BundleSelection,
    path: Path,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Writes the bundle to `path` (gzip-compressed when it ends in .gz), through a temporary
    file renamed at the end: an interrupted export leaves no half bundle under `path`."""
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as raw:
            if path.suffix == ".gz":
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped:
                    counts = write_bundle(store, selection, zipped, progress)  # type: ignore[arg-type]
            else:
                counts = write_bundle(store, selection, raw, progress)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return counts


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleHeader:
    format: str
    selection: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class BundleBatch:
    batch_id: int
    root: bytes
    count: int
    from_ts: int
    to_ts: int
    tx_hash: bytes | None
    block_number: int | None
    final: bool
    leaf_version: int = 2


@dataclass(frozen=True)
class BundleReading:
    batch_id: int
    leaf_index: int
    meter_id: bytes
    seq: int
    timestamp: int
    import_wh: int
    export_wh: int
    status: int
    key_epoch: int
    source: str
    canonical: bytes
    signature: bytes
    leaf: bytes
    proof: tuple[bytes, ...]
    ocmf: str | None
    """OCMF readings: the record as received, `OCMF|{payload}|{signature}`; its signature
    (`signature`, decoded) signs the payload, and `canonical` is the gateway's re-encoding of
    the same reading, the bytes the leaf hashes."""


@dataclass(frozen=True)
class BundleTrailer:
    batches: int
    readings: int


BundleItem = BundleHeader | BundleBatch | BundleReading | BundleTrailer


class _Fields:
    """Typed access to one line's fields, each failure a `BundleMalformed` naming the line."""

    def __init__(self, number: int, obj: dict[str, Any]) -> None:
        self.number = number
        self.obj = obj

    def fail(self, reason: str) -> BundleMalformed:
        return BundleMalformed(self.number, reason)

    def integer(self, name: str, maximum: int = MAX_UINT64) -> int:
        value = self.obj.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
            raise self.fail(f"{name} must be an integer in 0..{maximum}, not {value!r}")
        return value

    def optional_integer(self, name: str) -> int | None:
        return None if self.obj.get(name) is None else self.integer(name)

    def text(self, name: str) -> str:
        value = self.obj.get(name)
        if not isinstance(value, str):
            raise self.fail(f"{name} must be a string, not {value!r}")
        return value

    def hex_bytes(self, name: str, length: int | None = None, value: object = None) -> bytes:
        value = self.obj.get(name) if value is None else value
        if not isinstance(value, str) or not value.startswith("0x"):
            raise self.fail(f"{name} must be 0x-hex, not {value!r}")
        try:
            data = bytes.fromhex(value[2:])
        except ValueError:
            raise self.fail(f"{name} is not hex: {value!r}") from None
        if length is not None and len(data) != length:
            raise self.fail(f"{name} must be {length} bytes, not {len(data)}")
        return data


def _header(fields: _Fields) -> BundleHeader:
    declared = fields.obj.get("format")
    if declared not in (FORMAT, FORMAT_V1):
        raise BundleUnsupportedFormat(
            f"bundle format {declared!r} is not supported: this reader reads {FORMAT!r} "
            f"and {FORMAT_V1!r}"
        )
    selection = fields.obj.get("selection")
    if not isinstance(selection, dict):
        raise fields.fail("selection must be an object")
    return BundleHeader(str(declared), selection, fields.text("created_at"))


def _batch(fields: _Fields) -> BundleBatch:
    final = fields.obj.get("final")
    if not isinstance(final, bool):
        raise fields.fail(f"final must be true or false, not {final!r}")
    tx_hash = fields.obj.get("tx_hash")
    return BundleBatch(
        batch_id=fields.integer("batch_id"),
        root=fields.hex_bytes("root", HASH_LENGTH),
        count=fields.integer("count"),
        from_ts=fields.integer("from_ts"),
        to_ts=fields.integer("to_ts"),
        tx_hash=None if tx_hash is None else fields.hex_bytes("tx_hash", HASH_LENGTH),
        block_number=fields.optional_integer("block_number"),
        final=final,
        # Absent from v1 bundles, all of whose leaves are version 1.
        leaf_version=fields.integer("leaf_version", 2) if "leaf_version" in fields.obj else 1,
    )


def _reading(fields: _Fields) -> BundleReading:
    proof = fields.obj.get("proof")
    if not isinstance(proof, list):
        raise fields.fail("proof must be a list of 0x-hex hashes")
    source = fields.text("source")
    ocmf = fields.obj.get("ocmf")
    if source == "ocmf":
        if not isinstance(ocmf, str) or ocmf.count("|") < 2:
            raise fields.fail("an OCMF reading needs ocmf: the record OCMF|{payload}|{signature}")
    elif source == "native":
        if ocmf is not None:
            raise fields.fail("a native reading has no ocmf record")
    else:
        raise fields.fail(f"source must be 'native' or 'ocmf', not {source!r}")
    return BundleReading(
        batch_id=fields.integer("batch_id"),
        leaf_index=fields.integer("leaf_index", 2**32 - 1),
        meter_id=fields.hex_bytes("meter_id", HASH_LENGTH),
        seq=fields.integer("seq"),
        timestamp=fields.integer("timestamp"),
        import_wh=fields.integer("import_wh"),
        export_wh=fields.integer("export_wh"),
        status=fields.integer("status", 2**32 - 1),
        key_epoch=fields.integer("key_epoch", 2**32 - 1),
        source=source,
        canonical=fields.hex_bytes("canonical", CANONICAL_LENGTH),
        signature=fields.hex_bytes("signature"),
        leaf=fields.hex_bytes("leaf", HASH_LENGTH),
        proof=tuple(fields.hex_bytes("proof", HASH_LENGTH, sibling) for sibling in proof),
        ocmf=ocmf if source == "ocmf" else None,
    )


def _trailer(fields: _Fields) -> BundleTrailer:
    return BundleTrailer(fields.integer("batches"), fields.integer("readings"))


def parse_line(number: int, raw: bytes) -> BundleItem:
    """One line of a bundle, checked alone (its fields' types and lengths, not its place among
    the other lines: that is `read_bundle`'s). For readers that parse reading lines in several
    processes (the audit) and check the order themselves.

    Raises:
        BundleMalformed: not a JSON object of the format (line `number` named).
        BundleUnsupportedFormat: a header of another format or version.
    """
    if len(raw) > MAX_LINE_BYTES:
        raise BundleMalformed(number, f"longer than {MAX_LINE_BYTES} bytes")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise BundleMalformed(number, "not JSON") from None
    if not isinstance(obj, dict):
        raise BundleMalformed(number, "not a JSON object")
    fields = _Fields(number, obj)
    parsers: dict[object, Callable[[_Fields], BundleItem]] = {
        "header": _header,
        "batch": _batch,
        "reading": _reading,
        "trailer": _trailer,
    }
    parser = parsers.get(obj.get("type"))
    if parser is None:
        raise fields.fail(f"unknown line type {obj.get('type')!r}")
    return parser(fields)


def read_bundle(lines: Iterable[bytes]) -> Iterator[BundleItem]:
    """Parses a bundle line by line, yielding each item as soon as it is read.

    Checked here: the header comes first and names `FORMAT`; each reading follows the line of
    its batch (batches in rising id order, a batch's readings in rising leaf index); the trailer
    comes last and its counts are the lines read. Not checked: the content (signatures, roots,
    whether a batch's readings are all there): that is the audit's.

    Raises:
        BundleMalformed: a line that is not a JSON object of the format (its number named).
        BundleUnsupportedFormat: a header of another format or version.
        BundleTruncated: the input ends before the trailer.
    """
    number = 0
    header_seen = trailer_seen = False
    batch: BundleBatch | None = None
    last_leaf = -1
    batches = readings = 0
    for raw in lines:
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise BundleMalformed(number, f"longer than {MAX_LINE_BYTES} bytes")
        if trailer_seen:
            if raw.strip():
                raise BundleMalformed(number, "a line after the trailer")
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            raise BundleMalformed(number, "not JSON") from None
        if not isinstance(obj, dict):
            raise BundleMalformed(number, "not a JSON object")
        fields = _Fields(number, obj)
        kind = obj.get("type")
        if not header_seen:
            if kind != "header":
                raise BundleMalformed(number, "a bundle starts with its header line")
            header_seen = True
            yield _header(fields)
        elif kind == "batch":
            item = _batch(fields)
            if batch is not None and item.batch_id <= batch.batch_id:
                raise fields.fail(f"batch {item.batch_id} after batch {batch.batch_id}")
            batch, last_leaf = item, -1
            batches += 1
            yield item
        elif kind == "reading":
            reading = _reading(fields)
            if batch is None or reading.batch_id != batch.batch_id:
                raise fields.fail(f"a reading of batch {reading.batch_id} outside its batch")
            if reading.leaf_index <= last_leaf:
                raise fields.fail(f"leaf {reading.leaf_index} after leaf {last_leaf}")
            last_leaf = reading.leaf_index
            readings += 1
            yield reading
        elif kind == "trailer":
            trailer = _trailer(fields)
            if (trailer.batches, trailer.readings) != (batches, readings):
                raise fields.fail(
                    f"the trailer counts {trailer.batches} batches and {trailer.readings} "
                    f"readings; the bundle holds {batches} and {readings}"
                )
            trailer_seen = True
            yield trailer
        else:
            raise fields.fail(f"unknown line type {kind!r}")
    if not trailer_seen:
        raise BundleTruncated(f"the bundle ends at line {number} without its trailer")


def bounded_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a bundle stream as iterating over it gives them (each with its newline),
    except that a line longer than `limit` bytes is not read whole: its first `limit` + 1 bytes
    come as its line, which `parse_line` and `read_bundle` refuse as too long, and nothing after
    it is read. Iterating over the stream itself reads a line whole, however long: a bundle from
    a gateway the auditor does not trust (or a gzip bomb) could fill the memory with one line."""
    readline = stream.readline
    while raw := readline(limit + 1):
        yield raw
        if len(raw) > limit and raw[-1:] != b"\n":
            return


def open_bundle(path: Path) -> IO[bytes]:
    """Opens a bundle file for `read_bundle`, gzip-compressed or not (told by its first bytes)."""
    with open(path, "rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    if compressed:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")  # noqa: SIM115 - the caller closes it
