"""What measuring a step's cost costs: the same statement with the warehouse meter on and off.

Every step the local runner runs is measured (``pipelines/dsl/cost.py``): DuckDB with its
profiling on for the step's connections, PostgreSQL with each writing statement under
``EXPLAIN (ANALYZE, BUFFERS, TIMING OFF)``. This runs one ``CREATE TABLE ... AS`` (an
aggregate over a table of ``--rows`` rows, swapped in like a SQL step's) alternately with and
without the meter, and prints the medians and their ratio per warehouse.

    python bench/cost_meter.py                  # 1,000,000 rows, 9 runs each (PostgreSQL by scripts/postgres.sh)
    python bench/cost_meter.py --rows 200000 --repeat 5 --no-postgres
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from pipelines.runtime.targets import DuckDBTarget, PostgresTarget, Target  # noqa: E402
from pipelines.runtime.warehouse_cost import meter_for  # noqa: E402

AGGREGATE = "SELECT kind, COUNT(*) AS events, SUM(amount) AS amount, COUNT(DISTINCT user_id) AS users FROM raw.events GROUP BY kind"


def timed(target: Target, metered: bool) -> tuple[float, int]:
    """Seconds of one swapped-in CREATE TABLE ... AS, and the rows the meter saw scanned."""
    meter = meter_for(target.dialect) if metered else None
    target.meter = meter
    began = time.perf_counter()
    try:
        target.replace_from_sql("mart.totals", AGGREGATE)
    finally:
        target.meter = None
    return time.perf_counter() - began, meter.usage.rows_scanned if meter else 0


def compare(name: str, target: Target, repeat: int) -> None:
    timed(target, False)  # warm the cache: both sides read a warm table
    plain, metered, scanned = [], [], 0
    for _ in range(repeat):
        plain.append(timed(target, False)[0])
        seconds, scanned = timed(target, True)
        metered.append(seconds)
    off, on = statistics.median(plain), statistics.median(metered)
    print(f"{name:<11} meter off {off * 1000:8.1f} ms   on {on * 1000:8.1f} ms   ratio {on / off:5.2f}x   "
          f"(rows scanned as measured: {scanned:,})")


def duckdb_target(rows: int, folder: Path) -> DuckDBTarget:
    target = DuckDBTarget(folder / "bench.duckdb")
    with target.connect() as conn:
        conn.execute("CREATE SCHEMA raw")
        conn.execute(f"CREATE TABLE raw.events AS SELECT range AS id, ['view','click','buy'][range % 3 + 1] AS kind, "
                     f"(range % 97)::DOUBLE AS amount, range % 5000 AS user_id FROM range({rows})")
    return target


def postgres_target(rows: int) -> tuple[PostgresTarget, str, str]:
    admin = os.environ.get("LINEAGE_AUDIT_PG_DSN")
    if not admin:
        done = subprocess.run([str(REPO / "scripts" / "postgres.sh"), "start"], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"PostgreSQL did not start: {done.stderr.strip()}")
        admin = done.stdout.strip().splitlines()[-1]
    name = f"bench_cost_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin)
    dsn = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA raw")
        conn.execute("CREATE TABLE raw.events AS SELECT g AS id, (ARRAY['view','click','buy'])[g % 3 + 1] AS kind, "
                     f"(g % 97)::numeric(10,2) AS amount, g % 5000 AS user_id FROM generate_series(1, {rows}) g")
        conn.execute("VACUUM ANALYZE raw.events")
    return PostgresTarget(dsn), admin, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(f"one CREATE TABLE ... AS (aggregate of {args.rows:,} rows), swapped in; medians of {args.repeat} runs each")
    with tempfile.TemporaryDirectory() as folder:
        compare("duckdb", duckdb_target(args.rows, Path(folder)), args.repeat)
    if not args.no_postgres:
        target, admin, name = postgres_target(args.rows)
        try:
            compare("postgresql", target, args.repeat)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
