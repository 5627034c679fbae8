"""Schedules: cron and presets, a deterministic stagger, next run times, and `pipelines list`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from lineage_auditor.errors import ConfigError
from pipelines.dsl.schedule import parse_cron, stagger_offset, staggered, zone


def _next(expression: str, after: str, tz: str = "UTC") -> str:
    cron = parse_cron(expression)
    assert cron is not None
    found = cron.next_after(datetime.fromisoformat(after), zone(tz))
    assert found is not None
    return found.isoformat()


def test_next_run_of_presets_and_cron() -> None:
    assert _next("@daily", "2024-05-01T10:00:00+00:00") == "2024-05-02T00:00:00+00:00"
    assert _next("@hourly", "2024-05-01T10:00:00+00:00") == "2024-05-01T11:00:00+00:00"
    assert _next("*/15 9-17 * * mon-fri", "2024-05-03T17:50:00+00:00") == "2024-05-06T09:00:00+00:00"  # Fri -> Mon
    assert _next("0 6 * * *", "2024-03-30T12:00:00+00:00", "Europe/Berlin") == "2024-03-31T04:00:00+00:00"  # DST: UTC+2
    assert _next("0 0 1,15 * 0", "2024-05-02T00:00:00+00:00") == "2024-05-05T00:00:00+00:00"  # dom OR dow
    assert _next("0 0 29 2 *", "2024-03-01T00:00:00+00:00") == "2028-02-29T00:00:00+00:00"
    assert parse_cron("none") is None


@pytest.mark.parametrize("expression, message", [
    ("0 25 * * *", "hour '25' is outside 0-23"),
    ("every day", "expected five cron fields"),
    ("0 0 * * funday", "day of week 'funday' is not a number"),
    ("*/0 * * * *", r"minute '\*/0' is outside 0-59"),
])
def test_bad_schedules_say_which_field(expression: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_cron(expression)


def test_stagger_spreads_fifty_daily_pipelines_deterministically() -> None:
    window = timedelta(hours=2)
    offsets = [stagger_offset(f"team_{i % 5}_pipeline_{i}", window) for i in range(50)]
    assert offsets == [stagger_offset(f"team_{i % 5}_pipeline_{i}", window) for i in range(50)]  # same id, same slot
    assert all(timedelta(0) <= o < window and o.seconds % 60 == 0 for o in offsets)
    minutes = sorted(o.seconds // 60 for o in offsets)
    assert len(set(minutes)) >= 35  # spread out, not piled up
    per_quarter = [sum(1 for m in minutes if q * 30 <= m < (q + 1) * 30) for q in range(4)]
    assert min(per_quarter) >= 6, per_quarter  # every half hour of the window gets some
    schedules = {staggered(parse_cron("@daily"), o) for o in offsets}  # type: ignore[arg-type]
    assert all(s.endswith(" * * *") and int(s.split()[1]) in (0, 1) for s in schedules)


def test_stagger_keeps_hourly_runs_inside_their_hour() -> None:
    cron = parse_cron("@hourly")
    assert cron is not None
    assert staggered(cron, timedelta(minutes=75)) == "15 * * * *"
    assert staggered(cron, timedelta(0)) == "0 * * * *"


def test_list_shows_schedule_next_run_and_last_run(tmp_path: Path) -> None:
    from datetime import date

    from pipelines.dsl import load_spec
    from pipelines.dsl.runner import run_spec

    spec = tmp_path / "tiny.yml"
    spec.write_text("apiVersion: lineage-audit/v1\nkind: Pipeline\nid: tiny\nteam: growth\nschedule: '@daily'\nstagger: 2h\n"
                    "steps:\n  - id: build\n    sql: {query: 'CREATE TABLE mart.x AS SELECT 1 AS a'}\n")
    (tmp_path / "never.yml").write_text(spec.read_text().replace("id: tiny", "id: never_ran").replace("'@daily'", "'30 4 * * *'"))
    store = f"embedded:{tmp_path / 'lineage.db'}"
    assert run_spec(load_spec(spec), date(2024, 5, 1), target=f"duckdb:{tmp_path / 'wh.duckdb'}", lineage=store).ok
    _register()
    res = CliRunner().invoke(cli, ["pipelines", "list", str(tmp_path), "--store", store, "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in json.loads(res.stdout)["pipelines"]}
    offset = stagger_offset("tiny", timedelta(hours=2))
    assert rows["tiny"]["schedule"] == f"{offset.seconds // 60 % 60} {offset.seconds // 3600} * * *"
    assert rows["tiny"]["last_state"] == "COMPLETE" and rows["tiny"]["last_duration_s"] is not None
    assert rows["never_ran"]["last_state"] is None and rows["never_ran"]["schedule"] != "30 4 * * *"  # staggered too
    upcoming = datetime.fromisoformat(rows["tiny"]["next_run"].replace("Z", "+00:00"))
    assert datetime.now(timezone.utc) < upcoming <= datetime.now(timezone.utc) + timedelta(days=1)


def test_catchup_runs_every_day_since_the_last_completed_run(tmp_path: Path) -> None:
    """`pipelines run SPEC` without a date: yesterday, or with catchup every missed day before it."""
    from datetime import date, timedelta

    from click.testing import CliRunner

    from lineage_auditor.cli import _register, cli
    from pipelines.dsl import load_spec
    from pipelines.dsl.listing import days_to_run

    spec = tmp_path / "tick.yml"
    spec.write_text("apiVersion: lineage-audit/v1\nkind: Pipeline\nid: tick\nteam: t\nschedule: '@daily'\n"
                    "catchup: true\nsteps:\n  - id: make\n    sql:\n      dialect: duckdb\n"
                    "      query: CREATE TABLE s.tick AS SELECT DATE '{{ ds }}' AS day\n")
    store, target = f"embedded:{tmp_path / 'lineage.db'}", f"duckdb:{tmp_path / 'w.duckdb'}"
    today = date.today()
    yesterday = today - timedelta(days=1)
    assert days_to_run(load_spec(spec), store=store, today=today) == [yesterday]  # no history yet
    _register()
    first = today - timedelta(days=4)
    done = CliRunner().invoke(cli, ["pipelines", "run", str(spec), "--date", first.isoformat(), "--target", target,
                                    "--lineage", store, "--format", "json"])
    assert done.exit_code == 0, done.output
    missed = [first + timedelta(days=n) for n in range(1, 4)]
    assert days_to_run(load_spec(spec), store=store, today=today) == missed
    caught_up = CliRunner().invoke(cli, ["pipelines", "run", str(spec), "--target", target, "--lineage", store,
                                         "--format", "json"])
    assert caught_up.exit_code == 0, caught_up.output
    runs = json.loads(caught_up.stdout)["runs"]
    assert [r["nominal_start"][:10] for r in runs] == [d.isoformat() for d in missed]
    assert days_to_run(load_spec(spec), store=store, today=today) == [yesterday]  # up to date: the latest day only
    no_catchup = tmp_path / "once.yml"
    no_catchup.write_text(spec.read_text().replace("id: tick", "id: once").replace("catchup: true", "catchup: false"))
    assert days_to_run(load_spec(no_catchup), store=store, today=today) == [yesterday]
