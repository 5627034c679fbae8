"""Pipeline specs: the shipped ones load, and a broken one is reported at file:line:column."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from lineage_auditor.errors import LineageAuditError
from lineage_auditor.durations import parse_duration
from pipelines.runtime.spec import UsersOrdersSpec, WeatherSpec, builtin_spec, load_spec


def test_shipped_specs_load_with_owners_schedule_and_failure_policy(spec_dir: Path) -> None:
    weather = load_spec(spec_dir / "weather.yml")
    users_orders = load_spec(spec_dir / "users_orders.yml")
    assert isinstance(weather, WeatherSpec) and isinstance(users_orders, UsersOrdersSpec)
    assert [loc.name for loc in weather.locations] == ["berlin", "london", "tokyo"]
    assert weather.schedule == "15 2 * * *" and weather.on_source_failure == "fail"
    assert users_orders.on_source_failure == "use_last_snapshot"
    assert users_orders.max_staleness == timedelta(hours=24)
    assert users_orders.owners[0].name == "team:analytics-engineering"
    assert users_orders.resolve(users_orders.source.orders.path).is_file()
    assert builtin_spec("users-orders") == users_orders


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("latitude: 51.51", "latitude: 151.51", (23, 30), "locations.1.latitude: Input should be less than or equal to 90"),
        ('"15 2 * * *"', '"15 25 * * *"', (14, 11), "schedule: cron value 25 outside 0-23"),
        ("max_staleness: 36h", "max_staleness: soon", (17, 16), "max_staleness: not a duration: 'soon'"),
        ("on_source_failure: fail", "on_source_failure: use_last_snapshot", (16, 20), "weather keeps no snapshot"),
        ("pipeline: weather", "pipeline: cooking", (3, 11), "does not match any of the expected tags"),
        ("namespace: lineage-audit", "namespace: lineage-audit\ncolour: blue", (16, 9), "colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_value_is_reported_at_its_line_and_column(
    tmp_path: Path, spec_dir: Path, old: str, new: str, where: tuple[int, int], message: str
) -> None:
    text = (spec_dir / "weather.yml").read_text(encoding="utf-8")
    assert old in text
    bad = tmp_path / "bad.yml"
    bad.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(LineageAuditError) as caught:
        load_spec(bad)
    assert (caught.value.file, caught.value.line, caught.value.column) == (str(bad), *where)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{bad}:{where[0]}:{where[1]}: ")


def test_invalid_yaml_and_missing_file_are_input_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("pipeline: weather\nname: [unclosed\n", encoding="utf-8")
    with pytest.raises(LineageAuditError, match="invalid YAML") as caught:
        load_spec(broken)
    assert caught.value.line == 3
    with pytest.raises(LineageAuditError, match="cannot read spec"):
        load_spec(tmp_path / "missing.yml")


def test_durations() -> None:
    assert parse_duration("1d 12h") == timedelta(hours=36)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration(30) == timedelta(seconds=30)
    with pytest.raises(ValueError):
        parse_duration("a while")


def test_cli_reports_a_bad_spec_with_exit_code_2_and_no_traceback(tmp_path: Path, spec_dir: Path) -> None:
    bad = tmp_path / "weather.yml"
    bad.write_text((spec_dir / "weather.yml").read_text().replace("latitude: 35.69", "latitude: north"), encoding="utf-8")
    _register()
    result = CliRunner().invoke(cli, ["run", "weather", "--offline", "--spec", str(bad), "--lineage", "none"])
    assert result.exit_code == 2, result.output
    assert f"error: {bad}:24:29: " in result.output
    assert "locations.2.latitude" in result.output
    assert "Traceback" not in result.output


def test_cli_rejects_a_spec_of_the_other_pipeline(spec_dir: Path) -> None:
    _register()
    result = CliRunner().invoke(cli, ["run", "weather", "--spec", str(spec_dir / "users_orders.yml"), "--lineage", "none"])
    assert result.exit_code == 2
    assert "not a weather spec" in result.output
