"""The loaders, against real PostgreSQL and DuckDB: upsert semantics and the atomic swap."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from lineage_auditor.errors import LineageAuditError
from pipelines.runtime.targets import Column, DuckDBTarget, PostgresTarget, Table, Target, TargetError, parse_target

READINGS = Table(
    "t.readings",
    (Column("place", "text", False), Column("ts", "timestamptz", False), Column("value", "double"),
     Column("note", "text"), Column("run_id", "text")),
    key=("place", "ts"),
    stamps=("run_id",),
)
T0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
T1 = datetime(2024, 6, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(params=["duckdb", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "duckdb":
        yield DuckDBTarget(tmp_path / "w.duckdb")
        return
    dsn = request.getfixturevalue("pg_dsn")
    t = PostgresTarget(dsn)
    with t.connect() as conn:  # the database is shared by the module: start each test clean
        conn.execute("DROP SCHEMA IF EXISTS t CASCADE")
    yield t


def rows_of(target: Target, table: str) -> list[tuple]:
    return sorted(target.query(f"SELECT * FROM {table}"), key=repr)


def test_upsert_is_idempotent_and_only_rewrites_changed_rows(target: Target) -> None:
    first = target.upsert(READINGS, [("a", T0, 1.0, "x", "run1"), ("a", T1, 2.0, None, "run1"), ("b", T0, None, "'quoted, \"text\"\n'", "run1")])
    assert (first.rows, first.written, first.total) == (3, 3, 3)
    before = rows_of(target, READINGS.name)
    again = target.upsert(READINGS, [("a", T0, 1.0, "x", "run2"), ("a", T1, 2.0, None, "run2"), ("b", T0, None, "'quoted, \"text\"\n'", "run2")])
    assert (again.rows, again.written, again.total) == (3, 0, 3)
    assert rows_of(target, READINGS.name) == before  # stamps of unchanged rows stay those of run1
    changed = target.upsert(READINGS, [("a", T0, 1.5, "x", "run3"), ("c", T0, 0.0, None, "run3")])
    assert (changed.written, changed.total) == (2, 4)
    assert target.query("SELECT value, run_id FROM t.readings WHERE place = 'a' AND ts = %s" if target.dialect == "postgres"
                        else "SELECT value, run_id FROM t.readings WHERE place = 'a' AND ts = ?", (T0,)) == [(1.5, "run3")]
    assert target.query("SELECT note FROM t.readings WHERE place = 'b'") == [("'quoted, \"text\"\n'",)]


def test_a_batch_with_the_same_key_twice_keeps_the_last_row(target: Target) -> None:
    result = target.upsert(READINGS, [("a", T0, 1.0, None, "r"), ("a", T0, 9.0, None, "r")])
    assert (result.rows, result.total) == (1, 1)
    assert target.query("SELECT value FROM t.readings") == [(9.0,)]


def test_replace_swaps_in_the_new_table(target: Target) -> None:
    target.replace(READINGS, [("a", T0, 1.0, None, "r1")])
    result = target.replace(READINGS, pd.DataFrame({"place": ["x", "y"], "ts": [T0, T1], "value": [1.0, None],
                                                    "note": ["n", None], "run_id": ["r2", "r2"]}))
    assert (result.rows, result.total) == (2, 2)
    assert [r[0] for r in rows_of(target, READINGS.name)] == ["x", "y"]
    assert target.columns("t.readings")[0][0] == "place"
    assert not target.table_exists("t.readings__new")


def test_a_failing_build_leaves_the_previous_table_intact(target: Target) -> None:
    target.replace_from_sql("t.built", "SELECT 1 AS id, 'old' AS label")
    before = rows_of(target, "t.built")
    with pytest.raises(TargetError):
        target.replace_from_sql("t.built", "SELECT 1 / 0 AS id, 'new' AS label FROM t.no_such_table")
    assert rows_of(target, "t.built") == before
    assert not target.table_exists("t.built__new")
    result = target.replace_from_sql("t.built", "SELECT 2 AS id, 'new' AS label UNION ALL SELECT 3, 'new'")
    assert result.rows == 2 and [r[0] for r in rows_of(target, "t.built")] == [2, 3]


def test_parse_target_and_password_free_description(tmp_path: Path) -> None:
    pg = parse_target("postgresql://ana:pa55word@db.example:6543/wh", default_path=tmp_path / "x.duckdb")
    assert isinstance(pg, PostgresTarget)
    assert pg.describe() == "postgresql://ana@db.example:6543/wh" and pg.secrets() == ["pa55word"]
    assert pg.dataset("analytics.user_orders").namespace == "postgres://db.example:6543"
    assert pg.dataset("analytics.user_orders").name == "wh.analytics.user_orders"
    duck = parse_target(f"duckdb:{tmp_path}/w.duckdb", default_path=tmp_path / "x.duckdb")
    assert duck.dataset("weather.hourly").namespace == f"duckdb://{tmp_path}/w.duckdb"
    assert duck.dataset("weather.hourly").name == "w.weather.hourly"
    assert isinstance(parse_target(None, default_path=tmp_path / "x.duckdb"), DuckDBTarget)
    with pytest.raises(LineageAuditError, match="unknown target 'h:1/db'"):
        parse_target("mysql://u:secret@h:1/db", default_path=tmp_path / "x.duckdb")


def test_unreachable_postgres_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = PostgresTarget(f"postgresql://ana:pa55word@127.0.0.1:{port}/wh", connect_timeout=2)
    with pytest.raises(TargetError) as caught:
        target.upsert(READINGS, [])
    assert "cannot connect to postgresql://ana@127.0.0.1" in str(caught.value)
    assert "pa55word" not in str(caught.value)


TRICKY = Table(
    "t.tricky",
    (Column("id", "bigint", False), Column("label", "text"), Column("amount", "double"), Column("flag", "boolean"),
     Column("ts", "timestamptz")),
    key=("id",),
)
TRICKY_ROWS = [
    (1, "a,b", 0.1, True, T0),
    (2, 'say "hi"', None, False, None),
    (3, "line\nbreak", 1e-7, None, T1),
    (4, "\\N", -2.5, True, T0),
    (5, None, 123456789.125, False, T1),
    (6, "", float("inf"), True, T0),
]


@pytest.mark.parametrize("as_frame", [False, True])
def test_values_that_need_quoting_survive_both_load_paths(target: Target, as_frame: bool) -> None:
    data = pd.DataFrame(TRICKY_ROWS, columns=TRICKY.column_names).astype({"flag": "boolean"}) if as_frame else TRICKY_ROWS
    target.replace(TRICKY, data)
    assert sorted(target.query("SELECT id, label, amount, flag, ts FROM t.tricky")) == TRICKY_ROWS
    target.upsert(TRICKY.renamed("t.tricky_merged"), data)
    assert sorted(target.query("SELECT id, label, amount, flag, ts FROM t.tricky_merged")) == TRICKY_ROWS
