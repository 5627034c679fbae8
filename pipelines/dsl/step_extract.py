"""``extract`` steps: an HTTP API, a file, a SQL query or a named connector into a staging table.

Each reports the source it read (with its quality and IDENTITY column lineage from its fields)
and dead-letters the records that do not fit, with where they were and why.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lineage_auditor.errors import ConfigError, PipelineError
from lineage_auditor.model import ColumnRef, DatasetLineage, DatasetRef, InputField, OutputField
from pipelines.dsl.connectors import ConnectorResult, DatasetIO
from pipelines.dsl.model import FileFormat, Step
from pipelines.dsl.plan import Plan, StepPlan, copied_lineage
from pipelines.dsl.source_quality import source_facets
from pipelines.dsl.step_common import StepOutcome, dead_letter_path, warehouse_call
from pipelines.runtime.naming import file_dataset, http_dataset, public_url
from pipelines.runtime.run import Environment
from pipelines.runtime.targets import Target


def run(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> StepOutcome:
    extract = step.extract
    assert extract is not None
    if extract.http is not None:
        return _extract_http(step, step_plan, plan, env)
    if extract.sql is not None:
        return _extract_sql(step, step_plan, plan, env)
    if extract.connector:
        from pipelines.dsl.connectors import connector

        done = connector(extract.connector).run(extract.into, extract.options, day=plan.day, target=env.target,
                                                run_id=step_plan.run_id, offline=plan.offline)
        return StepOutcome(rows=done.rows, rejected=done.rejected, connector=done,
                           source_requests=done.requests, source_retries=done.retries)
    assert extract.file is not None
    path = (plan.spec.parent / step_plan.rendered.get("path", extract.file.path)).resolve()
    if not path.is_file():
        raise PipelineError(f"step {step.id}: no such file {path}")
    if extract.file.columns and extract.file.format is not FileFormat.PARQUET:
        return _extract_rows(step, plan, env, path)
    if env.target.dialect != "duckdb":
        raise ConfigError(f"step {step.id}: a file without declared columns loads into DuckDB targets only")
    reader = {FileFormat.CSV: "read_csv", FileFormat.JSONL: "read_json", FileFormat.PARQUET: "read_parquet"}[extract.file.format]
    literal = "'" + str(path).replace("'", "''") + "'"
    result = env.target.replace_from_sql(extract.into, f"SELECT * FROM {reader}({literal})")  # as the file types it
    return StepOutcome(rows={extract.into: result.total})


def _extract_http(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> StepOutcome:
    from pipelines.dsl.columns import logical_type
    from pipelines.dsl.http_extract import budget, fetch
    from pipelines.runtime.targets import Column, Table
    from pipelines.sources.dead_letter import DeadLetterWriter

    extract = step.extract
    assert extract is not None and extract.http is not None
    timeout = step.timeout or plan.pipeline.timeout
    policy = budget(timeout.total_seconds() if timeout else None)
    settings = extract.http.model_copy(update={"url": step_plan.rendered.get("url", extract.http.url)})
    fetched = fetch(settings, folder=plan.spec.parent, policy=policy)
    dead_letter = dead_letter_path(plan, step, env) if fetched.rejected else None
    if dead_letter is not None:
        with DeadLetterWriter(dead_letter, source=f"{plan.pipeline.id}.{step.id}") as dead:
            dead.write_many(dead.record(r["reason"], r["raw"], page=r["page"], index=r["index"]) for r in fetched.rejected)
    table = Table(extract.into, tuple(Column(c.name, logical_type(c.type), c.nullable) for c in extract.http.columns))
    result = warehouse_call(env, step, lambda: env.target.replace(table, fetched.rows).total)
    namespace = step_plan.rendered.get("dataset_namespace") or None
    source = http_dataset(public_url(settings.url), namespace=namespace)
    outcome = _copied_from(source, extract.http.columns, table, result, env, rejected=len(fetched.rejected),
                           dead_letter=dead_letter, quality=source_facets(fetched.rows, [c.key for c in extract.http.columns],
                                                                          len(fetched.rejected), fetched.rules))
    outcome.source_requests, outcome.source_retries = fetched.requests, fetched.retries
    return outcome


def _extract_rows(step: Step, plan: Plan, env: Environment, path: Path) -> StepOutcome:
    from pipelines.dsl.columns import logical_type
    from pipelines.dsl.file_extract import read_rows
    from pipelines.runtime.targets import Column, Table
    from pipelines.sources.dead_letter import DeadLetterWriter

    extract = step.extract
    assert extract is not None and extract.file is not None
    found = read_rows(extract.file, path)
    dead_letter = dead_letter_path(plan, step, env) if found.rejected else None
    if dead_letter is not None:
        with DeadLetterWriter(dead_letter, source=f"{plan.pipeline.id}.{step.id}") as dead:
            dead.write_many(dead.record(r["reason"], r["raw"], line=r["line"]) for r in found.rejected)
    table = Table(extract.into, tuple(Column(c.name, logical_type(c.type), c.nullable) for c in extract.file.columns))
    result = warehouse_call(env, step, lambda: env.target.replace(table, found.rows).total)
    return _copied_from(file_dataset(path), extract.file.columns, table, result, env, rejected=len(found.rejected),
                        dead_letter=dead_letter, quality=source_facets(found.rows, [c.key for c in extract.file.columns],
                                                                       len(found.rejected), found.rules))


def _copied_from(source: DatasetRef, columns: Sequence[Any], table: Any, written: int, env: Environment, *,
                 rejected: int, dead_letter: Path | None, quality: tuple[Any, Any]) -> StepOutcome:
    """An extract's outcome: the source it read (an API resource, a file) with what was seen of its
    quality, and the staging table it filled, each of whose columns is the source's field of the
    same name, unchanged."""
    target = env.target.dataset(table.name)
    metrics, assertions = quality
    lineage = copied_lineage(source, target, [c.name for c in columns], sources=[c.key for c in columns])
    result = ConnectorResult(
        inputs=[DatasetIO(source, schema=[(c.key, c.type, "") for c in columns], metrics=metrics, assertions=assertions)],
        outputs=[DatasetIO(target, schema=env.target.schema_fields(table), lineage=lineage,
                             rows=written)],
        rows={table.name: written})
    return StepOutcome(rows=result.rows, rejected=rejected, connector=result,
                    dead_letter=str(dead_letter) if dead_letter else None)


def _extract_sql(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> StepOutcome:
    """A query against a source database (or the warehouse), its rows checked like any extract."""
    from lineage_auditor.sql import analyze_sql
    from pipelines.dsl.columns import fit_record, logical_type
    from pipelines.runtime.targets import Column, Table, parse_target

    extract = step.extract
    assert extract is not None and extract.sql is not None
    settings = extract.sql
    if settings.connection == "target":
        source = env.target
    else:
        url = os.environ.get(settings.connection, "")
        if not url:
            raise ConfigError(f"step {step.id}: the environment variable {settings.connection} holding the source's "
                              "URL is not set (connection: target reads the warehouse itself)")
        source = parse_target(url, default_path=env.home / "source.duckdb")
    query = step_plan.rendered.get("query", settings.query)
    records = warehouse_call(env, step, lambda: source.records(query))
    columns = [(c.key, logical_type(c.type), c.nullable) for c in settings.columns]
    rows: list[tuple[Any, ...]] = []
    rejected: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        row, problem = fit_record(record, columns)
        if problem:
            rejected.append({"index": index, "reason": problem, "raw": {k: str(v) for k, v in record.items()}})
        else:
            rows.append(row)
    dead_letter = dead_letter_path(plan, step, env) if rejected else None
    if dead_letter is not None:
        from pipelines.sources.dead_letter import DeadLetterWriter

        with DeadLetterWriter(dead_letter, source=f"{plan.pipeline.id}.{step.id}") as dead:
            dead.write_many(dead.record(r["reason"], r["raw"], index=r["index"]) for r in rejected)
    table = Table(extract.into, tuple(Column(c.name, logical, nullable)
                                      for c, (_, logical, nullable) in zip(settings.columns, columns)))
    written = warehouse_call(env, step, lambda: env.target.replace(table, rows).total)
    outcome = StepOutcome(rows={extract.into: written}, rejected=len(rejected), dead_letter=str(dead_letter) if dead_letter else None)
    analysed = analyze_sql(query, dialect=settings.dialect)
    if analysed.statements:
        statement = analysed.statements[0]
        inputs = [DatasetIO(source.dataset(ref.name)) for ref in statement.inputs]
        lineage = _in_source(statement.outputs[0], source, env.target.dataset(extract.into)) if statement.outputs else None
        outcome.connector = ConnectorResult(inputs=inputs, outputs=[DatasetIO(
            env.target.dataset(extract.into), schema=env.target.schema_fields(table), lineage=lineage, rows=written)],
            rows=outcome.rows)
    return outcome


def _in_source(lineage: DatasetLineage, source: Target, output: Any) -> DatasetLineage:
    """A query's lineage with its inputs named as the source database names them."""
    def inputs(fields: list[InputField]) -> list[InputField]:
        return [InputField(ColumnRef(source.dataset(f.column.dataset.name), f.column.field), list(f.transformations))
                for f in fields]

    return DatasetLineage(output, [OutputField(f.name, f.position, inputs(f.inputs), f.type) for f in lineage.fields],
                          inputs(lineage.dataset_inputs))
