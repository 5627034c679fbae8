"""A local stand-in for the Open-Meteo forecast API: recorded responses, synthesized days.

Tests and the ``--offline`` demo point :func:`~pipelines.sources.open_meteo.fetch_hourly` at
this server instead of the live API. A request whose (latitude, longitude, start_date,
end_date) matches a recorded fixture gets that body verbatim. Any other day is built per day:
recorded data where a fixture covers it, otherwise a deterministic synthesized day shaped
like the nearest recorded location (same metadata and units, plausible diurnal values), so
backfills and any ``--date`` work offline and give the same answer on every run.

Fixtures live in ``pipelines/fixtures/open_meteo/*.json`` as ``{"request": {...},
"response": {...}}``; the response follows the documented forecast body.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pipelines.sources.open_meteo import FORECAST_PATH, HOURLY_VARIABLES

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "open_meteo"
MAX_DAYS = 92  # one request covers at most a quarter (the live API allows a similar range)


@dataclass(frozen=True)
class Fixture:
    """One recorded request and the body the API returned for it."""

    name: str
    latitude: float
    longitude: float
    start_date: date
    end_date: date
    response: dict[str, Any]

    def covers(self, day: date) -> bool:
        return self.start_date <= day <= self.end_date

    def day_slice(self, day: date, variables: list[str]) -> dict[str, list[Any]]:
        """The recorded hours of ``day`` for ``variables`` (plus ``time``)."""
        hourly = self.response["hourly"]
        prefix = day.isoformat()
        idx = [i for i, t in enumerate(hourly["time"]) if t.startswith(prefix)]
        return {"time": [hourly["time"][i] for i in idx],
                **{v: [hourly[v][i] for i in idx] for v in variables}}


def load_fixtures(directory: Path | str = FIXTURES_DIR) -> list[Fixture]:
    """Every fixture in ``directory``, sorted by file name (raises on a malformed file)."""
    fixtures = []
    for path in sorted(Path(directory).glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        req = doc["request"]
        fixtures.append(Fixture(name=path.stem, latitude=float(req["latitude"]),
                                longitude=float(req["longitude"]),
                                start_date=date.fromisoformat(req["start_date"]),
                                end_date=date.fromisoformat(req["end_date"]), response=doc["response"]))
    return fixtures


class BadRequest(ValueError):
    """A request the real API would answer with 400 ``{"error": true, "reason": ...}``."""


@dataclass(frozen=True)
class ForecastRequest:
    latitude: float
    longitude: float
    start_date: date
    end_date: date
    variables: list[str]

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> "ForecastRequest":
        def one(name: str) -> str:
            values = query.get(name)
            if not values or not values[0].strip():
                raise BadRequest(f"Parameter '{name}' is required")
            return values[0].strip()

        lat_text, lon_text = one("latitude"), one("longitude")
        try:
            lat, lon = float(lat_text), float(lon_text)
        except ValueError:
            raise BadRequest("Latitude and longitude must be numbers") from None
        if not -90 <= lat <= 90 or not -180 <= lon <= 180:
            raise BadRequest("Latitude must be in range of -90 to 90°. Longitude must be in range of -180 to 180°.")
        tz = (query.get("timezone") or ["GMT"])[0]
        if tz.upper() not in ("UTC", "GMT"):
            raise BadRequest(f"The replay server only records timezone=UTC, not {tz!r}")
        start_text = one("start_date")
        try:
            start = date.fromisoformat(start_text)
            end = date.fromisoformat((query.get("end_date") or [start_text])[0])
        except ValueError:
            raise BadRequest("Dates must be formatted as yyyy-mm-dd") from None
        if end < start:
            raise BadRequest("Parameter 'end_date' must not be before 'start_date'")
        if (end - start).days + 1 > MAX_DAYS:
            raise BadRequest(f"A request covers at most {MAX_DAYS} days")
        variables = [v for part in query.get("hourly", []) for v in part.split(",") if v]
        unknown = [v for v in variables if v not in HOURLY_VARIABLES]
        if unknown:
            raise BadRequest(f"Cannot initialize WeatherVariable from invalid String value {unknown[0]}")
        return cls(lat, lon, start, end, variables)

    def days(self) -> list[date]:
        return [self.start_date + timedelta(days=i) for i in range((self.end_date - self.start_date).days + 1)]


def _same_place(fx: Fixture, lat: float, lon: float) -> bool:
    return round(fx.latitude, 4) == round(lat, 4) and round(fx.longitude, 4) == round(lon, 4)


def build_response(fixtures: list[Fixture], req: ForecastRequest) -> tuple[dict[str, Any], str]:
    """The body for ``req`` and how it was made: ``recorded``, ``composed`` or ``synthesized``."""
    if not fixtures:
        raise BadRequest("The replay server has no recorded responses")
    here = [fx for fx in fixtures if _same_place(fx, req.latitude, req.longitude)]
    for fx in here:
        if (fx.start_date, fx.end_date) == (req.start_date, req.end_date) and req.variables == list(HOURLY_VARIABLES):
            return fx.response, "recorded"
    shape = here[0] if here else _nearest(fixtures, req.latitude, req.longitude)
    hourly: dict[str, list[Any]] = {"time": [], **{v: [] for v in req.variables}}
    synthesized = 0
    for day in req.days():
        source = next((fx for fx in here if fx.covers(day)), None)
        part = source.day_slice(day, req.variables) if source else _synthesize_day(shape, req, day)
        synthesized += source is None
        for key, values in part.items():
            hourly[key].extend(values)
    body = _with_hourly(shape.response, hourly, req, recorded_place=bool(here))
    return body, "synthesized" if synthesized == len(req.days()) else "composed"


def _with_hourly(template: dict[str, Any], hourly: dict[str, list[Any]], req: ForecastRequest, *,
                 recorded_place: bool) -> dict[str, Any]:
    """A body with ``template``'s metadata (its grid cell if the place was recorded) and ``hourly``."""
    variables = req.variables
    body = {k: v for k, v in template.items() if k not in ("hourly", "hourly_units")}
    if not recorded_place:
        body["latitude"], body["longitude"] = req.latitude, req.longitude
    body["generationtime_ms"] = round(0.04 + 0.002 * len(req.days()), 6)
    units = template.get("hourly_units", {})
    body["hourly_units"] = {"time": units.get("time", "iso8601"), **{v: units[v] for v in variables}}
    body["hourly"] = hourly
    return body


def _nearest(fixtures: list[Fixture], lat: float, lon: float) -> Fixture:
    return min(fixtures, key=lambda fx: ((fx.latitude - lat) ** 2 + (fx.longitude - lon) ** 2, fx.name))


def _typical(shape: Fixture, name: str, low: float, high: float, default: float) -> float:
    values = [v for v in shape.response["hourly"].get(name, []) if v is not None and low <= v <= high]
    return statistics.median(values) if values else default


def _seasonal_offset(latitude: float, day: date) -> float:
    """°C above the yearly mean: warmest mid-July in the north, mid-January in the south."""
    amplitude = 0.25 * abs(latitude)
    hemisphere = 1.0 if latitude >= 0 else -1.0
    return hemisphere * amplitude * math.cos(2.0 * math.pi * (day.timetuple().tm_yday - 200) / 365.25)


def _synthesize_day(shape: Fixture, req: ForecastRequest, day: date) -> dict[str, list[Any]]:
    """24 plausible, in-bounds hours for ``day``, a pure function of place, day and shape."""
    rng = random.Random(f"{req.latitude:.4f},{req.longitude:.4f},{day.isoformat()}")
    season = _seasonal_offset(req.latitude, day) - _seasonal_offset(shape.latitude, shape.start_date)
    temp0 = _typical(shape, "temperature_2m", -90, 60, 15.0) + season + rng.uniform(-3.0, 3.0)
    rh0 = _typical(shape, "relative_humidity_2m", 0, 100, 70.0)
    wind0 = _typical(shape, "wind_speed_10m", 0, 400, 10.0) * rng.uniform(0.7, 1.3)
    peak = (14.0 - req.longitude / 15.0) % 24
    rain = (rng.randrange(24), rng.randint(2, 4)) if rng.random() < 0.3 else None
    out: dict[str, list[Any]] = {"time": [], **{v: [] for v in req.variables}}
    for hour in range(24):
        phase = math.cos((hour - peak) / 24.0 * 2.0 * math.pi)
        values = {
            "temperature_2m": round(temp0 + 4.0 * phase + rng.uniform(-0.5, 0.5), 1),
            "relative_humidity_2m": int(round(min(100.0, max(5.0, rh0 - 12.0 * phase + rng.uniform(-3, 3))))),
            "precipitation": round(rng.uniform(0.1, 2.0), 1) if rain and rain[0] <= hour < rain[0] + rain[1] else 0.0,
            "wind_speed_10m": round(max(0.0, wind0 + 3.0 * phase + rng.uniform(-1.5, 1.5)), 1),
        }
        out["time"].append(f"{day.isoformat()}T{hour:02d}:00")
        for v in req.variables:
            out[v].append(values[v])
    return out


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: don't wait 40 ms between

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        replay = self.server.replay
        if replay.take_failure():
            self._send(503, {"error": True, "reason": "replay: injected failure"}, "failure", parts)
            return
        if parts.path != FORECAST_PATH:
            self._send(404, {"error": True, "reason": f"Not found: {parts.path}"}, "error", parts)
            return
        try:
            req = ForecastRequest.from_query(parse_qs(parts.query, keep_blank_values=True))
            body, kind = build_response(replay.fixtures, req)
        except BadRequest as exc:
            self._send(400, {"error": True, "reason": str(exc)}, "error", parts)
            return
        self._send(200, body, kind, parts)

    def _send(self, status: int, body: dict[str, Any], kind: str, parts: Any) -> None:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.server.replay.record(parts.path, parts.query, status, kind)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Replay", kind)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and the demo own stdout
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    replay: "ReplayServer"


class ReplayServer:
    """The replay API on 127.0.0.1 in a background thread; use as a context manager.

    ``url`` is the base URL to pass as ``fetch_hourly(..., base_url=server.url)``.
    ``fail_first`` answers the first N requests with 503 (to exercise retries).
    ``requests`` lists what was served: dicts with path, query, status and kind.
    """

    def __init__(self, fixtures_dir: Path | str = FIXTURES_DIR, *, host: str = "127.0.0.1",
                 port: int = 0, fail_first: int = 0) -> None:
        self.fixtures = load_fixtures(fixtures_dir)
        self.host = host
        self.port = port
        self.fail_first = fail_first
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("replay server is not running")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> "ReplayServer":
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.replay = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="open-meteo-replay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def take_failure(self) -> bool:
        with self._lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                return True
            return False

    def record(self, path: str, query: str, status: int, kind: str) -> None:
        with self._lock:
            self.requests.append({"path": path, "query": query, "status": status, "kind": kind})

    def __enter__(self) -> "ReplayServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # pragma: no cover - `python -m pipelines.sources.replay_server [PORT]`
    import sys
    import time as _time

    with ReplayServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0) as _server:
        print(f"Open-Meteo replay on {_server.url} ({len(_server.fixtures)} recorded responses); Ctrl-C stops",
              flush=True)
        try:
            while True:
                _time.sleep(3600)
        except KeyboardInterrupt:
            pass
