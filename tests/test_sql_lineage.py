"""Column lineage of every SQL construct the engine promises, asserted in full."""

from __future__ import annotations

import pytest

from sqlhelpers import analyze, dataset_of, fields_of, lineage, output

USERS = {"raw.users": {"id": "INT", "email": "TEXT", "name": "TEXT", "country": "TEXT"}}
ORDERS = {"raw.orders": {"order_id": "INT", "user_id": "INT", "amount": "DECIMAL", "status": "TEXT"}}
SCHEMA = {**USERS, **ORDERS}

ID = "raw.users.id:DIRECT/IDENTITY"


# -- statements that write ----------------------------------------------------------
def test_create_table_as_names_target_and_kind():
    result = analyze("CREATE TABLE mart.u AS SELECT id, email FROM raw.users", schema=SCHEMA)
    st = result.statements[0]
    assert st.kind == "CREATE_TABLE_AS"
    assert [d.name for d in st.inputs] == ["raw.users"]
    out = st.outputs[0]
    assert out.dataset.name == "mart.u"
    assert fields_of(out) == {"id": {ID}, "email": {"raw.users.email:DIRECT/IDENTITY"}}
    assert [f.type for f in out.fields] == ["INT", "TEXT"]


def test_create_view():
    st = analyze("CREATE VIEW v AS SELECT UPPER(name) AS n FROM raw.users", schema=SCHEMA).statements[0]
    assert st.kind == "CREATE_VIEW"
    assert fields_of(st.outputs[0]) == {"n": {"raw.users.name:DIRECT/TRANSFORMATION"}}


def test_insert_with_column_list_maps_by_position():
    got = lineage("INSERT INTO t (a, b) SELECT email, id FROM raw.users", schema=SCHEMA)
    assert got == {"a": {"raw.users.email:DIRECT/IDENTITY"}, "b": {ID}}


def test_insert_without_column_list_uses_target_schema_positionally():
    schema = {**SCHEMA, "t": {"x": "INT", "y": "TEXT"}}
    got = lineage("INSERT INTO t SELECT id, email FROM raw.users", schema=schema)
    assert got == {"x": {ID}, "y": {"raw.users.email:DIRECT/IDENTITY"}}


def test_insert_without_any_column_names_warns_and_uses_select_names():
    result = analyze("INSERT INTO t SELECT id FROM raw.users", schema=SCHEMA)
    assert fields_of(result.statements[0].outputs[0]) == {"id": {ID}}
    assert any("columns of t unknown" in w.message for w in result.warnings)


def test_merge():
    sql = """
    MERGE INTO mart.totals t USING raw.orders o ON t.user_id = o.user_id
    WHEN MATCHED AND o.status = 'paid' THEN UPDATE SET total = t.total + o.amount
    WHEN NOT MATCHED THEN INSERT (user_id, total) VALUES (o.user_id, o.amount)
    """
    schema = {**SCHEMA, "mart.totals": {"user_id": "INT", "total": "DECIMAL"}}
    st = analyze(sql, schema=schema, dialect="postgres").statements[0]
    assert st.kind == "MERGE"
    out = st.outputs[0]
    assert out.dataset.name == "mart.totals"
    assert fields_of(out) == {
        "total": {"mart.totals.total:DIRECT/TRANSFORMATION", "raw.orders.amount:DIRECT/TRANSFORMATION",
                  "raw.orders.amount:DIRECT/IDENTITY"},
        "user_id": {"raw.orders.user_id:DIRECT/IDENTITY"},
    }
    assert dataset_of(out) == {
        "mart.totals.user_id:INDIRECT/JOIN", "raw.orders.user_id:INDIRECT/JOIN",
        "raw.orders.status:INDIRECT/FILTER",
    }


def test_update_set_from():
    sql = "UPDATE raw.users SET country = o.status FROM raw.orders o WHERE o.user_id = raw.users.id"
    st = analyze(sql, schema=SCHEMA, dialect="postgres").statements[0]
    assert st.kind == "UPDATE"
    assert fields_of(st.outputs[0]) == {"country": {"raw.orders.status:DIRECT/IDENTITY"}}
    assert dataset_of(st.outputs[0]) == {"raw.orders.user_id:INDIRECT/FILTER", "raw.users.id:INDIRECT/FILTER"}


def test_plain_select_targets_select_n():
    result = analyze("SELECT 1; SELECT id FROM raw.users", schema=SCHEMA)
    assert [o.dataset.name for st in result.statements for o in st.outputs] == ["_select_0", "_select_1"]
    assert result.statements[1].kind == "SELECT"


# -- schema: stars and unqualified columns ----------------------------------------------
def test_star_expands_with_schema_over_join():
    got = lineage("SELECT * FROM raw.users u JOIN raw.orders o ON o.user_id = u.id", schema=SCHEMA)
    assert list(got) == ["id", "email", "name", "country", "order_id", "user_id", "amount", "status"]
    assert got["amount"] == {"raw.orders.amount:DIRECT/IDENTITY"}


def test_qualified_star_and_duckdb_exclude():
    got = lineage("SELECT u.* EXCLUDE (email), o.amount FROM raw.users u JOIN raw.orders o ON o.user_id = u.id",
                  schema=SCHEMA, dialect="duckdb")
    assert list(got) == ["id", "name", "country", "amount"]


def test_bigquery_star_except():
    got = lineage("SELECT * EXCEPT (email, name) FROM raw.users", schema=SCHEMA, dialect="bigquery")
    assert got == {"id": {ID}, "country": {"raw.users.country:DIRECT/IDENTITY"}}


def test_unqualified_columns_in_join_resolve_to_their_table():
    got = lineage("SELECT email, amount FROM raw.users JOIN raw.orders ON user_id = id", schema=SCHEMA)
    assert got == {"email": {"raw.users.email:DIRECT/IDENTITY"}, "amount": {"raw.orders.amount:DIRECT/IDENTITY"}}


def test_schema_keys_qualify_short_references():
    schema = {"shop.raw.users": {"id": "INT"}}
    out = output("SELECT id FROM users", schema=schema)
    assert fields_of(out) == {"id": {"shop.raw.users.id:DIRECT/IDENTITY"}}


def test_without_schema_star_and_ambiguous_columns_are_warned_never_guessed():
    result = analyze("SELECT * FROM a JOIN b ON a.k = b.k; SELECT x FROM a JOIN b ON a.k = b.k")
    messages = [w.message for w in result.warnings]
    assert any("cannot expand *" in m and "a, b" in m for m in messages)
    assert any("'x'" in m and "which table" in m for m in messages)
    # the column is kept as an input with its table unknown (""), never assigned to a or b
    assert fields_of(result.statements[1].outputs[0]) == {"x": {".x:DIRECT/IDENTITY"}}
    warning = next(w for w in result.warnings if "'x'" in w.message)
    assert (warning.line, warning.column) == (1, 45)


def test_without_schema_single_table_is_not_ambiguous():
    result = analyze("SELECT x, y + 1 AS z FROM a")
    assert not result.warnings
    assert fields_of(result.statements[0].outputs[0]) == {"x": {"a.x:DIRECT/IDENTITY"}, "z": {"a.y:DIRECT/TRANSFORMATION"}}


def test_star_through_cte_without_schema_still_resolves_named_columns():
    result = analyze("WITH c AS (SELECT * FROM src) SELECT c.a FROM c")
    assert fields_of(result.statements[0].outputs[0]) == {"a": {"src.a:DIRECT/IDENTITY"}}
    assert any("cannot expand *" in w.message for w in result.warnings)


# -- CTEs, derived tables, subqueries ----------------------------------------------------
def test_chained_ctes():
    sql = """WITH a AS (SELECT id, amount FROM raw.orders o JOIN raw.users u ON u.id = o.user_id),
                  b AS (SELECT id, SUM(amount) AS total FROM a GROUP BY id)
             SELECT id, total * 2 AS doubled FROM b"""
    out = output(sql, schema=SCHEMA)
    assert fields_of(out) == {"id": {ID}, "doubled": {"raw.orders.amount:DIRECT/AGGREGATION"}}
    assert dataset_of(out) == {"raw.orders.user_id:INDIRECT/JOIN", "raw.users.id:INDIRECT/JOIN",
                               "raw.users.id:INDIRECT/GROUP_BY"}


def test_recursive_cte():
    sql = """WITH RECURSIVE tree(id, parent, depth) AS (
               SELECT id, parent_id, 0 FROM nodes WHERE parent_id IS NULL
               UNION ALL
               SELECT n.id, n.parent_id, t.depth + 1 FROM nodes n JOIN tree t ON n.parent_id = t.id)
             SELECT id, depth FROM tree"""
    got = lineage(sql, schema={"nodes": {"id": "INT", "parent_id": "INT"}}, dialect="postgres")
    assert got == {"id": {"nodes.id:DIRECT/IDENTITY"}, "depth": set()}


def test_cte_shadowing_a_real_table():
    sql = "WITH users AS (SELECT id AS uid FROM raw.users) SELECT uid FROM users"
    assert lineage(sql, schema={**SCHEMA, "users": {"uid": "INT"}}) == {"uid": {ID}}


def test_cte_column_alias_list():
    assert lineage("WITH t(a, b) AS (SELECT id, email FROM raw.users) SELECT b, a FROM t", schema=SCHEMA) == {
        "b": {"raw.users.email:DIRECT/IDENTITY"}, "a": {ID},
    }


def test_derived_table_with_column_alias_list():
    sql = "SELECT d.x FROM (SELECT email, id FROM raw.users) AS d(x, y)"
    assert lineage(sql, schema=SCHEMA, dialect="postgres") == {"x": {"raw.users.email:DIRECT/IDENTITY"}}


def test_scalar_subquery_in_select_is_correlated():
    sql = """SELECT u.id, (SELECT MAX(o.amount) FROM raw.orders o WHERE o.user_id = u.id) AS top
             FROM raw.users u"""
    got = lineage(sql, schema=SCHEMA)
    assert got["top"] == {"raw.orders.amount:DIRECT/AGGREGATION", "raw.orders.user_id:INDIRECT/FILTER",
                          "raw.users.id:INDIRECT/FILTER"}


def test_subquery_in_where_goes_to_dataset_level():
    out = output("SELECT id FROM raw.users WHERE id IN (SELECT user_id FROM raw.orders WHERE status = 'paid')",
                 schema=SCHEMA)
    assert fields_of(out) == {"id": {ID}}
    assert dataset_of(out) == {ID.replace("DIRECT/IDENTITY", "INDIRECT/FILTER"),
                               "raw.orders.user_id:INDIRECT/FILTER", "raw.orders.status:INDIRECT/FILTER"}


@pytest.mark.parametrize("op", ["UNION", "UNION ALL", "INTERSECT", "EXCEPT"])
def test_set_operations_are_positional_over_every_branch(op):
    sql = f"SELECT id, email FROM raw.users {op} SELECT user_id, status FROM raw.orders"
    assert lineage(sql, schema=SCHEMA) == {
        "id": {ID, "raw.orders.user_id:DIRECT/IDENTITY"},
        "email": {"raw.users.email:DIRECT/IDENTITY", "raw.orders.status:DIRECT/IDENTITY"},
    }


# -- expressions ---------------------------------------------------------------------------
def test_window_function_partition_and_order_are_indirect_window():
    sql = "SELECT SUM(amount) OVER (PARTITION BY user_id ORDER BY order_id) AS running FROM raw.orders"
    assert lineage(sql, schema=SCHEMA) == {"running": {
        "raw.orders.amount:DIRECT/AGGREGATION", "raw.orders.user_id:INDIRECT/WINDOW", "raw.orders.order_id:INDIRECT/WINDOW"}}


def test_case_condition_is_conditional_and_branches_are_direct():
    sql = "SELECT CASE WHEN status = 'paid' THEN amount ELSE 0 END AS paid FROM raw.orders"
    assert lineage(sql, schema=SCHEMA) == {"paid": {"raw.orders.status:INDIRECT/CONDITIONAL",
                                                    "raw.orders.amount:DIRECT/IDENTITY"}}


def test_coalesce_cast_and_arithmetic():
    sql = "SELECT COALESCE(name, email) AS label, CAST(amount AS INT) AS whole, amount * 2 AS dbl FROM raw.users JOIN raw.orders ON user_id = id"
    got = lineage(sql, schema=SCHEMA)
    assert got == {"label": {"raw.users.name:DIRECT/IDENTITY", "raw.users.email:DIRECT/IDENTITY"},
                   "whole": {"raw.orders.amount:DIRECT/TRANSFORMATION"},
                   "dbl": {"raw.orders.amount:DIRECT/TRANSFORMATION"}}
    assert output(sql, schema=SCHEMA).fields[1].type == "INT"


def test_json_operators():
    sql = "SELECT payload->>'email' AS email, payload->'geo'->>'country' AS country FROM events"
    assert lineage(sql, dialect="postgres") == {"email": {"events.payload:DIRECT/TRANSFORMATION"},
                                               "country": {"events.payload:DIRECT/TRANSFORMATION"}}


def test_unnest_duckdb():
    sql = "SELECT o.order_id, item FROM raw.orders o, UNNEST(o.items) AS t(item)"
    schema = {"raw.orders": {"order_id": "INT", "items": "INT[]"}}
    assert lineage(sql, schema=schema, dialect="duckdb") == {
        "order_id": {"raw.orders.order_id:DIRECT/IDENTITY"}, "item": {"raw.orders.items:DIRECT/TRANSFORMATION"}}


def test_unnest_bigquery():
    sql = "SELECT tag FROM raw.posts p, UNNEST(p.tags) AS tag"
    assert lineage(sql, schema={"raw.posts": {"tags": "ARRAY<STRING>"}}, dialect="bigquery") == {
        "tag": {"raw.posts.tags:DIRECT/TRANSFORMATION"}}


def test_lateral_view_explode_spark():
    sql = "SELECT p.id, tag FROM posts p LATERAL VIEW EXPLODE(p.tags) t AS tag"
    assert lineage(sql, schema={"posts": {"id": "INT", "tags": "ARRAY<STRING>"}}, dialect="spark") == {
        "id": {"posts.id:DIRECT/IDENTITY"}, "tag": {"posts.tags:DIRECT/TRANSFORMATION"}}


def test_lateral_subquery_postgres():
    sql = "SELECT u.id, l.total FROM raw.users u, LATERAL (SELECT SUM(amount) AS total FROM raw.orders o WHERE o.user_id = u.id) l"
    got = lineage(sql, schema=SCHEMA, dialect="postgres")
    assert got["total"] == {"raw.orders.amount:DIRECT/AGGREGATION"}


def test_qualify_is_dataset_filter():
    sql = "SELECT user_id, amount FROM raw.orders QUALIFY ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY amount DESC) = 1"
    out = output(sql, schema=SCHEMA, dialect="snowflake")  # Snowflake folds unquoted names to upper case
    assert dataset_of(out) == {"RAW.ORDERS.USER_ID:INDIRECT/FILTER", "RAW.ORDERS.AMOUNT:INDIRECT/FILTER"}


def test_distinct_on_keys_are_dataset_level():
    out = output("SELECT DISTINCT ON (user_id) user_id, amount FROM raw.orders ORDER BY user_id, amount DESC",
                 schema=SCHEMA, dialect="postgres")
    assert dataset_of(out) == {"raw.orders.user_id:INDIRECT/GROUP_BY", "raw.orders.user_id:INDIRECT/SORT",
                               "raw.orders.amount:INDIRECT/SORT"}


def test_duplicate_output_names_are_kept_by_position():
    out = output("SELECT u.id, o.user_id AS id FROM raw.users u JOIN raw.orders o ON o.user_id = u.id", schema=SCHEMA)
    assert [(f.name, f.position) for f in out.fields] == [("id", 1), ("id", 2)]
    assert fields_of(out) == {"id": {ID}, "id#2": {"raw.orders.user_id:DIRECT/IDENTITY"}}


@pytest.mark.parametrize("expr", ["MD5(email)", "SHA2(email, 256)", "SHA256(email)", "mask(email)", "farm_fingerprint(email)"])
def test_masking_functions(expr):
    assert lineage(f"SELECT {expr} AS h FROM raw.users", schema=SCHEMA, dialect="databricks" if "SHA2" in expr else None) == {
        "h": {"raw.users.email:DIRECT/TRANSFORMATION+masked"}}


def test_masking_survives_later_steps():
    sql = "WITH h AS (SELECT md5(email) AS e FROM raw.users) SELECT MAX(e) AS m FROM h"
    assert lineage(sql, schema=SCHEMA) == {"m": {"raw.users.email:DIRECT/AGGREGATION+masked"}}


def test_count_star_and_constants_have_no_direct_input():
    got = lineage("SELECT COUNT(*) AS n, 1 AS one, 'x' AS s, COUNT(id) AS c FROM raw.users", schema=SCHEMA)
    assert got == {"n": set(), "one": set(), "s": set(), "c": {"raw.users.id:DIRECT/AGGREGATION"}}


def test_group_by_order_by_position_and_alias():
    out = output("SELECT country AS c, SUM(amount) AS total FROM raw.users JOIN raw.orders ON user_id = id GROUP BY 1 ORDER BY total",
                 schema=SCHEMA)
    assert dataset_of(out) == {"raw.users.country:INDIRECT/GROUP_BY", "raw.orders.amount:INDIRECT/SORT",
                               "raw.orders.user_id:INDIRECT/JOIN", "raw.users.id:INDIRECT/JOIN"}


def test_join_using():
    out = output("SELECT email FROM raw.users JOIN raw.orders USING (id)",
                 schema={**USERS, "raw.orders": {"id": "INT", "amount": "INT"}})
    assert dataset_of(out) == {"raw.users.id:INDIRECT/JOIN", "raw.orders.id:INDIRECT/JOIN"}


# -- scripts --------------------------------------------------------------------------------
SCRIPT = """
CREATE TEMP TABLE paid AS SELECT user_id, amount FROM raw.orders WHERE status = 'paid';
CREATE VIEW v_users AS SELECT id, md5(email) AS email_hash FROM raw.users;
CREATE TABLE mart.rev AS
SELECT v.id, v.email_hash, SUM(p.amount) AS revenue
FROM v_users v JOIN paid p ON p.user_id = v.id GROUP BY v.id, v.email_hash;
"""


def test_script_end_to_end_traces_through_temp_tables_and_views():
    result = analyze(SCRIPT, schema=SCHEMA, dialect="postgres")
    assert [st.kind for st in result.statements] == ["CREATE_TABLE_AS", "CREATE_VIEW", "CREATE_TABLE_AS"]
    assert fields_of(result.statements[2].outputs[0])["revenue"] == {"paid.amount:DIRECT/AGGREGATION"}
    e2e = {o.dataset.name: o for o in result.end_to_end}
    assert set(e2e) == {"v_users", "mart.rev"}  # the temp table is not an output of the script
    assert fields_of(e2e["mart.rev"]) == {
        "id": {ID},
        "email_hash": {"raw.users.email:DIRECT/TRANSFORMATION+masked"},
        "revenue": {"raw.orders.amount:DIRECT/AGGREGATION"},
    }
    assert dataset_of(e2e["mart.rev"]) == {
        "raw.orders.user_id:INDIRECT/JOIN", "raw.users.id:INDIRECT/JOIN", "raw.users.id:INDIRECT/GROUP_BY",
        "raw.users.email:INDIRECT/GROUP_BY", "raw.orders.status:INDIRECT/FILTER",
    }


def test_script_star_expands_over_a_table_the_script_created():
    result = analyze("CREATE TABLE a AS SELECT id, email FROM raw.users; CREATE TABLE b AS SELECT * FROM a", schema=SCHEMA)
    assert not result.warnings
    e2e = {o.dataset.name: fields_of(o) for o in result.end_to_end}
    assert e2e["b"] == {"id": {ID}, "email": {"raw.users.email:DIRECT/IDENTITY"}}


# -- errors -------------------------------------------------------------------------------
def test_bad_statement_reports_position_and_others_still_produce_lineage():
    sql = "CREATE TABLE a AS SELECT id FROM raw.users;\n\nSELECT FROM WHERE (;\nCREATE TABLE b AS SELECT email FROM raw.users;"
    from lineage_auditor.sql import analyze_sql

    result = analyze_sql(sql, schema=SCHEMA, file="etl.sql")
    assert [o.dataset.name for st in result.statements for o in st.outputs] == ["a", "b"]
    assert len(result.errors) == 1
    err = result.errors[0]
    assert (err.file, err.line) == ("etl.sql", 3)
    assert err.column >= 1 and "syntax error" in err.message


def test_unterminated_string_is_an_error_not_a_crash():
    from lineage_auditor.sql import analyze_sql

    result = analyze_sql("SELECT a FROM t;\nSELECT 'oops FROM u;", file="x.sql")
    assert result.errors and result.errors[0].line == 2
    assert [o.dataset.name for st in result.statements for o in st.outputs] == ["_select_0"]


@pytest.mark.parametrize("dialect", ["postgres", "duckdb", "bigquery", "snowflake", "spark", "mysql", "tsql", "trino", None])
def test_dialects(dialect):
    got = lineage("INSERT INTO t (x) SELECT UPPER(name) FROM users WHERE id > 3", dialect=dialect,
                  schema={"users": {"id": "INT", "name": "TEXT"}})
    expected = {"x": {"users.name:DIRECT/TRANSFORMATION"}}
    if dialect == "snowflake":  # folds unquoted names to upper case
        expected = {"X": {"USERS.NAME:DIRECT/TRANSFORMATION"}}
    assert got == expected


def test_insert_values_has_columns_without_inputs():
    result = analyze("INSERT INTO t (a, b) VALUES (1, 2), (3, 4)")
    assert fields_of(result.statements[0].outputs[0]) == {"a": set(), "b": set()}
    assert not result.warnings


def test_select_into_creates_a_temp_table_the_script_reads():
    result = analyze("SELECT a, b INTO #tmp FROM src; CREATE TABLE out AS SELECT a FROM #tmp", dialect="tsql")
    assert [st.kind for st in result.statements] == ["CREATE_TABLE_AS", "CREATE_TABLE_AS"]
    e2e = {o.dataset.name: fields_of(o) for o in result.end_to_end}
    assert e2e == {"out": {"a": {"src.a:DIRECT/IDENTITY"}}}


def test_exists_subquery_columns_filter_the_dataset():
    out = output("SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k)", schema={"t": {"a": "INT", "k": "INT"}, "u": {"k": "INT"}})
    assert dataset_of(out) == {"u.k:INDIRECT/FILTER", "t.k:INDIRECT/FILTER"}


def test_table_functions_are_sources_without_column_lineage():
    result = analyze("SELECT s.x, t.y FROM read_csv('f.csv') s JOIN t ON t.id = s.id", dialect="duckdb", schema={"t": {"id": "INT", "y": "INT"}})
    assert fields_of(result.statements[0].outputs[0]) == {"x": set(), "y": {"t.y:DIRECT/IDENTITY"}}
    assert not result.warnings
