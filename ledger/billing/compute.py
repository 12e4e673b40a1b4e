"""The bill computation: pure functions from anchored readings, tariffs and settled trades.

`compute_bill(BillInputs) -> dict` gives the bill document (docs/bills.md, "Bill document v1").
Anyone holding the same inputs (the readings and trades are on record and anchored, the
tariffs' texts are public) computes the same document, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.billing.tariff import Tariff
from ledger.billing.timeline import Assignment
from ledger.errors import LedgerError


class BillInputError(LedgerError):
    """Inputs a bill cannot be computed from (readings out of order, a trade of another
    customer's meters, an address that is not one ...)."""

    code = "invalid_bill_inputs"
    http_status = 422


class TariffCurrencyMismatch(BillInputError):
    """A tariff priced in another currency or with other decimals than the settlement token."""

    code = "tariff_currency_mismatch"
    http_status = 409


@dataclass(frozen=True, slots=True)
class BillReading:
    """One anchored reading of a meter: cumulative import/export registers in Wh."""

    meter_id: bytes
    seq: int
    timestamp: int
    import_wh: int
    export_wh: int
    batch_id: int


@dataclass(frozen=True, slots=True)
class SettledTrade:
    """A P2P trade settled on chain: `delivered_wh` and `paid` (minor units) from settlement."""

    trade_id: int
    seller_meter: bytes
    buyer_meter: bytes
    slot_start: int
    slot_end: int
    delivered_wh: int
    paid: int


@dataclass(frozen=True)
class BillInputs:
    """Everything one bill is computed from.

    `readings[meter]`: that meter's anchored readings sorted by seq, from the last one at or
    before `period_start` to the first one at or after `period_end` (all of them where those do
    not exist). `assignments`: the customer's, sorted by valid_from. `currency`: the settlement
    token's (symbol, decimals).
    """

    chain_id: int
    bill_registry: str
    customer: str
    period_start: int
    period_end: int
    period_label: str | None
    meters: tuple[bytes, ...]
    readings: Mapping[bytes, Sequence[BillReading]]
    tariffs: Mapping[bytes, Tariff]
    assignments: Sequence[Assignment]
    trades: Sequence[SettledTrade]
    pending_trades: Sequence[int]
    replaces: bytes | None
    currency: tuple[str, int]


def compute_bill(inputs: BillInputs) -> dict[str, Any]:
    """The bill document (JSON-ready, canonical_json gives its bytes) for `inputs`."""
    raise NotImplementedError("filled in by the next commit")
