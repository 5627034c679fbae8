"""The step kinds of a spec, one module each (``step_<kind>.py``); :func:`execute` runs a step of any kind once.

A kind's ``run(step, step_plan, plan, env)`` does the work and returns a :class:`StepOutcome`
(rows written, data-quality results, what a connector read and wrote); retries, lineage events
and cost are the runner's (:mod:`pipelines.dsl.runner`), the same for every kind.
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.dsl.model import Step, StepKind
from pipelines.dsl.plan import Plan, StepPlan
from pipelines.dsl import step_check, step_extract, step_gate, step_load, step_python, step_sql
from pipelines.dsl.step_common import StepOutcome
from pipelines.dsl.step_python import StepContext
from pipelines.runtime.run import Environment

KINDS: dict[StepKind, Callable[[Step, StepPlan, Plan, Environment], StepOutcome]] = {
    StepKind.GATE: step_gate.run, StepKind.EXTRACT: step_extract.run, StepKind.SQL: step_sql.run,
    StepKind.PYTHON: step_python.run, StepKind.LOAD: step_load.run, StepKind.CHECK: step_check.run,
}


def execute(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> StepOutcome:
    """Run ``step`` once, by its kind."""
    return KINDS[step.kind](step, step_plan, plan, env)


__all__ = ["KINDS", "StepContext", "StepOutcome", "execute"]
