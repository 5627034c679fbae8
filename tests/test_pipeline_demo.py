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
    # the three reference specs: weather per recorded day (load + check), users-orders (2 extracts + the
    # SQL model), the churn features (SQL + check); START and COMPLETE for every step and pipeline
    assert (totals["runs"], totals["steps"], totals["failed"], totals["events"]) == (4, 9, 0, 26)
    assert totals["datasets"] == 9 and totals["columns_with_lineage"] == 50
    assert [r["pipeline"] for r in report["runs"]] == ["weather", "weather", "users_orders", "churn_features"]

    with duckdb.connect(str(tmp_path / "out" / "warehouse.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM weather.hourly").fetchone() == (143,)
        assert db.execute("SELECT count(*) FROM weather.hourly_quarantine").fetchone() == (1,)
        assert db.execute("SELECT count(*), count(DISTINCT user_id) FROM analytics.user_orders").fetchone() == (1000, 1000)
        assert db.execute("SELECT count(*), count(DISTINCT user_key) FROM features.churn_features").fetchone() == (1000, 1000)

    with EmbeddedStore(tmp_path / ".lineage" / "lineage.db") as store:
        assert store.count() == 26
        stored = list(store.events())
    assert validate_events(stored, custom_facets=CUSTOM_FACETS) == 26
    assert_lineage_has_schema(stored)

    page = (tmp_path / "out" / "lineage.html").read_text(encoding="utf-8")
    for name in ("features.churn_features", "analytics.user_orders", "weather.hourly", "staging.users", "v1/forecast", "orders_sample.csv"):
        assert name in page

    # A new user's next command: the demo left its audit config here, so `audit` audits the
    # churn feature table (and finds the quasi-identifier reaching tenure_days).
    assert report["audit_config"] == {"path": str(tmp_path / "lineage-audit.yml"), "written": True}
    assert "warehouse: duckdb:out/warehouse.duckdb" in (tmp_path / "lineage-audit.yml").read_text()
    audit = CliRunner().invoke(cli, ["audit", "--format", "json"])
    assert audit.exit_code == 1, audit.output
    doc = json.loads(audit.output)
    assert [d.split("/")[-1] for d in doc["datasets"]] == ["warehouse.features.churn_features"]
    assert any(f["check"] == "pii" and "tenure_days" in json.dumps(f) for f in doc["findings"])
    assert not [f for f in doc["findings"] if f["title"].endswith("failed to run")]


def test_demo_text_output_summarizes_runs_rows_datasets_and_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _register()
    result = CliRunner(env={"LINEAGE_AUDIT_HOME": str(tmp_path / "state")}).invoke(
        cli, ["demo", "--out", str(tmp_path / "o"), "--lineage", "none"])
    assert result.exit_code == 0, result.output
    for label in ("pipeline runs", "rows loaded", "datasets", "columns with lineage", "graph:"):
        assert label in result.output
    assert "Traceback" not in result.output


def test_demo_never_overwrites_an_audit_config_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    mine = "version: 1\nai_datasets:\n  - name: my.model_features\n"
    (tmp_path / "lineage-audit.yml").write_text(mine)
    _register()
    result = CliRunner(env={"LINEAGE_AUDIT_HOME": str(tmp_path / "state")}).invoke(
        cli, ["demo", "--out", str(tmp_path / "o"), "--lineage", "none"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lineage-audit.yml").read_text() == mine
    assert "lineage-audit.yml already here, left unchanged" in " ".join(result.output.split())


def test_audit_with_no_ai_dataset_declared_says_so_and_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _register()
    runner = CliRunner(env={"LINEAGE_AUDIT_HOME": str(tmp_path / "state")})
    bare = runner.invoke(cli, ["audit"])
    assert bare.exit_code == 2
    assert "error: no AI datasets declared in the defaults (no ./lineage-audit.yml here)" in bare.output
    (tmp_path / "lineage-audit.yml").write_text("version: 1\ntags: []\n")
    empty = runner.invoke(cli, ["audit", "--format", "json"])
    assert empty.exit_code == 2 and "no AI datasets declared in lineage-audit.yml" in empty.output
