"""users-orders end to end against the real mock users API (fault injection) and real
PostgreSQL/DuckDB: exactly-once loading under faults, clean failure, snapshot fallback,
dead letters, spooled lineage, and no secret in any event."""

from __future__ import annotations

import json
import re
import secrets
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import sqlglot
from click.testing import CliRunner

from collectors.store import EmbeddedStore
from conftest import dsn_for
from lineage_auditor.cli import _register, cli
from pipelines.runtime.events import CUSTOM_FACETS, DEGRADED_FACET, STATS_FACET
from pipelines.runtime.run import Environment, RunSummary
from pipelines.runtime.spec import UsersOrdersSpec, builtin_spec
from pipelines.sources.dead_letter import read_dead_letters
from pipelines.sources.mock_api import MockApiServer
from pipelines.sources.orders_csv import generate_orders
from pipelines.sources.resilience import RetryPolicy
from pipelines.users_orders.pipeline import run_users_orders
from pipelines.users_orders.transpile import load_model
from tests.olspec import assert_lineage_has_schema, validate_events, validate_own_facet


N_USERS = 200
PER_PAGE = 50  # the shipped spec's page size: 4 pages
TOKEN = "t0k-" + secrets.token_hex(8)
QUICK = RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.2, timeout=0.5, deadline=20.0, max_retry_after=1.0)
GIVE_UP_FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, timeout=0.5, deadline=1.5)
FX = {"USD": Decimal("1.00"), "EUR": Decimal("1.08"), "GBP": Decimal("1.27")}


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("orders") / "orders.csv"
    generate_orders(path, 3000, N_USERS, seed=11, bad_row_rate=0.005)
    return path


@pytest.fixture(scope="module")
def spec() -> UsersOrdersSpec:
    loaded = builtin_spec("users_orders")
    assert isinstance(loaded, UsersOrdersSpec) and loaded.source.users.per_page == PER_PAGE
    return loaded


@pytest.fixture
def api() -> Iterator[MockApiServer]:
    with MockApiServer(n_users=N_USERS, token=TOKEN) as server:
        yield server


def run(spec: UsersOrdersSpec, home: Path, target: str, api: MockApiServer, orders: Path, *,
        lineage: str = "none", policy: RetryPolicy = QUICK) -> tuple[RunSummary, Environment]:
    with Environment.create(spec, target=target, lineage=lineage, home=home) as env:
        summary = run_users_orders(spec, env, api_url=api.url, api_token=api.token, orders_path=orders, policy=policy)
    validate_events(env.events.events[-summary.events_emitted:], custom_facets=CUSTOM_FACETS)
    assert_lineage_has_schema(env.events.events[-summary.events_emitted:])
    return summary, env



def rows(env: Environment, table: str) -> list[tuple]:
    return sorted(env.target.query(f"SELECT * FROM {table}"), key=repr)


def events_of(env: Environment, summary: RunSummary) -> list[dict[str, Any]]:
    return env.events.events[-summary.events_emitted:]


def test_users_and_orders_into_postgres_one_row_per_user(
    tmp_path: Path, spec: UsersOrdersSpec, api: MockApiServer, orders_csv: Path, pg_dsn: str
) -> None:
    summary, env = run(spec, tmp_path, pg_dsn, api, orders_csv)
    assert summary.ok, summary.error
    assert summary.counts["users"] == N_USERS and summary.counts["user_orders_rows"] == N_USERS
    assert env.target.query("SELECT count(*), count(DISTINCT user_id) FROM analytics.user_orders") == [(N_USERS, N_USERS)]

    # Every rejected CSV row is in the dead-letter file with its line number; none was loaded.
    dead = read_dead_letters(summary.dead_letter_file)
    assert len(dead) == summary.counts["orders_rejected"] > 0 and all(d["line"] > 1 for d in dead)
    assert env.target.query("SELECT count(*) FROM staging.orders") == [(summary.counts["orders"],)]

    # The transpiled SQL computed what its comment promises, checked row by row in Python.
    orders = env.target.query("SELECT user_id, amount, currency, status, order_ts FROM staging.orders")
    expected: dict[int, list[Any]] = {}
    for user_id, amount, currency, status, ts in orders:
        if status in ("cancelled", "refunded"):
            continue
        entry = expected.setdefault(user_id, [0, Decimal(0), ts, ts])
        entry[0] += 1
        entry[1] += amount * FX[currency]
        entry[2], entry[3] = min(entry[2], ts), max(entry[3], ts)
    built = env.target.query("SELECT user_id, order_count, revenue_usd, first_order_at, last_order_at FROM analytics.user_orders")
    for user_id, count, revenue, first, last in built:
        want = expected.get(user_id, [0, Decimal(0), None, None])
        assert (count, first, last) == (want[0], want[2], want[3])
        assert revenue == want[1].quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)  # as NUMERIC casts round

    events = events_of(env, summary)
    jobs = [(e["eventType"], e["job"]["name"]) for e in events]
    assert jobs[0] == ("START", "users_orders") and jobs[-1] == ("COMPLETE", "users_orders")
    assert ("COMPLETE", "users_orders.build_user_orders") in jobs
    build = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "users_orders.build_user_orders")
    sql_facet = build["job"]["facets"]["sql"]
    assert sql_facet["dialect"] == "postgres" and sql_facet["query"].startswith("CREATE TABLE analytics.user_orders")
    assert build["job"]["facets"]["sourceCodeLocation"]["path"] == "pipelines/users_orders/sql/user_orders.sql"
    (output,) = build["outputs"]
    database = pg_dsn.rsplit("/", 1)[1]
    assert output["namespace"] == f"postgres://{urlsplit(pg_dsn).hostname}:{urlsplit(pg_dsn).port}"
    assert output["name"] == f"{database}.analytics.user_orders"
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == N_USERS
    revenue_inputs = output["facets"]["columnLineage"]["fields"]["revenue_usd"]["inputFields"]
    amount = next(i for i in revenue_inputs if i["field"] == "amount")
    assert amount["name"] == f"{database}.staging.orders"
    assert amount["transformations"][0]["subtype"] == "AGGREGATION"
    assert {f["name"] for f in output["facets"]["schema"]["fields"]} >= {"user_id", "country", "order_count", "revenue_usd"}

    users_step = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "users_orders.extract_users")
    (users_api,) = users_step["inputs"]
    assert (users_api["namespace"], users_api["name"]) == (api.url, "users")  # the configured URL's host
    assert users_api["inputFacets"]["dataQualityMetrics"]["rowCount"] == N_USERS
    orders_step = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "users_orders.extract_orders")
    (orders_file,) = orders_step["inputs"]
    assert (orders_file["namespace"], orders_file["name"]) == ("file", str(orders_csv.resolve()))
    assertions = {a["name"]: a["success"] for a in orders_file["inputFacets"]["dataQualityAssertions"]["assertions"]}
    assert assertions["order_id_unique"] is False and assertions["currency_iso_code"] is True


def test_fault_run_loads_every_user_exactly_once(
    tmp_path: Path, spec: UsersOrdersSpec, orders_csv: Path
) -> None:
    faults = {"error_rate": 0.3, "rate_limit_rate": 0.1, "retry_after": 1, "timeout_rate": 0.05, "timeout_seconds": 1.5}
    with MockApiServer(n_users=N_USERS, token=TOKEN, seed=3, faults=faults) as api:
        small_pages = spec.model_copy(update={"source": spec.source.model_copy(
            update={"users": spec.source.users.model_copy(update={"per_page": 10})})})
        summary, env = run(small_pages, tmp_path, f"duckdb:{tmp_path}/w.duckdb", api, orders_csv)
        served = api.stats()
    assert summary.ok, summary.error
    faulted = {kind: sum(n for k, n in served.items() if k.startswith(kind)) for kind in ("error", "rate_limit", "timeout")}
    assert all(faulted.values()), served
    assert summary.counts["api_retries"] > 0
    assert env.target.query("SELECT count(*), count(DISTINCT user_id), min(user_id), max(user_id) FROM staging.users") \
        == [(N_USERS, N_USERS, 1, N_USERS)]
    assert env.target.query("SELECT count(*), count(DISTINCT user_id) FROM analytics.user_orders") == [(N_USERS, N_USERS)]


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_full_outage_fails_cleanly_and_keeps_the_previous_table(
    kind: str, tmp_path: Path, spec: UsersOrdersSpec, api: MockApiServer, orders_csv: Path,
    request: pytest.FixtureRequest,
) -> None:
    strict = spec.model_copy(update={"on_source_failure": "fail"})
    target = request.getfixturevalue("pg_dsn") if kind == "postgres" else f"duckdb:{tmp_path}/w.duckdb"
    first, env = run(strict, tmp_path, target, api, orders_csv)
    assert first.ok
    before = rows(env, "analytics.user_orders")
    api.set_faults({"outage": True})
    summary, env = run(strict, tmp_path, target, api, orders_csv, policy=GIVE_UP_FAST)
    assert summary.state == "FAIL" and not summary.degraded
    fails = [e for e in events_of(env, summary) if e["eventType"] == "FAIL"]
    assert [e["job"]["name"] for e in fails] == ["users_orders.extract_users", "users_orders"]
    for event in fails:
        message = event["run"]["facets"]["errorMessage"]["message"]
        assert "users-api" in message and "unavailable" in message.lower()
    assert rows(env, "analytics.user_orders") == before
    assert not env.target.table_exists("analytics.user_orders__new")


def test_malformed_page_goes_to_dead_letters_and_the_run_continues(
    tmp_path: Path, spec: UsersOrdersSpec, orders_csv: Path
) -> None:
    with MockApiServer(n_users=N_USERS, token=TOKEN, faults={"malformed_pages": [2]}) as api:
        summary, env = run(spec, tmp_path, f"duckdb:{tmp_path}/w.duckdb", api, orders_csv)
        api_url = api.url
    assert summary.ok, summary.error
    assert summary.counts["users"] == N_USERS - PER_PAGE
    pages = [d for d in read_dead_letters(summary.dead_letter_file) if d.get("page") == 2]
    assert len(pages) == 1 and "malformed page 2" in pages[0]["reason"] and pages[0]["raw"]
    assert env.target.query("SELECT count(*) FROM staging.users WHERE user_id BETWEEN 51 AND 100") == [(0,)]
    events = events_of(env, summary)
    step = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "users_orders.extract_users")
    checks = {a["name"]: a for a in step["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]}
    assert checks["all_pages_read"]["success"] is False and "[2]" in checks["all_pages_read"]["actual"]
    assert summary.degraded
    degraded = events[-1]["run"]["facets"][DEGRADED_FACET]
    assert degraded["skippedPages"] == [2] and degraded["source"] == api_url
    validate_own_facet(degraded, "DegradedRunFacet")


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_an_out_of_range_value_costs_its_row_not_the_load(
    kind: str, tmp_path: Path, spec: UsersOrdersSpec, api: MockApiServer, request: pytest.FixtureRequest,
) -> None:
    """An amount too big for DECIMAL(14,2) (and an id too big for BIGINT) used to fail the whole
    load; validation now knows the target's types, so those rows are dead-lettered with their
    line numbers and the others load."""
    orders = tmp_path / "orders.csv"
    generate_orders(orders, 500, N_USERS, seed=5)
    lines = orders.read_text(encoding="utf-8").splitlines()
    lines[7] = "100007,3,2024-03-01T10:00:00Z,12345678901234.50,USD,paid"  # line 8 of the file
    lines[20] = "100020,99999999999999999999,2024-03-01T10:00:00Z,10.00,USD,paid"  # line 21
    lines[30] = "100030,4,2024-03-01T10:00:00Z,123456789012.34,USD,paid"  # line 31: 12 digits fit
    orders.write_text("\n".join(lines) + "\n", encoding="utf-8")
    target = request.getfixturevalue("pg_dsn") if kind == "postgres" else f"duckdb:{tmp_path}/w.duckdb"
    summary, env = run(spec, tmp_path, target, api, orders)
    assert summary.ok, summary.error
    assert summary.counts["orders"] == 498 and summary.counts["orders_rejected"] == 2
    dead = {d["line"]: d for d in read_dead_letters(summary.dead_letter_file) if "line" in d}
    assert sorted(dead) == [8, 21]
    assert "amount '12345678901234.50' does not fit staging.orders.amount NUMERIC(14,2)" in dead[8]["reason"]
    assert "12 digits before the decimal point" in dead[8]["reason"] and dead[8]["raw"] == lines[7]
    assert "user_id '99999999999999999999' does not fit staging.orders.user_id BIGINT" in dead[21]["reason"]
    assert env.target.query("SELECT count(*) FROM staging.orders") == [(498,)]
    assert env.target.query("SELECT amount FROM staging.orders WHERE order_id = 100030") == [(Decimal("123456789012.34"),)]
    assert env.target.query("SELECT count(*) FROM staging.orders WHERE order_id IN (100007, 100020)") == [(0,)]
    assert env.target.table_exists("analytics.user_orders")


def test_a_skipped_page_keeps_its_users_from_the_previous_snapshot(
    tmp_path: Path, spec: UsersOrdersSpec, orders_csv: Path
) -> None:
    target = f"duckdb:{tmp_path}/w.duckdb"
    with MockApiServer(n_users=N_USERS, token=TOKEN) as api:
        assert run(spec, tmp_path, target, api, orders_csv)[0].ok
        api.set_faults({"malformed_pages": [2]})
        summary, env = run(spec, tmp_path, target, api, orders_csv)
    assert summary.ok and summary.degraded
    assert summary.counts["users"] == N_USERS - PER_PAGE
    assert env.target.query("SELECT count(*) FROM staging.users") == [(N_USERS,)]
    assert env.target.query("SELECT count(*) FROM analytics.user_orders") == [(N_USERS,)]


def test_use_last_snapshot_builds_from_it_and_marks_the_run_degraded(
    tmp_path: Path, spec: UsersOrdersSpec, api: MockApiServer, orders_csv: Path
) -> None:
    assert spec.on_source_failure == "use_last_snapshot"
    target = f"duckdb:{tmp_path}/w.duckdb"
    assert run(spec, tmp_path, target, api, orders_csv)[0].ok
    api.set_faults({"outage": True})
    summary, env = run(spec, tmp_path, target, api, orders_csv, policy=GIVE_UP_FAST)
    assert summary.state == "COMPLETE" and summary.degraded
    assert summary.counts["users_from_snapshot"] == N_USERS and summary.counts["user_orders_rows"] == N_USERS
    events = events_of(env, summary)
    assert [e["job"]["name"] for e in events if e["eventType"] == "FAIL"] == ["users_orders.extract_users"]
    final = events[-1]
    assert (final["eventType"], final["job"]["name"]) == ("COMPLETE", "users_orders")
    degraded = final["run"]["facets"][DEGRADED_FACET]
    assert degraded["source"] == api.url and 0 <= degraded["snapshotAgeSeconds"] < degraded["maxStalenessSeconds"]
    validate_own_facet(degraded, "DegradedRunFacet")
    stats = next(e for e in events_of(env, summary) if e["eventType"] == "COMPLETE"
                 and e["job"]["name"] == "users_orders.extract_orders")["run"]["facets"][STATS_FACET]
    validate_own_facet(stats, "RunStatsRunFacet")

    too_old = spec.model_copy(update={"max_staleness": timedelta(seconds=0)})
    stale, env = run(too_old, tmp_path, target, api, orders_csv, policy=GIVE_UP_FAST)
    assert stale.state == "FAIL" and "older than max_staleness 0s" in (stale.error or "")
    assert re.search(r"is \d+(\.\d+)?s old", stale.error or ""), stale.error  # seconds, never "0m"


def test_lineage_target_down_spools_every_event_and_the_pipeline_succeeds(
    tmp_path: Path, spec: UsersOrdersSpec, api: MockApiServer, orders_csv: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    summary, env = run(spec, tmp_path, f"duckdb:{tmp_path}/w.duckdb", api, orders_csv,
                       lineage=f"http:http://127.0.0.1:{closed}")
    assert summary.ok and summary.events_emitted == 8
    assert summary.events_undelivered == 8
    spooled = [json.loads(p.read_text()) for p in sorted((tmp_path / "spool").rglob("*.json"))]
    assert sorted(e["run"]["runId"] + e["eventType"] for e in spooled) == \
        sorted(e["run"]["runId"] + e["eventType"] for e in env.events.events)

    # The target is back: replay delivers every event exactly once, however often it runs.
    _register()
    store = tmp_path / "back-up.db"
    for _ in range(2):
        replayed = CliRunner().invoke(cli, ["replay", "--spool", str(tmp_path / "spool"), "--lineage",
                                            f"embedded:{store}", "--format", "json"])
        assert replayed.exit_code == 0, replayed.output
    with EmbeddedStore(store) as back:
        assert back.count() == 8
    assert not list((tmp_path / "spool").rglob("*.json"))


@pytest.fixture
def secret_dsn(pg_admin_dsn: str) -> Iterator[tuple[str, str]]:
    """A database owned by a role that logs in with a password; the DSN carries it."""
    role, password = f"t_role_{uuid.uuid4().hex[:8]}", "pw-" + secrets.token_hex(12)
    database = f"t_secret_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f'CREATE DATABASE "{database}" OWNER {role}')
    try:
        yield dsn_for(pg_admin_dsn, database=database, user=role, password=password), password
    finally:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_no_password_or_token_reaches_an_event_or_the_output(
    tmp_path: Path, spec: UsersOrdersSpec, api: MockApiServer, orders_csv: Path, secret_dsn: tuple[str, str]
) -> None:
    dsn, password = secret_dsn
    events_file = tmp_path / "events.ndjson"
    _register()
    result = CliRunner(env={"LINEAGE_AUDIT_HOME": str(tmp_path / "state")}).invoke(cli, [
        "run", "users-orders", "--api-url", api.url, "--api-token", TOKEN, "--orders", str(orders_csv),
        "--target", dsn, "--lineage", f"file:{events_file}", "--format", "json",
    ])
    assert result.exit_code == 0, result.output
    parts = urlsplit(dsn)
    assert json.loads(result.output)["runs"][0]["target"] == \
        f"postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"
    # A failing run too: its error message and stack trace are in the events.
    api.set_faults({"outage": True})
    summary, env = run(spec.model_copy(update={"on_source_failure": "fail"}), tmp_path / "state", dsn, api,
                       orders_csv, lineage=f"file:{events_file}", policy=GIVE_UP_FAST)
    assert summary.state == "FAIL"
    written = events_file.read_text()
    assert written.count('"eventType"') == 8 + 4
    for secret in (password, TOKEN):
        assert secret not in written
        assert secret not in result.output
        assert secret not in json.dumps(env.events.events)


def test_sql_is_written_once_and_transpiled_per_warehouse() -> None:
    model = load_model("user_orders")
    assert model.target == "analytics.user_orders"
    for dialect in ("duckdb", "postgres", "bigquery"):
        text = model.sql(dialect)
        parsed = sqlglot.parse_one(text, read=dialect)
        assert parsed.find(sqlglot.exp.Create) is not None and "analytics.user_orders" in text
        assert "staging.orders" in model.select_sql(dialect)
    assert "NUMERIC" in model.sql("bigquery") and "DECIMAL(14, 2)" in model.sql("postgres")


def test_cli_default_run_starts_the_mock_api_and_uses_the_sample_orders(tmp_path: Path) -> None:
    _register()
    args = ["run", "users-orders", "--target", f"duckdb:{tmp_path}/w.duckdb", "--lineage", "embedded", "--format", "json"]
    for _ in range(2):  # the mock API listens on a new port each run
        result = CliRunner(env={"LINEAGE_AUDIT_HOME": str(tmp_path)}).invoke(cli, args)
        assert result.exit_code == 0, result.output
        (report,) = json.loads(result.output)["runs"]
        assert report["state"] == "COMPLETE" and report["counts"]["users"] == 1000
    assert (tmp_path / "lineage.db").is_file()

    # The users are one dataset across runs, named without the mock's ephemeral port.
    with EmbeddedStore(tmp_path / "lineage.db") as store:
        extracts = [e for e in store.events() if e["job"]["name"] == "users_orders.extract_users"]
    assert len(extracts) == 4
    assert {(i["namespace"], i["name"]) for e in extracts for i in e["inputs"]} == {("http://mock-users-api", "users")}


def test_the_users_dataset_namespace_comes_from_the_spec_when_given(
    tmp_path: Path, spec: UsersOrdersSpec, api: MockApiServer, orders_csv: Path
) -> None:
    named = spec.model_copy(update={"source": spec.source.model_copy(update={
        "users": spec.source.users.model_copy(update={"dataset_namespace": "https://users.example.com"})})})
    summary, env = run(named, tmp_path, f"duckdb:{tmp_path}/w.duckdb", api, orders_csv)
    assert summary.ok, summary.error
    (users_api,) = next(e for e in events_of(env, summary) if e["job"]["name"] == "users_orders.extract_users")["inputs"]
    assert (users_api["namespace"], users_api["name"]) == ("https://users.example.com", "users")
