"""The local runner: a spec runs end to end on DuckDB, idempotently, with lineage per step."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from browser import BrowserPage


from collectors.store import EmbeddedStore
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import ColumnRef, DatasetRef
from pipelines.dsl import load_spec
from pipelines.dsl.runner import run_spec

ORDERS = "order_id,user_id,amount,order_day\n1,10,5.00,2024-05-01\n2,10,7.50,2024-05-01\n3,11,3.25,2024-05-01\n4,12,9.99,2024-05-02\n"
USERS = "id,country\n10,DE\n11,FR\n12,DE\n"

SPEC = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: daily_revenue
team: growth
owners: [{name: "team:growth"}]
params:
  min_amount: {type: number, default: 0}
retries: {count: 0}
steps:
  - id: orders
    extract:
      into: staging.orders
      file:
        path: orders.csv
        columns: [{name: order_id, type: INTEGER}, {name: user_id, type: INTEGER},
                  {name: amount, type: "DECIMAL(14,2)"}, {name: order_day, type: DATE}]
  - id: users
    extract:
      into: staging.users
      file: {path: users.csv, columns: [{name: id, type: INTEGER}, {name: country, type: VARCHAR}]}
  - id: revenue
    depends_on: [orders, users]
    sql:
      dialect: postgres
      query: |
        CREATE TABLE mart.daily_revenue AS
        SELECT o.user_id, u.country, o.order_day, SUM(o.amount) AS revenue
        FROM staging.orders o JOIN staging.users u ON u.id = o.user_id
        WHERE o.order_day = DATE '{{ ds }}' AND o.amount > {{ params.min_amount }}
        GROUP BY o.user_id, u.country, o.order_day
  - id: publish
    load: {from: revenue, table: analytics.daily_revenue, mode: upsert, keys: [user_id, order_day]}
  - id: quality
    depends_on: [publish]
    check:
      dataset: analytics.daily_revenue
      checks:
        - not_null: user_id
        - unique: user_id
          severity: warn
        - accepted_values: {column: country, values: [DE, FR]}
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "orders.csv").write_text(ORDERS)
    (tmp_path / "users.csv").write_text(USERS)
    (tmp_path / "spec.yml").write_text(SPEC)
    return tmp_path


def _run(project: Path, day: date, spec: str = "spec.yml", **kwargs):  # type: ignore[no-untyped-def]
    return run_spec(load_spec(project / spec), day, target=f"duckdb:{project / 'wh.duckdb'}",
                    lineage=f"embedded:{project / 'lineage.db'}", home=project / ".lineage", **kwargs)


def _rows(project: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_a_spec_runs_end_to_end_and_a_rerun_leaves_the_same_rows(project: Path) -> None:
    first = _run(project, date(2024, 5, 1))
    assert first.ok, first
    assert [s.job for s in first.steps] == [f"daily_revenue.{n}" for n in ("orders", "users", "revenue", "publish", "quality")]
    table = "SELECT user_id, country, order_day::VARCHAR, revenue FROM analytics.daily_revenue ORDER BY 1, 3"
    once = _rows(project, table)
    assert [(r[0], r[1], r[2], float(r[3])) for r in once] == [(10, "DE", "2024-05-01", 12.5), (11, "FR", "2024-05-01", 3.25)]
    assert _run(project, date(2024, 5, 1)).ok
    assert _rows(project, table) == once  # upsert on (user_id, order_day): idempotent
    assert _run(project, date(2024, 5, 2)).ok  # the next day adds its rows
    assert len(_rows(project, table)) == 3


def test_every_step_is_a_child_run_with_column_lineage(project: Path) -> None:
    summary = _run(project, date(2024, 5, 1))
    with EmbeddedStore(project / "lineage.db") as store:
        events = list(store.events())
    graph = LineageGraph.from_events(events)
    jobs = {j.name for j in graph.jobs()}
    assert jobs == {"daily_revenue", *(f"daily_revenue.{n}" for n in ("orders", "users", "revenue", "publish", "quality"))}
    parents = {e["job"]["name"]: e["run"]["facets"].get("parent", {}).get("run", {}).get("runId")
               for e in events if e["eventType"] == "COMPLETE"}
    assert {parents[f"daily_revenue.{n}"] for n in ("orders", "revenue", "quality")} == {summary.run_id}
    revenue = next(d for d in graph.datasets() if d.name.endswith("mart.daily_revenue"))
    upstream = graph.column_upstream(ColumnRef(revenue, "revenue"), direct_only=True)
    orders = next(d for d in graph.datasets() if d.name.endswith("staging.orders"))
    export = next(d for d in graph.datasets() if d.namespace == "file" and d.name.endswith("orders.csv"))
    assert upstream == [ColumnRef(orders, "amount"), ColumnRef(export, "amount")]  # through the extract to the file
    assert graph.producers(orders) == [next(j for j in graph.jobs() if j.name == "daily_revenue.orders")]  # one dataset, not two
    published = next(d for d in graph.datasets() if d.name.endswith("analytics.daily_revenue"))
    assert revenue in graph.upstream(published)
    # the load carries column lineage too, so an audit traces a published column to its source
    assert graph.column_root_sources(ColumnRef(published, "revenue"), direct_only=True) == [ColumnRef(export, "amount")]
    assert [c.field for c in graph.columns(revenue)] == ["user_id", "country", "order_day", "revenue"]
    checks = [e for e in events if e["job"]["name"] == "daily_revenue.quality" and e["eventType"] == "COMPLETE"][0]
    assertions = checks["inputs"][-1]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(a["assertion"], a["success"]) for a in assertions] == [("not_null", True), ("unique", True), ("accepted_values", True)]


def test_a_failing_error_check_fails_the_run_and_says_why(project: Path) -> None:
    (project / "users.csv").write_text(USERS.replace("11,FR", "11,XX"))
    summary = _run(project, date(2024, 5, 1))
    assert summary.state == "FAIL"
    quality = summary.steps[-1]
    assert quality.state == "FAIL" and quality.error == "step quality: 1 check failed: accepted_values: 1 failing row"


def test_a_flaky_python_step_is_retried_with_backoff_then_succeeds(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = project / "flaky_steps.py"
    module.write_text(
        "from lineage_auditor.errors import PipelineError\n"
        "calls = []\n"
        "def fetch(ctx):\n"
        "    calls.append(ctx.day)\n"
        "    if len(calls) < 3:\n"
        "        raise PipelineError('source not ready')\n"
        "    ctx.execute('CREATE SCHEMA IF NOT EXISTS raw; CREATE OR REPLACE TABLE raw.x AS SELECT 1 AS a')\n"
        "    return {'raw.x': 1}\n")
    monkeypatch.syspath_prepend(str(project))
    (project / "flaky.yml").write_text(
        "apiVersion: lineage-audit/v1\nkind: Pipeline\nid: flaky\nteam: t\n"
        "steps:\n  - id: fetch\n    retries: {count: 3, backoff: 2s, max_delay: 10s, jitter: false}\n"
        "    python: {callable: 'flaky_steps:fetch', outputs: [raw.x]}\n")
    waits: list[float] = []
    summary = _run(project, date(2024, 5, 1), spec="flaky.yml", sleep=waits.append)
    assert summary.ok, summary
    import flaky_steps  # type: ignore[import-not-found]

    assert len(flaky_steps.calls) == 3
    assert waits == [2.0, 4.0]  # exponential backoff from the spec


def test_a_failing_gate_stops_the_run_before_any_source_is_read(project: Path) -> None:
    requests: list[str] = []

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            requests.append(self.path)
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gate = (f"  - id: upstream_ok\n    gate:\n      http: {{url: 'http://127.0.0.1:{server.server_port}/health'}}\n")
        text = SPEC.replace("steps:\n", "steps:\n" + gate, 1).replace("  - id: orders\n", "  - id: orders\n    depends_on: [upstream_ok]\n", 1)
        text = text.replace("  - id: users\n", "  - id: users\n    depends_on: [upstream_ok]\n", 1)
        (project / "gated.yml").write_text(text)
        summary = _run(project, date(2024, 5, 1), spec="gated.yml")
    finally:
        server.shutdown()
    assert summary.state == "FAIL" and requests == ["/health"]
    assert [s.job for s in summary.steps] == ["daily_revenue.upstream_ok"]
    assert "answered 503, expected 200" in (summary.steps[0].error or "")
    assert not (project / "wh.duckdb").exists() or not _rows(project, "SELECT * FROM information_schema.tables WHERE table_schema = 'staging'")


def test_the_run_command_backfills_days_in_order(project: Path) -> None:
    from click.testing import CliRunner

    from lineage_auditor.cli import _register, cli

    _register()
    res = CliRunner().invoke(cli, ["pipelines", "run", str(project / "spec.yml"), "--start", "2024-05-01", "--end", "2024-05-03",
                                   "--target", f"duckdb:{project / 'wh.duckdb'}", "--lineage", f"embedded:{project / 'l.db'}",
                                   "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    runs = json.loads(res.stdout)["runs"]
    assert [r["nominal_start"][:10] for r in runs] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert _rows(project, "SELECT count(*) FROM analytics.daily_revenue") == [(3,)]


@pytest.mark.browser
def test_the_plan_draws_in_the_graph_view_before_anything_ran(tmp_path: Path, browser_page: BrowserPage) -> None:
    from click.testing import CliRunner

    from lineage_auditor.cli import _register, cli

    _register()
    out = tmp_path / "plan.html"
    res = CliRunner().invoke(cli, ["pipelines", "plan", str(Path(__file__).parent.parent / "examples" / "specs" / "daily_revenue.yml"),
                                   "--date", "2024-05-01", "--format", "html", "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0 and out.exists(), res.output
    browser_page.open(out)
    page = browser_page.page
    page.wait_for_selector("#lineage-graph[data-ready=true]", timeout=20_000)
    names = page.evaluate("['staging.orders', 'crm.users', 'mart.daily_revenue'].map(n => lineageGraph.idOf(n) !== null)")
    assert names == [True, True, True]
    page.click(".lg-toggle button[value=column]")
    revenue = page.evaluate("lineageGraph.idOf('mart.daily_revenue.revenue')")
    assert revenue, "the planned column lineage reaches the column view"
    browser_page.screenshot("pipeline-plan")
    browser_page.assert_clean()


HTTP_SPEC = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: crm_users
team: growth
retries: {{count: 0}}
steps:
  - id: users
    extract:
      into: staging.users
      http:
        url: "{url}/users"
        paging: page
        page_size: 40
        records: data
        token_env: CRM_TOKEN
        columns:
          - {{name: id, type: BIGINT, nullable: false}}
          - {{name: email, type: VARCHAR}}
          - {{name: country, type: VARCHAR}}
          - {{name: signup_date, type: DATE}}
          - {{name: active, type: BOOLEAN}}
  - id: by_country
    depends_on: [users]
    sql:
      query: "CREATE TABLE mart.users_by_country AS SELECT country, COUNT(*) AS users FROM staging.users GROUP BY country"
"""


def test_an_http_extract_pages_retries_and_dead_letters_one_bad_record(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.sources.mock_api import MockApiServer

    with MockApiServer(n_users=100, seed=3) as server:
        server.set_faults({"invalid_record_ids": [17], "error_rate": 0.3, "retry_after": 0, "seed": 5})
        monkeypatch.setenv("CRM_TOKEN", server.token)
        (project / "crm.yml").write_text(HTTP_SPEC.format(url=server.url))
        summary = _run(project, date(2024, 5, 1), spec="crm.yml")
    assert summary.ok, summary
    assert _rows(project, "SELECT count(*), count(DISTINCT id) FROM staging.users") == [(99, 99)]
    assert _rows(project, "SELECT count(*) FROM staging.users WHERE id = 17") == [(0,)]
    assert _rows(project, "SELECT sum(users) FROM mart.users_by_country") == [(99,)]
    dead = [json.loads(line) for line in (project / ".lineage" / "dead-letter" / "crm_users.users.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and ".17@" in dead[0]["raw"]["email"] and dead[0]["page"] == 1, dead
    assert dead[0]["reason"] == "id: missing (the column is not nullable)"


def test_an_http_extract_without_its_token_is_a_clear_error(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.sources.mock_api import MockApiServer

    monkeypatch.delenv("CRM_TOKEN", raising=False)
    with MockApiServer(n_users=10) as server:
        (project / "crm.yml").write_text(HTTP_SPEC.format(url=server.url))
        summary = _run(project, date(2024, 5, 1), spec="crm.yml")
    assert summary.state == "FAIL"
    assert summary.steps[0].error == "extract http: the environment variable CRM_TOKEN holding the token is not set"


def test_a_failed_check_becomes_an_audit_finding_on_the_ai_dataset(project: Path) -> None:
    from click.testing import CliRunner

    from lineage_auditor.cli import _register, cli

    (project / "users.csv").write_text(USERS + "13,\n")  # a user without a country
    (project / "orders.csv").write_text(ORDERS + "5,13,1.00,2024-05-01\n")
    spec = SPEC.replace("        - accepted_values: {column: country, values: [DE, FR]}\n",
                        "        - not_null: country\n          severity: warn\n")
    (project / "spec.yml").write_text(spec)
    summary = _run(project, date(2024, 5, 1))
    assert summary.ok, summary  # a warn check does not fail the run ...
    config = project / "lineage-audit.yml"
    config.write_text("ai_datasets:\n  - name: analytics.daily_revenue\n    owner: team:growth\n    purpose: revenue model\n")
    _register()
    res = CliRunner().invoke(cli, ["audit", "--store", f"embedded:{project / 'lineage.db'}", "--config", str(config),
                                   "--check", "assertions", "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 1, res.output  # ... but the audit of the AI dataset reports it
    findings = json.loads(res.stdout)["findings"]
    assert [(f["severity"], f["subject"], f["title"]) for f in findings] == [
        ("high", "wh.analytics.daily_revenue.country", "data-quality assertion not_null failed")]


BAD_ORDERS = ("order_id,user_id,amount,order_day\n1,10,5.00,2024-05-01\n2,,7.50,2024-05-01\n"
              "3,11,12345678901234.50,2024-05-01\n4,12,9.99,yesterday\n5,12,1.25,2024-05-01\n")


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_a_file_extract_dead_letters_rows_that_do_not_fit_and_loads_the_rest(project: Path, warehouse: str,
                                                                              request: pytest.FixtureRequest) -> None:
    (project / "orders.csv").write_text(BAD_ORDERS)
    spec = SPEC.replace("{name: user_id, type: INTEGER}", "{name: user_id, type: INTEGER, nullable: false}", 1)
    (project / "spec.yml").write_text(spec.split("  - id: revenue")[0])  # the two extracts only
    target = request.getfixturevalue("pg_dsn") if warehouse == "postgres" else f"duckdb:{project / 'wh.duckdb'}"
    summary = run_spec(load_spec(project / "spec.yml"), date(2024, 5, 1), target=target,
                       lineage=f"embedded:{project / 'lineage.db'}", home=project / ".lineage")
    assert summary.ok, summary
    dead = [json.loads(line) for line in (project / ".lineage" / "dead-letter" / "daily_revenue.orders.jsonl").read_text().splitlines()]
    assert [(d["line"], d["reason"]) for d in dead] == [
        (3, "user_id: missing (the column is not nullable)"),
        (4, "amount: '12345678901234.50': more than 12 digits before the decimal point"),
        (5, "order_day: 'yesterday' is not an ISO 8601 date"),
    ]
    if warehouse == "postgres":
        import psycopg

        with psycopg.connect(target) as conn:
            loaded = conn.execute("SELECT order_id, amount::text FROM staging.orders ORDER BY 1").fetchall()
    else:
        loaded = [(i, str(a)) for i, a in _rows(project, "SELECT order_id, amount FROM staging.orders ORDER BY 1")]
    assert loaded == [(1, "5.00"), (5, "1.25")]


def test_the_python_step_example_runs_offline_with_its_declared_lineage(tmp_path: Path) -> None:
    from pipelines.reference import recorded_days

    example = Path(__file__).resolve().parent.parent / "examples" / "specs" / "weather_units.yml"
    summary = run_spec(load_spec(example), recorded_days()[0], target=f"duckdb:{tmp_path / 'wh.duckdb'}",
                       lineage=f"embedded:{tmp_path / 'lineage.db'}", home=tmp_path)
    assert summary.ok, summary
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*), min(unit), max(unit) FROM weather.hourly_imperial").fetchone() == (24, "F", "F")
    with EmbeddedStore(tmp_path / "lineage.db") as store:
        graph = LineageGraph.from_events(store.events())
    imperial = next(d for d in graph.datasets() if d.name.endswith("weather.hourly_imperial"))
    upstream = graph.column_upstream(ColumnRef(imperial, "temperature_f"))
    assert [(c.dataset.name.split(".", 1)[1], c.field) for c in upstream[:1]] == [("staging.forecast", "temperature_c")]
    assert any(c.dataset.namespace.startswith("https://api.open-meteo.com") for c in upstream)  # through the connector


def test_use_last_snapshot_keeps_the_run_going_while_the_source_is_down(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.sources.mock_api import MockApiServer

    spec = HTTP_SPEC.replace("retries: {{count: 0}}", "retries: {{count: 0}}\non_source_failure: use_last_snapshot\n"
                                                      "max_staleness: 1h\ntimeout: 2s")  # a down source costs 2 s
    with MockApiServer(n_users=30, seed=3) as server:
        monkeypatch.setenv("CRM_TOKEN", server.token)
        (project / "crm.yml").write_text(spec.format(url=server.url))
        server.set_faults({"outage": True})
        first = _run(project, date(2024, 5, 1), spec="crm.yml")
        assert first.state == "FAIL" and "no earlier snapshot (max_staleness 1h)" in (first.steps[0].error or ""), first
        server.set_faults({"outage": False})
        assert _run(project, date(2024, 5, 1), spec="crm.yml").ok
        server.set_faults({"outage": True})
        degraded = _run(project, date(2024, 5, 2), spec="crm.yml")
    assert degraded.ok and degraded.degraded, degraded
    assert _rows(project, "SELECT count(*) FROM staging.users") == [(30,)]
    with EmbeddedStore(project / "lineage.db") as store:
        complete = [e for e in store.events() if e["eventType"] == "COMPLETE" and e["job"]["name"] == "crm_users"]
    facet = complete[-1]["run"]["facets"]["lineageAudit_degraded"]
    assert facet["source"] == "users" and facet["maxStalenessSeconds"] == 3600 and facet["snapshotAgeSeconds"] < 3600


def test_a_freshness_gate_waits_for_the_upstream_team(project: Path) -> None:
    consumer = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: churn_inputs
team: ml
retries: {count: 0}
sources: [analytics.daily_revenue]
steps:
  - id: upstream_fresh
    gate:
      freshness: {dataset: analytics.daily_revenue, max_staleness: 1h}
  - id: features
    depends_on: [upstream_fresh]
    sql:
      query: "CREATE TABLE features.revenue AS SELECT user_id, revenue FROM analytics.daily_revenue"
"""
    (project / "consumer.yml").write_text(consumer)
    early = _run(project, date(2024, 5, 1), spec="consumer.yml")
    assert early.state == "FAIL" and [s.job for s in early.steps] == ["churn_inputs.upstream_fresh"]
    assert early.steps[0].error == "gate upstream_fresh: no completed run has written analytics.daily_revenue (upstream not ready)"
    assert _run(project, date(2024, 5, 1)).ok  # the growth team's pipeline writes it
    later = _run(project, date(2024, 5, 1), spec="consumer.yml")
    assert later.ok, later
    assert _rows(project, "SELECT count(*) FROM features.revenue") == [(2,)]


def test_an_sql_extract_reads_another_database_with_lineage_to_its_tables(project: Path, pg_dsn: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS crm; DROP TABLE IF EXISTS crm.accounts;"
                     "CREATE TABLE crm.accounts (id bigint primary key, region text, opened date, credit numeric(20,2));"
                     "INSERT INTO crm.accounts VALUES (1, 'eu', '2024-01-02', 10.50), (2, 'us', '2024-02-03', 99999999999999.00),"
                     " (3, NULL, '2024-03-04', 1.25)")
    monkeypatch.setenv("CRM_DSN", pg_dsn)
    (project / "accounts.yml").write_text("""\
apiVersion: lineage-audit/v1
kind: Pipeline
id: crm_accounts
team: growth
retries: {count: 0}
steps:
  - id: accounts
    extract:
      into: staging.accounts
      sql:
        connection: CRM_DSN
        query: "SELECT id, upper(region) AS region, opened, credit FROM crm.accounts WHERE opened <= DATE '{{ ds }}'"
        columns:
          - {name: id, type: BIGINT, nullable: false}
          - {name: region, type: VARCHAR, nullable: false}
          - {name: opened, type: DATE}
          - {name: credit, type: "DECIMAL(14,2)"}
""")
    summary = _run(project, date(2024, 3, 1), spec="accounts.yml")
    assert summary.ok, summary
    rows = _rows(project, "SELECT id, region, opened::VARCHAR, credit::VARCHAR FROM staging.accounts ORDER BY id")
    assert rows == [(1, "EU", "2024-01-02", "10.50")]  # 3 opened later
    dead = [json.loads(line) for line in (project / ".lineage" / "dead-letter" / "crm_accounts.accounts.jsonl").read_text().splitlines()]
    assert [d["reason"] for d in dead] == ["credit: '99999999999999.00': more than 12 digits before the decimal point"]
    with EmbeddedStore(project / "lineage.db") as store:
        graph = LineageGraph.from_events(store.events())
    staged = next(d for d in graph.datasets() if d.name.endswith("staging.accounts"))
    region = graph.column_upstream(ColumnRef(staged, "region"), direct_only=True)[0]
    assert graph.column_upstream(ColumnRef(staged, "region"), direct_only=True) == [region]
    assert region.dataset.namespace.startswith("postgres://") and region.dataset.name.endswith("crm.accounts")
    assert region.field == "region"


def test_row_rules_dead_letter_duplicates_and_unknown_values_like_the_orders_reader(project: Path) -> None:
    (project / "orders.csv").write_text(
        "order_id,user_id,amount,order_day,status\n1,10,5.00,2024-05-01,paid\n1,10,5.00,2024-05-01,paid\n"
        "2,11,7.00,2024-05-01,lost\n3,12,1.00,2024-05-01,shipped\n")
    (project / "rules.yml").write_text("""\
apiVersion: lineage-audit/v1
kind: Pipeline
id: rules
team: t
steps:
  - id: orders
    extract:
      into: staging.orders
      file:
        path: orders.csv
        columns: [{name: order_id, type: BIGINT, nullable: false}, {name: status, type: VARCHAR}]
        reject:
          unique: [order_id]
          accepted_values: {status: [placed, paid, shipped]}
""")
    assert _run(project, date(2024, 5, 1), spec="rules.yml").ok
    assert _rows(project, "SELECT order_id, status FROM staging.orders ORDER BY 1") == [(1, "paid"), (3, "shipped")]
    dead = [json.loads(line) for line in (project / ".lineage" / "dead-letter" / "rules.orders.jsonl").read_text().splitlines()]
    assert [(d["line"], d["reason"]) for d in dead] == [
        (3, "duplicate order_id (first at line 2)"),
        (4, "status: 'lost' is not one of paid, placed, shipped"),
    ]


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_a_step_timeout_stops_a_long_sql_statement(tmp_path: Path, warehouse: str, request: pytest.FixtureRequest) -> None:
    """The step's timeout bounds its SQL, not only its retries: the warehouse stops the statement."""
    import time as clock

    slow = {"duckdb": "SELECT sum(a.range * b.range) AS s FROM range(200000) a, range(200000) b",
            "postgres": "SELECT 1 AS s FROM pg_sleep(60)"}[warehouse]
    spec = tmp_path / "slow.yml"
    spec.write_text("apiVersion: lineage-audit/v1\nkind: Pipeline\nid: slow\nteam: t\n"
                    f"steps:\n  - id: crunch\n    timeout: 1s\n    sql:\n      dialect: {warehouse}\n"
                    f"      query: CREATE TABLE s.slow AS {slow}\n")
    target = request.getfixturevalue("pg_dsn") if warehouse == "postgres" else f"duckdb:{tmp_path / 'w.duckdb'}"
    started = clock.monotonic()
    summary = run_spec(load_spec(spec), date(2024, 5, 1), target=target, lineage=f"embedded:{tmp_path / 'l.db'}",
                       home=tmp_path)
    took = clock.monotonic() - started
    assert summary.state == "FAIL" and "stopped at its timeout of 1s" in (summary.error or ""), summary.error
    assert took < 30, took  # stopped, not run to the end (minutes) or to the pg_sleep's 60 s


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_a_sql_step_lands_whole_or_not_at_all(tmp_path: Path, warehouse: str, request: pytest.FixtureRequest) -> None:
    """Statements of one step are one transaction: a failing second statement leaves the first undone."""
    target = request.getfixturevalue("pg_dsn") if warehouse == "postgres" else f"duckdb:{tmp_path / 'w.duckdb'}"
    spec = tmp_path / "two.yml"

    def write(second: str) -> None:
        spec.write_text("apiVersion: lineage-audit/v1\nkind: Pipeline\nid: two\nteam: t\nsteps:\n  - id: build\n"
                        f"    sql:\n      dialect: {warehouse}\n      query: |\n"
                        "        CREATE TABLE s.one AS SELECT 1 AS a;\n"
                        f"        {second};\n")

    def tables() -> set[str]:
        from pipelines.runtime.targets import parse_target

        found = parse_target(target, default_path=tmp_path / "x.duckdb")
        return {name for name in ("s.one", "s.two") if found.table_exists(name)}

    write("CREATE TABLE s.two AS SELECT a / 0 AS b FROM s.one" if warehouse == "postgres"
          else "CREATE TABLE s.two AS SELECT CAST('x' AS INTEGER) AS b FROM s.one")
    failed = run_spec(load_spec(spec), date(2024, 5, 1), target=target, lineage="none", home=tmp_path)
    assert failed.state == "FAIL" and tables() == set(), failed.error
    write("CREATE TABLE s.two AS SELECT a + 1 AS b FROM s.one")
    done = run_spec(load_spec(spec), date(2024, 5, 1), target=target, lineage="none", home=tmp_path)
    assert done.ok and tables() == {"s.one", "s.two"}, done.error
    assert done.counts["rows_loaded"] == 2  # one row in each table
