"""The reference specs on a real Apache Airflow 3: compiled DAGs, run with ``dag.test()``.

One Airflow process (tests/airflow_harness.py, started from here because Airflow reads its
configuration when first imported) migrates a SQLite metadata database once and runs every
compiled DAG; the OpenLineage provider writes its events to a file. The local runner runs the
same specs for the same day into the same warehouse path first (its tables are moved aside),
so both report the very same dataset names and everything they produced can be compared:
tables row for row, column lineage field for field, and the audit's findings.

Airflow comes from the ``airflow`` extra (scripts/airflow.sh, run by ``make test``). Without
it these tests fail saying so: they never skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from pipelines.dsl import load_spec
from pipelines.dsl.listing import JOB_NAMESPACE
from pipelines.dsl.runner import run_spec
from pipelines.sources.mock_api import MockApiServer
from pipelines.specs import reference_spec_path
from reference_specs import spec_variant
from service_helpers import add_token, start_server

HERE = Path(__file__).resolve().parent
DAY = date(2024, 6, 1)
TOKEN = "airflow-stage-token"
STAMPS = {"run_id", "source_request"}  # columns a run stamps on its rows (its run id, its request URL)
REFERENCE = ("weather", "users_orders", "churn_features")  # in order: churn_features reads the other two

FLAKY_STEPS = '''\
from pathlib import Path

from lineage_auditor.errors import PipelineError

TRIES = Path(__file__).with_name("tries.txt")


def fetch(ctx):
    """Fails its first try (the source is not ready), works on the second."""
    tries = int(TRIES.read_text()) + 1 if TRIES.exists() else 1
    TRIES.write_text(str(tries))
    if tries < 2:
        raise PipelineError(f"source not ready (try {tries})")
    ctx.execute("CREATE SCHEMA IF NOT EXISTS raw; CREATE OR REPLACE TABLE raw.flaky AS SELECT 1 AS a")
    return {"raw.flaky": 1}


def gone(ctx):
    raise PipelineError("the orders export is gone")
'''

FLAKY = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: flaky_ingest
team: qa
owners: [{name: "team:qa"}]
schedule: "@daily"
sla: {deadline: 6h}
steps:
  - id: fetch
    retries: {count: 2, backoff: 1s, max_delay: 2s, jitter: false}
    python: {callable: "flaky_steps:fetch", outputs: [raw.flaky]}
"""

BROKEN = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: broken_ingest
team: qa
owners: [{name: "team:qa"}]
retries: {count: 1, backoff: 1s, jitter: false}
steps:
  - id: fetch
    python: {callable: "flaky_steps:gone", outputs: [raw.broken]}
  - id: publish
    depends_on: [fetch]
    check: {dataset: raw.broken, checks: [{row_count: {min: 1}}]}
"""

AUDIT_CONFIG = """\
version: 1
ai_datasets:
  - name: features.churn_features
    purpose: Features for the churn model.
    owner: team:ml
    freshness: {max_age: 3650d}
tags:
  - {column: staging.users.email, tags: [pii.email]}
  - {column: staging.users.signup_date, tags: [pii.quasi]}
sensitive_tags: ["pii", "pii.*"]
checks: {data_drift: false, lineage_drift: false}
"""


@dataclass
class Stage:
    root: Path
    local_warehouse: Path
    airflow_warehouse: Path
    local_store: Path
    central_store: Path  # what `lineage-audit serve` stored of the provider's events
    events: list[dict[str, Any]]
    result: dict[str, Any]
    output: str

    def run(self, dag_id: str) -> dict[str, Any]:
        return next(r for r in self.result["runs"] if r["dag_id"] == dag_id)

    def job_events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["job"]["name"] == name]


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    if importlib.util.find_spec("airflow") is None or importlib.util.find_spec("airflow.providers.openlineage") is None:
        pytest.fail("Apache Airflow 3 and its OpenLineage provider are not installed in this venv: "
                    "run scripts/airflow.sh (make test does)", pytrace=False)
    root = tmp_path_factory.mktemp("airflow-stage")
    warehouse = root / "warehouse.duckdb"  # both runs write here in turn: the same dataset names
    specs = root / "specs"
    specs.mkdir()
    (specs / "flaky_steps.py").write_text(FLAKY_STEPS)
    (specs / "flaky.yml").write_text(FLAKY)
    (specs / "broken.yml").write_text(BROKEN)
    reference = {name: reference_spec_path(name) for name in REFERENCE}
    # weather replays recorded responses (the shipped spec calls the live API)
    reference["weather"] = spec_variant(root, "weather", ("      options:\n", "      options:\n        offline: true\n"))
    os.environ["LINEAGE_AUDIT_USERS_API_TOKEN"] = TOKEN
    try:
        with MockApiServer(n_users=80, token=TOKEN, seed=11) as api:
            _run_locally(root, warehouse, api.url, reference)
            shutil.move(warehouse, root / "local" / "warehouse.duckdb")
            dags = root / "dags"
            _register()
            compiled = CliRunner().invoke(cli, ["pipelines", "compile", "--airflow", str(dags), str(specs),
                                                *(str(reference[n]) for n in REFERENCE)])
            assert compiled.exit_code == 0, compiled.output
            token = add_token(root, "airflow-prod")
            serve = start_server(["--store", f"embedded:{root / 'central.db'}", "--tokens", str(root / "tokens.json")], root)
            try:
                result, output = _run_airflow(root, dags, warehouse, api.url, serve=(serve.url, token))
            finally:
                serve.stop()
    finally:
        os.environ.pop("LINEAGE_AUDIT_USERS_API_TOKEN", None)
    events = [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines() if line.strip()]
    yield Stage(root, root / "local" / "warehouse.duckdb", warehouse, root / "local" / "lineage.db", root / "central.db",
                events, result, output)


def _run_locally(root: Path, warehouse: Path, api_url: str, reference: dict[str, Path]) -> None:
    for name in REFERENCE:
        params = {"api_url": api_url} if name == "users_orders" else None
        summary = run_spec(load_spec(reference[name]), DAY, params=params, target=f"duckdb:{warehouse}",
                           lineage=f"embedded:{root / 'local' / 'lineage.db'}", home=root / "local")
        assert summary.ok, summary


def _run_airflow(root: Path, dags: Path, warehouse: Path, api_url: str,
                 serve: tuple[str, str]) -> tuple[dict[str, Any], str]:
    """Every DAG through ``dag.test``; the provider writes its events to a file and, through its
    unchanged HTTP transport with an API key, to ``lineage-audit serve`` (``serve``: url, token)."""
    home = root / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": JOB_NAMESPACE,  # task jobs then match the local runner's
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "composite", "transports": [
            {"type": "file", "log_file_path": str(root / "events.jsonl"), "append": True},
            {"type": "http", "url": serve[0], "auth": {"type": "api_key", "apiKey": serve[1]}},
        ]}),
        "LINEAGE_AUDIT_TARGET": f"duckdb:{warehouse}",
        "LINEAGE_AUDIT_HOME": str(root / "airflow-state"),
    }
    logical = f"{DAY.isoformat()}T00:00:00+00:00"
    runs = [{"dag_id": dag_id, "logical_date": logical, "conf": conf} for dag_id, conf in (
        ("weather", None), ("users_orders", {"api_url": api_url}), ("churn_features", None),
        ("flaky_ingest", None), ("broken_ingest", None))]
    (root / "runs.json").write_text(json.dumps(runs))
    try:
        done = subprocess.run([sys.executable, str(HERE / "airflow_harness.py"), str(root / "runs.json"),
                               str(root / "result.json")], env=env, cwd=root, capture_output=True, text=True, timeout=540)
    except subprocess.TimeoutExpired:
        pytest.fail("Airflow (dag.test of every compiled DAG) did not finish within 9 minutes", pytrace=False)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"Airflow did not run the compiled DAGs (exit {done.returncode}):\n{output[-4000:]}", pytrace=False)
    return json.loads((root / "result.json").read_text()), output


# ---------------------------------------------------------------------- DAG runs


def test_every_compiled_dag_imports_and_the_reference_pipelines_succeed(stage: Stage) -> None:
    assert stage.result["import_errors"] == {}
    assert stage.result["dags"] == ["broken_ingest", "churn_features", "flaky_ingest", "users_orders", "weather"]
    for dag_id in ("weather", "users_orders", "churn_features"):
        run = stage.run(dag_id)
        assert run["state"] == "success", run
        assert {t["state"] for t in run["tasks"].values()} == {"success"}, run
    assert stage.run("flaky_ingest")["had_deadline"]  # the compiled deadline parses (run without it: see harness)


def test_the_tables_are_the_local_runners_row_for_row(stage: Stage) -> None:
    local, airflow = _tables(stage.local_warehouse), _tables(stage.airflow_warehouse)
    assert {"analytics.user_orders", "features.churn_features", "weather.hourly", "staging.users"} <= set(local)
    for table, rows in local.items():
        assert rows, table
        assert airflow[table] == rows, table
    # the rows a connector stamps carry the OpenLineage run of the Airflow task that wrote them
    complete = next(e for e in stage.job_events("weather.load_hourly") if e["eventType"] == "COMPLETE")
    with duckdb.connect(str(stage.airflow_warehouse), read_only=True) as conn:
        stamped = {r[0] for r in conn.execute("SELECT DISTINCT run_id FROM weather.hourly").fetchall()}
    assert stamped == {complete["run"]["runId"]}


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows without the run stamps, sorted (the order rows land in is not the data).

    Floating-point values are compared to 12 significant digits: DuckDB sums a parallel
    aggregate (an AVG) in whatever order its threads finish, so the last bits of a double
    differ between two runs of the same SQL on the same rows.
    """
    out = {}
    with duckdb.connect(str(path), read_only=True) as conn:
        names = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                             "WHERE table_schema NOT IN ('raw') ORDER BY 1, 2").fetchall()
        for schema, table in names:
            columns = [c[0] for c in conn.execute(f'DESCRIBE "{schema}"."{table}"').fetchall() if c[0] not in STAMPS]
            select = ", ".join(f'"{c}"' for c in columns)
            rows = [tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row)
                    for row in conn.execute(f'SELECT {select} FROM "{schema}"."{table}"').fetchall()]
            out[f"{schema}.{table}"] = sorted(rows, key=repr)
    return out


# ---------------------------------------------------------------------- lineage


def test_the_providers_column_lineage_is_the_local_runners(stage: Stage) -> None:
    from collectors.store import EmbeddedStore

    with EmbeddedStore(stage.local_store) as store:
        local = _column_lineage(list(store.events()))
    airflow = _column_lineage(stage.events)
    assert len(local) >= 40  # every output column of the three pipelines, with its inputs
    assert ("churn_features.build_churn_features", "features.churn_features", "revenue_usd") in {
        (job, name.split(".", 1)[1], field) for job, _, name, field in local}
    assert {k: v for k, v in airflow.items() if k[0].split(".")[0] in {"weather", "users_orders", "churn_features"}} == local


def _column_lineage(events: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], list[tuple[str, ...]]]:
    """(job, dataset namespace, name, field) -> its input fields with transformation types, from COMPLETE events."""
    out = {}
    for event in events:
        if event["eventType"] != "COMPLETE":
            continue
        assert event["job"]["namespace"] == JOB_NAMESPACE
        for output in event.get("outputs") or []:
            facet = (output.get("facets") or {}).get("columnLineage") or {}
            for field, spec in facet.get("fields", {}).items():
                out[(event["job"]["name"], output["namespace"], output["name"], field)] = sorted(
                    (i["namespace"], i["name"], i["field"],
                     *sorted(f"{t['type']}/{t.get('subtype')}/{t.get('masking', False)}" for t in i.get("transformations", [])))
                    for i in spec["inputFields"])
    return out


def test_task_runs_are_children_of_the_dag_run_named_like_the_runners(stage: Stage) -> None:
    complete = [e for e in stage.job_events("users_orders.build_user_orders") if e["eventType"] == "COMPLETE"][0]
    parent = complete["run"]["facets"]["parent"]
    assert (parent["job"]["namespace"], parent["job"]["name"]) == (JOB_NAMESPACE, "users_orders")
    dag_run = [e for e in stage.job_events("users_orders") if e["eventType"] == "COMPLETE"]
    assert [e["run"]["runId"] for e in dag_run] == [parent["run"]["runId"]]
    job = complete["job"]["facets"]
    assert "SELECT" in job["sql"]["query"] and job["sourceCodeLocation"]["url"]
    assert [o["name"] for o in job["ownership"]["owners"]] == ["team:analytics-engineering"]
    checks = [e for e in stage.job_events("weather.plausible") if e["eventType"] == "COMPLETE"][0]
    assertions = checks["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(a["assertion"], a["success"]) for a in assertions] == [("not_null", True), ("row_count", True)]


def test_task_runs_carry_who_ran_them_and_what_they_cost(stage: Stage) -> None:
    """The governance facets travel in the provider's events like the runner's (no policy on the workers)."""
    from tests.olspec import validate_own_facet

    complete = [e for e in stage.job_events("users_orders.build_user_orders") if e["eventType"] == "COMPLETE"][0]
    run_by, cost = complete["run"]["facets"]["lineageAudit_runBy"], complete["run"]["facets"]["lineageAudit_cost"]
    validate_own_facet(run_by, "RunByRunFacet")
    validate_own_facet(cost, "CostRunFacet")
    assert run_by["team"] == "analytics-engineering" and run_by["runBy"] and "policy" not in run_by
    assert cost["engine"] == "duckdb" and cost["measuredBy"] == "duckdb-profiling" and cost["cpuSeconds"] > 0
    assert cost["rowsRead"] > 0 and cost["rowsWritten"] > 0


# ---------------------------------------------------------------------- retries and failures


def test_a_flaky_step_is_retried_by_airflow_and_succeeds(stage: Stage) -> None:
    run = stage.run("flaky_ingest")
    assert run["state"] == "success" and run["tasks"]["fetch"] == {"state": "success", "try_number": 2}
    states = [e["eventType"] for e in stage.job_events("flaky_ingest.fetch")]
    assert states == ["START", "FAIL", "START", "COMPLETE"]
    failed = next(e for e in stage.job_events("flaky_ingest.fetch") if e["eventType"] == "FAIL")
    assert "source not ready (try 1)" in failed["run"]["facets"]["errorMessage"]["message"]
    assert (stage.root / "specs" / "tries.txt").read_text() == "2"


def test_a_permanent_failure_fails_the_dag_run_with_the_error_in_the_events(stage: Stage) -> None:
    run = stage.run("broken_ingest")
    assert run["state"] == "failed"
    assert run["tasks"]["fetch"] == {"state": "failed", "try_number": 2}  # retried once (retries.count 1), then failed
    assert run["tasks"]["publish"]["state"] == "upstream_failed"
    fails = [e for e in stage.job_events("broken_ingest.fetch") if e["eventType"] == "FAIL"]
    assert len(fails) == 2
    assert all(e["run"]["facets"]["errorMessage"]["message"] == "the orders export is gone" for e in fails)
    assert [e["eventType"] for e in stage.job_events("broken_ingest")] == ["FAIL"]  # no DAG-level START under dag.test
    assert '"alert": "step_failed"' in stage.output and '"pipeline": "broken_ingest"' in stage.output


# ---------------------------------------------------------------------- the audit


def test_the_audit_finds_the_same_on_airflows_events_as_on_the_local_runners(stage: Stage) -> None:
    _register()
    runner = CliRunner()
    collected = stage.root / "airflow-lineage.db"
    done = runner.invoke(cli, ["collect", "--from", f"file:{stage.root / 'events.jsonl'}", "--to", f"embedded:{collected}"])
    assert done.exit_code == 0, done.output
    config = stage.root / "lineage-audit.yml"
    config.write_text(AUDIT_CONFIG)
    findings = {}
    for name, store in (("local", stage.local_store), ("airflow", collected)):
        done = runner.invoke(cli, ["audit", "--config", str(config), "--store", f"embedded:{store}", "--format", "json"])
        assert done.exit_code in (0, 1), done.output
        findings[name] = sorted((f["check"], f["severity"], f["subject"], f["title"], json.dumps(f["evidence"], sort_keys=True))
                                for f in json.loads(done.stdout)["findings"])
    assert any(f[0] == "pii" and "signup_date" in f[4] for f in findings["local"]), findings["local"]
    assert findings["airflow"] == findings["local"]


def test_airflows_provider_reports_to_serve_unchanged(stage: Stage) -> None:
    """The provider's own HTTP transport (an API key, nothing of ours on the Airflow side) sends
    every event to `lineage-audit serve`: all stored, each once, and its metrics see the runs."""
    from collectors.store import EmbeddedStore
    from prometheus_client.parser import text_string_to_metric_families

    def identity(e: dict[str, Any]) -> tuple[str, str, str]:
        return e["run"]["runId"], e["eventType"], e["eventTime"]

    with EmbeddedStore(stage.central_store) as store:
        central = list(store.events())
    assert len(central) == len({identity(e) for e in central}), "each event stored once"
    assert {identity(e) for e in central} == {identity(e) for e in stage.events}, "what the file got, serve got"
    done = subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "metrics", "--store", f"embedded:{stage.central_store}"],
                          capture_output=True, text=True, timeout=120, cwd=stage.root)
    assert done.returncode == 0, done.stderr
    runs = {(s.labels["pipeline"], s.labels["step"], s.labels["state"]): s.value
            for family in text_string_to_metric_families(done.stdout) for s in family.samples
            if s.name == "lineage_audit_runs_total"}
    assert runs[("users_orders", "", "COMPLETE")] == 1 and runs[("broken_ingest", "", "FAIL")] == 1, runs
    assert runs[("flaky_ingest", "fetch", "FAIL")] >= 1 and runs[("flaky_ingest", "fetch", "COMPLETE")] == 1, runs
