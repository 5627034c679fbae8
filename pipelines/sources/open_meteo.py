"""Hourly weather from the Open-Meteo forecast API (``GET /v1/forecast``).

One request per location and day range, in UTC, for the four variables the weather pipeline
loads. Each :class:`WeatherResponse` keeps the exact request URL so every row can be stamped
with the request it came from. Responses are checked against the documented shape (equal
length hourly arrays, the units we convert from) so a changed API fails loudly, not silently.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from pipelines.sources.errors import MalformedResponse
from pipelines.sources.resilience import CallStats, CircuitBreaker, ResilientHttp, RetryPolicy

DEFAULT_BASE_URL = "https://api.open-meteo.com"
FORECAST_PATH = "/v1/forecast"
SOURCE = "open-meteo"

#: Variables requested, in request order.
HOURLY_VARIABLES: tuple[str, ...] = ("temperature_2m", "relative_humidity_2m", "precipitation", "wind_speed_10m")

#: Units the API reports for them by default (and the unit conversions expect).
EXPECTED_UNITS: dict[str, str] = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "precipitation": "mm",
    "wind_speed_10m": "km/h",
}


@dataclass(frozen=True)
class Location:
    """A named point; the name is ours (Open-Meteo only knows coordinates)."""

    name: str
    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude <= 90.0 or not -180.0 <= self.longitude <= 180.0:
            raise ValueError(f"location {self.name!r}: coordinates out of range "
                             f"({self.latitude}, {self.longitude})")


class _Hourly(BaseModel):
    model_config = ConfigDict(extra="allow")
    time: list[str]

    @model_validator(mode="after")
    def _same_length(self) -> "_Hourly":
        for name, values in (self.model_extra or {}).items():
            if not isinstance(values, list) or len(values) != len(self.time):
                raise ValueError(f"hourly.{name} does not have one value per hour ({len(self.time)})")
            if any(v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in values):
                raise ValueError(f"hourly.{name} holds a non-numeric value")
        return self


class _ForecastBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    latitude: float
    longitude: float
    generationtime_ms: float
    utc_offset_seconds: int
    timezone: str
    timezone_abbreviation: str
    elevation: float
    hourly_units: dict[str, str]
    hourly: _Hourly


@dataclass(frozen=True)
class WeatherResponse:
    """One parsed forecast response for one location.

    ``latitude``/``longitude`` are the grid cell the API answered for (they differ slightly
    from the requested coordinates); ``hourly`` maps ``time`` and each variable to a list,
    values may be None where the API has no data. ``payload`` is the body as received.
    """

    location: Location
    request_url: str
    latitude: float
    longitude: float
    elevation: float
    timezone: str
    utc_offset_seconds: int
    generationtime_ms: float
    hourly_units: dict[str, str]
    hourly: dict[str, list[Any]]
    payload: dict[str, Any] = field(repr=False)

    @property
    def times(self) -> list[datetime]:
        """Hour starts as timezone-aware UTC datetimes."""
        return [_parse_time(t, self.utc_offset_seconds) for t in self.hourly["time"]]

    def records(self) -> list[dict[str, Any]]:
        """One dict per hour: location fields, ``observed_at`` (UTC), the variables, ``source_url``."""
        times = self.times
        rows = []
        for i, observed_at in enumerate(times):
            row: dict[str, Any] = {
                "location": self.location.name,
                "latitude": self.latitude,
                "longitude": self.longitude,
                "elevation": self.elevation,
                "observed_at": observed_at,
            }
            for name in HOURLY_VARIABLES:
                row[name] = self.hourly[name][i]
            row["source_url"] = self.request_url
            rows.append(row)
        return rows


def forecast_params(location: Location, start: date, end: date | None = None) -> dict[str, str]:
    """The query parameters of one forecast request, in a stable order."""
    return {
        "latitude": format_coordinate(location.latitude),
        "longitude": format_coordinate(location.longitude),
        "hourly": ",".join(HOURLY_VARIABLES),
        "timezone": "UTC",
        "start_date": start.isoformat(),
        "end_date": (end or start).isoformat(),
    }


def forecast_url(base_url: str, location: Location, start: date, end: date | None = None) -> str:
    """The full request URL (commas left readable, as the API documents them)."""
    query = urlencode(forecast_params(location, start, end), safe=",")
    return f"{base_url.rstrip('/')}{FORECAST_PATH}?{query}"


def format_coordinate(value: float) -> str:
    """A coordinate with at most 4 decimals and no trailing zeros (52.5200 -> '52.52')."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fetch_hourly(locations: list[Location], day: date, *, base_url: str = DEFAULT_BASE_URL,
                 client: httpx.Client | None = None, end_day: date | None = None,
                 policy: RetryPolicy | None = None, breaker: CircuitBreaker | None = None,
                 seed: int | None = None, stats: CallStats | None = None) -> list[WeatherResponse]:
    """Fetch hourly weather for ``day`` (through ``end_day`` for a backfill) at every location
    (``stats``: counts of the requests and retries it took, filled in as it goes).

    Retries transient faults per :mod:`pipelines.sources.resilience`; the policy's deadline
    covers all locations. Raises :class:`SourceUnavailable` when the API stays down,
    :class:`SourceError` when it rejects the request (its ``reason`` is in the message),
    :class:`MalformedResponse` when a body never matches the documented shape.
    """
    if end_day is not None and end_day < day:
        raise ValueError(f"end_day {end_day} is before day {day}")
    own_client = client is None
    http_client = client or httpx.Client()
    try:
        http = ResilientHttp(http_client, source=SOURCE, policy=policy, breaker=breaker,
                             rng=random.Random(seed) if seed is not None else None, stats=stats)
        deadline = http.new_deadline()
        responses = []
        for location in locations:
            url = forecast_url(base_url, location, day, end_day)
            responses.append(http.get(url, deadline=deadline,
                                      parse=functools.partial(parse_forecast, location=location)))
        return responses
    finally:
        if own_client:
            http_client.close()


def parse_forecast(response: httpx.Response, location: Location) -> WeatherResponse:
    """Check a 2xx body against the documented shape and wrap it; raises MalformedResponse."""
    raw = response.content.decode("utf-8", errors="replace")
    try:
        payload = json.loads(raw)
        body = _ForecastBody.model_validate(payload)
    except (ValueError, ValidationError) as exc:
        raise MalformedResponse(f"{SOURCE}: unexpected response for {location.name}: {_first_line(exc)}",
                                raw=raw, source=SOURCE, status=response.status_code) from None
    missing = [v for v in HOURLY_VARIABLES if v not in (body.hourly.model_extra or {})]
    wrong_units = {v: body.hourly_units.get(v) for v in HOURLY_VARIABLES
                   if v not in missing and body.hourly_units.get(v) != EXPECTED_UNITS[v]}
    if missing or wrong_units:
        why = f"missing {missing}" if missing else f"unexpected units {wrong_units}"
        raise MalformedResponse(f"{SOURCE}: response for {location.name}: {why}",
                                raw=raw, source=SOURCE, status=response.status_code)
    hourly = {"time": list(body.hourly.time), **{v: list(body.hourly.model_extra[v]) for v in HOURLY_VARIABLES}}  # type: ignore[index]
    return WeatherResponse(
        location=location, request_url=str(response.request.url), latitude=body.latitude,
        longitude=body.longitude, elevation=body.elevation, timezone=body.timezone,
        utc_offset_seconds=body.utc_offset_seconds, generationtime_ms=body.generationtime_ms,
        hourly_units=dict(body.hourly_units), hourly=hourly, payload=payload)


def _parse_time(text: str, utc_offset_seconds: int) -> datetime:
    local = datetime.fromisoformat(text)
    if local.tzinfo is None:
        local = local.replace(tzinfo=timezone.utc)
        local -= timedelta(seconds=utc_offset_seconds)
    return local.astimezone(timezone.utc)


def _first_line(exc: Exception) -> str:
    """A one-line reason: the first pydantic error with its location, or the exception text."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        return f"{where}: {err['msg']}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
