"""``check`` steps: data-quality checks on a table, each counted as failing rows; the results
become ``dataQualityAssertions`` (an error-severity failure fails the step, after it is reported)."""

from __future__ import annotations

from datetime import datetime, time as day_time, timezone
from typing import Any

from pipelines.dsl.model import Check, Step
from pipelines.dsl.plan import Plan, StepPlan
from pipelines.dsl.step_common import StepOutcome, warehouse_call
from pipelines.runtime.run import Environment
from pipelines.runtime.targets import Target, quote


def run(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> StepOutcome:
    checks = step.check
    assert checks is not None
    table = checks.dataset
    results = []
    for check in checks.checks:
        failing = warehouse_call(env, step, lambda c=check: _failing_rows(env.target, table, c))  # type: ignore[misc]
        description = f"{check.kind}: {failing} failing row{'s' if failing != 1 else ''}" if failing else check.kind
        column = check.columns[0][1] if check.columns else None
        results.append({"assertion": check.kind, "success": failing == 0, "column": column,
                        "severity": check.severity.value, "description": description})
    return StepOutcome(assertions={table: results})


def _failing_rows(target: Target, table: str, check: Check) -> int:
    t = quote(table)
    if check.not_null is not None:
        sql = f"SELECT count(*) FROM {t} WHERE {quote(check.not_null)} IS NULL"
    elif check.unique is not None:
        c = quote(check.unique)
        sql = f"SELECT count(*) FROM (SELECT {c} FROM {t} GROUP BY {c} HAVING count(*) > 1) AS dupes"
    elif check.accepted_values is not None:
        values = ", ".join(_literal(v) for v in check.accepted_values.values)
        sql = f"SELECT count(*) FROM {t} WHERE {quote(check.accepted_values.column)} NOT IN ({values})"
    elif check.row_count is not None:
        count = int(target.query(f"SELECT count(*) FROM {t}")[0][0])
        low, high = check.row_count.min, check.row_count.max
        return int((low is not None and count < low) or (high is not None and count > high))
    elif check.relationships is not None:
        other, _, column = check.relationships.to.rpartition(".")
        c = quote(check.relationships.column)
        sql = f"SELECT count(*) FROM {t} WHERE {c} IS NOT NULL AND {c} NOT IN (SELECT {quote(column)} FROM {quote(other)})"
    elif check.freshness is not None:
        cutoff = datetime.now(timezone.utc) - check.freshness.max_age
        newest = target.query(f"SELECT max({quote(check.freshness.column)}) FROM {t}")[0][0]
        return int(newest is None or _aware(newest) < cutoff)
    else:
        assert check.sql is not None
        sql = f"SELECT count(*) FROM ({check.sql}) AS failing"
    return int(target.query(sql)[0][0])


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.combine(value, day_time(0), tzinfo=timezone.utc)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"
