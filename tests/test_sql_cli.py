"""``lineage-audit sql`` as a user runs it: output shapes, exit codes, clear errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from olspec import validate_event

REPO = Path(__file__).resolve().parent.parent
SHOP = REPO / "examples" / "shop"
SHOP_FILES = [str(SHOP / "01_staging.sql"), str(SHOP / "02_marts.sql")]


@pytest.fixture(scope="module")
def run():
    _register()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def _as_event(outputs: list[dict]) -> dict:
    return {
        "eventType": "COMPLETE",
        "eventTime": "2026-01-01T00:00:00Z",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "sql", "name": "example"},
        "inputs": [],
        "outputs": outputs,
        "producer": "https://github.com/lineage-audit/lineage-audit",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }


def test_json_output_has_the_documented_shape_and_valid_facets(run):
    res = run("sql", *SHOP_FILES, "--schema", str(SHOP / "schema.yml"), "-d", "duckdb",
              "--namespace", "duckdb://shop", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert set(doc) == {"statements", "end_to_end", "errors", "warnings"}
    first = doc["statements"][0]
    assert set(first) == {"index", "file", "line", "kind", "procedure", "inputs", "outputs"}
    assert first["procedure"] is None
    assert (first["index"], first["line"], first["kind"]) == (0, 2, "CREATE_TABLE_AS")
    assert first["inputs"] == [{"namespace": "duckdb://shop", "name": "raw.orders"}]
    assert [s["kind"] for s in doc["statements"]] == ["CREATE_TABLE_AS", "CREATE_VIEW", "CREATE_TABLE_AS", "INSERT"]
    outputs = [o for s in doc["statements"] for o in s["outputs"]] + doc["end_to_end"]
    for out in outputs:
        assert set(out) == {"namespace", "name", "facets"}
        assert "columnLineage" in out["facets"] and "schema" in out["facets"]
    validate_event(_as_event(outputs))
    e2e = {o["name"]: o["facets"]["columnLineage"]["fields"] for o in doc["end_to_end"]}
    assert set(e2e) == {"staging.users", "mart.user_revenue", "mart.country_summary"}
    revenue = e2e["mart.country_summary"]["revenue"]["inputFields"]
    assert [(f["name"], f["field"]) for f in revenue] == [("raw.orders", "amount")]
    assert revenue[0]["transformations"] == [{"type": "DIRECT", "subtype": "AGGREGATION", "masking": False}]
    email = e2e["mart.user_revenue"]["email_hash"]["inputFields"]
    assert email[0]["field"] == "email" and email[0]["transformations"][0]["masking"] is True


def test_text_output_is_a_tree_per_column(run):
    res = run("sql", *SHOP_FILES, "--schema", str(SHOP / "schema.yml"))
    assert res.exit_code == 0
    assert "mart.user_revenue" in res.output
    assert "<- paid_orders.amount  DIRECT/AGGREGATION" in res.output


def test_bad_statement_exit_2_with_position_and_other_lineage_kept(run, tmp_path):
    bad = tmp_path / "etl.sql"
    bad.write_text("CREATE TABLE a AS SELECT x FROM t;\nSELECT (((;\nCREATE TABLE b AS SELECT y FROM t;\n")
    res = run("sql", str(bad), "--format", "json")
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert [o["name"] for s in doc["statements"] for o in s["outputs"]] == ["a", "b"]
    (err,) = doc["errors"]
    assert err["file"] == str(bad) and err["line"] == 2 and err["column"] >= 1
    assert f"{bad}:2:" in res.stderr
    assert "unclosed parenthesis" in err["message"] and "sqlglot" not in err["message"] and "<class" not in err["message"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["sql", "/nonexistent/x.sql"], "/nonexistent/x.sql: cannot read SQL file"),
        (["sql", "{sql}", "--schema", "{bad_yaml}"], "{bad_yaml}:2:"),
        (["sql", "{sql}", "--schema", "{bad_json}"], "{bad_json}:1:"),
        (["sql", "{sql}", "--schema", "{wrong_shape}"], "expected a mapping of column to type"),
    ],
)
def test_input_errors_exit_2_without_traceback(run, tmp_path, args, expected):
    paths = {
        "sql": tmp_path / "q.sql",
        "bad_yaml": tmp_path / "s.yml",
        "bad_json": tmp_path / "s.json",
        "wrong_shape": tmp_path / "w.yml",
    }
    paths["sql"].write_text("SELECT 1")
    paths["bad_yaml"].write_text("raw.users:\n\tid: INT\n")
    paths["bad_json"].write_text('{"t": {"a": "INT",}}')
    paths["wrong_shape"].write_text("raw.users: [id, email]\n")
    names = {k: str(v) for k, v in paths.items()}
    res = run(*[a.format(**names) for a in args])
    assert res.exit_code == 2
    assert expected.format(**names) in res.stderr
    assert "Traceback" not in res.output + res.stderr


def test_every_command_help_shows_an_example():
    """The installed console script: every subcommand's --help has an Examples block."""
    top = subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "--help"], capture_output=True, text=True, check=True)
    assert "Examples:" in top.stdout
    commands = [line.split()[0] for line in top.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert {"sql", "graph"} <= set(commands)
    for name in commands:
        out = subprocess.run([sys.executable, "-m", "lineage_auditor.cli", name, "--help"], capture_output=True, text=True)
        assert out.returncode == 0, (name, out.stderr)
        assert "Example" in out.stdout, f"lineage-audit {name} --help has no example"


def test_many_files_are_one_script_with_a_progress_display(run, tmp_path):
    files = []
    for i in range(25):
        path = tmp_path / f"{i:02d}.sql"
        source = "raw.users" if i == 0 else f"t{i - 1}"
        path.write_text(f"CREATE TABLE t{i} AS SELECT id, email FROM {source};")
        files.append(str(path))
    res = run("sql", *files, "--schema", str(SHOP / "schema.yml"), "--format", "json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert len(doc["statements"]) == 25
    last = next(o for o in doc["end_to_end"] if o["name"] == "t24")
    email = last["facets"]["columnLineage"]["fields"]["email"]["inputFields"]
    assert [(f["name"], f["field"]) for f in email] == [("raw.users", "email")]


def _help_dialects() -> list[str]:
    """The dialect choices exactly as ``lineage-audit sql --help`` offers them."""
    out = subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "sql", "--help"],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"--dialect \[([^\]]+)\]", " ".join(out.split()))
    assert match, out
    return match.group(1).replace(" ", "").split("|")


HELP_DIALECTS = _help_dialects()


def test_help_offers_ansi_and_the_common_dialects():
    assert {"ansi", "postgres", "snowflake", "bigquery", "tsql", "duckdb", "mysql"} <= set(HELP_DIALECTS)


@pytest.mark.parametrize("dialect", HELP_DIALECTS)
def test_every_dialect_offered_by_help_analyses_a_small_script(run, tmp_path, dialect):
    script = tmp_path / "etl.sql"
    script.write_text(
        "CREATE TABLE stage_users AS SELECT id, UPPER(name) AS name FROM users WHERE id > 0;\n"
        "INSERT INTO report (user_id, n) SELECT s.id, COUNT(*) FROM stage_users s GROUP BY s.id;\n"
    )
    res = run("sql", str(script), "-d", dialect, "--format", "json")
    assert res.exit_code == 0, (dialect, res.output)
    assert "Traceback" not in res.output
    doc = json.loads(res.stdout)
    fold = str.upper if dialect in ("snowflake", "oracle") else str.lower
    first, second = (s["outputs"][0] for s in doc["statements"])
    assert first["name"] == fold("stage_users")
    fields = first["facets"]["columnLineage"]["fields"]
    assert {name: [(f["name"], f["field"], f["transformations"][0]["subtype"]) for f in v["inputFields"]]
            for name, v in fields.items()} == {
        fold("id"): [(fold("users"), fold("id"), "IDENTITY")],
        fold("name"): [(fold("users"), fold("name"), "TRANSFORMATION")],
    }
    assert first["facets"]["columnLineage"]["dataset"] == [
        {"namespace": "default", "name": fold("users"), "field": fold("id"),
         "transformations": [{"type": "INDIRECT", "subtype": "FILTER", "masking": False}]}
    ]
    report = next(o for o in doc["end_to_end"] if o["name"] == fold("report"))
    user_id = report["facets"]["columnLineage"]["fields"][fold("user_id")]["inputFields"]
    assert [(f["name"], f["field"]) for f in user_id] == [(fold("users"), fold("id"))]
    assert report["facets"]["columnLineage"]["fields"][fold("n")]["inputFields"] == []
