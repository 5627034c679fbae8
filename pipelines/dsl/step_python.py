"""``python`` steps: ``module:function`` (found beside the spec first) for what SQL cannot say."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from lineage_auditor.errors import ConfigError
from pipelines.dsl.model import Step
from pipelines.dsl.plan import Plan, StepPlan
from pipelines.dsl.step_common import StepOutcome
from pipelines.runtime.run import Environment
from pipelines.runtime.targets import Target


@dataclass
class StepContext:
    """What a ``python`` step's function receives: the run's day and params, and the warehouse."""

    day: date
    params: Mapping[str, Any]
    target: Target
    step: StepPlan

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.target.query(sql)

    def execute(self, sql: str) -> None:
        with self.target.connect() as conn:
            conn.execute(sql)


def run(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> StepOutcome:
    assert step.python is not None
    module_name, _, function_name = step.python.callable.partition(":")
    folder = str(plan.spec.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # a module beside the spec is found first
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"step {step.id}: cannot import {step.python.callable}: {exc}") from None
    finally:
        if added:
            sys.path.remove(folder)
    result = function(StepContext(plan.day, plan.params, env.target, step_plan))
    rows = {t: int(n) for t, n in (result or {}).items()} if isinstance(result, Mapping) else {}
    return StepOutcome(rows=rows)
