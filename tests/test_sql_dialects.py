"""Name resolution follows the dialect: identifier case, unaliased expression names and
lateral column aliases, each asserted as full lineage for the dialects where the rule differs."""

from __future__ import annotations

import pytest

from sqlhelpers import analyze, dataset_of, fields_of


def _one(sql: str, dialect: str, schema: dict | None = None):
    result = analyze(sql, dialect=dialect, schema=schema)
    assert not result.warnings, [str(w) for w in result.warnings]
    st = result.statements[-1]
    (out,) = st.outputs
    return st, out


# -- identifier case -------------------------------------------------------------------------
CASE = [
    # PostgreSQL: unquoted names fold to lower case, quoted ones keep theirs
    ("postgres", "WITH Daily AS (SELECT d, SUM(x) AS total FROM Events GROUP BY d) SELECT d, Total FROM daily", None,
     "_select_0", ["events"], {"d": {"events.d:DIRECT/IDENTITY"}, "total": {"events.x:DIRECT/AGGREGATION"}},
     {"events.d:INDIRECT/GROUP_BY"}),
    ("postgres", 'WITH "Daily" AS (SELECT d FROM events) SELECT d FROM daily', None,
     "_select_0", ["daily"], {"d": {"daily.d:DIRECT/IDENTITY"}}, set()),
    ("postgres", 'CREATE TABLE Mart.Rev AS SELECT "Amount" AS "Total", AMOUNT FROM "Orders" o', None,
     "mart.rev", ["Orders"], {"Total": {"Orders.Amount:DIRECT/IDENTITY"}, "amount": {"Orders.amount:DIRECT/IDENTITY"}},
     set()),
    # Snowflake: unquoted names fold to upper case (schema keys too), quoted ones keep theirs
    ("snowflake", "CREATE TABLE mart.daily AS WITH daily AS (SELECT d, x FROM raw.events) "
                  "SELECT d, SUM(X) AS total FROM DAILY GROUP BY d", {"raw.events": {"d": "DATE", "x": "INT"}},
     "MART.DAILY", ["RAW.EVENTS"], {"D": {"RAW.EVENTS.D:DIRECT/IDENTITY"}, "TOTAL": {"RAW.EVENTS.X:DIRECT/AGGREGATION"}},
     {"RAW.EVENTS.D:INDIRECT/GROUP_BY"}),
    ("snowflake", 'SELECT "id", ID FROM t', None,
     "_select_0", ["T"], {"id": {"T.id:DIRECT/IDENTITY"}, "ID": {"T.ID:DIRECT/IDENTITY"}}, set()),
    ("snowflake", 'WITH "daily" AS (SELECT x FROM t) SELECT u.Id AS UserId, d.x FROM Users u JOIN "daily" d ON d.x = u.id',
     {"users": {"id": "INT"}},
     "_select_0", ["USERS", "T"], {"USERID": {"USERS.ID:DIRECT/IDENTITY"}, "X": {"T.X:DIRECT/IDENTITY"}},
     {"USERS.ID:INDIRECT/JOIN", "T.X:INDIRECT/JOIN"}),
    # BigQuery: CTEs and columns are case-insensitive (even quoted); dataset-qualified tables are not
    ("bigquery", "WITH Daily AS (SELECT d FROM ds.events) SELECT D FROM daily", None,
     "_select_0", ["ds.events"], {"d": {"ds.events.d:DIRECT/IDENTITY"}}, set()),
    ("bigquery", "SELECT ID, Name AS n FROM MyDataset.MyTable", {"MyDataset.MyTable": {"id": "INT", "name": "STRING"}},
     "_select_0", ["MyDataset.MyTable"], {"id": {"MyDataset.MyTable.id:DIRECT/IDENTITY"},
                                          "n": {"MyDataset.MyTable.name:DIRECT/IDENTITY"}}, set()),
    ("bigquery", "SELECT `Amount` FROM ds.t WHERE AMOUNT > 0", None,
     "_select_0", ["ds.t"], {"amount": {"ds.t.amount:DIRECT/IDENTITY"}}, {"ds.t.amount:INDIRECT/FILTER"}),
    # T-SQL: case-insensitive, brackets included
    ("tsql", "SELECT [Amount] FROM dbo.Orders", {"dbo.orders": {"amount": "INT"}},
     "_select_0", ["dbo.orders"], {"amount": {"dbo.orders.amount:DIRECT/IDENTITY"}}, set()),
    ("tsql", "WITH Daily AS (SELECT D FROM events) SELECT * FROM DAILY", None,
     "_select_0", ["events"], {"d": {"events.d:DIRECT/IDENTITY"}}, set()),
    ("tsql", "SELECT o.[Total] AS T FROM [Sales].[Orders] AS O WHERE O.Status = 1", None,
     "_select_0", ["sales.orders"], {"t": {"sales.orders.total:DIRECT/IDENTITY"}}, {"sales.orders.status:INDIRECT/FILTER"}),
    # DuckDB and Trino: case-insensitive, quoted or not
    ("duckdb", 'WITH Daily AS (SELECT "D" FROM events) SELECT d FROM "DAILY"', None,
     "_select_0", ["events"], {"d": {"events.d:DIRECT/IDENTITY"}}, set()),
    ("trino", "SELECT O.Total FROM Hive.Sales.Orders O", None,
     "_select_0", ["hive.sales.orders"], {"total": {"hive.sales.orders.total:DIRECT/IDENTITY"}}, set()),
    ("trino", 'WITH Daily AS (SELECT d FROM events) SELECT "D" FROM daily', None,
     "_select_0", ["events"], {"d": {"events.d:DIRECT/IDENTITY"}}, set()),
    # MySQL: sqlglot treats identifiers as case-sensitive (table names are on Linux)
    ("mysql", "WITH Daily AS (SELECT d FROM events) SELECT d FROM daily", None,
     "_select_0", ["daily"], {"d": {"daily.d:DIRECT/IDENTITY"}}, set()),
    ("mysql", "SELECT Id FROM Users", None, "_select_0", ["Users"], {"Id": {"Users.Id:DIRECT/IDENTITY"}}, set()),
    ("mysql", "WITH Daily AS (SELECT d FROM events) SELECT d FROM Daily", None,
     "_select_0", ["events"], {"d": {"events.d:DIRECT/IDENTITY"}}, set()),
]


@pytest.mark.parametrize("dialect, sql, schema, target, inputs, fields, dataset", CASE)
def test_identifier_case_follows_the_dialect(dialect, sql, schema, target, inputs, fields, dataset):
    st, out = _one(sql, dialect, schema)
    assert out.dataset.name == target
    assert [d.name for d in st.inputs] == inputs
    assert fields_of(out) == fields
    assert dataset_of(out) == dataset


def test_snowflake_script_traces_end_to_end_whatever_case_each_statement_uses():
    sql = ("CREATE TEMPORARY TABLE Stage AS SELECT Id, Email FROM Raw.Users;\n"
           "CREATE TABLE mart.contacts AS SELECT ID, SHA2(EMAIL) AS email_hash FROM stage;\n")
    result = analyze(sql, dialect="snowflake", schema={"raw.users": {"id": "INT", "email": "TEXT"}})
    (contacts,) = result.end_to_end
    assert contacts.dataset.name == "MART.CONTACTS"
    assert fields_of(contacts) == {"ID": {"RAW.USERS.ID:DIRECT/IDENTITY"},
                                   "EMAIL_HASH": {"RAW.USERS.EMAIL:DIRECT/TRANSFORMATION+masked"}}
    assert [f.type for f in contacts.fields] == ["INT", None]


# -- names of unaliased expressions ---------------------------------------------------------------
UNNAMED_SQL = "SELECT a + b, UPPER(c), COUNT(*), CAST(a AS INT) FROM t"
UNNAMED_INPUTS = [{"t.a:direct/transformation", "t.b:direct/transformation"}, {"t.c:direct/transformation"}, set(),
                  {"t.a:direct/transformation"}]


@pytest.mark.parametrize(
    "dialect, names",
    [
        ("postgres", ["?column?", "upper", "count", "a"]),
        ("bigquery", ["f0_", "f1_", "f2_", "f3_"]),
        ("trino", ["_col0", "_col1", "_col2", "_col3"]),
        ("hive", ["_c0", "_c1", "_c2", "_c3"]),
        ("snowflake", ["A + B", "UPPER(C)", "COUNT(*)", "CAST(A AS INT)"]),
        ("duckdb", ["a + b", "UPPER(c)", "COUNT(*)", "CAST(a AS INT)"]),
        ("tsql", ["_col0", "_col1", "_col2", "_col3"]),
        (None, ["_col0", "_col1", "_col2", "_col3"]),
    ],
)
def test_unaliased_expressions_are_named_as_the_dialect_names_them(dialect, names):
    _, out = _one(UNNAMED_SQL, dialect)
    assert [f.name for f in out.fields] == names
    assert [{label.lower() for label in fields_of(out)[n]} for n in names] == UNNAMED_INPUTS


def test_bigquery_counts_only_unaliased_columns():
    _, out = _one("SELECT id, id + 1, name AS n, LOWER(name) FROM ds.t", "bigquery")
    assert [f.name for f in out.fields] == ["id", "f0_", "n", "f1_"]


# -- lateral column aliases ---------------------------------------------------------------------
LATERAL = ["snowflake", "duckdb", "redshift", "databricks", "spark", "teradata", None]
NOT_LATERAL = ["postgres", "trino", "tsql", "bigquery", "mysql", "ansi"]


def _lower(out) -> dict[str, set[str]]:
    return {name.lower(): {label.lower() for label in labels} for name, labels in fields_of(out).items()}


LATERAL_SQL = [
    ("SELECT CONCAT(a, b) AS p, CONCAT(p, c) AS q FROM t",
     {"p": {"t.a:direct/transformation", "t.b:direct/transformation"},
      "q": {"t.a:direct/transformation", "t.b:direct/transformation", "t.c:direct/transformation"}},
     {"p": {"t.a:direct/transformation", "t.b:direct/transformation"},
      "q": {"t.p:direct/transformation", "t.c:direct/transformation"}}),
    ("SELECT amount * 2 AS doubled, doubled AS again FROM orders",
     {"doubled": {"orders.amount:direct/transformation"}, "again": {"orders.amount:direct/transformation"}},
     {"doubled": {"orders.amount:direct/transformation"}, "again": {"orders.doubled:direct/identity"}}),
    ("SELECT UPPER(name) AS n, CASE WHEN n = 'X' THEN 1 ELSE 0 END AS is_x FROM users",
     {"n": {"users.name:direct/transformation"}, "is_x": {"users.name:indirect/conditional"}},
     {"n": {"users.name:direct/transformation"}, "is_x": {"users.n:indirect/conditional"}}),
]


@pytest.mark.parametrize("dialect", LATERAL + NOT_LATERAL)
@pytest.mark.parametrize("sql, with_alias, without_alias", LATERAL_SQL)
def test_lateral_column_aliases_follow_the_dialect(dialect, sql, with_alias, without_alias):
    _, out = _one(sql, dialect)
    assert _lower(out) == (with_alias if dialect in LATERAL else without_alias)


@pytest.mark.parametrize("dialect", LATERAL + NOT_LATERAL)
def test_a_column_of_the_table_wins_over_a_lateral_alias(dialect):
    _, out = _one("SELECT CONCAT(a, b) AS p, CONCAT(p, c) AS q FROM t", dialect,
                  schema={"t": {"a": "TEXT", "b": "TEXT", "c": "TEXT", "p": "TEXT"}})
    assert _lower(out)["q"] == {"t.p:direct/transformation", "t.c:direct/transformation"}
