"""The weather spec end to end: recorded Open-Meteo responses replayed on 127.0.0.1, loaded
by the DSL runner into real PostgreSQL and DuckDB, with the OpenLineage events it emits checked."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from pipelines.dsl import load_spec
from pipelines.dsl.runner import run_spec
from pipelines.runtime.events import CUSTOM_FACETS
from pipelines.runtime.run import Environment, RunSummary
from pipelines.sources.replay_server import FIXTURES_DIR, ReplayServer
from reference_specs import spec_variant
from tests.olspec import validate_events

DAY = date(2024, 6, 1)


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


def fixture_hour(place: str, hour: int) -> dict[str, Any]:
    body = json.loads((FIXTURES_DIR / f"{place}_2024-06-01.json").read_text())["response"]["hourly"]
    return {k: v[hour] for k, v in body.items()}


def table(env: Environment, name: str) -> list[tuple]:
    return sorted(env.target.query(f"SELECT * FROM {name}"), key=repr)


def from_server(folder: Path, server: ReplayServer, timeout_s: float = 10) -> Path:
    """The weather spec reading from ``server`` (a stand-in for the API; datasets keep the API's name)."""
    folder.mkdir(parents=True, exist_ok=True)
    return spec_variant(folder, "weather", ("      options:\n",
                                            f"      options:\n        base_url: {server.url}\n        timeout_s: {timeout_s}\n"))


def run_day(home: Path, target: str, replay: ReplayServer, *, days: list[date] | None = None,
            timeout_s: float = 10) -> tuple[Environment, list[RunSummary]]:
    spec = load_spec(from_server(home / "spec", replay, timeout_s))
    with Environment.open(target, lineage="none", home=home) as env:
        runs = [run_spec(spec, day, env=env) for day in days or [DAY]]
    return env, runs


def test_weather_into_duckdb_converts_units_and_quarantines_impossible_readings(
    tmp_path: Path, replay: ReplayServer
) -> None:
    env, runs = run_day(tmp_path, f"duckdb:{tmp_path}/w.duckdb", replay)
    assert [r.state for r in runs] == ["COMPLETE"]
    assert runs[0].counts == {"rows_loaded": 71, "dead_letters": 1}  # 72 readings, one quarantined

    raw = fixture_hour("berlin", 12)
    (row,) = env.target.query(
        "SELECT temperature_c, temperature_f, temperature_k, relative_humidity_pct, precipitation_mm, "
        "precipitation_in, wind_speed_ms, source_request, run_id FROM weather.hourly "
        "WHERE location = 'berlin' AND observed_at = TIMESTAMPTZ '2024-06-01 12:00:00+00'"
    )
    assert row[0] == raw["temperature_2m"]
    assert row[1] == pytest.approx(raw["temperature_2m"] * 9 / 5 + 32, abs=0.006)
    assert row[2] == pytest.approx(raw["temperature_2m"] + 273.15, abs=0.006)
    assert row[3] == raw["relative_humidity_2m"]
    assert row[5] == pytest.approx(raw["precipitation"] / 25.4, abs=1e-4)
    assert row[6] == pytest.approx(raw["wind_speed_10m"] / 3.6, abs=1e-3)
    assert row[7].startswith(f"{replay.url}/v1/forecast?latitude=52.52&longitude=13.41")
    step = runs[0].steps[0]
    assert step.job == "weather.load_hourly" and row[8] == step.run_id

    # London 13:00 reports 140 % humidity: quarantined with the reason, not loaded.
    assert env.target.query("SELECT count(*) FROM weather.hourly WHERE location = 'london' "
                            "AND observed_at = TIMESTAMPTZ '2024-06-01 13:00:00+00'") == [(0,)]
    (held,) = env.target.query("SELECT location, reasons, reading FROM weather.hourly_quarantine")
    assert held[0] == "london" and "relative_humidity_2m=140% outside [0, 100]" in held[1]
    assert json.loads(held[2])["relative_humidity_2m"] == 140
    # A missing value (Tokyo has one null wind reading) is loaded as NULL, not quarantined.
    assert env.target.query("SELECT count(*) FROM weather.hourly WHERE location = 'tokyo' AND wind_speed_ms IS NULL") == [(1,)]


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_the_same_day_three_times_leaves_identical_tables(
    kind: str, tmp_path: Path, replay: ReplayServer, request: pytest.FixtureRequest
) -> None:
    if kind == "postgres":
        target = request.getfixturevalue("pg_dsn")
        with Environment.open(target, lineage="none", home=tmp_path).target.connect() as conn:
            conn.execute("DROP SCHEMA IF EXISTS weather CASCADE")
    else:
        target = f"duckdb:{tmp_path}/w.duckdb"
    contents = []
    for _ in range(3):
        env, runs = run_day(tmp_path, target, replay)
        assert runs[0].ok, runs[0].error
        contents.append((table(env, "weather.hourly"), table(env, "weather.hourly_quarantine")))
    assert contents[0] == contents[1] == contents[2]
    assert len(contents[0][0]) == 71 and len(contents[0][1]) == 1


def test_postgres_and_duckdb_hold_the_same_readings(
    tmp_path: Path, replay: ReplayServer, pg_dsn: str
) -> None:
    cols = "location, observed_at, temperature_c, temperature_f, temperature_k, relative_humidity_pct, " \
           "precipitation_mm, precipitation_in, wind_speed_ms"
    duck, _ = run_day(tmp_path, f"duckdb:{tmp_path}/w.duckdb", replay, days=[DAY, date(2024, 6, 2)])
    pg, _ = run_day(tmp_path, pg_dsn, replay, days=[DAY, date(2024, 6, 2)])
    in_duck = sorted(duck.target.query(f"SELECT {cols} FROM weather.hourly"))
    in_pg = sorted(pg.target.query(f"SELECT {cols} FROM weather.hourly"))
    assert len(in_duck) == 143
    assert in_duck == in_pg


def test_every_run_emits_valid_events_with_lineage_and_quality_facets(
    tmp_path: Path, replay: ReplayServer
) -> None:
    env, runs = run_day(tmp_path, f"duckdb:{tmp_path}/w.duckdb", replay)
    events = env.events.events
    assert validate_events(events, custom_facets=CUSTOM_FACETS) == 6
    assert [(e["eventType"], e["job"]["name"]) for e in events] == [
        ("START", "weather"), ("START", "weather.load_hourly"), ("COMPLETE", "weather.load_hourly"),
        ("START", "weather.plausible"), ("COMPLETE", "weather.plausible"), ("COMPLETE", "weather"),
    ]
    parent_id = events[0]["run"]["runId"]
    assert uuid.UUID(parent_id).version == 7 and runs[0].run_id == parent_id
    complete = events[2]
    facets = complete["run"]["facets"]
    assert facets["parent"]["run"]["runId"] == parent_id and facets["parent"]["job"]["name"] == "weather"
    assert facets["nominalTime"]["nominalStartTime"] == "2024-06-01T00:00:00Z"
    assert facets["nominalTime"]["nominalEndTime"] == "2024-06-02T00:00:00Z"
    assert facets["processing_engine"]["name"] == "lineage-audit"
    job = complete["job"]["facets"]
    assert job["jobType"]["processingType"] == "BATCH" and job["jobType"]["jobType"] == "TASK"
    assert job["sourceCodeLocation"]["path"].endswith("weather.yml")
    assert {(o["name"], o["type"]) for o in job["ownership"]["owners"]} == {
        ("team:data-platform", "MAINTAINER"), ("user:weather-oncall", "ON_CALL")}
    assert job["documentation"]["description"]

    (source,) = complete["inputs"]
    assert (source["namespace"], source["name"]) == ("https://api.open-meteo.com", "v1/forecast")
    metrics = source["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 72
    assert metrics["columnMetrics"]["relative_humidity_2m"]["max"] == 140
    assert metrics["columnMetrics"]["wind_speed_10m"]["nullCount"] == 1
    checks = {a["name"]: a for a in source["inputFacets"]["dataQualityAssertions"]["assertions"]}
    assert checks["relative_humidity_2m_within_physical_bounds"]["success"] is False
    assert checks["temperature_2m_within_physical_bounds"]["success"] is True

    hourly, quarantine = complete["outputs"]
    assert hourly["name"].endswith("w.weather.hourly") and hourly["namespace"] == f"duckdb://{tmp_path}/w.duckdb"
    assert hourly["outputFacets"]["outputStatistics"]["rowCount"] == 71
    assert quarantine["outputFacets"]["outputStatistics"]["rowCount"] == 1
    assert [f["name"] for f in hourly["facets"]["schema"]["fields"]][:3] == ["location", "observed_at", "latitude"]
    lineage = hourly["facets"]["columnLineage"]
    (f_input,) = lineage["fields"]["temperature_f"]["inputFields"]
    assert (f_input["namespace"], f_input["name"], f_input["field"]) == ("https://api.open-meteo.com", "v1/forecast", "temperature_2m")
    assert f_input["transformations"][0] | {"description": "x"} == {
        "type": "DIRECT", "subtype": "TRANSFORMATION", "description": "x", "masking": False}
    assert lineage["fields"]["temperature_c"]["inputFields"][0]["transformations"][0]["subtype"] == "IDENTITY"
    assert lineage["fields"]["wind_speed_ms"]["inputFields"][0]["field"] == "wind_speed_10m"
    assert {d["field"] for d in lineage["dataset"]} == {"temperature_2m", "relative_humidity_2m", "precipitation", "wind_speed_10m"}
    assert all(t["subtype"] == "FILTER" for d in lineage["dataset"] for t in d["transformations"])


def test_source_down_fails_the_run_with_an_error_message_and_loads_nothing(
    tmp_path: Path, replay: ReplayServer
) -> None:
    target = f"duckdb:{tmp_path}/w.duckdb"
    env, _ = run_day(tmp_path, target, replay)
    before = table(env, "weather.hourly")
    with ReplayServer(fail_first=10_000) as down:
        env, runs = run_day(tmp_path, target, down, days=[date(2024, 6, 2)], timeout_s=0.5)
    (run,) = runs
    assert run.state == "FAIL" and "open-meteo" in (run.error or "")
    fails = [e for e in env.events.events if e["eventType"] == "FAIL"]
    assert [e["job"]["name"] for e in fails] == ["weather.load_hourly", "weather"]
    for event in fails:
        error = event["run"]["facets"]["errorMessage"]
        assert error["programmingLanguage"] == "python" and "open-meteo" in error["message"]
    validate_events(env.events.events, custom_facets=CUSTOM_FACETS)
    assert table(env, "weather.hourly") == before


def test_cli_runs_a_backfill_offline_and_writes_events(tmp_path: Path) -> None:
    _register()
    events_file = tmp_path / "events.ndjson"
    result = CliRunner(env={"LINEAGE_AUDIT_HOME": str(tmp_path / "state")}).invoke(cli, [
        "run", "weather", "--offline", "--start", "2024-06-01", "--end", "2024-06-03",
        "--target", f"duckdb:{tmp_path}/w.duckdb", "--lineage", f"file:{events_file}", "--format", "json",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert [r["nominal_start"] for r in report["runs"]] == [
        "2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z", "2024-06-03T00:00:00Z"]
    assert [r["counts"]["dead_letters"] for r in report["runs"]] == [1, 0, 0]
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert validate_events(events, custom_facets=CUSTOM_FACETS) == 18


def test_cli_rejects_bad_dates() -> None:
    _register()
    runner = CliRunner()
    bad = runner.invoke(cli, ["run", "weather", "--date", "2024-13-01", "--lineage", "none"])
    assert bad.exit_code == 2 and "is not a date" in bad.output
    half = runner.invoke(cli, ["run", "weather", "--start", "2024-06-01", "--lineage", "none"])
    assert half.exit_code == 2 and "--start and --end go together" in half.output


def test_cli_exits_1_when_the_source_stays_down(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = spec_variant(tmp_path, "weather", ("      options:\n",
                                              f"      options:\n        base_url: http://127.0.0.1:{closed}\n        timeout_s: 0.2\n"))
    _register()
    result = CliRunner(env={"LINEAGE_AUDIT_HOME": str(tmp_path)}).invoke(cli, [
        "pipelines", "run", str(down), "--date", "2024-06-01", "--target", f"duckdb:{tmp_path}/w.duckdb",
        "--lineage", "none",
    ])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "weather 2024-06-01" in result.output
    assert "Traceback" not in result.output


def test_the_apis_503s_are_retried_and_counted_in_the_steps_stats(tmp_path: Path) -> None:
    """Two 503s, then answers: the run completes, and the load step's lineageAudit_stats facet
    says how many requests it took (one per location plus the retries), which the metrics sum."""
    with ReplayServer(fail_first=2) as flaky:
        env, runs = run_day(tmp_path, f"duckdb:{tmp_path}/w.duckdb", flaky)
    assert runs[0].ok, runs[0]
    load = next(e for e in env.events.events if e["job"]["name"] == "weather.load_hourly" and e["eventType"] == "COMPLETE")
    counts = load["run"]["facets"]["lineageAudit_stats"]["counts"]
    locations = len({row[0] for row in table(env, "weather.hourly")})
    assert counts == {"attempts": 1, "retries": 2, "sourceRequests": locations + 2, "sourceRetries": 2}, counts
    validate_events(env.events.events, custom_facets=CUSTOM_FACETS)
