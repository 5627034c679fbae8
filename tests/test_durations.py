"""One duration grammar for specs and the audit config, and durations printed so people can read them."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from lineage_auditor.audit.config import load_config
from lineage_auditor.durations import display_duration, parse_duration, parse_seconds
from lineage_auditor.errors import ConfigError
from pipelines.dsl import load_spec

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("text", "seconds"), [
    ("1d 12h", 36 * 3600), ("36h", 36 * 3600), ("90m", 5400), ("30s", 30),  # the spec forms
    ("2w", 14 * 86400), ("1.5h", 5400), ("26h", 26 * 3600), ("7d", 7 * 86400),  # the audit config forms
    ("1h30m", 5400), ("1d, 12h", 36 * 3600), (" 2 H ", 7200), (45, 45), (2.5, 2.5), ("45", 45),
    (timedelta(minutes=3), 180), ("0s", 0),
])
def test_both_grammars_are_one(text, seconds):
    assert parse_seconds(text) == seconds
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("value", "message"), [
    ("a while", "not a duration"), ("", "empty duration"), ("1h 1h", "unit 'h' given twice"),
    ("5hours", "not a duration"), ("1e3s", "not a duration"), (-5, "non-negative"), (float("nan"), "finite"),
    (True, "not a duration"), ("99999999999999999999d", "duration too long"), (1e20, "duration too long"),
])
def test_what_is_not_a_duration_is_a_value_error(value, message):
    with pytest.raises(ValueError, match=message):
        parse_seconds(value)


def _spec_with(tmp_path: Path, spec_dir: Path, staleness: str) -> Path:
    text = (spec_dir / "users_orders.yml").read_text(encoding="utf-8")
    assert "max_staleness: 24h" in text
    path = tmp_path / "users_orders.yml"
    path.write_text(text.replace("max_staleness: 24h", f"max_staleness: {staleness}"), encoding="utf-8")
    return path


def test_spec_accepts_the_audit_config_forms(tmp_path, spec_dir):
    assert load_spec(_spec_with(tmp_path, spec_dir, "1.5h")).pipeline.max_staleness == timedelta(minutes=90)
    assert load_spec(_spec_with(tmp_path, spec_dir, "2w")).pipeline.max_staleness == timedelta(weeks=2)


def test_a_huge_staleness_is_a_config_error_at_its_line_not_an_overflow(tmp_path, spec_dir):
    path = _spec_with(tmp_path, spec_dir, "99999999999999999999d")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("max_staleness"))
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    assert (caught.value.file, caught.value.line) == (str(path), line)
    assert str(caught.value).startswith(f"{path}:{line}:16: max_staleness: duration too long")


def test_audit_config_accepts_the_spec_forms_and_refuses_a_huge_one(tmp_path):
    path = tmp_path / "lineage-audit.yml"
    path.write_text("ai_datasets:\n  - name: x\n    freshness:\n      max_age: 1d 12h\n", encoding="utf-8")
    assert load_config(path).ai_datasets[0].freshness.max_age == 36 * 3600  # type: ignore[union-attr]
    path.write_text("ai_datasets:\n  - name: x\n    freshness:\n      max_age: 99999999999999999999d\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lineage-audit.yml:4:16: ai_datasets.0.freshness.max_age: duration too long"):
        load_config(path)


def test_cli_says_where_a_huge_staleness_is_and_exits_2(tmp_path, spec_dir):
    path = _spec_with(tmp_path, spec_dir, "99999999999999999999d")
    done = subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "pipelines", "validate", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "duration too long" in done.stderr and f"{path}:" in done.stderr
    assert "Traceback" not in done.stderr and "OverflowError" not in done.stderr


@pytest.mark.parametrize(("value", "shown"), [
    (2, "2s"), (0.4, "0.4s"), (0, "0s"), (59, "59s"), (61, "1m 1s"), (3600, "1h"), (5400, "1h 30m"),
    (36 * 3600, "1d 12h"), (timedelta(days=2, minutes=5), "2d"), (None, "?"),
])
def test_display_never_rounds_seconds_away(value, shown):
    assert display_duration(value) == shown
    if value:
        assert abs(parse_seconds(shown) - (value.total_seconds() if isinstance(value, timedelta) else value)) < 3600
