"""DML inside stored procedures and scripting blocks gets lineage; control flow costs nothing.

Each dialect's procedure holds at least three DML statements among DECLARE / IF / LOOP /
EXCEPTION; the procedure is the job, control statements the parser rejects are warnings with
their line, and the statements after the procedure keep their lineage.
"""

from __future__ import annotations

import pytest

from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import DatasetRef
from lineage_auditor.sql import analyze_sql
from sqlhelpers import dataset_of, fields_of

BIGQUERY = """CREATE OR REPLACE PROCEDURE ds.refresh(run_date DATE)
BEGIN
  DECLARE n INT64 DEFAULT 0;
  INSERT INTO ds.daily (d, total) SELECT d, SUM(amount) FROM ds.orders WHERE d = run_date GROUP BY d;
  IF n > 0 THEN
    UPDATE ds.daily SET total = 0 WHERE total IS NULL;
  END IF;
  LOOP
    SET n = n + 1;
    IF n > 3 THEN LEAVE; END IF;
  END LOOP;
  BEGIN
    INSERT INTO ds.users_clean (id, email) SELECT id, LOWER(email) FROM ds.users;
  EXCEPTION WHEN ERROR THEN
    SELECT @@error.message;
  END;
END;
CREATE TABLE ds.report AS SELECT d, total FROM ds.daily;
"""

SNOWFLAKE = """CREATE OR REPLACE PROCEDURE refresh() RETURNS STRING LANGUAGE SQL AS $$
DECLARE
  n INTEGER DEFAULT 0;
BEGIN
  INSERT INTO daily (d, total) SELECT d, SUM(amount) FROM orders GROUP BY d;
  LET x := 1;
  IF (n > 0) THEN
    UPDATE daily SET total = 0 WHERE total IS NULL;
  END IF;
  INSERT INTO users_clean (id, email) SELECT id, LOWER(email) FROM users;
  RETURN 'ok';
EXCEPTION
  WHEN OTHER THEN RETURN 'failed';
END;
$$;
CREATE TABLE report AS SELECT d, total FROM daily;
"""

TSQL = """CREATE PROCEDURE dbo.refresh AS
BEGIN
  SET NOCOUNT ON;
  DECLARE @n INT = 0;
  INSERT INTO daily (d, total) SELECT d, SUM(amount) FROM orders GROUP BY d;
  IF @n > 0
    UPDATE daily SET total = 0 WHERE total IS NULL;
  WHILE @n < 3
  BEGIN
    SET @n = @n + 1;
  END
  BEGIN TRY
    INSERT INTO users_clean (id, email) SELECT id, LOWER(email) FROM users;
  END TRY
  BEGIN CATCH
    PRINT 'failed';
  END CATCH
END
GO
CREATE TABLE report AS SELECT d, total FROM daily;
"""

POSTGRES = """CREATE OR REPLACE FUNCTION refresh() RETURNS void AS $$
DECLARE
  n int := 0;
BEGIN
  INSERT INTO daily (d, total) SELECT d, SUM(amount) FROM orders GROUP BY d;
  n := n + 1;
  IF n > 0 THEN
    UPDATE daily SET total = 0 WHERE total IS NULL;
  END IF;
  INSERT INTO users_clean (id, email) SELECT id, LOWER(email) FROM users;
EXCEPTION WHEN others THEN
  RAISE NOTICE 'failed';
END;
$$ LANGUAGE plpgsql;
CREATE TABLE report AS SELECT d, total FROM daily;
"""

ORACLE = """CREATE OR REPLACE PROCEDURE refresh IS
  n NUMBER := 0;
BEGIN
  INSERT INTO daily (d, total) SELECT d, SUM(amount) FROM orders GROUP BY d;
  n := n + 1;
  IF n > 0 THEN
    UPDATE daily SET total = 0 WHERE total IS NULL;
  END IF;
  FOR r IN (SELECT id FROM users) LOOP
    NULL;
  END LOOP;
  INSERT INTO users_clean (id, email) SELECT id, LOWER(email) FROM users;
EXCEPTION WHEN OTHERS THEN
  NULL;
END;
CREATE TABLE report AS SELECT d, total FROM daily;
"""

CASES = [
    ("bigquery", BIGQUERY, "ds.refresh", "ds.", [4, 6, 13, 18]),
    ("snowflake", SNOWFLAKE, "refresh", "", [5, 8, 10, 16]),
    ("tsql", TSQL, "dbo.refresh", "", [5, 7, 13, 20]),
    ("postgres", POSTGRES, "refresh", "", [5, 8, 10, 15]),
    ("oracle", ORACLE, "refresh", "", [4, 7, 12, 16]),
]


def _lower(labels: set[str]) -> set[str]:
    return {label.lower() for label in labels}


@pytest.mark.parametrize("dialect, sql, procedure, prefix, lines", CASES)
def test_dml_inside_a_procedure_body_is_traced_and_the_procedure_is_the_job(dialect, sql, procedure, prefix, lines):
    result = analyze_sql(sql, dialect=dialect, file="proc.sql")
    assert not result.errors, [str(e) for e in result.errors]
    sts = result.statements
    assert [(st.kind, st.line) for st in sts] == list(zip(["INSERT", "UPDATE", "INSERT", "CREATE_TABLE_AS"], lines))
    assert [st.procedure.lower() if st.procedure else None for st in sts] == [procedure] * 3 + [None]
    p = prefix
    daily, fix, clean, report = (st.outputs[0] for st in sts)
    assert daily.dataset.name.lower() == f"{p}daily"
    assert {k.lower(): _lower(v) for k, v in fields_of(daily).items()} == {
        "d": {f"{p}orders.d:direct/identity"}, "total": {f"{p}orders.amount:direct/aggregation"}}
    assert _lower(dataset_of(daily)) >= {f"{p}orders.d:indirect/group_by"}
    assert {k.lower(): v for k, v in fields_of(fix).items()} == {"total": set()}
    assert _lower(dataset_of(fix)) == {f"{p}daily.total:indirect/filter"}
    assert {k.lower(): _lower(v) for k, v in fields_of(clean).items()} == {
        "id": {f"{p}users.id:direct/identity"}, "email": {f"{p}users.email:direct/transformation"}}
    # after the procedure: the script goes on, and sees what the procedure wrote
    assert report.dataset.name.lower() == f"{p}report"
    e2e = {o.dataset.name.lower(): o for o in result.end_to_end}
    assert _lower(fields_of(e2e[f"{p}report"])[next(iter(fields_of(e2e[f"{p}report"])))]) == {
        f"{p}orders.d:direct/identity"}


@pytest.mark.parametrize("dialect, sql, procedure, prefix, lines", CASES)
def test_procedure_statements_are_one_job_in_the_graph(dialect, sql, procedure, prefix, lines):
    graph = LineageGraph.from_sql_result(analyze_sql(sql, dialect=dialect, file="proc.sql"))
    jobs = {j.name.lower() for j in graph.jobs()}
    assert procedure in jobs and len(jobs) == 2  # the procedure and the CREATE TABLE after it
    job = next(j for j in graph.jobs() if j.name.lower() == procedure)
    assert {d.name.lower() for d in graph.job_outputs(job)} == {f"{prefix}daily", f"{prefix}users_clean"}
    assert {f"{prefix}orders", f"{prefix}users"} <= {d.name.lower() for d in graph.job_inputs(job)}


def test_control_statements_the_parser_rejects_are_warnings_with_their_line():
    result = analyze_sql(SNOWFLAKE, dialect="snowflake", file="proc.sql")
    assert not result.errors
    controls = [(w.line, w.message.split(":")[0]) for w in result.warnings if "control statement" in w.message]
    assert controls and all(msg == "control statement not analysed" for _, msg in controls)
    assert {line for line, _ in controls} <= {2, 3, 6, 11, 13}
    assert 6 in {line for line, _ in controls}  # LET x := 1


def test_bigquery_script_without_procedure_traces_dml_between_control_statements():
    sql = ("DECLARE cutoff DATE DEFAULT CURRENT_DATE();\n"
           "IF EXISTS (SELECT 1 FROM ds.orders WHERE d > cutoff) THEN\n"
           "  INSERT INTO ds.recent (id) SELECT id FROM ds.orders WHERE d > cutoff;\n"
           "ELSE\n"
           "  INSERT INTO ds.recent (id) SELECT id FROM ds.archive;\n"
           "END IF;\n"
           "WHILE FALSE DO\n"
           "  DELETE FROM ds.recent WHERE TRUE;\n"
           "END WHILE;\n")
    result = analyze_sql(sql, dialect="bigquery")
    assert not result.errors, [str(e) for e in result.errors]
    assert [(st.kind, st.line, st.procedure) for st in result.statements] == [("INSERT", 3, None), ("INSERT", 5, None)]
    (recent,) = result.end_to_end
    assert fields_of(recent) == {"id": {"ds.orders.id:DIRECT/IDENTITY", "ds.archive.id:DIRECT/IDENTITY"}}


def test_a_broken_dml_statement_in_a_body_is_still_an_error_and_its_neighbours_survive():
    sql = ("CREATE PROCEDURE ds.p()\nBEGIN\n  INSERT INTO ds.a (x) SELECT x FROM ds.s;\n"
           "  INSERT INTO ds.b (y) SELEC y FROM ds.s;\n  INSERT INTO ds.c (z) SELECT z FROM ds.s;\nEND;\n")
    result = analyze_sql(sql, dialect="bigquery", file="p.sql")
    assert [e.line for e in result.errors] == [4]
    assert [st.outputs[0].dataset.name for st in result.statements] == ["ds.a", "ds.c"]
    assert all(st.procedure == "ds.p" for st in result.statements)


@pytest.mark.parametrize(
    "dialect, routine",
    [
        ("bigquery", "CREATE TEMP FUNCTION ds.plus(x INT64) AS (x + 1);"),
        ("bigquery", 'CREATE FUNCTION ds.js(x STRING) RETURNS STRING LANGUAGE js AS r"""return x.trim(); // ;""";'),
        ("snowflake", "CREATE FUNCTION area(r FLOAT) RETURNS FLOAT AS 'pi() * r * r';"),
        ("postgres", "CREATE FUNCTION add1(x int) RETURNS int AS $$ SELECT x + 1 $$ LANGUAGE sql;"),
        ("snowflake", "CREATE FUNCTION py(x INT) RETURNS INT LANGUAGE PYTHON RUNTIME_VERSION = '3.11' "
                      "HANDLER = 'f' AS $$\ndef f(x):\n    return x; # ;\n$$;"),
    ],
)
def test_functions_end_where_they_end_and_foreign_bodies_are_not_parsed(dialect, routine):
    sql = routine + "\nCREATE TABLE ds_after AS SELECT a FROM src;\n"
    result = analyze_sql(sql, dialect=dialect)
    assert not result.errors, [str(e) for e in result.errors]
    last = result.statements[-1]
    assert (last.kind, last.procedure, last.line) == ("CREATE_TABLE_AS", None, routine.count("\n") + 2)
    assert {k.lower(): {x.lower() for x in v} for k, v in fields_of(last.outputs[0]).items()} == {
        "a": {"src.a:direct/identity"}}
