"""The pipeline DSL's validation: every problem at its file:line:col with its key path and a fix."""

from __future__ import annotations

import json
import textwrap
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from lineage_auditor.errors import ConfigError
from pipelines.dsl import SpecErrors, load_spec, plan_spec
from pipelines.dsl.schema import spec_json_schema

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "specs"

GOOD = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: revenue
team: growth
params:
  min_amount: {type: number, default: 0}
sources: [crm.users]
steps:
  - id: orders
    extract:
      into: staging.orders
      file:
        path: orders.csv
        columns: [{name: user_id, type: INT}, {name: amount, type: INT}]
  - id: build
    depends_on: [orders]
    sql:
      query: |
        CREATE TABLE mart.revenue AS
        SELECT o.user_id, SUM(o.amount) AS total
        FROM staging.orders o JOIN crm.users u ON u.id = o.user_id
        WHERE o.amount > {{ params.min_amount }}
        GROUP BY o.user_id
  - id: publish
    load: {from: build, table: analytics.revenue, mode: replace}
"""


def _write(tmp_path: Path, text: str, name: str = "spec.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    """Every problem of a spec (grammar, then references), without the folder part of the file."""
    path = _write(tmp_path, text)
    try:
        plan_spec(load_spec(path), date(2024, 5, 1))
    except SpecErrors as exc:
        return [str(p).replace(str(tmp_path) + "/", "") for p in exc.problems]
    except ConfigError as exc:
        return [str(exc).replace(str(tmp_path) + "/", "")]
    return []


def test_the_good_spec_is_valid(tmp_path: Path) -> None:
    assert _problems(tmp_path, GOOD) == []


# (what is changed, the text replaced, its replacement, the exact problems)
MALFORMED = [
    ("misspelt load mode", "mode: replace", "mode: replce",
     ["spec.yml:25:57: steps[2].load.mode: 'replce' is not one of append, upsert, replace (did you mean 'replace'?)"]),
    ("unknown top-level key", "team: growth\n", "team: growth\nschedul: '@daily'\n",
     ["spec.yml:5:1: schedul: unknown key 'schedul' (did you mean 'schedule'?)"]),
    ("unknown step key", "  - id: build\n", "  - id: build\n    dependson: [orders]\n",
     ["spec.yml:16:5: steps[1].dependson: unknown key 'dependson' (did you mean 'depends_on'?)"]),
    ("unknown key without a close one", "        path: orders.csv\n", "        path: orders.csv\n        zzz: 1\n",
     ["spec.yml:14:9: steps[0].extract.file.zzz: unknown key 'zzz' (allowed: columns, format, path, reject)"]),
    ("misspelt param key", "{type: number, default: 0}", "{typ: number, default: 0}",
     ["spec.yml:6:16: params.min_amount.typ: unknown key 'typ' (did you mean 'type'?)"]),
    ("wrong apiVersion", "apiVersion: lineage-audit/v1", "apiVersion: lineage-audit/v2",
     ["spec.yml:1:13: apiVersion: 'lineage-audit/v2' is not a supported apiVersion (lineage-audit/v1)"]),
    ("not a pipeline", "kind: Pipeline", "kind: Dashboard",
     ["spec.yml:2:7: kind: 'Dashboard': this file is not a Pipeline spec (kind: Pipeline)"]),
    ("missing team", "team: growth\n", "",
     ["spec.yml:1:1: team: missing (required)"]),
    ("bad id", "id: revenue", "id: Revenue-Daily",
     ["spec.yml:3:5: id: 'Revenue-Daily' is not a valid id (lower-case letters, digits and _, starting with a letter)"]),
    ("bad step id", "  - id: orders\n", "  - id: 9orders\n",
     ["spec.yml:9:9: steps[0].id: '9orders' is not a valid id (lower-case letters, digits and _, starting with a letter)"]),
    ("two kinds in one step", "    load: {from: build", "    sql: {query: 'SELECT 1'}\n    load: {from: build",
     ["spec.yml:24:5: steps[2]: a step takes exactly one of gate, extract, sql, python, load, check (found sql, load)"]),
    ("no kind", "    load: {from: build, table: analytics.revenue, mode: replace}\n", "    timeout: 5m\n",
     ["spec.yml:24:5: steps[2]: a step takes exactly one of gate, extract, sql, python, load, check (found none)"]),
    ("upsert without keys", "mode: replace", "mode: upsert",
     ["spec.yml:25:11: steps[2].load: mode upsert needs keys (the columns that identify a row)"]),
    ("bad duration", "  - id: publish\n", "  - id: publish\n    timeout: soon\n",
     ["spec.yml:25:14: steps[2].timeout: not a duration: 'soon' (e.g. 90s, 30m, 1.5h, 36h, 1d 12h, 2w)"]),
    ("huge duration", "  - id: publish\n", "  - id: publish\n    timeout: 99999999999999999999d\n",
     ["spec.yml:25:14: steps[2].timeout: duration too long: '99999999999999999999d' (at most 999999999 days)"]),
    ("param default of the wrong type", "{type: number, default: 0}", "{type: number, default: lots}",
     ["spec.yml:6:15: params.min_amount: 'lots' is not a number"]),
    ("negative retries", "team: growth\n", "team: growth\nretries: {count: -1}\n",
     ["spec.yml:5:18: retries.count: Input should be greater than or equal to 0"]),
    ("steps not a list", "steps:\n", "steps: orders\nunused:\n",
     ["spec.yml:8:8: steps: Input should be a valid list", "spec.yml:9:1: unused: unknown key 'unused' (allowed: apiVersion, "
      "approvals, catchup, dead_letter, description, extends, id, kind, max_active_runs, max_staleness, on_source_failure, "
      "outputs, owners, params, resources, retries, schedule, sla, sources, stagger, steps, tags, target, target_dialect, team, timeout, timezone)"]),
    ("empty steps", "steps:\n  - id: orders", "steps: []\nold:\n  - id: orders",
     ["spec.yml:8:8: steps: needs at least 1 item", "spec.yml:9:1: old: unknown key 'old' (allowed: apiVersion, approvals, "
      "catchup, dead_letter, description, extends, id, kind, max_active_runs, max_staleness, on_source_failure, outputs, owners, "
      "params, resources, retries, schedule, sla, sources, stagger, steps, tags, target, target_dialect, team, timeout, timezone)"]),
    ("unknown depends_on", "depends_on: [orders]", "depends_on: [order]",
     ["spec.yml:16:18: steps[1].depends_on[0]: no step named 'order' (did you mean 'orders'?)",
      "spec.yml:21:14: steps[1].sql.query: reads staging.orders, written by step 'orders', which it does not depend on "
      "(add depends_on: [orders])"]),
    ("load from an unknown step", "from: build,", "from: buld,",
     ["spec.yml:25:18: steps[2].load.from: no step named 'buld' (did you mean 'build'?)"]),
    ("table nobody produces", "sources: [crm.users]", "sources: []",
     ["spec.yml:21:36: steps[1].sql.query: reads crm.users: no step produces it and it is not declared in sources"]),
    ("duplicate step id", "  - id: publish", "  - id: orders",
     ["spec.yml:24:9: steps[2].id: step id 'orders' is used twice"]),
    ("undefined template name", "{{ params.min_amount }}", "{{ minimum }}",
     ["spec.yml:19:9: steps[1].sql.query: template: 'minimum' is undefined (templates see: ds, ds_nodash, data_interval_start, "
      "data_interval_end, run_id, params, env, target)"]),
    ("a step depending on itself", "depends_on: [orders]", "depends_on: [orders, build]",
     ["spec.yml:16:26: steps[1].depends_on[1]: step 'build' cannot depend on itself"]),
    ("a load from itself", "from: build,", "from: publish,",
     ["spec.yml:25:18: steps[2].load.from: step 'publish' cannot load from itself"]),
    ("two steps writing one table", "table: analytics.revenue,", "table: mart.revenue,",
     ["spec.yml:24:5: steps[2]: writes mart.revenue, which step 'build' writes too (one step per table: load or append "
      "from one place)"]),
    ("writing a declared source", "sources: [crm.users]", "sources: [crm.users, analytics.revenue]",
     ["spec.yml:24:5: steps[2]: writes analytics.revenue, which is declared in sources (read-only for this pipeline)"]),
    ("a blank query", GOOD[GOOD.index("      query: |"):GOOD.index("  - id: publish")], "      query: ' '\n",
     ["spec.yml:18:14: steps[1].sql.query: the query is empty"]),
    ("a SQL step that writes nothing", "        CREATE TABLE mart.revenue AS\n", "",
     ["spec.yml:18:7: steps[1].sql: the SQL writes no table (a query's result would be thrown away; use CREATE "
      "TABLE ... AS, INSERT, or a gate with a sql probe)"]),
    ("a cycle", "  - id: orders\n", "  - id: orders\n    depends_on: [publish]\n",
     ["spec.yml:10:17: steps[0].depends_on: steps depend on each other in a cycle: orders -> build -> publish -> orders"]),
]


@pytest.mark.parametrize("change, old, new, expected", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_specs_say_where_and_what(tmp_path: Path, change: str, old: str, new: str, expected: list[str]) -> None:
    assert old in GOOD, change
    problems = _problems(tmp_path, GOOD.replace(old, new, 1))
    assert problems == expected


def test_sql_that_does_not_parse_is_reported_at_its_line(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GOOD.replace("GROUP BY o.user_id", "GROUP BY o.user_id HAVING (", 1))
    assert len(problems) == 1 and problems[0].startswith("spec.yml:23:") and "steps[1].sql.query: " in problems[0], problems


GATE = """\
  - id: ready
    gate:
      http: {url: "http://127.0.0.1:9/health"}
"""


def test_a_load_needs_a_step_that_produces_data(tmp_path: Path) -> None:
    text = GOOD.replace("steps:\n", "steps:\n" + GATE, 1).replace("load: {from: build", "load: {from: ready", 1)
    assert _problems(tmp_path, text) == [
        "spec.yml:28:18: steps[3].load.from: step 'ready' is a gate step: it produces no data to load"]


def test_a_missing_sql_file_is_named_at_its_key(tmp_path: Path) -> None:
    start = GOOD.index("      query: |")
    end = GOOD.index("  - id: publish")
    text = GOOD[:start] + "      file: sql/nope.sql\n" + GOOD[end:]
    assert _problems(tmp_path, text) == ["spec.yml:18:13: steps[1].sql.file: sql/nope.sql: no such file"]


def test_sql_files_are_read_next_to_the_spec_and_errors_point_into_them(tmp_path: Path) -> None:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "build.sql").write_text("CREATE TABLE mart.revenue AS\nSELECT user_id\nFROM staging.orders\nJOIN crm.userz u ON 1 = 1\n")
    start = GOOD.index("      query: |")
    end = GOOD.index("  - id: publish")
    text = GOOD[:start] + "      file: sql/build.sql\n" + GOOD[end:]
    assert _problems(tmp_path, text) == [
        "sql/build.sql:4:6: steps[1].sql.file: reads crm.userz: no step produces it and it is not declared in sources"]


def test_a_table_written_by_a_later_step_says_which(tmp_path: Path) -> None:
    text = GOOD.replace("FROM staging.orders o JOIN crm.users u", "FROM staging.orders o JOIN analytics.revenue u", 1)
    assert _problems(tmp_path, text) == [
        "spec.yml:21:36: steps[1].sql.query: reads analytics.revenue: step 'publish' writes it but does not run before "
        "this one (add depends_on: [publish])"]


def test_extends_takes_team_defaults_and_points_into_the_defaults_file(tmp_path: Path) -> None:
    _write(tmp_path, "team: growth\nretries: {count: 2, backof: 1m}\n", "defaults.yml")
    text = GOOD.replace("team: growth\n", "extends: defaults.yml\n", 1)
    assert _problems(tmp_path, text) == ["defaults.yml:2:21: retries.backof: unknown key 'backof' (did you mean 'backoff'?)"]
    _write(tmp_path, "team: growth\nretries: {count: 2, backoff: 1m}\n", "defaults.yml")
    spec = load_spec(tmp_path / "spec.yml").pipeline
    assert (spec.team, spec.retries.count, spec.retries.backoff.total_seconds()) == ("growth", 2, 60.0)
    missing = GOOD.replace("team: growth\n", "extends: nowhere.yml\n", 1)
    assert _problems(tmp_path, missing) == ["spec.yml:4:10: extends: no such file nowhere.yml"]


@pytest.mark.parametrize("content, expected", [
    (b"apiVersion: lineage-audit/v1\nkind: Pipeline\nid: caf\xe9\n", "spec.yml:3:8: not UTF-8 text (invalid continuation byte at byte 52)"),
    (b"apiVersion: [lineage-audit/v1\nkind: Pipeline\n", "spec.yml:2:5: invalid YAML: "),  # the parser's words follow
    (b"- a list\n- not a mapping\n", "spec.yml:1:1: a spec is a mapping of settings (apiVersion, kind, id, steps, ...)"),
    (b"", "spec.yml:1:1: a spec is a mapping of settings (apiVersion, kind, id, steps, ...)"),
])
def test_files_that_are_not_specs(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / "spec.yml").write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_spec(tmp_path / "spec.yml")
    message = str(caught.value).replace(str(tmp_path) + "/", "")
    assert message == expected or (expected.endswith(": ") and message.startswith(expected) and "expected ',' or ']'" in message)


# ---------------------------------------------------------------------- the sandbox


@pytest.mark.parametrize("template, message", [
    ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
    ("{{ cycler.__init__.__globals__ }}", "is unsafe"),
    ("{{ params.__class__ }}", "access to attribute '__class__' of 'dict' object is unsafe"),
    ("{{ env.HOME }}", "env.HOME is not allow-listed for templates (list it in LINEAGE_AUDIT_TEMPLATE_ENV)"),
    ("{% include '/etc/passwd' %}", "cannot include '/etc/passwd': only files inside the spec's folder can be included"),
    ("{% include '../outside.sql' %}", "cannot include '../outside.sql': only files inside the spec's folder"),
    ("{{ lipsum() }}", "'lipsum' is undefined"),
    ("{{ nope }}", "'nope' is undefined"),
])
def test_templates_run_in_a_sandbox(tmp_path: Path, template: str, message: str) -> None:
    (tmp_path.parent / "outside.sql").write_text("SELECT 'secret'")
    text = GOOD.replace("{{ params.min_amount }}", template, 1)
    problems = _problems(tmp_path, text)
    assert len(problems) == 1 and problems[0].startswith("spec.yml:19:9: steps[1].sql.query: template: "), problems
    assert message in problems[0]
    assert "secret" not in problems[0]


def test_allow_listed_env_and_includes_from_the_spec_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEAGE_AUDIT_TEMPLATE_ENV", "REGION")
    monkeypatch.setenv("REGION", "eu")
    (tmp_path / "filter.sql").write_text("o.amount > {{ params.min_amount }}")
    text = GOOD.replace("o.amount > {{ params.min_amount }}", "{% include 'filter.sql' %} AND '{{ env.REGION }}' = 'eu'", 1)
    plan = plan_spec(load_spec(_write(tmp_path, text)), date(2024, 5, 1), {"min_amount": "7"})
    assert "o.amount > 7.0 AND 'eu' = 'eu'" in plan.steps[1].sql


def test_params_are_typed_and_checked(tmp_path: Path) -> None:
    loaded = load_spec(_write(tmp_path, GOOD))
    assert plan_spec(loaded, date(2024, 5, 1), {"min_amount": "2.5"}).params == {"min_amount": 2.5}
    with pytest.raises(ConfigError, match="--param min_amount: 'many' is not a number"):
        plan_spec(loaded, date(2024, 5, 1), {"min_amount": "many"})
    with pytest.raises(ConfigError, match="--param min_amont: the spec declares no such parameter \\(did you mean 'min_amount'\\?\\)"):
        plan_spec(loaded, date(2024, 5, 1), {"min_amont": "1"})


# ---------------------------------------------------------------------- plan, commands, schema


def test_the_plan_knows_every_column_before_anything_runs(tmp_path: Path) -> None:
    plan = plan_spec(load_spec(_write(tmp_path, GOOD)), date(2024, 5, 1))
    assert [(s.id, s.kind.value, s.depends_on) for s in plan.steps] == [
        ("orders", "extract", []), ("build", "sql", ["orders"]), ("publish", "load", ["build"])]
    build = plan.steps[1].to_json()
    assert build["reads"] == ["staging.orders", "crm.users"] and build["writes"] == ["mart.revenue"]
    assert build["column_lineage"] == {"mart.revenue": {
        "user_id": [{"from": "staging.orders.user_id", "transformations": ["DIRECT/IDENTITY"]}],
        "total": [{"from": "staging.orders.amount", "transformations": ["DIRECT/AGGREGATION"]}],
    }}
    assert plan.steps[2].to_json()["reads"] == ["mart.revenue"]


def _invoke(*args: str) -> object:
    _register()
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_validate_reports_every_spec_and_one_broken_spec_hides_nothing(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "good.yml")
    _write(tmp_path, GOOD.replace("mode: replace", "mode: replce").replace("id: revenue", "id: revenue_b"), "bad.yml")
    _write(tmp_path, GOOD.replace("depends_on: [orders]", "depends_on: [order]").replace("id: revenue", "id: revenue_c"), "worse.yml")
    _write(tmp_path, "team: x\n", "defaults.yml")  # not a spec: no kind: Pipeline
    res = _invoke("pipelines", "validate", str(tmp_path), "--format", "json")
    assert res.exit_code == 2, res.output
    report = json.loads(res.output)
    assert report["specs"] == 3 and report["valid"] == 1
    assert sorted(Path(p["file"]).name for p in report["problems"]) == ["bad.yml", "worse.yml", "worse.yml"]
    text = _invoke("pipelines", "validate", str(tmp_path / "good.yml"))
    assert text.exit_code == 0 and "1 valid spec, 0 problems" in text.output


def test_validate_finding_no_spec_fails_instead_of_passing(tmp_path: Path) -> None:
    _write(tmp_path, "team: x\n", "defaults.yml")  # YAML, but no spec
    res = CliRunner().invoke(cli, ["pipelines", "validate", str(tmp_path)])
    assert res.exit_code == 2
    assert f"no pipeline spec in {tmp_path} (a spec is a YAML file saying kind: Pipeline)" in res.output


def test_examples_validate_and_plan(tmp_path: Path) -> None:
    res = _invoke("pipelines", "validate", str(EXAMPLES))
    assert res.exit_code == 0, res.output
    assert "3 valid specs, 0 problems" in res.output
    plan = json.loads(_invoke("pipelines", "plan", str(EXAMPLES / "daily_revenue.yml"), "--date", "2024-05-01",
                              "--param", "min_amount=5", "--format", "json").output)
    assert plan["params"] == {"min_amount": 5.0} and plan["team"] == "growth"  # team from defaults-growth.yml
    revenue = plan["steps"][1]["column_lineage"]["mart.daily_revenue"]
    assert revenue["revenue"] == [{"from": "staging.orders.amount", "transformations": ["DIRECT/AGGREGATION"]}]
    assert revenue["country"] == [{"from": "crm.users.country", "transformations": ["DIRECT/IDENTITY"]}]
    for name in ("churn_inputs.yml", "weather_units.yml"):
        res = _invoke("pipelines", "plan", str(EXAMPLES / name), "--date", "2024-05-01")
        assert res.exit_code == 0, res.output


def test_the_committed_json_schema_is_the_models(tmp_path: Path) -> None:
    committed = (REPO / "pipelines" / "spec.schema.json").read_text()
    assert committed == spec_json_schema(), "pipelines/spec.schema.json is stale: run `lineage-audit pipelines schema --write`"


def test_the_json_schema_accepts_the_examples_and_refuses_a_typo() -> None:
    import jsonschema
    import yaml

    schema = json.loads(spec_json_schema())
    spec = yaml.safe_load((EXAMPLES / "churn_inputs.yml").read_text())
    jsonschema.validate(spec, schema)
    spec["steps"][2]["load"]["mode"] = "upsrt"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(spec, schema)


def test_a_check_on_a_column_the_table_does_not_have(tmp_path: Path) -> None:
    text = GOOD + "  - id: quality\n    depends_on: [build]\n    check:\n      dataset: mart.revenue\n      checks:\n" \
                  "        - not_null: totl\n        - accepted_values: {column: user_id, values: [1]}\n"
    assert _problems(tmp_path, text) == [
        "spec.yml:31:21: steps[3].check.checks[0].not_null: mart.revenue has no column 'totl' (did you mean 'total'?)"]


def test_validate_counts_a_spec_whose_problem_is_in_its_sql_file_as_invalid(tmp_path: Path) -> None:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "build.sql").write_text("CREATE TABLE mart.revenue AS SELECT user_id FROM nowhere.t\n")
    start, end = GOOD.index("      query: |"), GOOD.index("  - id: publish")
    _write(tmp_path, GOOD[:start] + "      file: sql/build.sql\n" + GOOD[end:])
    report = json.loads(_invoke("pipelines", "validate", str(tmp_path), "--format", "json").output)
    assert (report["specs"], report["valid"]) == (1, 0)
    assert [Path(p["file"]).name for p in report["problems"]] == ["build.sql"]
