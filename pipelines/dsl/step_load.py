"""``load`` steps: a produced table into its published place, ``append``, ``upsert`` on keys or
``replace`` (built aside and swapped in), each in one transaction."""

from __future__ import annotations

from lineage_auditor.errors import PipelineError
from pipelines.dsl.model import LoadMode, Step
from pipelines.dsl.plan import Plan, StepPlan
from pipelines.dsl.step_common import StepOutcome, warehouse_call
from pipelines.runtime.run import Environment
from pipelines.runtime.targets import quote


def run(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> StepOutcome:
    load = step.load
    assert load is not None
    source = step_plan.reads[0] if step_plan.reads else None
    if source is None:
        raise PipelineError(f"step {step.id}: step {load.from_} wrote no table to load")
    target, table = env.target, load.table
    if load.mode is LoadMode.REPLACE:
        return StepOutcome(rows={table: warehouse_call(env, step, lambda: target.replace_from_sql(table, f"SELECT * FROM {quote(source)}").total)})

    def merge() -> int:
        with target.connect() as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.split('.')[0])}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} AS SELECT * FROM {quote(source)} WHERE 1 = 0")
            if load.mode is LoadMode.UPSERT:
                keys = ", ".join(quote(k) for k in load.keys)
                conn.execute(f"DELETE FROM {quote(table)} WHERE ({keys}) IN (SELECT {keys} FROM {quote(source)})")
            conn.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(source)}")
            return int(conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0])

    return StepOutcome(rows={table: warehouse_call(env, step, merge)})
