"""``sql`` steps: the spec's SQL transpiled to the target and run in one transaction."""

from __future__ import annotations

import sqlglot
from sqlglot import expressions as exp

from lineage_auditor.errors import PipelineError
from pipelines.dsl.model import Step
from pipelines.dsl.plan import Plan, StepPlan
from pipelines.dsl.step_common import StepOutcome, warehouse_call
from pipelines.runtime.run import Environment


def run(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> StepOutcome:
    """A SQL step's statements, transpiled to the target, in one transaction: they land together
    or not at all. ``CREATE TABLE ... AS`` builds the table aside and swaps it in."""
    assert step.sql is not None
    try:
        statements = [s for s in sqlglot.parse(step_plan.sql, read=step.sql.dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise PipelineError(f"step {step.id}: {exc}") from None
    target = env.target

    def run_all() -> dict[str, int]:
        rows: dict[str, int] = {}
        with target.connect() as conn:
            for statement in statements:
                if isinstance(statement, exp.Create) and isinstance(statement.expression, exp.Query):
                    table = statement.this.find(exp.Table) if not isinstance(statement.this, exp.Table) else statement.this
                    assert table is not None
                    name = ".".join(p for p in (table.db, table.name) if p)
                    rows[name] = target.replace_from_sql(name, statement.expression.sql(dialect=target.dialect), conn).total
                else:
                    conn.execute(statement.sql(dialect=target.dialect))
        return rows

    return StepOutcome(rows=warehouse_call(env, step, run_all))
