"""Statements users write that the engine once crashed on or lost: each gets its full lineage,
and a statement that cannot be analysed is one error with its line, never the whole file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from lineage_auditor.sql import analyze_sql
from sqlhelpers import analyze, dataset_of, fields_of, lineage, output

SHOP = {
    "orders": {"id": "INT", "total": "DECIMAL", "status": "TEXT"},
    "staged": {"order_id": "INT", "amount": "DECIMAL", "state": "TEXT"},
    "a": {"id": "INT", "x": "INT"},
    "b": {"id": "INT", "y": "INT"},
}


# -- T-SQL: UPDATE through a FROM alias ---------------------------------------------------
@pytest.mark.parametrize(
    "sql, fields, dataset",
    [
        ("UPDATE o SET o.total = s.amount FROM orders o JOIN staged s ON o.id = s.order_id",
         {"total": {"staged.amount:DIRECT/IDENTITY"}},
         {"orders.id:INDIRECT/JOIN", "staged.order_id:INDIRECT/JOIN"}),
        ("UPDATE o SET total = o.total + s.amount, status = UPPER(s.state) "
         "FROM orders AS o INNER JOIN staged AS s ON s.order_id = o.id WHERE s.state <> 'void'",
         {"total": {"orders.total:DIRECT/TRANSFORMATION", "staged.amount:DIRECT/TRANSFORMATION"},
          "status": {"staged.state:DIRECT/TRANSFORMATION"}},
         {"orders.id:INDIRECT/JOIN", "staged.order_id:INDIRECT/JOIN", "staged.state:INDIRECT/FILTER"}),
        ("UPDATE orders SET status = s.state FROM orders JOIN staged s ON orders.id = s.order_id",
         {"status": {"staged.state:DIRECT/IDENTITY"}},
         {"orders.id:INDIRECT/JOIN", "staged.order_id:INDIRECT/JOIN"}),
    ],
)
def test_tsql_update_through_alias_writes_the_aliased_table(sql, fields, dataset):
    st = analyze(sql, schema=SHOP, dialect="tsql").statements[0]
    assert st.kind == "UPDATE"
    assert [d.name for d in st.inputs] == ["orders", "staged"]
    (out,) = st.outputs
    assert out.dataset.name == "orders"
    assert fields_of(out) == fields
    assert dataset_of(out) == dataset


def test_postgres_update_from_with_a_join_keeps_every_source():
    sql = ("UPDATE orders SET total = s.amount * r.rate FROM staged s JOIN rates r ON r.state = s.state "
           "WHERE s.order_id = orders.id")
    schema = {**SHOP, "rates": {"state": "TEXT", "rate": "DECIMAL"}}
    out = output(sql, schema=schema, dialect="postgres")
    assert fields_of(out) == {"total": {"staged.amount:DIRECT/TRANSFORMATION", "rates.rate:DIRECT/TRANSFORMATION"}}
    assert dataset_of(out) == {"rates.state:INDIRECT/JOIN", "staged.state:INDIRECT/JOIN",
                               "staged.order_id:INDIRECT/FILTER", "orders.id:INDIRECT/FILTER"}


# -- derived tables without aliases ---------------------------------------------------------
@pytest.mark.parametrize("dialect", [None, "postgres", "duckdb", "mysql"])
def test_unaliased_derived_tables_joined_with_using(dialect):
    sql = "SELECT * FROM (SELECT id, x FROM a) JOIN (SELECT id, y FROM b) USING (id)"
    out = output(sql, schema=SHOP, dialect=dialect)
    assert fields_of(out) == {
        "id": {"a.id:DIRECT/IDENTITY", "b.id:DIRECT/IDENTITY"},
        "x": {"a.x:DIRECT/IDENTITY"},
        "y": {"b.y:DIRECT/IDENTITY"},
    }
    assert dataset_of(out) == {"a.id:INDIRECT/JOIN", "b.id:INDIRECT/JOIN"}


def test_unaliased_derived_tables_named_columns_and_writes():
    sql = ("CREATE TABLE ab AS SELECT id, x + y AS s FROM (SELECT id, x FROM a) "
           "INNER JOIN (SELECT id, y FROM b WHERE y > 0) USING (id)")
    out = output(sql, schema=SHOP, dialect="postgres")
    assert out.dataset.name == "ab"
    assert fields_of(out) == {"id": {"a.id:DIRECT/IDENTITY", "b.id:DIRECT/IDENTITY"},
                              "s": {"a.x:DIRECT/TRANSFORMATION", "b.y:DIRECT/TRANSFORMATION"}}
    assert dataset_of(out) == {"a.id:INDIRECT/JOIN", "b.id:INDIRECT/JOIN", "b.y:INDIRECT/FILTER"}


def test_star_over_join_using_has_the_using_column_once():
    got = lineage("SELECT * FROM a JOIN b USING (id)", schema=SHOP)
    assert got == {"id": {"a.id:DIRECT/IDENTITY", "b.id:DIRECT/IDENTITY"},
                   "x": {"a.x:DIRECT/IDENTITY"}, "y": {"b.y:DIRECT/IDENTITY"}}


# -- a genuinely duplicated alias: one error, the rest of the file keeps its lineage -----------
DUPLICATES = """CREATE TABLE first AS SELECT id FROM a;
SELECT x.a
FROM t AS x, u AS x;
UPDATE t SET a = u.b FROM u, u;
CREATE TABLE last AS SELECT y FROM b;
"""


def test_duplicate_alias_is_an_error_of_that_statement_only():
    result = analyze_sql(DUPLICATES, file="etl.sql", schema=SHOP, dialect="postgres")
    assert [(e.file, e.line, e.column) for e in result.errors] == [("etl.sql", 3, 14), ("etl.sql", 4, 30)]
    assert all("used twice" in e.message for e in result.errors)
    assert "'x'" in result.errors[0].message and "'u'" in result.errors[1].message
    assert [o.dataset.name for st in result.statements for o in st.outputs] == ["first", "last"]
    assert fields_of(result.statements[1].outputs[0]) == {"y": {"b.y:DIRECT/IDENTITY"}}


def test_duplicate_alias_on_the_command_line_exits_2_without_traceback(tmp_path):
    _register()
    path = tmp_path / "etl.sql"
    path.write_text(DUPLICATES)
    res = CliRunner().invoke(cli, ["sql", str(path), "--format", "json", "-d", "tsql"], catch_exceptions=False)
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    doc = json.loads(res.stdout)
    assert [o["name"] for s in doc["statements"] for o in s["outputs"]] == ["first", "last"]
    assert [e["line"] for e in doc["errors"]] == [3, 4]
    assert f"{path}:3:14: table alias 'x' is used twice" in res.stderr


# -- lineage that was lost -------------------------------------------------------------------
SRC = {"s": {"c1": "INT", "c2": "TEXT", "c3": "INT", "c4": "TEXT", "k": "INT"},
       "t": {"a": "INT", "b": "TEXT", "id": "INT"}}


@pytest.mark.parametrize("dialect", [None, "postgres", "tsql", "mysql", "snowflake"])
@pytest.mark.parametrize(
    "sql, expected",
    [
        ("INSERT INTO t (a, b) (SELECT c1, c2 FROM s)",
         {"a": {"s.c1:DIRECT/IDENTITY"}, "b": {"s.c2:DIRECT/IDENTITY"}}),
        ("INSERT INTO t (b, a) (SELECT UPPER(c2), c1 + c3 FROM s WHERE k > 0)",
         {"b": {"s.c2:DIRECT/TRANSFORMATION"}, "a": {"s.c1:DIRECT/TRANSFORMATION", "s.c3:DIRECT/TRANSFORMATION"}}),
        ("INSERT INTO t (a, b) ((SELECT c1, c2 FROM s) UNION ALL (SELECT c3, c4 FROM s))",
         {"a": {"s.c1:DIRECT/IDENTITY", "s.c3:DIRECT/IDENTITY"}, "b": {"s.c2:DIRECT/IDENTITY", "s.c4:DIRECT/IDENTITY"}}),
    ],
)
def test_insert_with_a_parenthesised_query_after_the_column_list(dialect, sql, expected):
    result = analyze(sql, schema=SRC, dialect=dialect)
    (st,) = result.statements
    assert st.kind == "INSERT" and [d.name.lower() for d in st.inputs] == ["s"]
    got = {k.lower(): {label.lower() for label in v} for k, v in fields_of(st.outputs[0]).items()}
    assert got == {k: {label.lower() for label in v} for k, v in expected.items()}
    assert not result.warnings


CTE_SRC = {"src": {"id": "INT", "v": "TEXT", "ok": "BOOLEAN"}, "t": {"id": "INT", "v": "TEXT"}}


@pytest.mark.parametrize(
    "dialect, sql",
    [
        ("postgres", "WITH x AS (SELECT id, v FROM src WHERE ok) UPDATE t SET v = x.v FROM x WHERE x.id = t.id"),
        ("tsql", "WITH x AS (SELECT id, v FROM src WHERE ok = 1) UPDATE t SET t.v = x.v FROM t JOIN x ON x.id = t.id"),
        ("sqlite", "WITH x AS (SELECT id, v FROM src WHERE ok) UPDATE t SET v = x.v FROM x WHERE x.id = t.id"),
    ],
)
def test_with_then_update_from_traces_through_the_cte(dialect, sql):
    st = analyze(sql, schema=CTE_SRC, dialect=dialect).statements[0]
    assert st.kind == "UPDATE"
    assert sorted(d.name for d in st.inputs) == ["src", "t"]
    out = st.outputs[0]
    assert out.dataset.name == "t"
    assert fields_of(out) == {"v": {"src.v:DIRECT/IDENTITY"}}
    kind = "JOIN" if dialect == "tsql" else "FILTER"
    assert dataset_of(out) == {"src.ok:INDIRECT/FILTER", f"src.id:INDIRECT/{kind}", f"t.id:INDIRECT/{kind}"}


def test_with_then_update_with_several_ctes_and_a_second_statement():
    sql = ("WITH a1 AS (SELECT id, v FROM src), a2 AS (SELECT id, UPPER(v) AS v FROM a1) "
           "UPDATE t SET v = a2.v FROM a2 WHERE a2.id = t.id;\n"
           "CREATE TABLE t2 AS SELECT v FROM t")
    result = analyze(sql, schema=CTE_SRC, dialect="postgres")
    assert fields_of(result.statements[0].outputs[0]) == {"v": {"src.v:DIRECT/TRANSFORMATION"}}
    (t2,) = [o for o in result.end_to_end if o.dataset.name == "t2"]
    assert fields_of(t2) == {"v": {"src.v:DIRECT/TRANSFORMATION"}}


# -- without a schema: useful, never silent ------------------------------------------------------
def test_star_over_a_join_without_schema_keeps_dataset_inputs_and_warns():
    sql = ("INSERT INTO t SELECT * FROM a JOIN b ON a.k = b.k;\n"
           "CREATE TABLE t2 AS SELECT * FROM t WHERE t.flag;\n"
           "CREATE TABLE t3 AS SELECT t2.x, t2.y + 1 AS y1 FROM t2")
    result = analyze(sql)
    assert any("cannot expand *: no schema for a, b" in w.message for w in result.warnings)
    first, second, third = result.statements
    assert [d.name for d in first.inputs] == ["a", "b"]
    assert dataset_of(first.outputs[0]) == {"a.k:INDIRECT/JOIN", "b.k:INDIRECT/JOIN"}
    assert [d.name for d in second.inputs] == ["t"]
    # columns of t stay open (not "no columns"): t3 still names t2.x and t2.y, traced to tables
    # the script did not create, with their table unknown because * read both a and b
    e2e = {o.dataset.name: o for o in result.end_to_end}
    assert fields_of(third.outputs[0]) == {"x": {"t2.x:DIRECT/IDENTITY"}, "y1": {"t2.y:DIRECT/TRANSFORMATION"}}
    assert fields_of(e2e["t3"]) == {"x": {".x:DIRECT/IDENTITY"}, "y1": {".y:DIRECT/TRANSFORMATION"}}
    assert dataset_of(e2e["t3"]) == {"a.k:INDIRECT/JOIN", "b.k:INDIRECT/JOIN", ".flag:INDIRECT/FILTER"}
    assert not any("not found" in w.message for w in result.warnings)


def test_star_over_one_table_without_schema_traces_named_columns_end_to_end():
    sql = "CREATE TABLE s AS SELECT * FROM raw_events;\nCREATE TABLE m AS SELECT user_id, COUNT(*) AS n FROM s GROUP BY user_id"
    result = analyze(sql, dialect="duckdb")
    (m,) = [o for o in result.end_to_end if o.dataset.name == "m"]
    assert fields_of(m) == {"user_id": {"raw_events.user_id:DIRECT/IDENTITY"}, "n": set()}
    assert dataset_of(m) == {"raw_events.user_id:INDIRECT/GROUP_BY"}


@pytest.mark.parametrize("dialect", [None, "postgres", "snowflake"])
def test_unqualified_join_columns_without_schema_are_inputs_with_table_unknown(dialect):
    sql = "SELECT k, a.v, SUM(amount) AS total FROM a JOIN b ON a.id = b_id GROUP BY k, a.v"
    result = analyze(sql, dialect=dialect)
    got = {name.lower(): {label.lower() for label in labels}
           for name, labels in fields_of(result.statements[0].outputs[0]).items()}
    assert got == {"k": {".k:direct/identity"}, "v": {"a.v:direct/identity"}, "total": {".amount:direct/aggregation"}}
    assert {label.lower() for label in dataset_of(result.statements[0].outputs[0])} == {
        "a.id:indirect/join", ".b_id:indirect/join", ".k:indirect/group_by", "a.v:indirect/group_by"}
    warned = {w.message.split("'")[1].lower() for w in result.warnings if "recorded with its table unknown" in w.message}
    assert warned == {"k", "amount", "b_id"}


def test_unknown_table_columns_do_not_become_graph_nodes_but_tables_stay_upstream():
    from lineage_auditor.graph import LineageGraph
    from lineage_auditor.model import ColumnRef, DatasetRef

    result = analyze("CREATE TABLE r AS SELECT k, a.v FROM a JOIN b ON a.id = b.id")
    graph = LineageGraph.from_sql_result(result)
    r = DatasetRef("default", "r")
    assert {d.name for d in graph.datasets()} == {"a", "b", "r"}
    assert {d.name for d in graph.upstream(r)} == {"a", "b"}
    assert graph.column_upstream(ColumnRef(r, "k"), direct_only=True) == []
    assert graph.column_upstream(ColumnRef(r, "v"), direct_only=True) == [ColumnRef(DatasetRef("default", "a"), "v")]


# -- long scripts: one tree at a time, collector state restored -------------------------------
def test_long_script_keeps_only_a_few_parsed_trees_alive_and_restores_the_collector():
    import gc

    import sqlglot.expressions as E

    sql = "".join(f"CREATE TABLE t{i} AS SELECT id, x + {i} AS y FROM a WHERE x > {i};\n" for i in range(400))
    gc.collect()
    before = sum(1 for o in gc.get_objects() if isinstance(o, E.Select))
    assert gc.isenabled()
    result = analyze_sql(sql, schema=SHOP)
    assert gc.isenabled()
    alive = sum(1 for o in gc.get_objects() if isinstance(o, E.Select)) - before
    assert len(result.statements) == 400 and not result.errors
    assert alive <= 30, f"{alive} parsed SELECTs still alive after the run"
    assert fields_of(result.statements[399].outputs[0]) == {"id": {"a.id:DIRECT/IDENTITY"},
                                                            "y": {"a.x:DIRECT/TRANSFORMATION"}}


def test_a_write_sqlglot_reads_only_as_a_command_is_a_warning_not_silence(capfd):
    sql = ("CREATE TABLE t AS SELECT a FROM s;\nGRANT SELECT ON t TO bob;\n"
           "CREATE TABLE t2 (a INT) WITH SYSTEM VERSIONING FOO BAR;\nCREATE TABLE t3 AS SELECT a FROM t;\n")
    result = analyze_sql(sql, dialect="postgres", file="etl.sql")
    assert [str(w) for w in result.warnings] == [
        "etl.sql:3:1: statement not analysed: its syntax is not supported in this dialect (read only as a command)"]
    assert [o.dataset.name for st in result.statements for o in st.outputs] == ["t", "t3"]
    assert "Falling back" not in capfd.readouterr().err
