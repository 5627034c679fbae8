"""The churn model's feature table: ``features.churn_features`` from ``analytics.user_orders``
and ``weather.hourly``, one SQL file run on the warehouse with full OpenLineage.

The step reuses the pipelines' run context (START/COMPLETE or FAIL, ``sql`` and ownership
facets, schema, column lineage from our SQL engine, output row count) and the users-orders
SQL model machinery (transpiled per warehouse, swapped in atomically).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import expressions as exp

from lineage_auditor.errors import PipelineError

from pipelines.runtime.events import JobSpec, RunContext
from pipelines.runtime.run import Environment
from pipelines.users_orders.transpile import SOURCE_DIALECT, SqlModel

SQL_FILE = Path(__file__).resolve().parent / "churn_features.sql"
NAMESPACE = "lineage-audit"
JOB_NAME = "features.churn_features"
OWNERS = (("team:ml-platform", "MAINTAINER"),)
INPUT_TABLES = ("analytics.user_orders", "weather.hourly")


def load_churn_model(path: Path = SQL_FILE) -> SqlModel:
    """The feature SQL as a :class:`SqlModel` (``CREATE TABLE … AS SELECT``)."""
    text = path.read_text(encoding="utf-8")
    create = sqlglot.parse_one(text, read=SOURCE_DIALECT)
    if not isinstance(create, exp.Create):
        raise PipelineError(f"expected CREATE TABLE ... AS SELECT, found {create.key.upper()}", file=str(path))
    table = create.this if isinstance(create.this, exp.Table) else create.this.find(exp.Table)
    return SqlModel(path=path, text=text, target=f"{table.db}.{table.name}", statement=create)


def warehouse_schema(env: Environment, tables: tuple[str, ...] = INPUT_TABLES) -> dict[str, Any]:
    """The input tables' columns as they are in the warehouse, for the SQL engine."""
    schema: dict[str, Any] = {}
    for name in tables:
        db, table = name.split(".", 1)
        schema.setdefault(db, {})[table] = dict(env.target.columns(name))
    return schema


def run_churn_features(env: Environment, *, parent: RunContext | None = None, sql_file: Path = SQL_FILE) -> RunContext:
    """Build the feature table; returns the finished run (state COMPLETE or FAIL, never raises on FAIL)."""
    model = load_churn_model(sql_file)
    dialect = env.target.dialect
    job = JobSpec(
        namespace=parent.job.namespace if parent else NAMESPACE,
        name=JOB_NAME,
        description="Churn model features: order history and local weather per user (user id hashed).",
        owners=OWNERS,
        code_file=str(model.path),
        job_type="QUERY",
        sql=model.sql(dialect),
        sql_dialect=dialect,
    )
    step = parent.child(job) if parent else RunContext(env.events, job)
    output = env.target.dataset(model.target)
    for name in INPUT_TABLES:
        step.add_input(env.target.dataset(name), schema=env.target.columns(name))
    step.add_output(output, lineage=model.lineage(warehouse_schema(env), env.target.dataset))
    try:
        with step:
            built = env.target.replace_from_sql(model.target, model.select_sql(dialect))
            step.add_output(output, schema=env.target.columns(model.target), rows=built.rows)
    except Exception:  # the FAIL event carries the error; the caller reads step.state
        pass
    return step
