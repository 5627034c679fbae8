"""``gate`` steps: an upstream health check before any source is read (HTTP status, a SQL probe,
the freshness of another pipeline's table in the lineage store); a failing gate fails the run."""

from __future__ import annotations

from datetime import datetime, timezone

from lineage_auditor.durations import display_duration
from lineage_auditor.errors import PipelineError
from pipelines.dsl.model import Step
from pipelines.dsl.plan import Plan, StepPlan
from pipelines.dsl.step_common import StepOutcome
from pipelines.runtime.run import Environment


def run(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> StepOutcome:
    gate = step.gate
    assert gate is not None
    if gate.http is not None:
        import httpx

        try:
            status = httpx.get(gate.http.url, timeout=10.0).status_code
        except httpx.HTTPError as exc:
            raise PipelineError(f"gate {step.id}: {gate.http.url} did not answer ({type(exc).__name__})") from None
        if status != gate.http.expect_status:
            raise PipelineError(f"gate {step.id}: {gate.http.url} answered {status}, expected {gate.http.expect_status}")
    elif gate.freshness is not None:
        _gate_freshness(step, gate.freshness.dataset, gate.freshness.max_staleness.total_seconds(), env)
    elif gate.sql is not None:
        rows = env.target.query(gate.sql.query)
        if not rows or not rows[0] or not rows[0][0]:
            raise PipelineError(f"gate {step.id}: the probe query returned no true value")
    return StepOutcome()


def _gate_freshness(step: Step, table: str, limit: float, env: Environment) -> None:
    """The last completed run that wrote ``table`` (in this warehouse) must be younger than ``limit``."""
    from collectors.sources import read_events
    from lineage_auditor.events import RunState

    ref = env.target.dataset(table)
    last = None
    for event in read_events(env.lineage):
        if event.event_type is RunState.COMPLETE and any(o.ref == ref for o in event.outputs):
            last = event.time if last is None or event.time > last else last
    if last is None:
        raise PipelineError(f"gate {step.id}: no completed run has written {table} (upstream not ready)")
    age = (datetime.now(timezone.utc) - last).total_seconds()
    if age > limit:
        raise PipelineError(f"gate {step.id}: {table} was last written {display_duration(age)} ago "
                            f"(max_staleness {display_duration(limit)})")
