"""Cost: every step's run carries ``lineageAudit_cost`` with what real DuckDB and PostgreSQL report,
priced by the policy's cost model; BigQuery's dry-run bytes from a recorded answer."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from collectors.store import EmbeddedStore
from lineage_auditor.errors import PipelineError
from lineage_auditor.governance import load_policy
from lineage_auditor.governance.pricing import TIB, price
from pipelines.dsl import load_spec
from pipelines.dsl.governance import Governance
from pipelines.dsl.runner import run_spec
from pipelines.runtime.events import CUSTOM_FACETS
from pipelines.runtime.warehouse_cost import (
    bigquery_bytes_processed,
    bigquery_dry_run,
    duckdb_profile_usage,
    postgres_plan_usage,
)
from tests.olspec import validate_events, validate_own_facet

DATA = Path(__file__).resolve().parent / "data"
ROWS = 50_000

POLICY = """\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - name: growth
    members: [gina]
    owns: ["mart.*", "staging.*", "raw.*"]
cost_model:
  currency: EUR
  default: {cpu_hour: 36.0}
  targets:
    postgres: {cpu_hour: 36.0, tib_scanned: 5000.0, credit_hour: 3.6}
"""

SPEC = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: spend
team: growth
retries: {count: 0}
sources: [raw.events]
steps:
  - id: totals
    sql:
      dialect: postgres
      query: |
        CREATE TABLE mart.totals AS
        SELECT kind, COUNT(*) AS events, SUM(amount) AS amount FROM raw.events GROUP BY kind
"""

DUCK_SPEC = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: spend
team: growth
retries: {count: 0}
steps:
  - id: events
    extract:
      into: raw.events
      file: {path: events.csv, columns: [{name: id, type: INTEGER}, {name: kind, type: VARCHAR}, {name: amount, type: DOUBLE}]}
  - id: totals
    depends_on: [events]
    sql:
      dialect: duckdb
      query: |
        CREATE TABLE mart.totals AS
        SELECT kind, COUNT(*) AS events, SUM(amount) AS amount FROM raw.events GROUP BY kind
"""


def _costs(store: Path) -> dict[str, dict[str, Any]]:
    """The cost facet of each step run's final event, by job name."""
    with EmbeddedStore(store) as s:
        events = list(s.events())
    assert validate_events(events, custom_facets=CUSTOM_FACETS) == len(events)
    found = {e["job"]["name"]: e["run"]["facets"]["lineageAudit_cost"] for e in events
             if e["eventType"] in ("COMPLETE", "FAIL") and "lineageAudit_cost" in e["run"]["facets"]}
    assert not any("lineageAudit_cost" in e["run"]["facets"] for e in events if "parent" not in e["run"]["facets"]), \
        "only step runs carry a cost (a pipeline's is the sum of its steps')"
    return found


def _run(tmp_path: Path, target: str, spec: str = SPEC):  # type: ignore[no-untyped-def]
    (tmp_path / "governance.yml").write_text(POLICY)
    (tmp_path / "spec.yml").write_text(spec)
    gov = Governance(load_policy(tmp_path / "governance.yml"), "--policy")
    from lineage_auditor.governance import Identity, IdentitySource

    return run_spec(load_spec(tmp_path / "spec.yml"), date(2024, 5, 1), target=target, lineage=f"embedded:{tmp_path / 'lineage.db'}",
                    home=tmp_path / "state", governance=gov, identity=Identity("gina", IdentitySource.OPTION))


def test_postgres_full_scan_bytes_are_the_table_s_size_and_the_money_follows_the_model(tmp_path: Path, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA raw")
        conn.execute("CREATE TABLE raw.events AS SELECT g AS id, (ARRAY['view','click','buy'])[g % 3 + 1] AS kind, "
                     f"(g % 97)::numeric(10,2) AS amount, md5(g::text) AS payload FROM generate_series(1, {ROWS}) g")
        conn.execute("VACUUM ANALYZE raw.events")
        table_bytes = conn.execute("SELECT pg_relation_size('raw.events')").fetchone()[0]
    summary = _run(tmp_path, pg_dsn)
    assert summary.ok, summary.error
    cost = _costs(tmp_path / "lineage.db")["spend.totals"]
    validate_own_facet(cost, "CostRunFacet")
    assert (cost["engine"], cost["measuredBy"], cost["statements"]) == ("postgres", "explain-analyze", 1)
    assert cost["rowsRead"] == ROWS  # the sequential scan read every row
    assert abs(cost["bytesRead"] - table_bytes) <= 0.2 * table_bytes, (cost["bytesRead"], table_bytes)
    assert cost["rowsWritten"] == 3 and cost["bytesWritten"] > 0
    assert cost["cpuSeconds"] > 0 and cost["wallSeconds"] >= cost["warehouseSeconds"] > 0
    expected = price(load_policy(tmp_path / "governance.yml").rates("postgres"), cpu_seconds=cost["cpuSeconds"],  # type: ignore[arg-type]
                     bytes_scanned=cost["bytesRead"], warehouse_seconds=cost["warehouseSeconds"])
    assert cost["currency"] == "EUR" and cost["amount"] == pytest.approx(expected["total"])
    assert cost["breakdown"]["scanned"] == pytest.approx(cost["bytesRead"] / TIB * 5000.0)
    assert cost["breakdown"]["cpu"] == pytest.approx(cost["cpuSeconds"] / 100.0)  # 36 per CPU-hour


def test_duckdb_reports_rows_scanned_and_a_failed_step_still_costs(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text("id,kind,amount\n" + "".join(f"{i},{'ab'[i % 2]},{i % 7}.5\n" for i in range(ROWS)))
    spec = DUCK_SPEC
    summary = _run(tmp_path, f"duckdb:{tmp_path / 'wh.duckdb'}", spec)
    assert summary.ok, summary.error
    costs = _costs(tmp_path / "lineage.db")
    totals, extract = costs["spend.totals"], costs["spend.events"]
    validate_own_facet(totals, "CostRunFacet")
    assert (totals["engine"], totals["measuredBy"]) == ("duckdb", "duckdb-profiling")
    assert totals["rowsRead"] == ROWS + 2  # the scan of raw.events, then counting the 2 rows written
    assert totals["bytesRead"] > 0 and totals["rowsWritten"] == 2
    assert totals["cpuSeconds"] > 0 and totals["warehouseSeconds"] > 0 and totals["currency"] == "EUR"
    assert extract["rowsRead"] == ROWS and extract["rowsWritten"] == ROWS  # an extract reads its source's records
    # a step that fails has spent something too: its FAIL carries the cost
    broken = spec.replace("FROM raw.events GROUP BY", "FROM raw.events WHERE amount / 0 > 'x' GROUP BY")
    failed = _run(tmp_path, f"duckdb:{tmp_path / 'wh.duckdb'}", broken)
    assert not failed.ok
    with EmbeddedStore(tmp_path / "lineage.db") as s:
        fail = [e for e in s.events() if e["eventType"] == "FAIL" and e["job"]["name"] == "spend.totals"]
    assert fail and fail[-1]["run"]["facets"]["lineageAudit_cost"]["cpuSeconds"] > 0


# ------------------------------------------------------------------ the warehouses' own words, parsed


def test_a_postgres_plan_counts_buffers_once_and_every_row_a_scan_read() -> None:
    document = [{"Plan": {"Node Type": "ModifyTable", "Shared Hit Blocks": 10, "Shared Read Blocks": 90, "Local Hit Blocks": 0,
                          "Local Read Blocks": 0, "Actual Rows": 0, "Actual Loops": 1, "Plans": [
                              {"Node Type": "Seq Scan", "Actual Rows": 9, "Actual Loops": 1, "Rows Removed by Filter": 991,
                               "Shared Hit Blocks": 10, "Shared Read Blocks": 90}]},
                 "Execution Time": 12.5}]
    assert postgres_plan_usage(document, 8192) == (1000, 100 * 8192, 0.0125)
    assert postgres_plan_usage(["CREATE TABLE AS"], 8192) == (0, 0, 0.0)  # IF NOT EXISTS of a table that exists


def test_a_duckdb_profile_gives_rows_and_logical_bytes_of_its_scans() -> None:
    profile = {"io": {"total_bytes_written": 4096}, "operator": [{"type": "RESULT_COLLECTOR", "timing": 0.001, "children": [
        {"type": "HASH_GROUP_BY", "timing": 0.01, "intermediate_rows": 2, "intermediate_size_bytes": 32, "children": [
            {"type": "TABLE_SCAN", "timing": 0.004, "rows_scanned": 1000, "intermediate_rows": 500,
             "intermediate_size_bytes": 8000, "children": []}]}]}]}
    rows, scanned, seconds, written = duckdb_profile_usage(profile)
    assert (rows, scanned, written) == (1000, 16_000, 4096) and seconds == pytest.approx(0.015)


def test_bigquery_bytes_come_from_a_dry_run_s_recorded_answer() -> None:
    job = json.loads((DATA / "bigquery" / "dry_run_job.json").read_text())
    assert bigquery_bytes_processed(job) == 1_384_120_320
    with pytest.raises(PipelineError, match="no statistics"):
        bigquery_bytes_processed({"kind": "bigquery#job"})


def test_a_bigquery_dry_run_request_over_http_and_its_answer() -> None:
    """The request our client sends (a real HTTP server on 127.0.0.1 replays the recorded answer)."""
    seen: list[dict[str, Any]] = []
    answer = (DATA / "bigquery" / "dry_run_job.json").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"path": self.path, "auth": self.headers["Authorization"], "body": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        usage = bigquery_dry_run("SELECT 1", project="acme-analytics", token="tok", location="US",
                                 api=f"http://127.0.0.1:{server.server_port}/bigquery/v2")
    finally:
        server.shutdown()
    assert (usage.engine, usage.method, usage.bytes_scanned) == ("bigquery", "dry-run", 1_384_120_320)
    (request,) = seen
    assert request["path"] == "/bigquery/v2/projects/acme-analytics/jobs" and request["auth"] == "Bearer tok"
    assert request["body"] == {"configuration": {"dryRun": True, "query": {"query": "SELECT 1", "useLegacySql": False,
                                                                           "useQueryCache": False}},
                               "jobReference": {"location": "US"}}
    priced = price(load_policy(Path(__file__).resolve().parent.parent / "examples" / "governance.yml").rates("bigquery"),  # type: ignore[arg-type]
                   cpu_seconds=0.0, bytes_scanned=usage.bytes_scanned, warehouse_seconds=0.0)
    assert priced["total"] == pytest.approx(1_384_120_320 / TIB * 6.25)


def test_a_runner_of_its_own_gets_the_facet_without_a_run_context(tmp_path: Path) -> None:
    """What another runner (an Airflow operator) does: measure its step and report the facet itself."""
    from openlineage.client.serde import Serde

    from pipelines.dsl.cost import measure_step
    from pipelines.runtime.targets import DuckDBTarget

    target = DuckDBTarget(tmp_path / "wh.duckdb")
    target.replace_from_sql("raw.numbers", "SELECT range AS n FROM range(1000)")
    with measure_step(None, target, load_policy(Path(__file__).resolve().parent.parent / "examples" / "governance.yml").rates("duckdb"),
                      "USD") as cost:
        cost.wrote({"mart.total": target.replace_from_sql("mart.total", "SELECT sum(n) AS total FROM raw.numbers").total})
    assert target.meter is None  # the meter is detached again
    facet = Serde.to_dict(cost.facet)
    validate_own_facet(facet, "CostRunFacet")
    assert (facet["rowsRead"], facet["rowsWritten"], facet["currency"]) == (1001, 1, "USD")
    assert facet["cpuSeconds"] > 0 and facet["amount"] == pytest.approx(facet["cpuSeconds"] / 3600 * 0.048, abs=1e-9)
