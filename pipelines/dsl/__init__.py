"""The pipeline DSL: YAML specs, validated like a compiler and planned with column lineage.

    >>> from pipelines.dsl import load_spec, plan_spec   # doctest: +SKIP
    >>> plan = plan_spec(load_spec("specs/daily_revenue.yml"), date(2024, 5, 1))
"""

from pipelines.dsl.loader import LoadedSpec, SpecErrors, SpecProblem, load_spec, load_specs
from pipelines.dsl.plan import Plan, StepPlan, plan_spec

__all__ = ["LoadedSpec", "SpecErrors", "SpecProblem", "load_spec", "load_specs", "Plan", "StepPlan", "plan_spec"]
