"""`lineage-audit demo` on a fresh folder: both pipelines offline, lineage stored, graph written."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from collectors.store import EmbeddedStore
from lineage_auditor.cli import _register, cli
from pipelines.runtime.events import CUSTOM_FACETS
from tests.olspec import assert_lineage_has_schema, validate_events


def test_demo_runs_everything_offline_and_records_lineage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LINEAGE_AUDIT_HOME", raising=False)
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "OPENLINEAGE_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    _register()
    result = CliRunner().invoke(cli, ["demo", "--out", "out", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    totals = report["totals"]
    assert report["ok"] is True and report["notes"] == []
    assert (totals["runs"], totals["steps"], totals["failed"], totals["events"]) == (4, 5, 0, 18)
    assert totals["datasets"] == 9 and totals["columns_with_lineage"] == 50
    assert [r["pipeline"] for r in report["runs"]] == ["weather", "weather", "users_orders", "features.churn_features"]

    with duckdb.connect(str(tmp_path / "out" / "warehouse.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM weather.hourly").fetchone() == (143,)
        assert db.execute("SELECT count(*) FROM weather.hourly_quarantine").fetchone() == (1,)
        assert db.execute("SELECT count(*), count(DISTINCT user_id) FROM analytics.user_orders").fetchone() == (1000, 1000)
        assert db.execute("SELECT count(*), count(DISTINCT user_key) FROM features.churn_features").fetchone() == (1000, 1000)

    with EmbeddedStore(tmp_path / ".lineage" / "lineage.db") as store:
        assert store.count() == 18
        stored = list(store.events())
    assert validate_events(stored, custom_facets=CUSTOM_FACETS) == 18
    assert_lineage_has_schema(stored)

    page = (tmp_path / "out" / "lineage.html").read_text(encoding="utf-8")
    for name in ("features.churn_features", "analytics.user_orders", "weather.hourly", "staging.users", "v1/forecast", "orders_sample.csv"):
        assert name in page


def test_demo_text_output_summarizes_runs_rows_datasets_and_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _register()
    result = CliRunner(env={"LINEAGE_AUDIT_HOME": str(tmp_path / "state")}).invoke(
        cli, ["demo", "--out", str(tmp_path / "o"), "--lineage", "none"])
    assert result.exit_code == 0, result.output
    for label in ("pipeline runs", "rows loaded", "datasets", "columns with lineage", "graph:"):
        assert label in result.output
    assert "Traceback" not in result.output
