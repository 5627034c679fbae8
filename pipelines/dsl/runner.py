"""The local runner: a spec's steps in dependency order, with retries, lineage and checks.

One OpenLineage parent run for the pipeline and a child run per step (the same facets the
reference pipelines emit: schema, column lineage from the plan, row counts, SQL, ownership,
data-quality assertions). Writes are atomic and a rerun of the same day leaves the same rows:
``CREATE TABLE ... AS`` and ``replace`` build a new table and swap it in, ``upsert`` deletes
the incoming keys and inserts in one transaction, ``append`` is the one mode that adds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time as day_time, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlglot

from lineage_auditor.errors import ConfigError, LineageAuditError, PipelineError
from lineage_auditor.model import ColumnRef, DatasetLineage, InputField, OutputField
from lineage_auditor.retry import Deadline, GaveUp, Retryable, RetryPolicy, retry_call
from lineage_auditor.governance import COST_FACET, RUN_BY_FACET, Identity, resolve_identity
from pipelines.dsl.connectors import DatasetIO
from pipelines.dsl.cost import StepCost, measure_step
from pipelines.dsl.governance import Governance, judge_run, run_by_facet
from pipelines.dsl.listing import JOB_NAMESPACE
from pipelines.dsl.loader import LoadedSpec
from lineage_auditor.durations import display_duration
from lineage_auditor.times import iso
from pipelines.dsl import snapshots
from pipelines.dsl.model import (
    CheckSeverity,
    OnSourceFailure,
    Pipeline,
    Retries,
    RetryOn,
    Step,
    StepKind,
)
from pipelines.dsl.plan import PRODUCERS, Plan, StepPlan, plan_spec
from pipelines.dsl.steps import StepContext, StepOutcome, execute
from pipelines.runtime.events import DEGRADED_FACET, STATS_FACET, JobSpec, RunContext, RunStatsRunFacet
from pipelines.runtime.run import Environment, RunSummary, quiet, summarize
from pipelines.runtime.targets import Target

STEP_DEADLINE = 24 * 3600.0  # a step without a timeout still ends its retries within a day


class CheckFailed(PipelineError):
    """A data-quality check with severity error found failing rows."""


def run_spec(loaded: LoadedSpec, day: date, *, params: Mapping[str, str] | None = None, target: str | None = None,
             lineage: str | None = None, home: str | Path | None = None, offline: bool = False,
             env: Environment | None = None, progress: Callable[[str], None] = quiet,
             sleep: Callable[[float], None] = time.sleep, governance: Governance | None = None,
             identity: Identity | None = None) -> RunSummary:
    """Run one spec for one day; the summary says how it went (a failed step fails the run).

    ``offline``: connectors replay recorded responses instead of calling live sources. ``env``:
    an open environment to run in (several specs sharing one warehouse and one emitter, as the
    demo does); otherwise one is opened for ``target``, ``lineage`` and ``home``. ``governance``
    is the policy in force (None: nothing is enforced), ``identity`` who runs it (default:
    :func:`resolve_identity`); a run the policy denies fails before any step, its FAIL event
    saying why.
    """
    if env is None:
        with Environment.open(target or loaded.pipeline.target or None, lineage=lineage, home=home) as opened:
            return run_spec(loaded, day, params=params, offline=offline, env=opened, progress=progress, sleep=sleep,
                            governance=governance, identity=identity)
    spec = loaded.pipeline
    gov, who = governance or Governance(None, "none given"), identity or resolve_identity()
    plan = plan_spec(loaded, day, params, namespace=env.target.namespace)
    plan.offline = offline
    parent = RunContext(env.events, pipeline_job(loaded), nominal=nominal_window(day))
    verdict = judge_run(loaded, plan, gov, who, naming=env.target.dataset)
    parent.add_run_facet(RUN_BY_FACET, run_by_facet(loaded, who, gov, verdict))  # its steps' runs inherit it
    first_event = len(env.events.events)
    results: list[StepResult] = []
    try:
        with parent:
            verdict.enforce()
            for step_plan in plan.steps:
                progress(f"{spec.id}: {step_plan.id} [{step_plan.kind.value}]")
                step = prepare_step(loaded, plan, step_plan.id, env, pricing=gov.pricing(env.target.dialect))
                results.append(_run_step(step, parent, sleep))
    except LineageAuditError:
        pass  # the FAIL events carry it; the summary reports it
    dead_letters = [r.dead_letter for r in results if r.dead_letter]
    return summarize(parent, env, first_event=first_event, degraded=parent.has_run_facet(DEGRADED_FACET),
                     counts=_counts(plan, results), dead_letter_file=", ".join(dead_letters) or None)


def _counts(plan: Plan, results: list["StepResult"]) -> dict[str, int]:
    """Rows the run published (written to tables no step of it builds on; checks only look) and
    records it set aside."""
    read = {table.lower() for step in plan.steps if step.kind in PRODUCERS for table in step.reads}
    published = sum(rows for result in results for table, rows in result.rows.items() if table.lower() not in read)
    return {"rows_loaded": published, "dead_letters": sum(r.rejected for r in results)}


def nominal_window(day: date) -> tuple[datetime, datetime]:
    """The day a run is for, as its OpenLineage nominal start and end (UTC midnight to midnight)."""
    start = datetime.combine(day, day_time(0), tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def pipeline_job(loaded: LoadedSpec) -> JobSpec:
    """The job of the pipeline as a whole, named by the spec's id: the parent of its steps' jobs."""
    spec = loaded.pipeline
    return _job(loaded, spec.id, spec.description or f"pipeline {spec.id}", "JOB")


def _job(loaded: LoadedSpec, name: str, description: str, job_type: str, sql: str | None = None,
         dialect: str | None = None, code_file: Path | None = None) -> JobSpec:
    spec = loaded.pipeline
    return JobSpec(namespace=JOB_NAMESPACE, name=name, description=description,
                   owners=[(o.name, o.type) for o in spec.owners] or [(f"team:{spec.team}", "MAINTAINER")],
                   code_file=str(code_file or loaded.path), job_type=job_type, sql=sql, sql_dialect=dialect)


def _step_job(loaded: LoadedSpec, step: Step, step_plan: StepPlan, target: Target) -> JobSpec:
    """A step's job: a SQL step records its SQL as it runs on ``target`` (transpiled from the
    spec's dialect) and its SQL file as the code; other steps point at the spec."""
    name, description = f"{loaded.pipeline.id}.{step.id}", f"{step.kind.value} step {step.id}"
    if step.sql is None or not step_plan.sql:
        return _job(loaded, name, description, "TASK")
    try:
        sql = ";\n".join(sqlglot.transpile(step_plan.sql, read=step.sql.dialect, write=target.dialect, comments=False))
    except sqlglot.errors.SqlglotError:
        sql, dialect = step_plan.sql, step.sql.dialect  # recorded as written; running it reports the error
    else:
        dialect = target.dialect
    code = (loaded.path.parent / step.sql.file) if step.sql.file else None
    return _job(loaded, name, description, "QUERY", sql, dialect, code)


@dataclass
class StepResult:
    """What one step read and wrote, with every facet, ready for whoever reports it.

    The local runner puts it on the step's :class:`RunContext`; the Airflow operator returns it
    to the OpenLineage provider. ``run_facets`` are the step run's own (``lineageAudit_degraded``
    when it ran on a snapshot). A failed error-severity check is kept in ``check_failure`` and
    raised by :meth:`raise_for_checks` after the result is reported, so the FAIL event still
    carries the assertions.
    """

    inputs: list[DatasetIO] = field(default_factory=list)
    outputs: list[DatasetIO] = field(default_factory=list)
    run_facets: dict[str, Any] = field(default_factory=dict)
    check_failure: CheckFailed | None = None
    rows: dict[str, int] = field(default_factory=dict)  # rows written, per table
    rejected: int = 0  # records set aside (dead-lettered or quarantined)
    dead_letter: str | None = None  # the file they went to

    def report(self, run: RunContext) -> None:
        """Record the result on a run: its COMPLETE (or FAIL) event carries all of it."""
        for io in self.inputs:
            run.add_input(io.ref, schema=io.schema, metrics=io.metrics, assertions=io.assertions)
        for io in self.outputs:
            run.add_output(io.ref, schema=io.schema, lineage=io.lineage, rows=io.rows)
        for key, facet in self.run_facets.items():
            run.add_run_facet(key, facet)

    def raise_for_checks(self) -> None:
        if self.check_failure is not None:
            raise self.check_failure


@dataclass
class StepRun:
    """One step of a planned spec, ready to run on its own (the unit an Airflow task runs).

    ``inputs`` are the tables the step reads, with their schemas as they are before it runs
    (what a START event says); :meth:`execute` runs the step and returns what it did.
    ``plan.steps`` must hold the step's plan with ``run_id`` set to the OpenLineage run the
    step runs as (connectors stamp rows with it). ``pricing`` is the cost model's rates and
    currency for the target; ``run_facets`` go into every result (``lineageAudit_runBy``
    where no parent run carries it).
    """

    loaded: LoadedSpec
    plan: Plan
    step: Step
    step_plan: StepPlan
    env: Environment
    job: JobSpec
    inputs: list[DatasetIO]
    pricing: tuple[Any, str | None] = (None, None)
    run_facets: dict[str, Any] = field(default_factory=dict)
    cost: StepCost | None = None  # what the last execute cost (its facet, also when it failed)
    attempts: int = 0  # of the last execute
    source: tuple[int, int] = (0, 0)  # source requests and retries of its successful attempt

    def execute(self, *, retry: bool = True, last_attempt: bool = True,
                sleep: Callable[[float], None] = time.sleep) -> StepResult:
        """Run the step: with the spec's retries (``retry``) or once (an orchestrator retries it).

        An extract whose source failed falls back to its last snapshot (``on_source_failure:
        use_last_snapshot``) only on the ``last_attempt``. Raises the step's error when it fails.
        What it cost is measured around it: the ``lineageAudit_cost`` facet is in the result's
        run facets, and in ``cost.facet`` when the step fails.
        """
        self.attempts, self.source = 0, (0, 0)
        with measure_step(None, self.env.target, *self.pricing) as self.cost:
            result = self._attempts(retry, last_attempt, sleep)
            extract = self.step.kind is StepKind.EXTRACT
            self.cost.wrote(result.rows, read=sum(result.rows.values()) + result.rejected if extract else None)
        result.run_facets.update({**self.run_facets, COST_FACET: self.cost.facet, STATS_FACET: self.stats_facet()})
        return result

    def stats_facet(self) -> RunStatsRunFacet:
        """The ``lineageAudit_stats`` facet: attempts of the step, source requests, and every retry
        (the step's re-attempts and its source's retried requests: ``lineage_audit_retries_total``)."""
        requests, source_retries = self.source
        counts = {"attempts": self.attempts, "retries": max(0, self.attempts - 1) + source_retries}
        if requests:
            counts.update(sourceRequests=requests, sourceRetries=source_retries)
        return RunStatsRunFacet(counts=counts)

    def _attempts(self, retry: bool, last_attempt: bool, sleep: Callable[[float], None]) -> StepResult:
        step, spec = self.step, self.loaded.pipeline
        policy, deadline = _retry_policy(step, spec, retry=retry)
        timeout = step.timeout or spec.timeout

        def attempt() -> StepOutcome:
            self.attempts += 1
            try:
                try:
                    with self.env.target.time_limit(deadline.remaining() if timeout else None):
                        outcome = execute(step, self.step_plan, self.plan, self.env)
                        self.source = (outcome.source_requests, outcome.source_retries)
                        return outcome
                except PipelineError as exc:
                    if timeout and deadline.expired():  # the warehouse stopped the statement at the limit
                        raise TimeoutError(f"step {step.id}: stopped at its timeout of {display_duration(timeout.total_seconds())} "
                                           f"({exc.message})") from None
                    raise
            except (PipelineError, TimeoutError) as exc:
                if self.retryable(exc):
                    raise Retryable(str(exc)) from exc
                if isinstance(exc, TimeoutError):
                    raise PipelineError(str(exc)) from None  # ours to report, not a crash
                raise

        try:
            try:
                outcome = retry_call(attempt, policy=policy, deadline=deadline, sleep=sleep)
            except GaveUp as exc:
                if policy.max_attempts == 1:  # no retries asked for: the failure as it is
                    raise PipelineError(exc.last.reason) from None
                raise PipelineError(f"step {step.id}: {exc.why}: {exc.last.reason}") from None
        except PipelineError as exc:
            if (not last_attempt or step.kind is not StepKind.EXTRACT
                    or spec.on_source_failure is not OnSourceFailure.USE_LAST_SNAPSHOT):
                raise
            return self._last_snapshot(exc)
        if step.kind is StepKind.EXTRACT:
            snapshots.record(self.env.home, spec.id, step.id, self.step_plan.writes)
        return self._result(outcome)

    def retryable(self, exc: BaseException) -> bool:
        """Whether the spec's retries (``retries.on``) cover this failure of the step."""
        if not isinstance(exc, (PipelineError, TimeoutError)):
            return False  # a bug in a step's code fails the same way again
        return _retryable(exc, self.step.retries or self.loaded.pipeline.retries)

    def _result(self, outcome: StepOutcome) -> StepResult:
        result = StepResult(inputs=list(self.inputs), rows=dict(outcome.rows), rejected=outcome.rejected,
                            dead_letter=outcome.dead_letter)
        if outcome.connector is not None:  # a connector knows what it read and wrote
            result.inputs.extend(outcome.connector.inputs)
            result.outputs.extend(outcome.connector.outputs)
            return result
        target = self.env.target
        lineage = {d.dataset.name.lower(): _in_target(d, target) for d in self.step_plan.lineage}
        for table in self.step_plan.writes:
            result.outputs.append(DatasetIO(target.dataset(table), schema=_schema(target, table),
                                            lineage=lineage.get(table.lower()), rows=outcome.rows.get(table)))
        for table, assertions in outcome.assertions.items():
            result.inputs.append(DatasetIO(target.dataset(table), assertions=_assertions_facet(assertions)))
        failed = [a for items in outcome.assertions.values() for a in items if not a["success"] and a["severity"] == "error"]
        if failed:
            result.check_failure = CheckFailed(
                f"step {self.step.id}: {len(failed)} check{'s' if len(failed) > 1 else ''} failed: "
                + "; ".join(a["description"] for a in failed))
        return result

    def _last_snapshot(self, failure: PipelineError) -> StepResult:
        """The source stayed down: go on with the tables its last good extract left, if young enough.

        The run is marked degraded (the ``lineageAudit_degraded`` facet says how old the
        snapshot is); without a snapshot younger than ``max_staleness`` the step fails as it would.
        """
        from pipelines.runtime.events import DegradedRunFacet

        spec, step, env = self.loaded.pipeline, self.step, self.env
        assert spec.max_staleness is not None
        taken = snapshots.taken_at(env.home, spec.id, step.id)
        limit = spec.max_staleness.total_seconds()
        age = (datetime.now(timezone.utc) - taken).total_seconds() if taken else None
        present = all(env.target.table_exists(t) for t in self.step_plan.writes)
        if taken is None or age is None or age > limit or not present:
            why = ("no earlier snapshot" if taken is None else "its tables are gone" if not present
                   else f"the last snapshot is {display_duration(age or 0)} old")
            raise PipelineError(f"{failure.message}; {why} (max_staleness {display_duration(limit)})") from None
        facet = DegradedRunFacet(reason=f"source failed, using the snapshot of {iso(taken)}: {failure.message}",
                                 source=step.id, snapshotTakenAt=iso(taken), snapshotAgeSeconds=round(age, 1),
                                 maxStalenessSeconds=limit)
        outputs = [DatasetIO(env.target.dataset(t), schema=_schema(env.target, t)) for t in self.step_plan.writes]
        return StepResult(inputs=list(self.inputs), outputs=outputs, run_facets={DEGRADED_FACET: facet})


def prepare_step(loaded: LoadedSpec, plan: Plan, step_id: str, env: Environment, *,
                 pricing: tuple[Any, str | None] = (None, None), run_facets: dict[str, Any] | None = None) -> StepRun:
    """Step ``step_id`` of ``plan`` ready to run in ``env``: its job and the tables it reads
    (``pricing`` and ``run_facets``: see :class:`StepRun`)."""
    step = next((s for s in loaded.pipeline.steps if s.id == step_id), None)
    step_plan = next((s for s in plan.steps if s.id == step_id), None)
    if step is None or step_plan is None:
        raise ConfigError(f"pipeline {loaded.pipeline.id} has no step {step_id!r}", file=str(loaded.path))
    job = _step_job(loaded, step, step_plan, env.target)
    inputs = [DatasetIO(env.target.dataset(t), schema=_schema(env.target, t)) for t in step_plan.reads]
    return StepRun(loaded, plan, step, step_plan, env, job, inputs, pricing, dict(run_facets or {}))


def _run_step(step: StepRun, parent: RunContext, sleep: Callable[[float], None]) -> StepResult:
    """One step as a child run of the pipeline's: START with its inputs, COMPLETE or FAIL with the rest."""
    with parent.child(step.job) as run:
        step.step_plan.run_id = run.run_id
        StepResult(inputs=step.inputs).report(run)
        try:
            result = step.execute(sleep=sleep)
        finally:
            if step.cost is not None and step.cost.facet is not None:
                run.add_run_facet(COST_FACET, step.cost.facet)  # a step that failed has cost something too
            run.add_run_facet(STATS_FACET, step.stats_facet())  # and retried as often
        result.report(run)
        if DEGRADED_FACET in result.run_facets:
            parent.add_run_facet(DEGRADED_FACET, result.run_facets[DEGRADED_FACET])
        result.raise_for_checks()
        return result


def _in_target(lineage: DatasetLineage, target: Target) -> DatasetLineage:
    """Planned lineage (tables by their SQL names) with every dataset named as the target names it,
    so a step's inputs are the very datasets the steps before it reported as outputs."""

    def column(ref: ColumnRef) -> ColumnRef:
        return ColumnRef(target.dataset(ref.dataset.name), ref.field)

    def inputs(fields: list[InputField]) -> list[InputField]:
        return [InputField(column(f.column), list(f.transformations)) for f in fields]

    return DatasetLineage(
        target.dataset(lineage.dataset.name),
        [OutputField(f.name, f.position, inputs(f.inputs), f.type) for f in lineage.fields],
        inputs(lineage.dataset_inputs),
    )


def _retry_policy(step: Step, spec: Pipeline, *, retry: bool = True) -> tuple[RetryPolicy, Deadline]:
    retries = step.retries or spec.retries
    timeout = (step.timeout or spec.timeout)
    seconds = timeout.total_seconds() if timeout else STEP_DEADLINE
    policy = RetryPolicy(max_attempts=retries.count + 1 if retry else 1, base_delay=retries.backoff.total_seconds(),
                         max_delay=retries.max_delay.total_seconds(), jitter=0.5 if retries.jitter else 0.0,
                         deadline=seconds)
    return policy, Deadline(seconds, name=f"step {step.id} timeout")


def _retryable(exc: BaseException, retries: Retries) -> bool:
    if isinstance(exc, CheckFailed):
        return False  # the same data fails the same check again
    kinds = set(retries.on)
    if RetryOn.ANY in kinds:
        return True
    if isinstance(exc, TimeoutError):
        return RetryOn.TIMEOUT in kinds
    return RetryOn.SOURCE in kinds


def _assertions_facet(results: list[dict[str, Any]]) -> Any:
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa

    return dqa.DataQualityAssertionsDatasetFacet(assertions=[
        dqa.Assertion(assertion=r["assertion"], success=r["success"], column=r["column"]) for r in results])


def _schema(target: Target, table: str) -> list[tuple[str, str]] | None:
    try:
        columns = target.columns(table)
    except Exception:  # a table a step has not written yet has no schema to report
        return None
    return [(name, kind) for name, kind in columns] or None


__all__ = ["run_spec", "prepare_step", "pipeline_job", "nominal_window", "StepRun", "StepResult", "StepContext",
           "CheckFailed", "CheckSeverity"]
