"""`brownie run scripts/register_meters.py main METERS.csv --network ledger-ganache`: register the
meters of a CSV file in the ledger's MeterRegistry.

The file (scripts/meters.example.csv is one) has a header row naming five columns, in any order:

    meter_id     the meter's serial (1-32 printable bytes) or 0x + 64 hex digits
    owner        the owner's account address
    algorithm    p256, ed25519 or secp256k1
    public_key   the meter's public key in any form `ledger meter register` reads (hex or base64
                 of a SEC1 point, raw x||y, a raw Ed25519 key or DER; PEM in a quoted cell)
    valid_from   when the key starts: Unix seconds, ISO 8601 with a zone (2025-01-01T00:00:00Z),
                 or empty for the time of registration

Blank lines and lines starting with `#` are skipped. Every row is checked before anything is sent:
the cells (with the ledger's own parsers), a meter id given twice, and the chain (a key start more
than about ten years ahead, a meter registered already with another owner or key). One bad row
stops the script with every bad line named (`error [invalid_meter_csv]: ...`) and nothing sent.
A meter registered already with the same owner and current key is skipped, so the script can be
run again after it stopped half way. Sending goes through `ledger.meters.registry.MeterAdmin`, as
`ledger meter register` does. Prints the meter ids registered now and those skipped.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.errors import MeterError
from ledger.meters.keys import MeterPublicKey, algorithm_of, encode_public_key, parse_public_key
from ledger.meters.registry import MeterAdmin, check_valid_from, meter_id_bytes, meter_id_text
from ledger.settings import Settings
from scripts._ledger import finish, ledger_deployment, operator_chain

COLUMNS = ("meter_id", "owner", "algorithm", "public_key", "valid_from")
ZERO_ADDRESS = "0x" + "00" * 20


class MeterCsvError(MeterError):
    """Rows of a meters CSV file that cannot be registered; the message names every bad line."""

    code = "invalid_meter_csv"

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"{path}: {len(problems)} bad line(s), nothing sent: " + "; ".join(problems)
        )


@dataclass(frozen=True)
class MeterRow:
    """One meter of the file, parsed and checked."""

    line: int
    meter_id: str
    owner: str
    public_key: MeterPublicKey
    valid_from: int | None


def main(csv_path: str) -> None:
    finish(lambda: register_meters(Path(csv_path)))


def register_meters(path: Path) -> dict[str, Any]:
    """Registers the file's meters on brownie's network; returns what to print.

    Raises:
        MeterCsvError: a bad row (nothing is sent).
        ContractRevert: the registry refused a registration (the rows before it are sent).
    """
    rows = read_meter_csv(path)
    settings = Settings.from_env()
    chain = operator_chain(settings)
    deployment = ledger_deployment(chain, settings)
    admin = MeterAdmin(chain, deployment)
    # As MeterAdmin bounds a key's start: by the later of the wall clock and the chain's clock.
    now = max(int(chain.w3.eth.get_block("latest")["timestamp"]), int(time.time()))
    registered_already = rows_registered_already(chain, deployment, rows, now, path)
    registered_now = []
    for row in rows:
        if row.meter_id in registered_already:
            continue
        admin.register(row.meter_id, row.owner, row.public_key, row.valid_from)
        registered_now.append(row.meter_id)
    return {
        "chain_id": chain.chain_id,
        "registered": registered_now,
        "already_registered": [row.meter_id for row in rows if row.meter_id in registered_already],
    }


def read_meter_csv(path: Path) -> list[MeterRow]:
    """The meters of the file, every cell parsed and checked.

    Raises:
        MeterCsvError: the file cannot be read, its header lacks or adds columns, or rows are
            bad (each one named by its line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise MeterCsvError(path, [f"cannot read the file: {error}"]) from error
    reader = csv.reader(text.splitlines(keepends=True))
    header: list[str] | None = None
    rows: list[MeterRow] = []
    problems: list[str] = []
    first_line_of: dict[bytes, int] = {}
    next_line = 1
    for cells in reader:
        line, next_line = next_line, reader.line_num + 1  # a quoted cell may span lines
        if not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in cells]
            if sorted(header) != sorted(COLUMNS):
                raise MeterCsvError(
                    path, [f"line {line}: the header must name the columns {', '.join(COLUMNS)}"]
                )
            continue
        if len(cells) != len(header):
            problems.append(f"line {line}: {len(cells)} cells, the header names {len(header)}")
            continue
        try:
            row = parse_row(line, dict(zip(header, (cell.strip() for cell in cells), strict=True)))
        except MeterError as error:
            problems.append(f"line {line}: {error}")
            continue
        raw_id = meter_id_bytes(row.meter_id)
        if raw_id in first_line_of:
            problems.append(
                f"line {line}: meter {row.meter_id} is on line {first_line_of[raw_id]} already"
            )
            continue
        first_line_of[raw_id] = line
        rows.append(row)
    if header is None:
        problems.append("no header row")
    if problems:
        raise MeterCsvError(path, problems)
    return rows


def parse_row(line: int, cells: dict[str, str]) -> MeterRow:
    """One row's cells as a meter to register.

    Raises:
        MeterError: a cell the registry or the ledger's parsers refuse.
    """
    meter_id = meter_id_text(meter_id_bytes(cells["meter_id"]))
    owner = cells["owner"]
    if not is_address(owner):
        raise MeterError(f"owner {owner!r} is not an account address (0x + 40 hex digits)")
    if owner.lower() == ZERO_ADDRESS:
        raise MeterError("owner is the zero address")
    public_key = parse_public_key(cells["public_key"], cells["algorithm"])
    return MeterRow(
        line=line,
        meter_id=meter_id,
        owner=to_checksum_address(owner),
        public_key=public_key,
        valid_from=parse_valid_from(cells["valid_from"]),
    )


def parse_valid_from(text: str) -> int | None:
    """Unix seconds, or ISO 8601 with a zone, or None for an empty cell.

    Raises:
        MeterError: anything else, or a time zone left out (the time would be a guess).
    """
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MeterError(
            f"valid_from {text!r} is neither Unix seconds nor ISO 8601 (2025-01-01T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise MeterError(f"valid_from {text!r} has no time zone: end it with Z or an offset")
    return int(moment.timestamp())


def rows_registered_already(
    chain: Chain, deployment: Deployment, rows: list[MeterRow], now: int, path: Path
) -> set[str]:
    """The meters of `rows` that the registry holds already with the same owner and current key.

    Raises:
        MeterCsvError: a key start too far ahead of `now`, or a meter registered with another
            owner or key (rotating a key is `ledger meter rotate`, not a second registration).
    """
    admin = MeterAdmin(chain, deployment)
    is_registered = deployment.meter_registry.functions.isRegistered
    problems: list[str] = []
    same: set[str] = set()
    for row in rows:
        if row.valid_from is not None:
            try:
                check_valid_from(row.valid_from, now)
            except MeterError as error:
                problems.append(f"line {row.line}: {error}")
                continue
        if not chain.call(is_registered(meter_id_bytes(row.meter_id))):
            continue
        view = admin.show(row.meter_id)
        current = view.epochs[-1]
        if (
            view.owner.lower() == row.owner.lower()
            and current.algorithm is algorithm_of(row.public_key)
            and current.public_key == encode_public_key(row.public_key)
        ):
            same.add(row.meter_id)
        else:
            problems.append(
                f"line {row.line}: meter {row.meter_id} is registered already with another "
                "owner or key (rotate a key with `ledger meter rotate`)"
            )
    if problems:
        raise MeterCsvError(path, problems)
    return same
