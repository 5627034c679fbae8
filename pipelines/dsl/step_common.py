"""What every step kind shares: the outcome a step returns, warehouse calls with the drivers'
errors as ours, and where rejected records go."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lineage_auditor.errors import LineageAuditError, PipelineError
from pipelines.dsl.model import Step
from pipelines.dsl.plan import Plan
from pipelines.runtime.run import Environment

R = TypeVar("R")


@dataclass
class StepOutcome:
    rows: dict[str, int] = field(default_factory=dict)
    assertions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejected: int = 0  # records dead-lettered
    connector: Any = None  # a named connector's ConnectorResult: the datasets it read and wrote
    dead_letter: str | None = None  # the file the rejected records went to
    source_requests: int = 0  # HTTP requests made to the source (retries included)
    source_retries: int = 0  # of which retries


def warehouse_call(env: Environment, step: Step, action: Callable[[], R]) -> R:
    """A warehouse call with the driver's errors as ours (named by step)."""
    try:
        return action()
    except LineageAuditError:
        raise
    except Exception as exc:  # the drivers' error classes differ per target
        raise PipelineError(f"step {step.id}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}") from None


def dead_letter_path(plan: Plan, step: Step, env: Environment) -> Path:
    if plan.pipeline.dead_letter:
        return plan.spec.parent / plan.pipeline.dead_letter
    return env.home / "dead-letter" / f"{plan.pipeline.id}.{step.id}.jsonl"
