"""Consumption per interval and the readings export (api/routes/usage.py, docs/usage.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import MeterIdText
from api.schemas.readings import StoredReadingPublic


class IntervalPublic(BaseModel):
    """One interval's consumption (from a `ledger.billing.usage.Interval`)."""

    model_config = ConfigDict(from_attributes=True)

    start: int = Field(description="first second of the interval (Unix seconds)")
    end: int = Field(description="the second after the interval (Unix seconds)")
    start_local: str = Field(
        description="`start` in the billing time zone, ISO 8601 with its UTC offset"
    )
    import_wh: int = Field(description="Wh taken from the grid in the interval")
    export_wh: int = Field(description="Wh fed into the grid in the interval")
    estimated: bool = Field(description="true when some of the Wh are estimated")
    estimated_import_wh: int = Field(description="the estimated part of `import_wh`")
    estimated_export_wh: int = Field(description="the estimated part of `export_wh`")
    estimate_rules: list[str] = Field(
        description="the bills' estimate rules used: `gap_pro_rata_by_seconds` (readings "
        "missing), `average_rate` (before the first or after the last reading), `no_readings`"
    )


class ConsumptionPagePublic(BaseModel):
    """A page of a meter's consumption per interval, oldest first."""

    meter_id: MeterIdText
    group_by: str
    time_zone: str = Field(description="LEDGER_BILLING_TIME_ZONE: the zone intervals are cut in")
    period_from: int
    period_to: int
    count: int = Field(description="intervals in the whole period")
    next: str | None = Field(description="URL of the next page; null on the last")
    previous: str | None = Field(description="URL of the previous page; null on the first")
    results: list[IntervalPublic]


class ReadingsExportPublic(BaseModel):
    """Every stored reading of the meter dated in the period, each with its proof."""

    meter_id: MeterIdText
    period_from: int
    period_to: int
    count: int
    readings: list[StoredReadingPublic]
