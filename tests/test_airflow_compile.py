"""`pipelines compile --airflow`: one static, deterministic, readable DAG file per spec (no Airflow needed)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from pipelines.specs import REFERENCE_PIPELINES, reference_spec_path

REPO = Path(__file__).resolve().parents[1]

FULL = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: nightly_sales
description: Sales per shop, for the "morning" report.
team: retail
owners: [{name: "team:retail"}, {name: "ana@example.com"}]
tags: [finance]
schedule: "@daily"
stagger: 2h
timezone: Europe/Berlin
catchup: true
max_active_runs: 3
sla: {max_duration: 2h, deadline: 6h}
timeout: 30m
retries: {count: 3, backoff: 1m, max_delay: 20m}
resources: {pool: warehouse, queue: etl}
params:
  min_amount: {type: number, default: 0, description: smallest order counted}
  region: {type: string}
  since: {type: date, default: 2024-01-01}
  dry: {type: boolean, default: false}
steps:
  - id: orders
    extract:
      into: staging.orders
      file: {path: orders.csv, columns: [{name: shop, type: VARCHAR}, {name: amount, type: "DECIMAL(14,2)"}]}
  - id: import
    depends_on: [orders]
    timeout: 5m
    retries: {count: 0}
    resources: {pool: heavy, pool_slots: 2}
    sql:
      query: CREATE TABLE mart.sales AS SELECT shop, SUM(amount) AS total FROM staging.orders GROUP BY shop
  - id: dag
    depends_on: [orders, import]
    check: {dataset: mart.sales, checks: [{not_null: shop}]}
"""


def _compile(*args: str) -> tuple[int, str, str]:
    _register()
    result = CliRunner().invoke(cli, ["pipelines", "compile", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_reference_specs_compile_to_the_same_bytes_every_time(tmp_path: Path) -> None:
    specs = [str(reference_spec_path(name)) for name in REFERENCE_PIPELINES]
    code, out, _ = _compile("--airflow", str(tmp_path / "dags"), *specs)
    assert code == 0, out
    files = sorted((tmp_path / "dags").glob("*.py"))
    assert len(files) == 3 and "(unchanged)" not in out
    first = {f.name: f.read_bytes() for f in files}
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    code, out, _ = _compile("--airflow", str(tmp_path / "dags"), *specs)
    assert code == 0 and out.count("(unchanged)") == 3
    assert {f.name: f.read_bytes() for f in files} == first
    assert {f.name: f.stat().st_mtime_ns for f in files} == stamps  # not rewritten: no spurious diffs
    for name, text in first.items():
        tree = ast.parse(text)  # valid Python
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert imported == {"__future__", "datetime", "pathlib", "airflow.sdk", "pipelines.airflow.operator"}, name


def test_the_dag_file_says_what_the_spec_says(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("shop,amount\n")
    (tmp_path / "sales.yml").write_text(FULL)
    code, out, err = _compile("--airflow", str(tmp_path / "dags"), str(tmp_path / "sales.yml"))
    assert code == 0, err
    text = (tmp_path / "dags" / "nightly_sales.py").read_text()
    assert 'SPEC = Path(__file__).parent / "../sales.yml"' in text  # relative: the folder can move as a whole
    assert 'dag_id="nightly_sales"' in text
    assert 'description="Sales per shop, for the \\"morning\\" report."' in text
    # @daily staggered inside 2h by the pipeline id, exactly as `pipelines list` shows it
    from pipelines.dsl import load_spec
    from pipelines.dsl.listing import schedule_of
    from datetime import datetime, timezone

    cron, _ = schedule_of(load_spec(tmp_path / "sales.yml"), datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert cron != "0 0 * * *"
    assert f'schedule=CronTriggerTimetable("{cron}", timezone="Europe/Berlin")' in text
    for line in ("catchup=True,", "max_active_runs=3,", "dagrun_timeout=timedelta(hours=2),",
                 "reference=DeadlineReference.DAGRUN_LOGICAL_DATE,", "interval=timedelta(hours=6),",
                 'callback=SyncCallback("pipelines.airflow.operator.deadline_missed", kwargs={"pipeline": "nightly_sales"}),',
                 '"dry": Param(False, type="boolean"),',
                 '"min_amount": Param(0, type="number", description="smallest order counted"),',
                 '"region": Param(None, type=["null", "string"]),',
                 '"since": Param("2024-01-01", type="string", format="date"),',
                 'tags=["finance", "team:retail"],',
                 '"owner": "team:retail,ana@example.com",', '"retries": 3,', '"retry_delay": timedelta(minutes=1),',
                 '"max_retry_delay": timedelta(minutes=20),', '"retry_exponential_backoff": 2.0,',
                 '"execution_timeout": timedelta(minutes=30),', '"pool": "warehouse",', '"queue": "etl",',
                 '"on_failure_callback": task_failed,'):
        assert line in text, line
    # a step's own settings; ids that are Python keywords or names the file uses get a suffix
    task = text[text.index("import_task = SpecStepOperator("):text.index("dag_task = SpecStepOperator(")]
    for line in ('task_id="import",', "execution_timeout=timedelta(minutes=5),", "retries=0,",
                 'pool="heavy",', "pool_slots=2,"):
        assert line in task, line
    assert text.rstrip().endswith("orders >> import_task\n    [orders, import_task] >> dag_task")
    assert "sla=" not in text and "schedule_interval" not in text and "airflow.operators" not in text


def test_compiling_never_imports_airflow() -> None:
    code = ("import sys, tempfile\nfrom pathlib import Path\nfrom pipelines.dsl import load_spec\n"
            "from pipelines.airflow.compile import compile_specs\nfrom pipelines.specs import reference_spec_path\n"
            "compile_specs([load_spec(reference_spec_path('weather'))], Path(tempfile.mkdtemp()))\n"
            "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_broken_spec_writes_nothing_and_says_where(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("shop,amount\n")
    (tmp_path / "good.yml").write_text(FULL)
    (tmp_path / "bad.yml").write_text(FULL.replace("id: nightly_sales", "id: broken").replace("depends_on: [orders]\n", "depends_on: [order]\n"))
    code, _, err = _compile("--airflow", str(tmp_path / "dags"), str(tmp_path))
    assert code == 2
    assert f"{tmp_path / 'bad.yml'}:28:18: steps[1].depends_on[0]: no step named 'order' (did you mean 'orders'?)" in err
    assert not (tmp_path / "dags").exists()


def test_two_specs_with_one_id_are_refused(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("shop,amount\n")
    (tmp_path / "a.yml").write_text(FULL)
    (tmp_path / "b.yml").write_text(FULL)
    code, _, err = _compile("--airflow", str(tmp_path / "dags"), str(tmp_path))
    assert code == 2 and "pipeline id 'nightly_sales' is used by" in err and "DAG ids must be unique" in err
