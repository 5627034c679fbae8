"""Loading order rows into PostgreSQL: our loader against ``pandas.DataFrame.to_sql``.

Both start from the same typed DataFrame in memory (the orders CSV as the pipeline reads
it) and write into the same fresh database, in the same run:

- ``replace``: what users-orders does for ``staging.orders`` (COPY into a new table, primary
  key built once at the end, swapped in within one transaction);
- ``upsert``: the idempotent path the weather pipeline uses (COPY into a temporary staging
  table, then ``INSERT … ON CONFLICT DO UPDATE`` in the same transaction);
- ``to_sql``: pandas with SQLAlchemy + psycopg2, default method (one INSERT per row batch).

Prints rows/s for each and our speed-up over ``to_sql`` (target: at least 10x).

    python bench/load.py                       # 1,000,000 rows for every loader
    python bench/load.py --rows 200000 --to-sql-rows 50000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402
import psycopg  # noqa: E402

from pipelines.runtime.targets import Column, PostgresTarget, Table  # noqa: E402
from pipelines.sources.dead_letter import DeadLetterWriter  # noqa: E402
from pipelines.sources.orders_csv import generate_orders, read_orders  # noqa: E402

#: staging.orders as the users-orders spec declares it (pipelines/specs/users_orders.yml), keyed for upserts.
ORDERS_TABLE = Table("staging.orders", (
    Column("order_id", "bigint", False), Column("user_id", "bigint", False), Column("order_ts", "timestamptz"),
    Column("amount", "numeric", True), Column("currency", "text"), Column("status", "text"),
), key=("order_id",))


def admin_dsn() -> str:
    dsn = os.environ.get("LINEAGE_AUDIT_PG_DSN")
    if dsn:
        return dsn
    done = subprocess.run([str(REPO / "scripts" / "postgres.sh"), "start"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"PostgreSQL did not start: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def with_database(dsn: str, database: str, scheme: str | None = None) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((scheme or parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def orders_frame(rows: int, folder: Path) -> pd.DataFrame:
    csv_path = folder / "orders.csv"
    generate_orders(csv_path, rows, n_users=max(1000, rows // 20), seed=1)
    with DeadLetterWriter(folder / "dead.jsonl") as dead:
        frame, stats = read_orders(csv_path, dead, target=ORDERS_TABLE)
    assert stats.rows_rejected == 0
    return frame


def timed(label: str, rows: int, work) -> float:
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    print(f"  {label:<34} {rows:>10,} rows  {seconds:8.2f} s  {rows / seconds:>12,.0f} rows/s", flush=True)
    return rows / seconds


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for our loaders (default 1,000,000)")
    parser.add_argument("--to-sql-rows", type=int, default=None, help="rows for to_sql (default: --rows)")
    parser.add_argument("--skip-upsert", action="store_true", help="measure only replace and to_sql")
    args = parser.parse_args()
    to_sql_rows = args.to_sql_rows or args.rows

    admin = admin_dsn()
    database = f"bench_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
        server = conn.execute("SHOW server_version").fetchone()[0]
    dsn = with_database(admin, database)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"generating and reading {max(args.rows, to_sql_rows):,} orders ...", flush=True)
            frame = orders_frame(max(args.rows, to_sql_rows), Path(tmp))
        ours_frame = frame.iloc[: args.rows]
        print(f"PostgreSQL {server}, database {database}; columns: {', '.join(frame.columns)}")
        target = PostgresTarget(dsn)

        replace = timed("ours: replace (COPY + swap)", args.rows, lambda: target.replace(ORDERS_TABLE, ours_frame))
        assert count(dsn, ORDERS_TABLE.name) == args.rows
        upsert = None
        if not args.skip_upsert:
            merge = ORDERS_TABLE.renamed("staging.orders_upserted")
            upsert = timed("ours: upsert (COPY + ON CONFLICT)", args.rows, lambda: target.upsert(merge, ours_frame))
            assert count(dsn, merge.name) == args.rows

        from sqlalchemy import create_engine

        engine = create_engine(with_database(admin, database, scheme="postgresql+psycopg2"))
        sql_frame = frame.iloc[:to_sql_rows]
        peer = timed("pandas DataFrame.to_sql (default)", to_sql_rows,
                     lambda: sql_frame.to_sql("orders", engine, schema="public", if_exists="replace", index=False))
        engine.dispose()
        assert count(dsn, "public.orders") == to_sql_rows

        print()
        print(f"  replace vs to_sql: {replace / peer:5.1f}x faster (target >= 10x)")
        if upsert is not None:
            print(f"  upsert  vs to_sql: {upsert / peer:5.1f}x faster")
        if to_sql_rows != args.rows:
            print(f"  (to_sql loaded {to_sql_rows:,} rows, our loaders {args.rows:,}: compared per row)")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
