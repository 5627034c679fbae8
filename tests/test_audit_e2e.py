"""End to end: the demo pipelines, a baseline, then a changed feature SQL on drifted input.

Runs the demo (the three reference specs: weather on the offline replay, users-orders on the
bundled mock API, the churn features) into a temporary DuckDB warehouse and embedded store, saves a baseline, then
rebuilds the feature table from changed SQL after tripling every order's revenue; the audit
must report the schema change, the data drift and the lineage change, and the report must
list them.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from pipelines.demo import run_demo
from pipelines.dsl import load_spec
from pipelines.dsl.runner import run_spec
from reference_specs import spec_variant

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "pipelines" / "features" / "lineage-audit.yml"
SQL_FILE = REPO / "pipelines" / "features" / "churn_features.sql"


def invoke(*args: str):
    _register()
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture()
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / ".lineage"
    monkeypatch.setenv("LINEAGE_AUDIT_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert run_demo(home, lineage=f"embedded:{home / 'lineage.db'}", home=home).ok
    config = EXAMPLE.read_text().replace("duckdb:out/demo/warehouse.duckdb", f"duckdb:{home / 'warehouse.duckdb'}")
    (tmp_path / "lineage-audit.yml").write_text(config)
    return home


def test_changed_sql_and_drifted_input_are_found_and_reported(demo: Path, tmp_path: Path) -> None:
    assert invoke("baseline", "save").exit_code == 0
    first = json.loads(invoke("audit", "--format", "json", "--fail-on", "low").output)
    assert not [f for f in first["findings"] if f["check"] in ("schema_drift", "data_drift", "lineage_drift")]

    with duckdb.connect(str(demo / "warehouse.duckdb")) as conn:  # drifted input: revenue tripled
        conn.execute("UPDATE analytics.user_orders SET revenue_usd = revenue_usd * 3")
    changed = tmp_path / "churn_features_v2.sql"  # changed SQL: drops a column, adds a raw one
    changed.write_text(SQL_FILE.read_text().replace(",\n    w.total_precipitation_mm", ",\n    uo.first_order_at"))
    spec = spec_variant(tmp_path, "churn_features", ("file: " + str(SQL_FILE), f"file: {changed.name}"))
    rebuilt = run_spec(load_spec(spec), date.today(), target=f"duckdb:{demo / 'warehouse.duckdb'}",
                       lineage=f"embedded:{demo / 'lineage.db'}", home=demo)
    assert rebuilt.ok, rebuilt.error

    result = invoke("audit", "--format", "json", "--fail-on", "high")
    doc = json.loads(result.output)
    assert result.exit_code == 1
    found = {(f["check"], f["title"]) for f in doc["findings"]}
    assert ("schema_drift", "column total_precipitation_mm removed") in found
    assert ("schema_drift", "column first_order_at added") in found
    assert ("lineage_drift", "sources of revenue_usd changed") not in found  # same SQL for it
    assert any(c == "data_drift" and t.startswith("revenue_usd drifted") for c, t in found), found
    assert any(c == "data_drift" and t.startswith("avg_order_usd drifted") for c, t in found), found
    assert not any(c == "coverage" for c, _ in found), found  # the dropped column is gone, not "without lineage"

    out = tmp_path / "report.md"
    assert invoke("report", "-D", "features.churn_features", "--format", "md", "-o", str(out)).exit_code == 0
    md = out.read_text()
    for f in doc["findings"]:
        if f["check"] in ("schema_drift", "data_drift"):
            assert f["id"] in md


@pytest.mark.parametrize("fmt", ["html", "md", "json"])
def test_first_audit_without_a_baseline_still_reports(demo: Path, tmp_path: Path, fmt: str) -> None:
    """What `make demo` does on a fresh machine: report and audit before any baseline exists."""
    out = tmp_path / f"report.{fmt}"
    res = invoke("report", "-D", "features.churn_features", "--format", fmt, "-o", str(out))
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    assert "churn_features" in text and "PII-" in text
    audit = invoke("audit", "--format", "json")
    assert audit.exit_code == 1
    assert [f["check"] for f in json.loads(audit.output)["findings"]] == ["pii"]
