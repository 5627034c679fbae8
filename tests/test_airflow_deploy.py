"""deploy/airflow/ stays in step with the compiler: DAG folder, specs beside it, OpenLineage settings.

The compose file and the Helm values cannot run here (no Docker daemon, no cluster); they are
parsed, and what they name is checked against what the compiler writes and the names the
local runner uses.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from pipelines.airflow.compile import compile_specs
from pipelines.dsl import load_spec
from pipelines.dsl.listing import JOB_NAMESPACE
from pipelines.specs import reference_spec_path

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "airflow"


def _yaml(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def _transport(text: str) -> dict[str, Any]:
    transport = json.loads(text)
    assert transport["type"] == "http" and transport["endpoint"] == "api/v1/lineage", transport
    return transport


def _spec_dir_of(dags_folder: str) -> str:
    """Where the compiled files look for their specs: ``specs`` beside the DAG folder."""
    return str(Path(dags_folder).parent / "specs")


def test_compose_runs_celery_on_the_folder_it_compiles_into_and_reports_to_its_marquez() -> None:
    compose = _yaml("docker-compose.yml")
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__OPENLINEAGE__NAMESPACE"] == JOB_NAMESPACE
    init = shlex.split(compose["services"]["airflow-init"]["command"][-1].split("&&")[-1])
    assert init[:4] == ["lineage-audit", "pipelines", "compile", "--airflow"]
    assert init[4] == env["AIRFLOW__CORE__DAGS_FOLDER"] and init[5] == _spec_dir_of(init[4])
    # the transport points at the Marquez API service of the compose file it includes
    url = _transport(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])["url"]
    (included,) = compose["include"]
    marquez = yaml.safe_load((DEPLOY / included).read_text())["services"]
    host, port = url.removeprefix("http://").split(":")
    assert host in marquez and marquez[host]["environment"]["MARQUEZ_PORT"] == port
    for name in ("airflow-scheduler", "airflow-worker", "airflow-dag-processor", "airflow-apiserver", "airflow-triggerer"):
        assert compose["services"][name]["environment"] is env or compose["services"][name]["environment"] == env
    assert "LINEAGE_AUDIT_TARGET" in env


def test_helm_values_run_kubernetes_on_the_git_synced_dag_folder_and_report_to_marquez() -> None:
    values = _yaml("values.yaml")
    assert values["executor"] == "KubernetesExecutor"
    sync = values["dags"]["gitSync"]
    assert values["config"]["core"]["dags_folder"] == f"/opt/airflow/dags/repo/{sync['subPath']}"
    assert values["config"]["openlineage"]["namespace"] == JOB_NAMESPACE
    assert "marquez" in _transport(values["config"]["openlineage"]["transport"])["url"]
    assert {s["envName"] for s in values["secret"]} == {"LINEAGE_AUDIT_TARGET"}  # the warehouse password stays a secret


def test_a_spec_compiled_into_the_layout_they_assume_finds_its_spec(tmp_path: Path) -> None:
    """specs/ beside dags/: the DAG file's SPEC path resolves from wherever the pair is mounted."""
    specs = tmp_path / "project" / "specs"
    specs.mkdir(parents=True)
    text = reference_spec_path("churn_features").read_text()  # its SQL file is elsewhere: inline a query instead
    (specs / "churn.yml").write_text(text.replace("file: ../features/churn_features.sql",
                                                  "query: CREATE TABLE features.churn_features AS SELECT 1 AS user_key"))
    (compiled,) = compile_specs([load_spec(specs / "churn.yml")], tmp_path / "project" / "dags")
    assert f'SPEC = Path(__file__).parent / "../specs/churn.yml"' in compiled.path.read_text()
    assert str(tmp_path / "project" / "dags") == str(compiled.path.parent)
    assert Path(_spec_dir_of(str(compiled.path.parent))) == specs
    docker = (DEPLOY / "Dockerfile").read_text()
    assert "[airflow]" in docker and "apache/airflow:${AIRFLOW_VERSION}" in docker
