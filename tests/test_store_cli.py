"""``lineage-audit lineage show``: table and column lineage read back from a store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from collectors.cli import lineage_group
from collectors.emit import to_event_dict
from collectors.emit.examples import WAREHOUSE, example_run
from collectors.openlineage_json import write_events
from collectors.store import EmbeddedStore
from lineage_auditor.cli import AuditGroup

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 5, 1, 6, 0, tzinfo=timezone.utc)


def features_run() -> list[dict]:
    """A downstream ML step: analytics.user_orders -> ml.user_features (revenue -> ltv)."""
    run_id = str(uuid.uuid4())
    source = {"namespace": WAREHOUSE, "name": "warehouse.analytics.user_orders"}
    lineage = {
        "_producer": "https://example.test", "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
        "fields": {
            "ltv": {"inputFields": [{**source, "field": "revenue", "transformations": [{"type": "DIRECT", "subtype": "TRANSFORMATION"}]}]},
            "user_id": {"inputFields": [{**source, "field": "user_id", "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}]}]},
        },
    }
    base = {
        "producer": "https://example.test", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id}, "job": {"namespace": "lineage-audit", "name": "ml.build_features"},
        "inputs": [source], "outputs": [{"namespace": WAREHOUSE, "name": "warehouse.ml.user_features", "facets": {"columnLineage": lineage}}],
    }
    return [
        {**base, "eventType": "START", "eventTime": "2024-05-01T07:00:00Z"},
        {**base, "eventType": "COMPLETE", "eventTime": "2024-05-01T07:01:00Z"},
    ]


@pytest.fixture
def store_path(tmp_path, monkeypatch) -> Path:
    for key in list(os.environ):
        if key.startswith("OPENLINEAGE"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("LINEAGE_AUDIT_HOME", str(tmp_path / "state"))
    path = tmp_path / "state" / "lineage.db"
    with EmbeddedStore(path) as store:
        store.add_events([to_event_dict(e) for e in example_run(start=T0)] + features_run())
    return path


def show(*args: str) -> tuple[int, str, str]:
    group = AuditGroup()
    group.add_command(lineage_group)
    result = CliRunner().invoke(group, ["lineage", "show", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_table_lineage_both_directions(store_path):
    code, out, _ = show("analytics.user_orders")
    assert code == 0
    assert "upstream (2)" in out and "downstream (1)" in out
    assert "warehouse.staging.orders  [postgres://127.0.0.1:5432]  via lineage-audit/users_orders.build_user_orders" in out
    assert "warehouse.ml.user_features  [postgres://127.0.0.1:5432]  via lineage-audit/ml.build_features" in out


def test_downstream_json_with_depth(store_path):
    code, out, _ = show("warehouse.staging.orders", "--downstream", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert "upstream" not in data
    assert [(d["name"], d["depth"]) for d in data["downstream"]] == [
        ("warehouse.analytics.user_orders", 1),
        ("warehouse.ml.user_features", 2),
    ]
    code, out, _ = show(f"{WAREHOUSE}/warehouse.staging.orders", "--downstream", "--depth", "1", "--format", "json")
    assert [d["name"] for d in json.loads(out)["downstream"]] == ["warehouse.analytics.user_orders"]


def test_column_lineage_upstream_through_two_jobs(store_path):
    code, out, _ = show("ml.user_features", "--upstream", "--column", "ltv", "--format", "json")
    assert code == 0
    data = json.loads(out)
    found = {(c["name"], c["field"]): c["depth"] for c in data["upstream"]}
    assert found[("warehouse.analytics.user_orders", "revenue")] == 1
    assert found[("warehouse.staging.orders", "amount")] == 2
    edge = next(e for e in data["upstream_edges"] if e["from"]["field"] == "amount")
    assert edge["to"]["field"] == "revenue"
    assert edge["transformations"] == [{"type": "DIRECT", "subtype": "AGGREGATION", "masking": False}]
    code, text, _ = show("ml.user_features", "--upstream", "--column", "ltv")
    assert "└── warehouse.analytics.user_orders.revenue  [postgres://127.0.0.1:5432]  DIRECT/TRANSFORMATION  via lineage-audit/ml.build_features" in text
    assert "warehouse.staging.orders.amount  [postgres://127.0.0.1:5432]  DIRECT/AGGREGATION" in text


def test_unknown_dataset_or_column_is_a_clear_error(store_path):
    code, _, err = show("nope")
    assert code == 2 and err.startswith("error: no dataset 'nope'") and "known datasets:" in err
    code, _, err = show("user_orders", "--column", "missing")
    assert code == 2 and "has no column 'missing'" in err and "revenue" in err
    code, _, err = show("users", "--store", f"embedded:{store_path.parent / 'none.db'}")
    assert code == 2 and "no embedded lineage store" in err


def test_ambiguous_suffix(store_path):
    with EmbeddedStore(store_path) as store:
        other = to_event_dict(example_run(start=T0)[0])
        other["outputs"][0]["name"] = "lake.analytics.user_orders"
        other["outputs"][0]["facets"].pop("columnLineage")
        store.add_event(other)
    code, _, err = show("analytics.user_orders")
    assert code == 2 and "ambiguous" in err


def test_reads_openlineage_files_and_runs_as_a_command(store_path, tmp_path):
    events_file = tmp_path / "events.ndjson"
    with EmbeddedStore(store_path) as store:
        write_events(events_file, store.events())
    code, out, _ = show("user_features", "--upstream", "--store", f"file:{events_file}", "--format", "json")
    assert code == 0 and json.loads(out)["store"] == f"file:{events_file}"
    proc = subprocess.run(
        [sys.executable, "-m", "lineage_auditor.cli", "lineage", "show", "user_orders", "--upstream"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "upstream (2)" in proc.stdout
