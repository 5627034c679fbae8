"""The auditor finds the same things whichever store it reads.

The embedded store answers with only what the checks need (latest runs, runs touching the
audited datasets); a file of the same events is read in full. Both must agree.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from audit_events import FEATURES_SQL, T0, shop_events
from collectors.openlineage_json import write_events
from collectors.store import EmbeddedStore
from lineage_auditor.cli import _register, cli

CONFIG = """
ai_datasets:
  - name: features.churn
    owner: team:ml
    purpose: predict churn
    freshness: {max_age: 3650d}
    volume: {min_rows: 1, tolerance: 0.5}
tags:
  - {column: raw.users.email, tags: [pii.email]}
"""


def _history() -> list[dict]:
    """Three days of runs; on the last, the feature SQL drops a column and the volume drops."""
    events = shop_events(at=T0, rows=1000) + shop_events(at=T0 + timedelta(days=1), rows=1010)
    changed = FEATURES_SQL.replace("       md5(u.name) AS name_key,\n", "")
    return events + shop_events(at=T0 + timedelta(days=2), sql=changed, rows=100)


def _audit(store: str, config: Path) -> dict:
    _register()
    res = CliRunner().invoke(cli, ["audit", "--store", store, "--config", str(config), "--format", "json",
                                   "--fail-on", "high"], catch_exceptions=False)
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.stdout)


def test_embedded_store_and_event_file_give_the_same_findings(tmp_path: Path):
    events = _history()
    with EmbeddedStore(tmp_path / "lineage.db") as store:
        store.add_events(events)
    write_events(tmp_path / "events.ndjson", events)
    config = tmp_path / "lineage-audit.yml"
    config.write_text(CONFIG)
    embedded = _audit(f"embedded:{tmp_path / 'lineage.db'}", config)
    from_file = _audit(f"file:{tmp_path / 'events.ndjson'}", config)
    found = sorted((f["check"], f["id"]) for f in embedded["findings"])
    assert found == sorted((f["check"], f["id"]) for f in from_file["findings"])
    checks = {check for check, _ in found}
    assert {"schema_drift", "freshness", "pii"} <= checks, found


def test_store_reads_latest_runs_and_runs_touching_datasets(tmp_path: Path):
    events = _history()
    with EmbeddedStore(tmp_path / "lineage.db") as store:
        store.add_events(events)
        latest = list(store.latest_run_events())
        assert len(latest) == 6  # START + COMPLETE of the last run of each of the three jobs
        assert {e["eventTime"] for e in latest} >= {events[-1]["eventTime"]}
        touching = list(store.run_events_touching([(latest[-1]["outputs"][0]["namespace"], "warehouse.raw.orders")]))
        jobs = {e["job"]["name"] for e in touching}
        assert jobs == {"load_orders", "build_churn"} and len(touching) == 12
        assert [e["eventTime"] for e in touching] == sorted(e["eventTime"] for e in touching)
        assert list(store.run_events_touching([])) == []
