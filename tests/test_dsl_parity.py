"""The reference pipelines as specs publish what the hand-written pipelines published.

``tests/data/reference_outputs`` holds the tables and column lineage the hand-written
pipelines produced on the demo's inputs (see its README). The demo now runs the shipped specs
through the DSL runner; it must publish the same rows and the same column lineage (each
column's inputs with their transformation types, and its root sources end to end).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from reference_outputs import TABLES, doubles_to_12_digits, snapshot_lineage, snapshot_tables

REFERENCE = Path(__file__).resolve().parent / "data" / "reference_outputs"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    _register()
    result = CliRunner(env={"LINEAGE_AUDIT_HOME": str(folder / "state")}).invoke(
        cli, ["demo", "--out", str(folder / "out"), "--lineage", f"embedded:{folder / 'lineage.db'}", "--format", "json"])
    assert result.exit_code == 0, result.output
    return folder


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_published_table_has_the_same_rows(demo: Path, table: str) -> None:
    now = snapshot_tables(demo / "out" / "warehouse.duckdb")[table]
    before = (REFERENCE / f"{table}.csv").read_text(encoding="utf-8")
    assert now.count("\n") == before.count("\n") > 1, table
    assert doubles_to_12_digits(now) == doubles_to_12_digits(before)


def test_every_published_column_has_the_same_lineage_end_to_end(demo: Path) -> None:
    before = json.loads((REFERENCE / "column_lineage.json").read_text(encoding="utf-8"))
    now = snapshot_lineage(demo / "lineage.db")
    assert set(now) == set(before)
    for column, lineage in before.items():
        assert now[column] == lineage, column
    # the users come from the API by a name that survives the mock's port, the orders from the file
    assert "http://mock-users-api/users.signup_date" in now["features.churn_features.tenure_days"]["roots"]
    assert "file:orders_sample.csv.amount" in now["analytics.user_orders.revenue_usd"]["roots"]
