"""The weather transform: unit conversions, renames, range checks, and its declared column lineage.

Each hourly reading becomes one row of ``weather.hourly`` in metric and imperial units,
stamped with the run that loaded it and the request it came from. A reading with a value
outside physical bounds is not loaded: it goes to ``weather.hourly_quarantine`` with every
reason it failed. Python code has no SQL to parse, so the column lineage is declared here,
next to the code it describes, and travels in the run's events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lineage_auditor.model import (
    DIRECT,
    FILTER,
    IDENTITY,
    INDIRECT,
    TRANSFORMATION,
    ColumnRef,
    DatasetLineage,
    DatasetRef,
    InputField,
    OutputField,
    Transformation,
)
from pipelines.runtime.naming import public_url
from pipelines.runtime.quality import Check
from pipelines.runtime.targets import Column, Table


@dataclass(frozen=True)
class Bound:
    """The physically possible range of one API variable, in the API's unit."""

    field: str
    low: float
    high: float
    unit: str


# Beyond these a reading is an instrument or transmission error, not weather.
BOUNDS: tuple[Bound, ...] = (
    Bound("temperature_2m", -90.0, 60.0, "°C"),
    Bound("relative_humidity_2m", 0.0, 100.0, "%"),
    Bound("precipitation", 0.0, 500.0, "mm"),
    Bound("wind_speed_10m", 0.0, 410.0, "km/h"),
)
SOURCE_FIELDS: tuple[tuple[str, str], ...] = (
    ("latitude", "number"), ("longitude", "number"), ("time", "string"),
    ("temperature_2m", "number"), ("relative_humidity_2m", "number"),
    ("precipitation", "number"), ("wind_speed_10m", "number"),
)


def c_to_f(celsius: float) -> float:
    return round(celsius * 9.0 / 5.0 + 32.0, 2)


def c_to_k(celsius: float) -> float:
    return round(celsius + 273.15, 2)


def kmh_to_ms(kmh: float) -> float:
    return round(kmh / 3.6, 3)


def mm_to_in(mm: float) -> float:
    return round(mm / 25.4, 4)


# output column -> (logical type, description, ((source field, DIRECT subtype, how), ...))
_OUTPUTS: tuple[tuple[str, str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("location", "text", "configured name of the place", (
        ("latitude", TRANSFORMATION, "coordinates matched to the configured location name"),
        ("longitude", TRANSFORMATION, "coordinates matched to the configured location name"))),
    ("observed_at", "timestamptz", "start of the hour, UTC", (("time", IDENTITY, "ISO time parsed as UTC"),)),
    ("latitude", "double", "grid cell latitude the API answered for", (("latitude", IDENTITY, ""),)),
    ("longitude", "double", "grid cell longitude the API answered for", (("longitude", IDENTITY, ""),)),
    ("temperature_c", "double", "air temperature at 2 m, °C", (("temperature_2m", IDENTITY, "renamed"),)),
    ("temperature_f", "double", "air temperature at 2 m, °F", (("temperature_2m", TRANSFORMATION, "°C × 9/5 + 32"),)),
    ("temperature_k", "double", "air temperature at 2 m, K", (("temperature_2m", TRANSFORMATION, "°C + 273.15"),)),
    ("relative_humidity_pct", "double", "relative humidity at 2 m, %", (("relative_humidity_2m", IDENTITY, "renamed"),)),
    ("precipitation_mm", "double", "precipitation in the hour, mm", (("precipitation", IDENTITY, "renamed"),)),
    ("precipitation_in", "double", "precipitation in the hour, inches", (("precipitation", TRANSFORMATION, "mm ÷ 25.4"),)),
    ("wind_speed_ms", "double", "wind speed at 10 m, m/s", (("wind_speed_10m", TRANSFORMATION, "km/h ÷ 3.6"),)),
    ("run_id", "text", "OpenLineage run id of the run that last changed the row", ()),
    ("source_request", "text", "the API request the reading came from", ()),
)

_QUARANTINE_OUTPUTS: tuple[tuple[str, str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("location", "text", "configured name of the place", _OUTPUTS[0][3]),
    ("observed_at", "timestamptz", "start of the hour, UTC", _OUTPUTS[1][3]),
    ("reasons", "text", "every bound the reading broke", tuple(
        (b.field, TRANSFORMATION, "checked against physical bounds") for b in BOUNDS)),
    ("reading", "text", "the reading as received (JSON, API units)", tuple(
        (b.field, IDENTITY, "kept as received") for b in BOUNDS)),
    ("run_id", "text", "OpenLineage run id of the run that quarantined it", ()),
    ("source_request", "text", "the API request the reading came from", ()),
)

HOURLY_TABLE = Table(
    "weather.hourly",
    tuple(Column(name, kind, name not in ("location", "observed_at"), doc) for name, kind, doc, _ in _OUTPUTS),
    key=("location", "observed_at"),
    stamps=("run_id", "source_request"),
)
QUARANTINE_TABLE = Table(
    "weather.hourly_quarantine",
    tuple(Column(name, kind, name not in ("location", "observed_at"), doc) for name, kind, doc, _ in _QUARANTINE_OUTPUTS),
    key=("location", "observed_at"),
    stamps=("run_id", "source_request"),
)


@dataclass
class TransformResult:
    """Rows to load, rows to quarantine, the records as read and the checks' outcomes."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    quarantined: list[tuple[Any, ...]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


def violations(record: dict[str, Any]) -> list[str]:
    """Why a reading is physically impossible (empty when it is fine; missing values are fine)."""
    reasons = []
    for bound in BOUNDS:
        value = record.get(bound.field)
        if value is not None and not bound.low <= value <= bound.high:
            reasons.append(f"{bound.field}={value:g}{bound.unit} outside [{bound.low:g}, {bound.high:g}]")
    return reasons


def _convert(record: dict[str, Any], run_id: str, request: str) -> tuple[Any, ...]:
    temp, rain, wind = record["temperature_2m"], record["precipitation"], record["wind_speed_10m"]
    return (
        record["location"], record["observed_at"], record["latitude"], record["longitude"],
        temp, None if temp is None else c_to_f(temp), None if temp is None else c_to_k(temp),
        record["relative_humidity_2m"],
        rain, None if rain is None else mm_to_in(rain),
        None if wind is None else kmh_to_ms(wind),
        run_id, request,
    )


def transform(responses: Sequence[Any], run_id: str) -> TransformResult:
    """Convert every hourly record of ``responses`` (WeatherResponse objects); quarantine the impossible."""
    result = TransformResult()
    for response in responses:
        request = public_url(response.request_url)
        for record in response.records():
            result.records.append(record)
            reasons = violations(record)
            if reasons:
                reading = {b.field: record.get(b.field) for b in BOUNDS}
                result.quarantined.append((
                    record["location"], record["observed_at"], "; ".join(reasons),
                    json.dumps(reading, sort_keys=True), run_id, request,
                ))
            else:
                result.rows.append(_convert(record, run_id, request))
    result.checks = range_checks(result.records)
    return result


def range_checks(records: Sequence[dict[str, Any]]) -> list[Check]:
    """One assertion per bound: did every reading of the batch stay inside it?"""
    checks = []
    for bound in BOUNDS:
        bad = sum(1 for r in records if r.get(bound.field) is not None and not bound.low <= r[bound.field] <= bound.high)
        checks.append(Check(
            name=f"{bound.field}_within_physical_bounds", assertion="accepted_range", success=bad == 0,
            column=bound.field, expected=f"[{bound.low:g}, {bound.high:g}] {bound.unit}",
            actual=f"{bad} reading(s) outside", severity="warn",
            description="readings outside the range are quarantined, not loaded",
        ))
    return checks


def _lineage(source: DatasetRef, target: DatasetRef, outputs: Sequence[tuple[str, str, str, tuple]]) -> DatasetLineage:
    fields = []
    for position, (name, _kind, _doc, inputs) in enumerate(outputs):
        fields.append(OutputField(
            name=name, position=position,
            inputs=[InputField(ColumnRef(source, src), [Transformation(DIRECT, subtype, description=desc)])
                    for src, subtype, desc in inputs],
        ))
    row_filter = [InputField(ColumnRef(source, b.field), [Transformation(INDIRECT, FILTER, description="range check")])
                  for b in BOUNDS]
    return DatasetLineage(target, fields, row_filter)


def hourly_lineage(source: DatasetRef, target: DatasetRef) -> DatasetLineage:
    """Column lineage of ``weather.hourly`` from the Open-Meteo forecast dataset."""
    return _lineage(source, target, _OUTPUTS)


def quarantine_lineage(source: DatasetRef, target: DatasetRef) -> DatasetLineage:
    """Column lineage of the quarantine table from the Open-Meteo forecast dataset."""
    return _lineage(source, target, _QUARANTINE_OUTPUTS)
