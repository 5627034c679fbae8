"""users-orders (the shipped spec, run by the DSL runner) end to end against the real mock users
API (fault injection) and real PostgreSQL/DuckDB: exactly-once loading under faults, clean
failure, snapshot fallback, dead letters, spooled lineage, and no secret in any event."""

from __future__ import annotations

import json
import re
import secrets
import socket
import uuid
from collections.abc import Iterator
from datetime import date
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
from pipelines.dsl import load_spec
from pipelines.dsl.runner import run_spec
from pipelines.reference import USERS_TOKEN_ENV, reference_spec, users_api
from pipelines.runtime.events import CUSTOM_FACETS, DEGRADED_FACET
from pipelines.runtime.run import Environment, RunSummary
from pipelines.sources.dead_letter import read_dead_letters
from pipelines.sources.mock_api import MockApiServer
from pipelines.sources.orders_csv import generate_orders
from reference_specs import spec_variant
from tests.olspec import assert_lineage_has_schema, validate_events, validate_own_facet

SQL_MODEL = Path(__file__).resolve().parents[1] / "pipelines" / "users_orders" / "sql" / "user_orders.sql"

N_USERS = 200
PER_PAGE = 50  # the shipped spec's page size: 4 pages
TOKEN = "t0k-" + secrets.token_hex(8)
DAY = date(2024, 5, 1)
FX = {"USD": Decimal("1.00"), "EUR": Decimal("1.08"), "GBP": Decimal("1.27")}
#: The spec failing fast (a few seconds for the whole fetch, no step retries) and without a fallback.
GIVE_UP_FAST = ("retries: {count: 2, backoff: 5s, max_delay: 1m}", "retries: {count: 0}\ntimeout: 3s")
NO_FALLBACK = ("on_source_failure: use_last_snapshot\nmax_staleness: 24h\n", "on_source_failure: fail\n")


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("orders") / "orders.csv"
    generate_orders(path, 3000, N_USERS, seed=11, bad_row_rate=0.005)
    return path


@pytest.fixture
def api() -> Iterator[MockApiServer]:
    with MockApiServer(n_users=N_USERS, token=TOKEN) as server:
        yield server


def run(home: Path, target: str, api: MockApiServer, orders: Path, *variant: tuple[str, str],
        lineage: str = "none", params: dict[str, str] | None = None) -> tuple[RunSummary, Environment]:
    """The users-orders spec (or a variant of it) once, against ``api`` and the ``orders`` CSV."""
    spec = load_spec(spec_variant(home, "users_orders", *variant)) if variant else reference_spec("users_orders")
    with users_api(api.url, api.token) as source, Environment.open(target, lineage=lineage, home=home) as env:
        summary = run_spec(spec, DAY, params=source.params() | {"orders_file": str(orders)} | (params or {}), env=env)
    validate_events(env.events.events[-summary.events_emitted:], custom_facets=CUSTOM_FACETS)
    assert_lineage_has_schema(env.events.events[-summary.events_emitted:])
    return summary, env



def rows(env: Environment, table: str) -> list[tuple]:
    return sorted(env.target.query(f"SELECT * FROM {table}"), key=repr)


def events_of(env: Environment, summary: RunSummary) -> list[dict[str, Any]]:
    return env.events.events[-summary.events_emitted:]


def count(env: Environment, sql: str) -> int:
    return int(env.target.query(sql)[0][0])


def test_users_and_orders_into_postgres_one_row_per_user(
    tmp_path: Path, api: MockApiServer, orders_csv: Path, pg_dsn: str
) -> None:
    summary, env = run(tmp_path, pg_dsn, api, orders_csv)
    assert summary.ok, summary.error
    assert summary.counts["rows_loaded"] == N_USERS
    assert count(env, "SELECT count(*) FROM staging.users") == N_USERS
    assert env.target.query("SELECT count(*), count(DISTINCT user_id) FROM analytics.user_orders") == [(N_USERS, N_USERS)]

    # Every refused CSV row is in the dead-letter file with its line number; none was loaded.
    dead = read_dead_letters(summary.dead_letter_file)
    assert len(dead) == summary.counts["dead_letters"] > 0 and all(d["line"] > 1 for d in dead)
    data_lines = sum(1 for line in orders_csv.read_text().splitlines()[1:] if line.strip())
    assert count(env, "SELECT count(*) FROM staging.orders") == data_lines - len(dead)

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
    for user_id, n, revenue, first, last in built:
        want = expected.get(user_id, [0, Decimal(0), None, None])
        assert (n, first, last) == (want[0], want[2], want[3])
        assert revenue == want[1].quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)  # as NUMERIC casts round

    events = events_of(env, summary)
    jobs = [(e["eventType"], e["job"]["name"]) for e in events]
    assert jobs[0] == ("START", "users_orders") and jobs[-1] == ("COMPLETE", "users_orders")
    build = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "users_orders.build_user_orders")
    sql_facet = build["job"]["facets"]["sql"]  # the SQL as it ran: transpiled from DuckDB's dialect
    assert sql_facet["dialect"] == "postgres" and sql_facet["query"].startswith("CREATE TABLE analytics.user_orders")
    assert "DECIMAL(14, 2)" in sql_facet["query"]
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
    (source,) = users_step["inputs"]
    assert (source["namespace"], source["name"]) == (api.url, "users")  # the configured URL's host
    assert source["inputFacets"]["dataQualityMetrics"]["rowCount"] == N_USERS
    orders_step = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "users_orders.extract_orders")
    (orders_file,) = orders_step["inputs"]
    assert (orders_file["namespace"], orders_file["name"]) == ("file", str(orders_csv.resolve()))
    assertions = {a["name"]: a for a in orders_file["inputFacets"]["dataQualityAssertions"]["assertions"]}
    assert assertions["order_id_unique"]["success"] is False and assertions["records_fit_declared_columns"]["success"] is False
    refused = sum(int(a["actual"].split()[0]) for a in assertions.values() if not a["success"])
    assert refused == len(dead)  # each dead letter broke one rule


def test_fault_run_loads_every_user_exactly_once(tmp_path: Path, orders_csv: Path) -> None:
    faults = {"error_rate": 0.3, "rate_limit_rate": 0.1, "retry_after": 1, "timeout_rate": 0.05, "timeout_seconds": 1.5}
    with MockApiServer(n_users=N_USERS, token=TOKEN, seed=3, faults=faults) as api:
        summary, env = run(tmp_path, f"duckdb:{tmp_path}/w.duckdb", api, orders_csv,
                           ("        page_size: 50", "        page_size: 10"))
        served = api.stats()
    assert summary.ok, summary.error
    faulted = {kind: sum(n for k, n in served.items() if k.startswith(kind)) for kind in ("error", "rate_limit", "timeout")}
    assert all(faulted.values()), served
    assert env.target.query("SELECT count(*), count(DISTINCT user_id), min(user_id), max(user_id) FROM staging.users") \
        == [(N_USERS, N_USERS, 1, N_USERS)]
    assert env.target.query("SELECT count(*), count(DISTINCT user_id) FROM analytics.user_orders") == [(N_USERS, N_USERS)]


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_full_outage_fails_cleanly_and_keeps_the_previous_table(
    kind: str, tmp_path: Path, api: MockApiServer, orders_csv: Path, request: pytest.FixtureRequest,
) -> None:
    target = request.getfixturevalue("pg_dsn") if kind == "postgres" else f"duckdb:{tmp_path}/w.duckdb"
    first, env = run(tmp_path, target, api, orders_csv, NO_FALLBACK, GIVE_UP_FAST)
    assert first.ok, first.error
    before = rows(env, "analytics.user_orders")
    api.set_faults({"outage": True})
    summary, env = run(tmp_path, target, api, orders_csv, NO_FALLBACK, GIVE_UP_FAST)
    assert summary.state == "FAIL" and not summary.degraded
    fails = [e for e in events_of(env, summary) if e["eventType"] == "FAIL"]
    assert [e["job"]["name"] for e in fails] == ["users_orders.extract_users", "users_orders"]
    for event in fails:
        message = event["run"]["facets"]["errorMessage"]["message"]
        assert urlsplit(api.url).netloc in message and "503" in message, message
    assert rows(env, "analytics.user_orders") == before
    assert not env.target.table_exists("analytics.user_orders__new")


def test_a_malformed_page_fails_the_extract_and_the_run_goes_on_from_the_last_snapshot(
    tmp_path: Path, orders_csv: Path
) -> None:
    """A page that stays unreadable means the users are incomplete: the extract fails (the page
    is named), and the run builds from the last good snapshot, marked degraded."""
    target = f"duckdb:{tmp_path}/w.duckdb"
    with MockApiServer(n_users=N_USERS, token=TOKEN) as api:
        assert run(tmp_path, target, api, orders_csv, GIVE_UP_FAST)[0].ok
        api.set_faults({"malformed_pages": [2]})
        summary, env = run(tmp_path, target, api, orders_csv, GIVE_UP_FAST)
    assert summary.ok and summary.degraded, summary.error
    assert not [e for e in events_of(env, summary) if e["eventType"] == "FAIL"]
    extract = next(e for e in events_of(env, summary) if e["eventType"] == "COMPLETE"
                   and e["job"]["name"] == "users_orders.extract_users")
    reason = extract["run"]["facets"][DEGRADED_FACET]["reason"]
    assert "using the snapshot of" in reason and "page 2" in reason, reason
    assert count(env, "SELECT count(*) FROM staging.users") == N_USERS
    assert count(env, "SELECT count(*) FROM analytics.user_orders") == N_USERS
    degraded = events_of(env, summary)[-1]["run"]["facets"][DEGRADED_FACET]
    assert degraded["source"] == "extract_users"
    validate_own_facet(degraded, "DegradedRunFacet")


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_an_out_of_range_value_costs_its_row_not_the_load(
    kind: str, tmp_path: Path, api: MockApiServer, request: pytest.FixtureRequest,
) -> None:
    """An amount too big for DECIMAL(14,2) (and an id too big for BIGINT) would fail the whole
    load; validation knows the declared types, so those rows are dead-lettered with their line
    numbers and the others load."""
    orders = tmp_path / "orders.csv"
    generate_orders(orders, 500, N_USERS, seed=5)
    lines = orders.read_text(encoding="utf-8").splitlines()
    lines[7] = "100007,3,2024-03-01T10:00:00Z,12345678901234.50,USD,paid"  # line 8 of the file
    lines[20] = "100020,99999999999999999999,2024-03-01T10:00:00Z,10.00,USD,paid"  # line 21
    lines[30] = "100030,4,2024-03-01T10:00:00Z,123456789012.34,USD,paid"  # line 31: 12 digits fit
    orders.write_text("\n".join(lines) + "\n", encoding="utf-8")
    target = request.getfixturevalue("pg_dsn") if kind == "postgres" else f"duckdb:{tmp_path}/w.duckdb"
    summary, env = run(tmp_path, target, api, orders)
    assert summary.ok, summary.error
    assert summary.counts["dead_letters"] == 2
    dead = {d["line"]: d for d in read_dead_letters(summary.dead_letter_file) if "line" in d}
    assert sorted(dead) == [8, 21]
    assert "amount" in dead[8]["reason"] and "12345678901234.50" in dead[8]["reason"] and dead[8]["raw"] == lines[7]
    assert "user_id" in dead[21]["reason"] and "99999999999999999999" in dead[21]["reason"]
    assert count(env, "SELECT count(*) FROM staging.orders") == 498
    assert env.target.query("SELECT amount FROM staging.orders WHERE order_id = 100030") == [(Decimal("123456789012.34"),)]
    assert count(env, "SELECT count(*) FROM staging.orders WHERE order_id IN (100007, 100020)") == 0
    assert env.target.table_exists("analytics.user_orders")


def test_use_last_snapshot_builds_from_it_and_marks_the_run_degraded(
    tmp_path: Path, api: MockApiServer, orders_csv: Path
) -> None:
    target = f"duckdb:{tmp_path}/w.duckdb"
    assert run(tmp_path, target, api, orders_csv, GIVE_UP_FAST)[0].ok
    api.set_faults({"outage": True})
    summary, env = run(tmp_path, target, api, orders_csv, GIVE_UP_FAST)
    assert summary.state == "COMPLETE" and summary.degraded
    assert count(env, "SELECT count(*) FROM analytics.user_orders") == N_USERS
    events = events_of(env, summary)
    assert not [e for e in events if e["eventType"] == "FAIL"]  # the step completed, from the snapshot
    extract = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "users_orders.extract_users")
    assert "503" in extract["run"]["facets"][DEGRADED_FACET]["reason"]
    final = events[-1]
    assert (final["eventType"], final["job"]["name"]) == ("COMPLETE", "users_orders")
    degraded = final["run"]["facets"][DEGRADED_FACET]
    assert degraded["source"] == "extract_users" and 0 <= degraded["snapshotAgeSeconds"] < degraded["maxStalenessSeconds"]
    validate_own_facet(degraded, "DegradedRunFacet")

    stale, env = run(tmp_path, target, api, orders_csv, GIVE_UP_FAST, ("max_staleness: 24h", "max_staleness: 0s"))
    assert stale.state == "FAIL" and "(max_staleness 0s)" in (stale.error or ""), stale.error
    assert re.search(r"is \d+(\.\d+)?s old", stale.error or ""), stale.error  # seconds, never "0m"


def test_lineage_target_down_spools_every_event_and_the_pipeline_succeeds(
    tmp_path: Path, api: MockApiServer, orders_csv: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    summary, env = run(tmp_path, f"duckdb:{tmp_path}/w.duckdb", api, orders_csv, lineage=f"http:http://127.0.0.1:{closed}")
    assert summary.ok and summary.events_emitted == 8  # the pipeline and its 3 steps, START and COMPLETE
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
    tmp_path: Path, api: MockApiServer, orders_csv: Path, secret_dsn: tuple[str, str]
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
    summary, env = run(tmp_path / "state", dsn, api, orders_csv, NO_FALLBACK, GIVE_UP_FAST, lineage=f"file:{events_file}")
    assert summary.state == "FAIL"
    written = events_file.read_text()
    assert written.count('"eventType"') == 8 + 4
    for secret in (password, TOKEN):
        assert secret not in written
        assert secret not in result.output
        assert secret not in json.dumps(env.events.events)


def test_the_sql_is_written_once_and_transpiled_per_warehouse() -> None:
    text = SQL_MODEL.read_text(encoding="utf-8")
    for dialect in ("duckdb", "postgres", "bigquery"):
        (written,) = sqlglot.transpile(text, read="duckdb", write=dialect)
        parsed = sqlglot.parse_one(written, read=dialect)
        assert isinstance(parsed, sqlglot.exp.Create) and "analytics.user_orders" in written
        assert "staging.orders" in written
    assert "NUMERIC" in sqlglot.transpile(text, read="duckdb", write="bigquery")[0]


def test_cli_default_run_starts_the_mock_api_and_uses_the_sample_orders(tmp_path: Path) -> None:
    _register()
    args = ["run", "users-orders", "--target", f"duckdb:{tmp_path}/w.duckdb", "--lineage", "embedded", "--format", "json"]
    for _ in range(2):  # the mock API listens on a new port each run
        result = CliRunner(env={"LINEAGE_AUDIT_HOME": str(tmp_path)}).invoke(cli, args)
        assert result.exit_code == 0, result.output
        (report,) = json.loads(result.output)["runs"]
        assert report["state"] == "COMPLETE" and report["counts"]["rows_loaded"] == 1000
    assert (tmp_path / "lineage.db").is_file()

    # The users are one dataset across runs, named without the mock's ephemeral port.
    with EmbeddedStore(tmp_path / "lineage.db") as store:
        extracts = [e for e in store.events() if e["job"]["name"] == "users_orders.extract_users"]
    assert len(extracts) == 4
    assert {(i["namespace"], i["name"]) for e in extracts for i in e["inputs"]} == {("http://mock-users-api", "users")}
    assert USERS_TOKEN_ENV not in str(report)


def test_the_users_dataset_namespace_is_a_param(tmp_path: Path, api: MockApiServer, orders_csv: Path) -> None:
    summary, env = run(tmp_path, f"duckdb:{tmp_path}/w.duckdb", api, orders_csv,
                       params={"users_namespace": "https://users.example.com"})
    assert summary.ok, summary.error
    (source,) = next(e for e in events_of(env, summary) if e["eventType"] == "COMPLETE"
                     and e["job"]["name"] == "users_orders.extract_users")["inputs"]
    assert (source["namespace"], source["name"]) == ("https://users.example.com", "users")
