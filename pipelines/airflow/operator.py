"""The operator every compiled DAG uses: one step of a spec, run by the local runner's step code.

A task runs its step once for the DAG run's day (Airflow retries it; the spec's ``retries.on``
still decides which failures are worth a retry: the others fail at once, as they do locally)
and keeps what the step read and wrote. The OpenLineage provider asks for that through
:meth:`SpecStepOperator.get_openlineage_facets_on_complete` and sends it in the task's COMPLETE
event: openlineage-python ``Dataset`` objects with our facets (schema, columnLineage with
transformation types, data quality, sql, ownership), not Airflow ``Asset`` objects, which the
provider drops for ``postgres://`` and ``duckdb://`` names.

The day a task runs for is its DAG run's logical date in UTC: the ``ds`` of Airflow's
templates and of the spec's, as ``--date`` is for the local runner.

Imports Airflow: only DAG files and Airflow workers import this module.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from lineage_auditor.errors import LineageAuditError
from lineage_auditor.governance import RUN_BY_FACET
from pipelines.dsl.runner import CheckFailed, StepResult, StepRun

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

TARGET_ENV = "LINEAGE_AUDIT_TARGET"  # the warehouse URL on the workers when the spec names none
ALERTS = logging.getLogger("lineage_audit.alerts")


class SpecStepOperator(BaseOperator):
    """Run step ``task_id`` of the spec at ``spec`` for the DAG run's day.

    ``target`` (templated) is the warehouse URL; default: ``$LINEAGE_AUDIT_TARGET``, else the
    spec's ``target``, else the DuckDB file in the lineage home (``$LINEAGE_AUDIT_HOME``).
    """

    template_fields = ("target",)
    ui_color = "#e8f1fb"

    def __init__(self, *, spec: str | Path, target: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = str(spec)
        self.target = target
        self._step: StepRun | None = None
        self._result: StepResult | None = None

    def execute(self, context: Any) -> None:
        step = self._prepare(context)
        last_attempt = int(context["ti"].try_number) > int(self.retries or 0)
        try:
            result = step.execute(retry=False, last_attempt=last_attempt)
        except (LineageAuditError, TimeoutError) as exc:
            if step.retryable(exc):
                raise  # Airflow retries it
            raise AirflowFailException(_message(exc)) from exc
        except Exception as exc:  # the step's own code (a python step) failed: locally not retried either
            raise AirflowFailException(_message(exc)) from exc
        self._result = result
        try:
            result.raise_for_checks()
        except CheckFailed as exc:  # the same data fails the same check again: no retry
            raise AirflowFailException(exc.message) from None

    # ------------------------------------------------------------------ lineage (provider hooks)

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        step = self._step or self._prepare_from_current_context()
        return self._lineage(StepResult(inputs=list(step.inputs)) if step else None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self._lineage(self._result)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        return self._lineage(StepResult(inputs=list(self._step.inputs)) if self._step else None)

    def _lineage(self, result: StepResult | None) -> OperatorLineage:
        """The result as the provider takes it: datasets with our facets, run and job facets."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        from pipelines.runtime.events import EventLog, RunContext

        if self._step is None:
            return OperatorLineage()
        run = RunContext(EventLog(None), self._step.job)  # never entered: nothing is emitted
        (result or StepResult()).report(run)
        inputs, outputs = run.datasets()
        return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run.run_facets,
                               job_facets=self._step.job.facets())

    # ------------------------------------------------------------------ the step

    def _prepare(self, context: Any) -> StepRun:
        """Load and plan the spec for the run's day and params; the step, ready to run."""
        from pipelines.dsl.loader import load_spec
        from pipelines.dsl.plan import plan_spec
        from pipelines.dsl.runner import prepare_step
        from pipelines.runtime.run import Environment

        loaded = load_spec(Path(self.spec))
        declared = loaded.pipeline.params
        overrides = {k: _text(v) for k, v in (context.get("params") or {}).items() if k in declared and v is not None}
        target = self.target or os.environ.get(TARGET_ENV) or loaded.pipeline.target or None
        env = Environment.open(target, emit=False)  # the provider reports the lineage
        plan = plan_spec(loaded, run_day(context), overrides, namespace=env.target.namespace)
        step = prepare_step(loaded, plan, self.task_id, env, run_facets={RUN_BY_FACET: _run_by(loaded)})
        step.step_plan.run_id = _lineage_run_id(context["ti"])
        self._step = step
        return step

    def _prepare_from_current_context(self) -> StepRun | None:
        """At START the provider asks before ``execute``: plan from the running task's context."""
        from airflow.sdk import get_current_context

        try:
            return self._prepare(get_current_context())
        except Exception:  # no context yet, or a spec that fails: execute reports it
            return None


def _run_by(loaded: Any) -> Any:
    """Who runs the task (``$LINEAGE_AUDIT_USER``, else the worker's OS user) for the spec's team.

    No policy is enforced on a worker: the runBy facet records who ran it, the audit holds the
    store to the policy afterwards, and ``costs`` prices the cost facet with the policy's model.
    """
    from lineage_auditor.governance import resolve_identity
    from pipelines.dsl.governance import Governance, Verdict, run_by_facet

    return run_by_facet(loaded, resolve_identity(), Governance(None, "Airflow worker"), Verdict())


def run_day(context: Any) -> date:
    """The day a DAG run is for: its logical date (UTC), else when it was due to run."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(timezone.utc).date() if isinstance(moment, datetime) else moment


def _lineage_run_id(ti: Any) -> str:
    """The OpenLineage run id the provider gives this try of the task (rows may be stamped with it)."""
    try:
        from airflow.providers.openlineage.plugins.macros import lineage_run_id
    except ImportError:  # the provider is missing: nothing reports lineage, rows still need an id
        return str(ti.id)
    return str(lineage_run_id(ti))


def _text(value: Any) -> str:
    """A param's value as ``--param`` text (the spec's planner types it again)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, LineageAuditError) else (str(exc).strip() or type(exc).__name__)


# ---------------------------------------------------------------------- alert hooks


def alert(kind: str, pipeline: str, message: str, **details: Any) -> None:
    """The alert hook of compiled DAGs: one JSON line on the ``lineage_audit.alerts`` logger.

    Route it like any Python log (Airflow's logging config, a handler that pages); the fields
    are stable: ``alert``, ``pipeline``, ``message`` and the details given.
    """
    ALERTS.error(json.dumps({"alert": kind, "pipeline": pipeline, "message": message, **details},
                            sort_keys=True, default=str))


def task_failed(context: Any) -> None:
    """``on_failure_callback`` of every task: a failed step (after its retries) raises an alert."""
    ti = context["ti"]
    error = context.get("exception")
    alert("step_failed", ti.dag_id, _message(error) if error else "the task failed", step=ti.task_id,
          run_id=context["run_id"], try_number=ti.try_number)


def deadline_missed(context: Any = None, *, pipeline: str, **kwargs: Any) -> None:
    """The deadline callback (the spec's ``sla.deadline``): the run has not succeeded in time."""
    alert("deadline_missed", pipeline, "the run did not succeed before its deadline", **kwargs)
