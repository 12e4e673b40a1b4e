"""Tariffs: the TOML format `energy-ledger/tariff/v1`, its parser and its hash.

A tariff file names a currency and its decimals (the settlement token's), an IANA time zone in
which its band hours are local hours, a rounding rule, a fixed charge per local day, a feed-in
credit per kWh, holidays (billed as weekend days), import prices per band and seasons that give
one band per local hour for weekdays and weekend days. docs/bills.md describes every field.

The tariff's identity is `tariff_hash(data)`: keccak256 of the file's exact bytes. The text is
kept and served as it was published, so anyone can rebuild the hash and re-read the prices; the
parsed `Tariff` keeps the bytes it came from.

Every field is checked; the first problem raises `TariffError` (code `invalid_tariff`) with a
message that names the field. Floats are refused everywhere (money and energy are integers), and
so are booleans where an integer is asked (TOML keeps them apart, Python's `bool` is an `int`).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.anchoring.merkle import keccak256
from ledger.errors import LedgerError

TARIFF_FORMAT = "energy-ledger/tariff/v1"
BANDS = ("peak", "flat", "valley")
"""Every band a tariff may price, in the order netting shortfalls are taken (docs/bills.md)."""
ROUNDING_RULES = ("half_even", "half_up", "down")
"""`half_even`: to the nearest, ties to even; `half_up`: to the nearest, ties away from zero;
`down`: toward zero."""
DAY_TYPES = ("weekday", "weekend")
HOURS_PER_DAY = 24

_TOP_LEVEL_FIELDS = frozenset(
    {
        "format",
        "name",
        "currency",
        "decimals",
        "time_zone",
        "rounding",
        "fixed_daily_minor",
        "feed_in_minor_per_kwh",
        "holidays",
        "prices_minor_per_kwh",
        "seasons",
    }
)
_SEASON_FIELDS = frozenset({"name", "months", "weekday", "weekend"})
_MAX_DECIMALS = 36
"""Far beyond any token (ERC-20 uses 18): a bound so `10**decimals` stays a sane number."""


class TariffError(LedgerError):
    """A tariff file that cannot be used; the message names the field."""

    code = "invalid_tariff"
    http_status = 422

    def __init__(self, field_name: str, problem: str) -> None:
        self.field = field_name
        super().__init__(f"tariff field {field_name!r}: {problem}")


@dataclass(frozen=True)
class Season:
    """The bands of one season: one per local hour 0..23, for weekdays and for weekend days."""

    name: str
    months: tuple[int, ...]
    weekday: tuple[str, ...]
    weekend: tuple[str, ...]


@dataclass(frozen=True)
class Tariff:
    """One parsed tariff version. Built by `parse_tariff`; `hash` is keccak256 of `text`.

    Two tariffs are equal when their bytes are: every other field follows from `text`.
    """

    hash: bytes
    text: bytes = field(repr=False)
    name: str = field(compare=False)
    currency: str = field(compare=False)
    decimals: int = field(compare=False)
    time_zone: str = field(compare=False)
    rounding: str = field(compare=False)
    fixed_daily_minor: int = field(compare=False)
    feed_in_minor_per_kwh: int = field(compare=False)
    holidays: frozenset[dt.date] = field(compare=False)
    prices_minor_per_kwh: Mapping[str, int] = field(compare=False)
    seasons: tuple[Season, ...] = field(compare=False)
    zone: ZoneInfo = field(compare=False, repr=False)
    _season_of_month: tuple[int, ...] = field(compare=False, repr=False)
    """Index into `seasons` for each month 1..12 (entry 0 unused)."""

    @property
    def bands(self) -> tuple[str, ...]:
        """The priced bands, in `BANDS` order."""
        return tuple(b for b in BANDS if b in self.prices_minor_per_kwh)

    def price(self, band: str) -> int:
        """The import price of `band` in minor units per kWh."""
        return self.prices_minor_per_kwh[band]

    def band_at(self, timestamp: int) -> str:
        """The band in force at Unix second `timestamp` (local month, day type and hour)."""
        return self.band_at_local(dt.datetime.fromtimestamp(timestamp, tz=self.zone))

    def band_at_local(self, local: dt.datetime) -> str:
        """The band of an aware local time in this tariff's zone."""
        season = self.seasons[self._season_of_month[local.month]]
        weekend = local.weekday() >= 5 or local.date() in self.holidays
        return (season.weekend if weekend else season.weekday)[local.hour]


def tariff_hash(data: bytes) -> bytes:
    """The tariff's identity: keccak256 of the file's exact bytes."""
    return keccak256(data)


def parse_tariff(data: bytes) -> Tariff:
    """Parse and check a tariff file; raises `TariffError` naming the first bad field."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TariffError("(file)", f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TariffError("(file)", f"not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - _TOP_LEVEL_FIELDS)
    if unknown:
        raise TariffError(unknown[0], "unknown field")
    if _required(doc, "format", str) != TARIFF_FORMAT:
        raise TariffError("format", f"must be {TARIFF_FORMAT!r}, got {doc['format']!r}")
    name = _required(doc, "name", str)
    currency = _required(doc, "currency", str)
    if not currency:
        raise TariffError("currency", "must not be empty")
    decimals = _int(doc, "decimals")
    if not 0 <= decimals <= _MAX_DECIMALS:
        raise TariffError("decimals", f"must be 0..{_MAX_DECIMALS}, got {decimals}")
    time_zone = _required(doc, "time_zone", str)
    zone = _zone(time_zone)
    rounding = _required(doc, "rounding", str)
    if rounding not in ROUNDING_RULES:
        raise TariffError(
            "rounding", f"must be one of {', '.join(ROUNDING_RULES)}, got {rounding!r}"
        )
    fixed_daily_minor = _int(doc, "fixed_daily_minor")
    if fixed_daily_minor < 0:
        raise TariffError("fixed_daily_minor", f"must not be negative, got {fixed_daily_minor}")
    feed_in = _int(doc, "feed_in_minor_per_kwh")
    if feed_in < 0:
        raise TariffError("feed_in_minor_per_kwh", f"must not be negative, got {feed_in}")
    holidays = _holidays(doc)
    prices = _prices(doc)
    seasons, season_of_month = _seasons(doc, prices)
    return Tariff(
        hash=tariff_hash(data),
        text=bytes(data),
        name=name,
        currency=currency,
        decimals=decimals,
        time_zone=time_zone,
        rounding=rounding,
        fixed_daily_minor=fixed_daily_minor,
        feed_in_minor_per_kwh=feed_in,
        holidays=holidays,
        prices_minor_per_kwh=prices,
        seasons=seasons,
        zone=zone,
        _season_of_month=season_of_month,
    )


# --- field checks -----------------------------------------------------------------------------


def _type_name(value: object) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}.get(
        type(value), "table" if isinstance(value, dict) else type(value).__name__
    )


def _required(table: Mapping[str, Any], key: str, kind: type, path: str = "") -> Any:
    name = path + key
    if key not in table:
        raise TariffError(name, "missing")
    value = table[key]
    # bool is a subclass of int, and a TOML float must never pass as an integer.
    if type(value) is not kind:
        expected = {int: "integer", str: "string", list: "array", dict: "table"}[kind]
        raise TariffError(name, f"must be {expected}, got {_type_name(value)}")
    return value


def _int(table: Mapping[str, Any], key: str, path: str = "") -> int:
    value: int = _required(table, key, int, path)
    return value


def _zone(time_zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TariffError("time_zone", f"not a known IANA time zone: {time_zone!r}") from None


def _holidays(doc: Mapping[str, Any]) -> frozenset[dt.date]:
    if "holidays" not in doc:
        raise TariffError("holidays", "missing (use [] for none)")
    entries = _required(doc, "holidays", list)
    days: set[dt.date] = set()
    for index, entry in enumerate(entries):
        where = f"holidays[{index}]"
        # A string "YYYY-MM-DD" as the spec shows; a TOML local date is accepted as the same day.
        if type(entry) is dt.date:
            day = entry
        elif type(entry) is str:
            try:
                day = dt.date.fromisoformat(entry)
            except ValueError:
                raise TariffError(where, f"not a date YYYY-MM-DD: {entry!r}") from None
            if entry != day.isoformat():
                raise TariffError(where, f"not a date YYYY-MM-DD: {entry!r}")
        else:
            raise TariffError(where, f"must be a date string, got {_type_name(entry)}")
        if day in days:
            raise TariffError(where, f"{day.isoformat()} listed twice")
        days.add(day)
    return frozenset(days)


def _prices(doc: Mapping[str, Any]) -> dict[str, int]:
    table = _required(doc, "prices_minor_per_kwh", dict)
    if not table:
        raise TariffError("prices_minor_per_kwh", "must price at least one band")
    prices: dict[str, int] = {}
    for band in table:
        if band not in BANDS:
            raise TariffError(
                f"prices_minor_per_kwh.{band}", f"unknown band (bands are {', '.join(BANDS)})"
            )
        prices[band] = _int(table, band, "prices_minor_per_kwh.")
    # Kept in BANDS order so iteration never depends on the file's key order.
    return {band: prices[band] for band in BANDS if band in prices}


def _seasons(
    doc: Mapping[str, Any], prices: Mapping[str, int]
) -> tuple[tuple[Season, ...], tuple[int, ...]]:
    entries = _required(doc, "seasons", list)
    if not entries:
        raise TariffError("seasons", "must hold at least one season")
    season_of_month = [-1] * 13
    seasons: list[Season] = []
    for index, entry in enumerate(entries):
        path = f"seasons[{index}]."
        if type(entry) is not dict:
            raise TariffError(f"seasons[{index}]", f"must be a table, got {_type_name(entry)}")
        unknown = sorted(set(entry) - _SEASON_FIELDS)
        if unknown:
            raise TariffError(path + unknown[0], "unknown field")
        name = _required(entry, "name", str, path)
        months = _required(entry, "months", list, path)
        if not months:
            raise TariffError(path + "months", "must name at least one month")
        for position, month in enumerate(months):
            where = f"{path}months[{position}]"
            if type(month) is not int:
                raise TariffError(where, f"must be integer, got {_type_name(month)}")
            if not 1 <= month <= 12:
                raise TariffError(where, f"must be 1..12, got {month}")
            if season_of_month[month] != -1:
                raise TariffError(where, f"month {month} is already in another season")
            season_of_month[month] = index
        bands = {day_type: _hours(entry, day_type, path, prices) for day_type in DAY_TYPES}
        seasons.append(
            Season(
                name=name,
                months=tuple(months),
                weekday=bands["weekday"],
                weekend=bands["weekend"],
            )
        )
    missing = [month for month in range(1, 13) if season_of_month[month] == -1]
    if missing:
        raise TariffError("seasons", f"months {missing} are in no season (each of 1..12 once)")
    return tuple(seasons), tuple(season_of_month)


def _hours(
    season: Mapping[str, Any], day_type: str, path: str, prices: Mapping[str, int]
) -> tuple[str, ...]:
    hours = _required(season, day_type, list, path)
    if len(hours) != HOURS_PER_DAY:
        raise TariffError(
            path + day_type,
            f"must hold {HOURS_PER_DAY} entries (local hours 0..23), got {len(hours)}",
        )
    for hour, band in enumerate(hours):
        where = f"{path}{day_type}[{hour}]"
        if type(band) is not str:
            raise TariffError(where, f"must be a band name, got {_type_name(band)}")
        if band not in prices:
            raise TariffError(
                where, f"band {band!r} has no price in prices_minor_per_kwh (unknown band)"
            )
    return tuple(hours)
