"""Open-Meteo fetch against the local replay server: recorded fixtures, synthesized days, faults."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pipelines.sources.errors import MalformedResponse, SourceError, SourceUnavailable
from pipelines.sources.open_meteo import (EXPECTED_UNITS, HOURLY_VARIABLES, Location, fetch_hourly,
                                          forecast_url)
from pipelines.sources.replay_server import FIXTURES_DIR, ReplayServer, load_fixtures
from pipelines.sources.resilience import CircuitBreaker, RetryPolicy

BERLIN = Location("berlin", 52.52, 13.41)
LONDON = Location("london", 51.51, -0.13)
TOKYO = Location("tokyo", 35.69, 139.69)
PARIS = Location("paris", 48.85, 2.35)  # not recorded
DAY = date(2024, 6, 1)
FAST = RetryPolicy(base_delay=0.01, timeout=5, deadline=20, max_attempts=4)
BOUNDS = {"temperature_2m": (-90, 60), "relative_humidity_2m": (0, 100), "precipitation": (0, 500),
          "wind_speed_10m": (0, 400)}


@pytest.fixture
def replay():
    with ReplayServer() as server:
        yield server


def out_of_bounds(hourly: dict) -> list[tuple[str, int, float]]:
    return [(v, i, x) for v, (lo, hi) in BOUNDS.items() for i, x in enumerate(hourly[v])
            if x is not None and not lo <= x <= hi]


def test_fixtures_follow_the_documented_response_shape():
    fixtures = load_fixtures()
    assert 2 <= len({(f.latitude, f.longitude) for f in fixtures}) <= 3 and len(fixtures) <= 6
    for fx in fixtures:
        body = fx.response
        assert set(body) == {"latitude", "longitude", "generationtime_ms", "utc_offset_seconds", "timezone",
                             "timezone_abbreviation", "elevation", "hourly_units", "hourly"}
        assert body["utc_offset_seconds"] == 0 and body["timezone"] == "GMT"
        assert body["hourly_units"] == {"time": "iso8601", **EXPECTED_UNITS}
        assert len(body["hourly"]["time"]) == 24 * ((fx.end_date - fx.start_date).days + 1)
        assert body["hourly"]["time"][0] == f"{fx.start_date.isoformat()}T00:00"
        for v in HOURLY_VARIABLES:
            assert len(body["hourly"][v]) == len(body["hourly"]["time"])


def test_exactly_one_recorded_reading_is_out_of_physical_bounds():
    bad = [(fx.name, *hit) for fx in load_fixtures() for hit in out_of_bounds(fx.response["hourly"])]
    assert bad == [("london_2024-06-01", "relative_humidity_2m", 13, 140)]


def test_recorded_request_gets_the_recorded_body_verbatim(replay):
    fx = next(f for f in load_fixtures() if f.name == "berlin_2024-06-01")
    response = httpx.get(forecast_url(replay.url, BERLIN, DAY))
    assert response.status_code == 200 and response.headers["x-replay"] == "recorded"
    assert response.json() == fx.response


def test_fetch_hourly_returns_one_parsed_response_per_location_with_its_url(replay):
    responses = fetch_hourly([BERLIN, LONDON, TOKYO], DAY, base_url=replay.url, policy=FAST)
    assert [r.location for r in responses] == [BERLIN, LONDON, TOKYO]
    for r in responses:
        query = parse_qs(urlsplit(r.request_url).query)
        assert r.request_url.startswith(f"{replay.url}/v1/forecast?")
        assert query == {"latitude": [str(r.location.latitude)], "longitude": [str(r.location.longitude)],
                         "hourly": [",".join(HOURLY_VARIABLES)], "timezone": ["UTC"],
                         "start_date": ["2024-06-01"], "end_date": ["2024-06-01"]}
        assert len(r.hourly["time"]) == 24 and r.hourly_units["temperature_2m"] == "°C"
        rows = r.records()
        assert len(rows) == 24 and rows[0]["observed_at"] == datetime(2024, 6, 1, tzinfo=timezone.utc)
        assert rows[23]["observed_at"] == datetime(2024, 6, 1, 23, tzinfo=timezone.utc)
        assert all(row["source_url"] == r.request_url and row["location"] == r.location.name for row in rows)
    berlin = responses[0]
    assert (berlin.latitude, berlin.longitude, berlin.elevation) == (52.52, 13.419998, 38.0)  # grid cell
    assert responses[2].hourly["wind_speed_10m"].count(None) == 1  # the API's "no value" survives parsing
    assert [q["kind"] for q in replay.requests] == ["recorded"] * 3


def test_unrecorded_days_and_places_are_synthesized_deterministically_and_in_bounds():
    day = date(2025, 1, 15)
    with ReplayServer() as one, ReplayServer() as two:
        a = fetch_hourly([BERLIN, PARIS], day, base_url=one.url, policy=FAST)
        b = fetch_hourly([BERLIN, PARIS], day, base_url=two.url, policy=FAST)
        assert [q["kind"] for q in one.requests] == ["synthesized", "synthesized"]
        next_day = fetch_hourly([BERLIN], date(2025, 1, 16), base_url=one.url, policy=FAST)[0]
    assert [r.hourly for r in a] == [r.hourly for r in b]
    for r in a:
        assert r.hourly["time"][0] == "2025-01-15T00:00" and len(r.hourly["time"]) == 24
        assert out_of_bounds(r.hourly) == [] and None not in r.hourly["temperature_2m"]
    assert (a[0].latitude, a[0].elevation) == (52.52, 38.0)  # a recorded place keeps its grid cell
    assert (a[1].latitude, a[1].longitude) == (48.85, 2.35)
    assert next_day.hourly["temperature_2m"] != a[0].hourly["temperature_2m"]


def test_backfill_range_composes_recorded_and_synthesized_days(replay):
    (r,) = fetch_hourly([BERLIN], date(2024, 5, 31), end_day=date(2024, 6, 2), base_url=replay.url, policy=FAST)
    assert len(r.hourly["time"]) == 72 and replay.requests[0]["kind"] == "composed"
    recorded = {f.name: f.response["hourly"] for f in load_fixtures()}
    assert r.hourly["temperature_2m"][24:48] == recorded["berlin_2024-06-01"]["temperature_2m"]
    assert r.hourly["temperature_2m"][48:72] == recorded["berlin_2024-06-02"]["temperature_2m"]
    assert r.records()[-1]["observed_at"] == datetime(2024, 6, 2, 23, tzinfo=timezone.utc)


def test_bad_requests_get_the_apis_error_body(replay):
    response = httpx.get(f"{replay.url}/v1/forecast?longitude=1&start_date=2024-06-01")
    assert response.status_code == 400 and response.json() == {"error": True,
                                                               "reason": "Parameter 'latitude' is required"}
    bad_var = httpx.get(forecast_url(replay.url, BERLIN, DAY).replace("wind_speed_10m", "snow_depth"))
    assert bad_var.status_code == 400 and "snow_depth" in bad_var.json()["reason"]


def test_a_rejected_request_raises_source_error_without_retrying(replay):
    with pytest.raises(SourceError, match="HTTP 404") as err:
        fetch_hourly([BERLIN], DAY, base_url=replay.url + "/wrong-prefix", policy=FAST)
    assert not isinstance(err.value, SourceUnavailable) and len(replay.requests) == 1


def test_transient_failures_are_retried():
    with ReplayServer(fail_first=3) as server:
        responses = fetch_hourly([BERLIN, LONDON], DAY, base_url=server.url, policy=FAST)
        assert [q["status"] for q in server.requests] == [503, 503, 503, 200, 200]
    assert len(responses) == 2


def test_an_api_that_stays_down_raises_source_unavailable():
    with ReplayServer(fail_first=100) as server:
        with pytest.raises(SourceUnavailable, match="open-meteo unavailable"):
            fetch_hourly([BERLIN], DAY, base_url=server.url, policy=FAST, breaker=CircuitBreaker(50, 1))
        assert len(server.requests) == FAST.max_attempts


def test_a_response_in_other_units_is_rejected_not_misread(tmp_path):
    src = json.loads((FIXTURES_DIR / "berlin_2024-06-01.json").read_text(encoding="utf-8"))
    src["response"]["hourly_units"]["temperature_2m"] = "°F"
    (tmp_path / "berlin_f.json").write_text(json.dumps(src), encoding="utf-8")
    with ReplayServer(tmp_path) as server:
        with pytest.raises(MalformedResponse, match="unexpected units"):
            fetch_hourly([BERLIN], DAY, base_url=server.url, policy=FAST)


def test_nothing_is_fetched_for_an_inverted_range():
    with pytest.raises(ValueError, match="before"):
        fetch_hourly([BERLIN], DAY, end_day=date(2024, 5, 1), base_url="http://127.0.0.1:9")


def test_locations_reject_impossible_coordinates():
    with pytest.raises(ValueError, match="out of range"):
        Location("nowhere", 91.0, 0.0)
