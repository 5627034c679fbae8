"""Run compiled DAGs with ``dag.test()`` in this one process (started by tests/test_airflow.py).

Airflow reads its configuration when first imported, so the caller sets everything in the
environment before starting this script: ``AIRFLOW_HOME`` (a temporary folder), SQLite,
``AIRFLOW__CORE__LOAD_EXAMPLES=False``, ``AIRFLOW__CORE__DAGS_FOLDER`` (the compiled DAGs) and
the OpenLineage provider's file transport and namespace. No api-server, no scheduler: the
metadata database is migrated once and every DAG run goes through ``dag.test``, so Airflow's
import cost (most of the time) is paid once for all of them.

Usage: ``python airflow_harness.py RUNS.json RESULT.json`` where RUNS.json lists
``{"dag_id", "logical_date", "conf"}``. RESULT.json gets each run's state and its tasks'
states and tries, and the DagBag's import errors.

Airflow 3.3.2 workaround (the only one, and only here): a DAG with ``deadline=`` makes
``dag.test`` fail after all its tasks succeeded (``'dict' object has no attribute 'hex'`` in
``DeadlineAlertModel.get_by_id``). The compiled DAG keeps its deadline (the DagBag parses it
and the result records it); the harness runs it with the deadline removed.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REQUIRED_ENV = ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__OPENLINEAGE__TRANSPORT")


def main(runs_file: str, result_file: str) -> int:
    import os

    missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
    if missing:
        print(f"set {', '.join(missing)} before starting the harness (Airflow reads them at import)", file=sys.stderr)
        return 2
    started = time.monotonic()
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import initdb

    imported = time.monotonic()
    initdb()
    migrated = time.monotonic()
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    result: dict[str, Any] = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
                              "dags": sorted(bag.dag_ids), "runs": []}
    for run in json.loads(Path(runs_file).read_text()):
        dag = bag.get_dag(run["dag_id"])
        if dag is None:
            result["runs"].append({**run, "state": "missing"})
            continue
        deadline = getattr(dag, "deadline", None)
        if deadline:
            dag.deadline = None  # the 3.3.2 workaround above
        began = time.monotonic()
        dagrun = dag.test(logical_date=datetime.fromisoformat(run["logical_date"]), run_conf=run.get("conf"))
        tasks = {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number}
                 for ti in dagrun.get_task_instances()}
        result["runs"].append({**run, "state": str(dagrun.state), "tasks": tasks, "had_deadline": bool(deadline),
                               "seconds": round(time.monotonic() - began, 1)})
    _flush_lineage()
    result["seconds"] = {"import": round(imported - started, 1), "migrate": round(migrated - imported, 1),
                         "total": round(time.monotonic() - started, 1)}
    Path(result_file).write_text(json.dumps(result, indent=2))
    return 0


def _flush_lineage() -> None:
    """DAG-level events go through the listener's process pool: wait for them before exiting."""
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener

    get_openlineage_listener().before_stopping(None)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
